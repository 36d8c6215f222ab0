#!/usr/bin/env python3
"""End-to-end tests: the real binaries on the real sample photos, in temporary folders.

Run by ctest (which sets CBIR_BIN_DIR and CBIR_SOURCE_DIR); needs only Python's standard library.
"""
import csv
import io
import json
import os
import shutil
import subprocess
import tempfile
import unittest

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.environ.get("CBIR_SOURCE_DIR", ".")
MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
SEED = os.path.join(SOURCE, "images")
NAMES = ["dog1", "dog2", "dog3", "cat1", "cat2", "person1", "person2"]


def reference_distances_from(name):
    out = {}
    with open(os.path.join(SOURCE, "models", "reference-seed-distances-untrained.tsv")) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["a"] == name:
                out[row["b"]] = float(row["squared_l2"])
    return out


class Cbir:
    """Runs a binary in a working directory, with no CBIR_* variables leaking in from outside."""

    def __init__(self, cwd):
        self.cwd = cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}

    def run(self, *args, tool="cbir", stdin=None):
        return subprocess.run([os.path.join(BIN, tool), *args], cwd=self.cwd, env=self.env, input=stdin,
                              capture_output=True, text=True, timeout=600)


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for path in (MODEL, *(os.path.join(SEED, n + ".jpg") for n in NAMES)):
            if not os.path.exists(path):
                raise RuntimeError(f"{path} missing: run ./scripts/fetch-assets.sh")
        cls.tmp = tempfile.mkdtemp(prefix="cbir-e2e-")
        photos = os.path.join(cls.tmp, "photos")
        os.makedirs(os.path.join(photos, "nested", "deeper"))
        for i, n in enumerate(NAMES):
            # Spread over sub-folders: the walk must be recursive.
            sub = ["", "nested", os.path.join("nested", "deeper")][i % 3]
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(photos, sub, n + ".jpg"))
        # Broken files that must be skipped and named, not crash the run.
        open(os.path.join(photos, "empty.jpg"), "wb").close()
        with open(os.path.join(photos, "notes.jpg"), "w") as f:
            f.write("this is text, not a JPEG\n")
        with open(os.path.join(SEED, "dog2.jpg"), "rb") as f:
            data = f.read()
        with open(os.path.join(photos, "nested", "truncated.jpg"), "wb") as f:
            f.write(data[: len(data) // 2])
        with open(os.path.join(photos, "readme.txt"), "w") as f:
            f.write("not an image extension: the walk ignores it\n")
        cls.cbir = Cbir(cls.tmp)
        cls.index_run = cls.cbir.run("index", "photos", "--model", MODEL)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path_of(self, name):
        for sub in ["", "nested", os.path.join("nested", "deeper")]:
            p = os.path.join("photos", sub, name + ".jpg")
            if os.path.exists(os.path.join(self.tmp, p)):
                return p
        raise KeyError(name)

    def query_jsonl(self, *args, cwd=None):
        result = (Cbir(cwd) if cwd else self.cbir).run("query", *args, "--format", "jsonl")
        self.assertEqual(result.returncode, 0, result.stderr)
        return [json.loads(line) for line in result.stdout.splitlines()]

    def test_index_skips_corrupt_files_and_names_them(self):
        r = self.index_run
        self.assertEqual(r.returncode, 0, r.stderr)
        for broken in ["empty.jpg", "notes.jpg", "truncated.jpg"]:
            self.assertRegex(r.stderr, rf"skipped \S*{broken}: ", broken)
        self.assertNotIn("readme.txt", r.stderr)
        self.assertIn("indexed 7 new, 0 changed, 0 unchanged, 0 moved, 0 copied, 0 pruned, 3 skipped; 7 images",
                      r.stderr)
        self.assertIn("the untrained stand-in model", r.stderr)  # the stand-in model is announced
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, ".cbir", "catalogue.sqlite")))
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, ".cbir", "index.hnsw")))

    def test_query_dog1_reproduces_the_reference_ranking_and_distances(self):
        reference = reference_distances_from("dog1")
        rows = self.query_jsonl(self.path_of("dog1"), "--top-k", "7")
        self.assertEqual([r["rank"] for r in rows], list(range(1, 8)))
        got = [os.path.basename(r["path"])[:-4] for r in rows]
        self.assertEqual(got, sorted(reference, key=reference.get))  # dog1 cat2 dog2 person1 cat1 dog3 person2
        self.assertEqual(rows[0]["distance"], 0.0)
        for r, name in zip(rows[1:], got[1:]):
            self.assertAlmostEqual(r["distance"], reference[name], delta=0.03 * reference[name])
        for r in rows:  # printed paths work from the working directory as they are
            self.assertTrue(os.path.isfile(os.path.join(self.tmp, r["path"])), r["path"])
            self.assertEqual(r["query"], self.path_of("dog1"))

    def test_query_of_an_image_outside_the_store_embeds_it(self):
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(outside, exist_ok=True)
        shutil.copy(os.path.join(SEED, "dog2.jpg"), os.path.join(outside, "copy.jpg"))
        rows = self.query_jsonl(os.path.join("outside", "copy.jpg"), "-k", "3")
        self.assertEqual(os.path.basename(rows[0]["path"]), "dog2.jpg")
        self.assertLess(rows[0]["distance"], 1e-3)  # same pixels, same model: (almost) zero
        reference = reference_distances_from("dog2")
        self.assertAlmostEqual(rows[1]["distance"], sorted(reference.values())[1], delta=0.03 * sorted(reference.values())[1])

    def test_hnsw_results_equal_exact_results(self):
        for name in NAMES:
            approximate = self.query_jsonl(self.path_of(name), "-k", "7")
            exact = self.query_jsonl(self.path_of(name), "-k", "7", "--exact")
            self.assertEqual([r["path"] for r in approximate], [r["path"] for r in exact])
            for a, e in zip(approximate, exact):
                self.assertAlmostEqual(a["distance"], e["distance"], delta=1e-3 * max(1.0, e["distance"]))

    def test_formats_parse_with_real_parsers(self):
        q = self.path_of("cat1")
        tsv = self.cbir.run("query", q, "-k", "3", "--format", "tsv")
        rows = list(csv.DictReader(io.StringIO(tsv.stdout), delimiter="\t"))
        self.assertEqual([r["rank"] for r in rows], ["1", "2", "3"])
        csv_out = self.cbir.run("query", q, "-k", "3", "--format", "csv")
        self.assertEqual([r["path"] for r in csv.DictReader(io.StringIO(csv_out.stdout))], [r["path"] for r in rows])
        paths = self.cbir.run("query", q, "-k", "3", "--format", "paths")
        self.assertEqual(paths.stdout.splitlines(), [r["path"] for r in rows])
        table = self.cbir.run("query", q, "-k", "3", "--format", "table")
        self.assertIn("squared L2", table.stderr)
        self.assertEqual(table.stdout.splitlines()[0].split(), ["query", "rank", "distance", "path"])
        # Piped without --format: tab-separated.
        self.assertEqual(self.cbir.run("query", q, "-k", "3").stdout, tsv.stdout)

    def test_store_is_found_from_a_subfolder_and_paths_stay_usable(self):
        sub = os.path.join(self.tmp, "photos", "nested")
        rows = self.query_jsonl("dog2.jpg", "-k", "2", cwd=sub)
        self.assertEqual(rows[0]["path"], "dog2.jpg")
        for r in rows:
            self.assertTrue(os.path.exists(os.path.join(sub, r["path"])), r["path"])

    def test_the_three_binaries_agree(self):
        q = self.path_of("person1")
        main = self.cbir.run("query", q, "-k", "5", "--format", "tsv")
        alone = self.cbir.run(q, "-k", "5", "--format", "tsv", tool="cbir-query")
        self.assertEqual(alone.returncode, 0, alone.stderr)
        self.assertEqual(main.stdout, alone.stdout)
        again = self.cbir.run("photos", tool="cbir-index")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("0 new, 0 changed, 7 unchanged", again.stderr)

    def test_exit_codes_and_errors(self):
        missing = self.cbir.run("query", "no-such.jpg")
        self.assertEqual(missing.returncode, 2)
        self.assertIn("no-such.jpg", missing.stderr)
        bad = self.cbir.run("query", os.path.join("photos", "notes.jpg"))
        self.assertEqual(bad.returncode, 2)
        self.assertIn("notes.jpg", bad.stderr)
        self.assertEqual(self.cbir.run("query", self.path_of("dog1"), "--top-k", "0").returncode, 2)
        self.assertEqual(self.cbir.run("index", "photos", "--index", "ivf-nonsense").returncode, 2)
        self.assertEqual(self.cbir.run("frobnicate").returncode, 2)
        self.assertEqual(self.cbir.run("--help").returncode, 0)
        self.assertEqual(self.cbir.run("query", "--help").returncode, 0)
        nowhere = tempfile.mkdtemp(prefix="cbir-nostore-")
        try:
            r = Cbir(nowhere).run("query", os.path.join(SEED, "dog1.jpg"))
            self.assertEqual(r.returncode, 2)
            self.assertIn("no cbir store", r.stderr)
        finally:
            shutil.rmtree(nowhere)

    def test_model_mismatch_is_refused(self):
        other = os.path.join(self.tmp, "other-model.pt")
        with open(MODEL, "rb") as f, open(other, "wb") as g:
            g.write(f.read() + b"\0")  # a different file: a different sha256
        r = self.cbir.run("query", os.path.join(SEED, "dog3.jpg"), "--model", other)
        self.assertEqual(r.returncode, 2)
        self.assertIn("model mismatch", r.stderr)


