#!/usr/bin/env python3
"""Store sets on Corel-1K: one store against a 4-shard set made by four `--shard I` runs and by
`mpirun -np 2 cbir index`, queried alone and under real `mpirun` at 1, 2 and 4 ranks, checked and
exported. The placement rule is recomputed here from its definition (SHA-256 of the path relative
to the set's root, first 8 bytes big-endian, mod S). Needs Open MPI (openmpi-bin) and numpy."""
import csv
import glob
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.environ.get("CBIR_SOURCE_DIR", ".")
MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
CBIR = os.path.join(BIN, "cbir")
SAMPLES = os.path.join(SOURCE, "images")
sys.path.insert(0, os.path.join(SOURCE, "scripts"))
from cbir_assets import corel_images  # noqa: E402

SHARDS = 4
ENV = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
ENV.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_btl_vader_single_copy_mechanism="none")


def mpirun(ranks, args, timeout=600, **kw):
    return subprocess.run(["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", CBIR] + args,
                          capture_output=True, text=True, env=ENV, timeout=timeout, **kw)


def cbir(args, **kw):
    return subprocess.run([CBIR] + args, capture_output=True, text=True, env=ENV, timeout=600, **kw)


def placed_shard(path, root, shards):
    rel = os.path.relpath(path, root) if path.startswith(root + "/") else path
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "big") % shards


def rows_of(store):
    db = sqlite3.connect(f"file:{os.path.join(store, 'catalogue.sqlite')}?mode=ro", uri=True)
    try:
        return {path: (rid, bytes(vec)) for rid, path, vec in db.execute("SELECT id, path, vector FROM images")}
    finally:
        db.close()


def parse_tsv(text):
    return [row for row in csv.DictReader(io.StringIO(text), delimiter="\t")]