class IndexLifecycle(unittest.TestCase):
    """A store of its own, changed step by step: stale, missing and damaged index files."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cbir-life-")
        os.makedirs(os.path.join(self.tmp, "photos"))
        for n in NAMES[:5]:
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(self.tmp, "photos", n + ".jpg"))
        self.cbir = Cbir(self.tmp)
        self.cbir.env["CBIR_MODEL"] = MODEL  # flags also come from the environment
        r = self.cbir.run("index", "photos", "--store", "store")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.index_file = os.path.join(self.tmp, "store", "index.hnsw")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def query(self, *extra):
        r = self.cbir.run("query", os.path.join("photos", "dog1.jpg"), "--store", "store", "-k", "10",
                          "--format", "tsv", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def test_deleted_index_file_is_rebuilt_with_the_same_results(self):
        before = self.query().stdout
        os.remove(self.index_file)
        after = self.query()
        self.assertEqual(after.stdout, before)
        self.assertIn("building", after.stderr)
        self.assertTrue(os.path.isfile(self.index_file))
        self.assertNotIn("building", self.query().stderr)  # written back: the next query just loads it

    def test_stale_index_file_is_detected_and_rebuilt(self):
        with open(self.index_file, "rb") as f:
            old_index = f.read()
        for n in NAMES[5:]:
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(self.tmp, "photos", n + ".jpg"))
        r = self.cbir.run("index", "photos", "--store", "store")
        self.assertIn("2 new, 0 changed, 5 unchanged", r.stderr)
        with open(self.index_file, "wb") as f:  # put back the index built before the two new photos
            f.write(old_index)
        after = self.query("-v")  # catching up is routine: said with -v
        self.assertIn("stale", after.stderr)
        self.assertEqual(len(after.stdout.splitlines()), 1 + 7)
        exact = self.query("--exact").stdout
        # Same neighbours; distances agree to float rounding (hnswlib sums in SIMD order).
        self.assertEqual([l.split("\t")[3] for l in after.stdout.splitlines()],
                         [l.split("\t")[3] for l in exact.splitlines()])

    def test_damaged_index_file_is_reported_and_rebuilt(self):
        before = self.query().stdout
        with open(self.index_file, "r+b") as f:
            f.seek(os.path.getsize(self.index_file) // 2)
            f.write(b"\xff\x00\xff\x00")
        after = self.query()
        self.assertIn("checksum", after.stderr)
        self.assertEqual(after.stdout, before)

    def test_changed_file_is_re_embedded(self):
        target = os.path.join(self.tmp, "photos", "dog2.jpg")
        shutil.copy(os.path.join(SEED, "person2.jpg"), target)  # same name, other picture
        r = self.cbir.run("index", "photos", "--store", "store")
        self.assertIn("0 new, 1 changed, 4 unchanged", r.stderr)
        rows = self.cbir.run("query", target, "--store", "store", "-k", "1", "--format", "jsonl").stdout
        self.assertEqual(json.loads(rows)["distance"], 0.0)
        # dog1 -> "dog2.jpg" now has person2's distance from the reference table.
        for line in self.query().stdout.splitlines()[1:]:
            q, rank, distance, path = line.split("\t")
            if path.endswith("dog2.jpg"):
                expected = reference_distances_from("dog1")["person2"]
                self.assertAlmostEqual(float(distance), expected, delta=0.03 * expected)

    def index(self):
        r = self.cbir.run("index", "photos", "--store", "store")
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stderr

    def paths_for(self, image, k=10):
        r = self.cbir.run("query", image, "--store", "store", "-k", str(k), "--format", "paths")
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.splitlines()

    def test_moved_and_copied_files_reuse_their_vectors(self):
        os.makedirs(os.path.join(self.tmp, "photos", "sub"))
        os.rename(os.path.join(self.tmp, "photos", "dog2.jpg"), os.path.join(self.tmp, "photos", "sub", "moved.jpg"))
        shutil.copy(os.path.join(SEED, "cat1.jpg"), os.path.join(self.tmp, "photos", "sub", "copy.jpg"))
        summary = self.index()
        self.assertIn("0 new, 0 changed, 4 unchanged, 1 moved, 1 copied", summary)
        found = self.paths_for(os.path.join("photos", "dog1.jpg"))
        self.assertIn("photos/sub/moved.jpg", found)
        self.assertNotIn("photos/dog2.jpg", found)
        self.assertIn("photos/sub/copy.jpg", found)

    def test_remove_and_prune_reach_the_index(self):
        r = self.cbir.run("remove", os.path.join("photos", "cat2.jpg"), "--store", "store")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("removed 1 image;", r.stderr)
        self.assertNotIn("photos/cat2.jpg", self.paths_for(os.path.join("photos", "dog1.jpg")))
        os.remove(os.path.join(self.tmp, "photos", "cat1.jpg"))
        dry = self.cbir.run("prune", "--store", "store", "--dry-run")
        self.assertEqual(dry.stdout.splitlines(), ["photos/cat1.jpg"])
        self.assertIn("photos/cat1.jpg", self.paths_for(os.path.join("photos", "dog1.jpg")))  # dry run: still there
        pruned = self.cbir.run("prune", "--store", "store")
        self.assertEqual(pruned.returncode, 0, pruned.stderr)
        found = self.paths_for(os.path.join("photos", "dog1.jpg"))
        self.assertEqual(sorted(found), ["photos/dog1.jpg", "photos/dog2.jpg", "photos/dog3.jpg"])
        self.assertNotIn("stale", self.query("-v").stderr)  # the deletions were applied to the saved index
        self.assertEqual(self.cbir.run("check", "--store", "store").returncode, 0)
        self.assertEqual(self.cbir.run("prune", "--store", "store").returncode, 1)  # nothing left to prune

    def test_index_prune_flag(self):
        os.remove(os.path.join(self.tmp, "photos", "dog3.jpg"))
        r = self.cbir.run("index", "photos", "--store", "store", "--prune")
        self.assertIn("1 pruned", r.stderr)
        self.assertNotIn("photos/dog3.jpg", self.paths_for(os.path.join("photos", "dog1.jpg")))

    def test_a_second_writer_is_refused_with_the_holder(self):
        import fcntl
        with open(os.path.join(self.tmp, "store", "lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            lock.truncate(0)
            lock.write("4242")
            lock.flush()
            r = self.cbir.run("index", "photos", "--store", "store")
            self.assertEqual(r.returncode, 2)
            self.assertIn("another cbir (pid 4242) is writing", r.stderr)
            self.assertEqual(self.query().returncode, 0)  # readers are not blocked
        self.assertEqual(self.cbir.run("index", "photos", "--store", "store").returncode, 0)

    def test_check_finds_damage_and_repair_mends_it(self):
        self.assertEqual(self.cbir.run("check", "--store", "store").returncode, 0)
        with open(self.index_file, "r+b") as f:
            f.seek(200)
            f.write(b"\xa5" * 64)
        r = self.cbir.run("check", "--store", "store")
        self.assertEqual(r.returncode, 1)
        self.assertIn("checksum", r.stderr)
        self.assertIn("cbir repair", r.stderr)
        r = self.cbir.run("repair", "--store", "store")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.cbir.run("check", "--store", "store").returncode, 0)

    def test_truncated_catalogue_is_reported_with_the_file_and_what_to_do(self):
        catalogue = os.path.join(self.tmp, "store", "catalogue.sqlite")
        for suffix in ("-wal", "-shm"):
            if os.path.exists(catalogue + suffix):
                os.remove(catalogue + suffix)
        with open(catalogue, "r+b") as f:
            f.truncate(os.path.getsize(catalogue) // 3)
        r = self.cbir.run("query", os.path.join("photos", "dog1.jpg"), "--store", "store")
        self.assertEqual(r.returncode, 2)
        self.assertIn("catalogue.sqlite", r.stderr)
        self.assertIn("backup", r.stderr)  # the recovery: the catalogue is the one file not rebuilt
        self.assertEqual(len(r.stderr.strip().splitlines()), 1)  # one line, no stack trace

    def test_metric_of_an_existing_store_cannot_change(self):
        r = self.cbir.run("index", "photos", "--store", "store", "--metric", "cosine")
        self.assertEqual(r.returncode, 2)
        self.assertIn("metric", r.stderr)

    def test_cosine_store_reports_one_minus_cosine(self):
        r = self.cbir.run("index", "photos", "--store", "cos", "--metric", "cosine")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [json.loads(line) for line in self.cbir.run(
            "query", os.path.join("photos", "dog1.jpg"), "--store", "cos", "-k", "5", "--format", "jsonl").stdout.splitlines()]
        cosines = {}
        with open(os.path.join(SOURCE, "models", "reference-seed-distances-untrained.tsv")) as f:
            for row in csv.DictReader(f, delimiter="\t"):
                if row["a"] == "dog1":
                    cosines[row["b"]] = float(row["cosine"])
        for row in rows[1:]:
            name = os.path.basename(row["path"])[:-4]
            self.assertAlmostEqual(row["distance"], 1 - cosines[name], delta=0.03 * (1 - cosines[name]))


class IndexKinds(unittest.TestCase):
    """IVF stores (FAISS), the flat fallback while they are small, and `cbir reindex` between kinds."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-kinds-")
        cls.cbir = Cbir(cls.tmp)
        cls.cbir.env["CBIR_MODEL"] = MODEL
        # 20000 synthetic clustered vectors recorded as made by the model, and the seven photos.
        r = cls.cbir.run("bench", "synth-store", "--store", "synth", "--count", "20000", "--index", "hnsw")
        assert r.returncode == 0, r.stderr
        r = cls.cbir.run("index", SEED, "--store", "synth")
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def top(self, store, *extra, k=10):
        r = self.cbir.run("query", os.path.join(SEED, "dog1.jpg"), "--store", store, "-k", str(k), "--format", "jsonl",
                          *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(line)["path"] for line in r.stdout.splitlines()], r.stderr

    def test_reindex_switches_kinds_without_re_embedding(self):
        exact, _ = self.top("synth", "--exact")
        self.assertEqual(len(exact), 10)
        self.assertTrue(exact[0].endswith("dog1.jpg"))
        for spec, search in [("IVF128,Flat", ["--nprobe", "128"]), ("IVF128,PQ32", ["--nprobe", "128"]),
                             ("HNSW32", ["--ef", "200"]), ("flat", [])]:
            r = self.cbir.run("reindex", "--store", "synth", "--index", spec)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("reindexed 20007 vectors", r.stderr)
            self.assertNotIn("WARNING", r.stderr)  # enough training points for every quantizer
            info = json.loads(self.cbir.run("info", "--store", "synth", "--format", "json").stdout)
            self.assertEqual(info["index"], spec if spec != "flat" else "Flat")
            found, _ = self.top("synth", *search)
            if spec.endswith("PQ32"):
                # Compressed codes are approximate; the exact re-ranking still puts the photo itself
                # first, at distance 0.
                self.assertEqual(found[0], exact[0])
            else:
                # Visiting every list, or a wide HNSW search, gives the exact neighbours.
                self.assertEqual(found, exact, spec)
        # The last kind is flat: no index file is left behind by the earlier kinds.
        self.assertEqual(sorted(f for f in os.listdir(os.path.join(self.tmp, "synth")) if f.startswith("index.")), [])

    def test_small_ivf_store_searches_exactly_and_says_so(self):
        photos = os.path.join(self.tmp, "seven")
        os.makedirs(photos, exist_ok=True)
        for n in NAMES:
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(photos, n + ".jpg"))
        r = self.cbir.run("index", "seven", "--store", "small", "--index", "IVF1024,Flat")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("searching exactly", r.stderr)
        found, _ = self.top("small", k=7)
        exact, _ = self.top("small", "--exact", k=7)
        self.assertEqual(found, exact)
        again = self.cbir.run("index", "seven", "--store", "small", "--index", "hnsw")
        self.assertEqual(again.returncode, 2)
        self.assertIn("cbir reindex", again.stderr)
        self.assertEqual(self.cbir.run("index", "seven", "--store", "x", "--index", "IVF,PQ").returncode, 2)


if __name__ == "__main__":
    unittest.main()