@unittest.skipUnless(corel_images(), "Corel-1K not found in $CBIR_ASSETS or ../shared/assets")
@unittest.skipUnless(shutil.which("mpirun"), "Open MPI's mpirun is not installed (scripts/install-deps.sh --test)")
class StoreSets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-cluster-")
        cls.images = os.path.realpath(corel_images())
        cls.single = os.path.join(cls.tmp, "single")
        cls.by_tasks = os.path.join(cls.tmp, "by-tasks")
        cls.by_mpi = os.path.join(cls.tmp, "by-mpi")
        r = cbir(["index", cls.images, "--store", cls.single, "--model", MODEL, "-q"])
        assert r.returncode == 0, r.stderr
        # A job array, one task after another here (the Slurm test runs them as a real array).
        cls.task_summaries = []
        for shard in range(SHARDS):
            r = cbir(["index", cls.images, "--store", cls.by_tasks, "--shards", str(SHARDS), "--shard", str(shard),
                      "--model", MODEL])
            assert r.returncode == 0, r.stderr
            cls.task_summaries.append(r.stderr)
        r = mpirun(2, ["index", cls.images, "--store", cls.by_mpi, "--shards", str(SHARDS), "--model", MODEL])
        assert r.returncode == 0, r.stdout + r.stderr
        cls.mpi_index_stderr = r.stderr
        files = sorted(glob.glob(os.path.join(cls.images, "*.jpg")))
        cls.queries = files[::5]  # 200
        assert len(cls.queries) == 200

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def shard_dirs(self, set_dir):
        return [os.path.join(set_dir, f"shard-{i:04d}") for i in range(SHARDS)]

    def test_shards_partition_the_images_by_the_placement_rule(self):
        single = rows_of(self.single)
        self.assertEqual(len(single), 1000)
        for set_dir in (self.by_tasks, self.by_mpi):
            with open(os.path.join(set_dir, "set.json")) as f:
                manifest = json.load(f)
            self.assertEqual(manifest["shards"], SHARDS)
            self.assertEqual(manifest["root"], self.images)
            seen = {}
            for shard, store in enumerate(self.shard_dirs(set_dir)):
                rows = rows_of(store)
                self.assertGreater(len(rows), 150, f"shard {shard} of {set_dir} is badly balanced")
                for path, (_, vector) in rows.items():
                    self.assertNotIn(path, seen, "a path is in two shards")
                    seen[path] = shard
                    self.assertEqual(placed_shard(path, self.images, SHARDS), shard, path)
                    self.assertEqual(vector, single[path][1], "a shard's vector differs from the single store's")
            self.assertEqual(set(seen), set(single))

    def test_both_ways_give_the_same_shards_and_every_shard_checks(self):
        for shard_a, shard_b in zip(self.shard_dirs(self.by_tasks), self.shard_dirs(self.by_mpi)):
            self.assertEqual({p: v for p, (_, v) in rows_of(shard_a).items()},
                             {p: v for p, (_, v) in rows_of(shard_b).items()})
        for set_dir in (self.by_tasks, self.by_mpi):
            r = cbir(["check", "--store", set_dir])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr.count("check passed"), SHARDS, r.stderr)
        self.assertIn("rank 0 of 2", self.mpi_index_stderr)
        self.assertIn("rank 1 of 2", self.mpi_index_stderr)

    def test_a_task_says_which_shard_its_count_is_of(self):
        for shard, summary in enumerate(self.task_summaries):
            self.assertIn(f" in shard {shard} of {self.by_tasks};", summary)
        self.assertIn(f" in {self.by_mpi};", self.mpi_index_stderr.replace("shards 0, 2 of ", "").replace(
            "shards 1, 3 of ", ""))

    def test_a_rerun_embeds_nothing(self):
        r = cbir(["index", self.images, "--store", self.by_tasks, "--shard", "2"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("indexed 0 new, 0 changed", r.stderr)
        r = mpirun(2, ["index", self.images, "--store", self.by_mpi])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr.count("indexed 0 new, 0 changed"), 2, r.stderr)

    def test_info_adds_up_the_shards(self):
        r = cbir(["info", "--store", self.by_mpi, "--format", "tsv"])
        self.assertEqual(r.returncode, 0, r.stderr)
        facts = {row["key"]: row["value"] for row in parse_tsv(r.stdout)}
        self.assertEqual(facts["images"], "1000")
        self.assertEqual(facts["complete"], "yes")
        self.assertEqual(sum(int(facts[f"shard_{i:04d}_images"]) for i in range(SHARDS)), 1000)

    def exact_answers(self, run, store, queries):
        r = run(["query", "-", "--store", store, "--exact", "--format", "tsv", "-q"], input="\n".join(queries) + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        return parse_tsv(r.stdout)

    def assert_same_answers(self, expected, got):
        self.assertEqual(len(got), len(expected))
        for e, g in zip(expected, got):
            self.assertEqual((e["query"], e["rank"], e["path"]), (g["query"], g["rank"], g["path"]))
            self.assertAlmostEqual(float(e["distance"]), float(g["distance"]), delta=1e-6 * max(1, float(e["distance"])))

    def test_exact_queries_equal_one_store_alone_and_at_1_2_4_ranks(self):
        # Two images that are not in the store are embedded by rank 0 and broadcast.
        queries = self.queries + [os.path.join(SAMPLES, "dog1.jpg"), os.path.join(SAMPLES, "cat1.jpg")]
        expected = self.exact_answers(cbir, self.single, queries)
        self.assertEqual(len(expected), len(queries) * 10)
        self.assert_same_answers(expected, self.exact_answers(cbir, self.by_tasks, queries))
        for ranks in (1, 2, 4):
            with self.subTest(ranks=ranks):
                self.assert_same_answers(expected, self.exact_answers(lambda a, **kw: mpirun(ranks, a, **kw), self.by_mpi,
                                                                      queries))

    def test_hnsw_recall_matches_one_store(self):
        def recall(store, run):
            exact = self.exact_answers(run, store, self.queries)
            r = run(["query", "-", "--store", store, "--format", "tsv", "-q"], input="\n".join(self.queries) + "\n")
            self.assertEqual(r.returncode, 0, r.stderr)
            approx = parse_tsv(r.stdout)
            truth, found = {}, {}
            for row in exact:
                truth.setdefault(row["query"], set()).add(row["path"])
            for row in approx:
                found.setdefault(row["query"], set()).add(row["path"])
            return sum(len(truth[q] & found.get(q, set())) for q in truth) / sum(len(t) for t in truth.values())
        single = recall(self.single, cbir)
        sharded = recall(self.by_mpi, lambda a, **kw: mpirun(2, a, **kw))
        self.assertGreaterEqual(sharded, single - 0.005, (single, sharded))

    def test_export_for_milvus_is_the_catalogue_bit_for_bit(self):
        out = os.path.join(self.tmp, "milvus")
        r = cbir(["export", "--store", self.by_mpi, "--format", "milvus-npy", "-o", out, "--rows-per-part", "100"])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(out, "schema.json")) as f:
            schema = json.load(f)
        self.assertEqual(schema["metric_type"], "L2")
        self.assertEqual({f["name"]: f["type"] for f in schema["fields"]},
                         {"id": "INT64", "path": "VARCHAR", "embedding": "FLOAT_VECTOR"})
        expected = {}
        for shard, store in enumerate(self.shard_dirs(self.by_mpi)):
            for path, (rid, vector) in rows_of(store).items():
                expected[(shard << 48) | rid] = (path, vector)
        got = {}
        parts = sorted(glob.glob(os.path.join(out, "part-*")))
        self.assertEqual(len(parts), len(schema["parts"]))
        for part in parts:
            ids = np.load(os.path.join(part, "id.npy"))
            paths = np.load(os.path.join(part, "path.npy"))
            vectors = np.load(os.path.join(part, "embedding.npy"))
            self.assertEqual(ids.dtype, np.int64)
            self.assertEqual(paths.dtype.kind, "U")
            self.assertEqual(vectors.dtype, np.float32)
            self.assertEqual(vectors.shape, (len(ids), 512))
            self.assertLessEqual(len(ids), 100)
            self.assertEqual(len({i >> 48 for i in ids.tolist()}), 1, "a part spans two shards")
            for i, p, v in zip(ids.tolist(), paths.tolist(), vectors):
                got[i] = (p, v.tobytes())
        self.assertEqual(got, expected)

    def test_export_npy_for_faiss(self):
        out = os.path.join(self.tmp, "npy")
        r = cbir(["export", "--store", self.single, "--format", "npy", "-o", out])
        self.assertEqual(r.returncode, 0, r.stderr)
        vectors = np.load(os.path.join(out, "vectors.npy"))
        ids = np.load(os.path.join(out, "ids.npy"))
        paths = np.load(os.path.join(out, "paths.npy"))
        rows = rows_of(self.single)
        self.assertEqual(vectors.shape, (1000, 512))
        for i, p, v in zip(ids.tolist(), paths.tolist(), vectors):
            self.assertEqual(rows[p], (i, v.tobytes()))

    def test_a_set_refuses_what_would_break_it(self):
        # Another number of shards, a different model, a set over a single store, a missing shard.
        r = cbir(["index", SAMPLES, "--store", self.by_tasks, "--shards", "8"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("4 shards", r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        r = cbir(["index", SAMPLES, "--store", self.single, "--shards", "2"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("single store", r.stderr)
        broken = os.path.join(self.tmp, "incomplete")
        r = cbir(["index", SAMPLES, "--store", broken, "--shards", "3", "--shard", "0", "--model", MODEL, "-q"])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = cbir(["query", os.path.join(SAMPLES, "dog1.jpg"), "--store", broken])
        self.assertEqual(r.returncode, 2)
        self.assertIn("--shard 1", r.stderr)
        r = cbir(["info", "--store", broken, "--format", "tsv"])
        self.assertIn("complete\tno (2 shards without a store)", r.stdout)
        r = cbir(["check", "--store", broken])
        self.assertEqual(r.returncode, 1, r.stderr)  # a finding of check, as the exit-code table says
        self.assertEqual(r.stderr.count("has no store"), 2, r.stderr)
        # A shard folder past the manifest's count (an edited manifest, another set's shard) is said.
        shutil.copytree(os.path.join(broken, "shard-0000"), os.path.join(broken, "shard-0005"))
        for command in (["info", "--store", broken], ["query", os.path.join(SAMPLES, "dog1.jpg"), "--store", broken]):
            r = cbir(command)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("holds shard-0005, but its manifest says 3 shards", r.stderr)
        shutil.rmtree(os.path.join(broken, "shard-0005"))
        # A manifest edited by hand to a number of shards that is not whole is refused, not rounded.
        with open(os.path.join(broken, "set.json")) as f:
            manifest = json.load(f)
        manifest["shards"] = 3.5
        with open(os.path.join(broken, "set.json"), "w") as f:
            json.dump(manifest, f)
        r = cbir(["info", "--store", broken])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("shards is not a whole number", r.stderr)

    def test_a_task_killed_midway_leaves_its_shard_marked_unfinished_until_rerun(self):
        killed = os.path.join(self.tmp, "killed")
        args = ["index", self.images, "--store", killed, "--shards", "8", "--shard", "0", "--model", MODEL, "-q"]
        task = subprocess.Popen([CBIR] + args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        catalogue = os.path.join(killed, "shard-0000", "catalogue.sqlite")
        rows = 0
        while task.poll() is None and rows < 8:  # a batch or more committed, as a node dying midway would leave
            try:
                rows = len(rows_of(os.path.dirname(catalogue)))
            except sqlite3.Error:
                pass
            time.sleep(0.02)
        task.kill()
        task.wait()
        self.assertGreaterEqual(rows, 8)
        self.assertLess(rows, 100, "the task finished before it could be killed")
        info = {row["key"]: row["value"] for row in parse_tsv(cbir(["info", "--store", killed, "--format", "tsv"]).stdout)}
        self.assertIn("1 shard whose index run did not finish: 0", info["complete"])
        self.assertIn("its index run did not finish: pid", info["shard_0000_images"])
        r = cbir(["check", "--store", killed])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("shard 0's index run did not finish", r.stderr)
        self.assertIn("(--shard 0)", r.stderr)
        r = cbir(args)
        self.assertEqual(r.returncode, 0, r.stderr)
        info = {row["key"]: row["value"] for row in parse_tsv(cbir(["info", "--store", killed, "--format", "tsv"]).stdout)}
        self.assertNotIn("did not finish", info["complete"] + info["shard_0000_images"])

    def test_tasks_making_a_set_at_once_make_one_set_and_check_finds_strays(self):
        # Three tasks creating the same set at the same moment (a job array starting) make exactly one
        # manifest and three shards: none may take the others' files for a folder of photos and go
        # into a ".cbir" inside it.
        for attempt in range(3):
            racing = os.path.join(self.tmp, f"racing-{attempt}")
            tasks = [subprocess.Popen([CBIR, "index", SAMPLES, "--store", racing, "--shards", "3", "--shard", str(i),
                                       "--model", MODEL, "-q"], env=ENV, stderr=subprocess.PIPE, text=True)
                     for i in range(3)]
            for t in tasks:
                self.assertEqual(t.wait(timeout=600), 0, t.stderr.read())
                t.stderr.close()
            self.assertEqual(sorted(os.listdir(racing)), ["set.json", "shard-0000", "shard-0001", "shard-0002"])
        # A shard folder swapped with another: its rows are not where the placement rule puts them.
        swapped = os.path.join(self.tmp, "swapped")
        shutil.copytree(racing, swapped)
        os.rename(os.path.join(swapped, "shard-0000"), os.path.join(swapped, "tmp"))
        os.rename(os.path.join(swapped, "shard-0001"), os.path.join(swapped, "shard-0000"))
        os.rename(os.path.join(swapped, "tmp"), os.path.join(swapped, "shard-0001"))
        r = cbir(["check", "--store", swapped])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("belong to other shards", r.stderr)
        # An export never leaves an earlier export's parts beside its own.
        out = os.path.join(self.tmp, "used")
        os.makedirs(out)
        open(os.path.join(out, "schema.json"), "w").close()
        r = cbir(["export", "--store", racing, "--format", "milvus-npy", "-o", out])
        self.assertEqual(r.returncode, 2)
        self.assertIn("not empty", r.stderr)

    def test_under_mpirun_output_is_what_one_process_prints_once(self):
        # Open MPI hands each rank a pseudo-terminal: without --format a rank must still print tsv
        # into a pipe, and commands that do not share work among ranks run once, on rank 0.
        query = [os.path.join(self.images, "10.jpg"), "--store", self.by_mpi, "-k", "3"]
        alone = cbir(["query"] + query)
        job = mpirun(2, ["query"] + query)
        self.assertEqual(job.returncode, 0, job.stderr)
        self.assertEqual(job.stdout, alone.stdout)
        self.assertTrue(job.stdout.startswith("query\trank\tdistance\tpath\n"), job.stdout)
        info_alone = cbir(["info", "--store", self.by_mpi, "--format", "tsv"])
        info_job = mpirun(2, ["info", "--store", self.by_mpi, "--format", "tsv"])
        self.assertEqual(info_job.returncode, 0, info_job.stderr)
        self.assertEqual(info_job.stdout, info_alone.stdout)
        # bench fanout measures the ranks' messages: every rank takes part (one leaving at once hung it).
        fanout = mpirun(2, ["bench", "fanout", "--iterations", "200"], timeout=60)
        self.assertEqual(fanout.returncode, 0, fanout.stderr)
        self.assertEqual(json.loads(fanout.stdout.splitlines()[0])["ranks"], 2)


if __name__ == "__main__":
    unittest.main()
