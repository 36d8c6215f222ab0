#!/usr/bin/env python3
"""The store under hostile conditions (what an adversarial trial broke): an index file copied in from
another store, thousands of identical photos, read-only stores, trailing slashes, a model swapped for
one of the same size and mtime, leftovers of a killed save, a failed index write after a commit, a
damaged catalogue's advice.

Run by ctest (CBIR_BIN_DIR, CBIR_SOURCE_DIR); Debian's python3.
"""
import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_test import COREL, MODEL, NAMES, SEED, SOURCE, clean_env  # noqa: E402
from serve_test import CBIR as CBIR_GIVEN  # noqa: E402

CBIR = os.path.abspath(CBIR_GIVEN)  # commands run in temporary folders


def run(cwd, *args, stdin=None, prefix=()):
    return subprocess.run([*prefix, CBIR, *args], cwd=cwd, env=clean_env(), input=stdin, capture_output=True,
                          text=True, timeout=900)


def hits(result):
    """(query, rank, path) and the distance of every jsonl hit."""
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return [(r["query"], r["rank"], r["path"]) for r in rows], [r["distance"] for r in rows]


def neighbour_sets(result):
    """query -> set of hit paths, from jsonl output."""
    out = {}
    for line in result.stdout.splitlines():
        r = json.loads(line)
        out.setdefault(r["query"], set()).add(r["path"])
    return out


class StoreHostile(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cbir-hostile-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def photos(self, name, sources):
        folder = os.path.join(self.tmp, name)
        os.makedirs(folder, exist_ok=True)
        for src in sources:
            shutil.copy(src, folder)
        return folder

    def index(self, *args):
        r = run(self.tmp, "index", *args, "--model", MODEL)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    # 1. An index file is bound to the one catalogue state it was built from.
    def test_an_index_file_copied_from_a_diverged_copy_of_the_store_is_not_trusted(self):
        self.photos("photos", [os.path.join(SEED, n + ".jpg") for n in NAMES[:5]])
        self.index("photos", "--store", "a")
        shutil.copytree(os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b"))
        # Each copy gains a different photo: both reach the same generation with different contents.
        self.photos("more_a", [os.path.join(SEED, "person1.jpg")])
        self.photos("more_b", [os.path.join(SEED, "person2.jpg")])
        self.index("more_a", "--store", "a")
        self.index("more_b", "--store", "b")
        shutil.copy(os.path.join(self.tmp, "a", "index.hnsw"), os.path.join(self.tmp, "b", "index.hnsw"))

        info = run(self.tmp, "info", "--store", "b", "--format", "tsv")
        self.assertNotIn("current", dict(l.split("\t", 1) for l in info.stdout.splitlines()[1:])["index_file"])
        queries = "\n".join(os.path.join("more_b", "person2.jpg") for _ in range(1)) + "\n" + \
            "\n".join(os.path.join("photos", n + ".jpg") for n in NAMES[:5]) + "\n"
        approx = run(self.tmp, "query", "-", "--store", "b", "--format", "jsonl", "-k", "6", stdin=queries)
        self.assertEqual(approx.returncode, 0, approx.stderr)
        self.assertIn("built from a copy of this store that has changed since", approx.stderr)
        exact = run(self.tmp, "query", "-", "--store", "b", "--format", "jsonl", "-k", "6", "--exact", stdin=queries)
        (approx_hits, approx_distances), (exact_hits, exact_distances) = hits(approx), hits(exact)
        self.assertEqual(approx_hits, exact_hits)
        for a, e in zip(approx_distances, exact_distances):  # float sums in another order
            self.assertAlmostEqual(a, e, delta=1e-3 * max(1.0, e))
        check = run(self.tmp, "check", "--store", "b")
        self.assertEqual(check.returncode, 0, check.stderr)
        # The query wrote its rebuilt index back: now it is b's own.
        info = run(self.tmp, "info", "--store", "b", "--format", "tsv")
        self.assertIn("current", dict(l.split("\t", 1) for l in info.stdout.splitlines()[1:])["index_file"])

    # 4. Thousands of identical photos must not trap the HNSW search.
    @unittest.skipUnless(COREL, "Corel-1K not found (../shared/assets or CBIR_ASSETS)")
    def test_thousands_of_identical_photos_keep_recall(self):
        corel = os.path.join(self.tmp, "corel")
        os.makedirs(corel)
        names = sorted(os.listdir(COREL), key=lambda n: int(n.split(".")[0]))
        for n in names:
            os.link(os.path.join(COREL, n), os.path.join(corel, n)) if same_device(COREL, corel) else \
                shutil.copy(os.path.join(COREL, n), corel)
        self.index("corel", "--store", "s", "-q")
        copies = os.path.join(self.tmp, "copies")
        os.makedirs(copies)
        copied = os.path.join(corel, "505.jpg")  # one photo, copied (hard links: identical files)
        queries = "".join(os.path.join("corel", n) + "\n" for n in names[::5])  # 200 queries
        made = 0
        for total in (1000, 3000, 10000):
            while made < total:
                os.link(copied, os.path.join(copies, f"copy{made:05d}.jpg"))
                made += 1
            r = self.index("copies", "--store", "s", "-q")
            approx = neighbour_sets(run(self.tmp, "query", "-", "--store", "s", "--format", "jsonl", stdin=queries))
            exact = neighbour_sets(run(self.tmp, "query", "-", "--store", "s", "--format", "jsonl", "--exact",
                                       stdin=queries))
            self.assertEqual(len(exact), 200)
            found = sum(len(approx.get(q, set()) & truth) for q, truth in exact.items())
            recall = found / sum(len(t) for t in exact.values())
            print(f"{total} copies: recall@10 {recall:.3f}", file=sys.stderr)
            self.assertGreaterEqual(recall, 0.95, f"{total} copies")
        check = run(self.tmp, "check", "--store", "s")
        self.assertEqual(check.returncode, 0, check.stderr)
        repair = run(self.tmp, "repair", "--store", "s")
        self.assertEqual(repair.returncode, 0, repair.stderr)
        # A query of the copied photo lists the copies (distance 0) in path order after the original.
        top = run(self.tmp, "query", copied, "--store", "s", "--format", "jsonl", "-k", "3")
        self.assertEqual([json.loads(l)["distance"] for l in top.stdout.splitlines()], [0, 0, 0])

    # 9. Commands that only read work on a read-only store.
    def test_read_commands_work_on_a_read_only_mount(self):
        self.photos("photos", [os.path.join(SEED, n + ".jpg") for n in NAMES])
        self.index("photos", "--store", "s")
        store = os.path.join(self.tmp, "s")
        probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro {store} {store}"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            self.skipTest("cannot make a read-only mount here: " + probe.stderr.strip())

        def read_only(*args):
            script = f'mount --bind -o ro "$0" "$0" && exec "$@"'
            return subprocess.run(["unshare", "-m", "sh", "-c", script, store, CBIR, *args], cwd=self.tmp,
                                  env=clean_env(), capture_output=True, text=True, timeout=600)

        # Labels of two classes: eval refuses a store whose images are all one class (one folder).
        with open(os.path.join(self.tmp, "photos", "labels.tsv"), "w") as f:
            f.write("file\tclass_id\tclass_name\n")
            for n in NAMES:
                f.write(f"{n}.jpg\t{0 if n.startswith('dog') else 1}\t{'dog' if n.startswith('dog') else 'other'}\n")
        writable = run(self.tmp, "query", "photos/dog1.jpg", "--store", "s", "--format", "tsv")
        for args in (["query", "photos/dog1.jpg", "--store", "s", "--format", "tsv"],
                     ["query", os.path.join(SEED, "dog1.jpg"), "--store", "s", "--model", MODEL, "--format", "tsv"],
                     ["info", "--store", "s"], ["check", "--store", "s"],
                     ["eval", "--store", "s", "--labels", "photos/labels.tsv"],
                     ["dups", "--store", "s", "--min-similarity", "0.5"]):
            r = read_only(*args)
            self.assertIn(r.returncode, (0, 1), f"{args}: {r.stderr}")
            self.assertNotIn("error", r.stderr, args)
        self.assertEqual(read_only("query", "photos/dog1.jpg", "--store", "s", "--format", "tsv").stdout,
                         writable.stdout)
        # An index file the store cannot take back is used from memory, without a warning each time.
        os.remove(os.path.join(store, "index.hnsw"))
        r = read_only("query", "photos/dog1.jpg", "--store", "s", "--format", "tsv")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, writable.stdout)
        self.assertNotIn("warning", r.stderr)
        # Writing commands say it is read-only, in one line.
        r = read_only("remove", "photos/dog1.jpg", "--store", "s")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        # A write-ahead log holding commits (a writer killed before its checkpoint) and no -shm: the
        # mount cannot apply them, and reading without them would hide acknowledged rows.
        catalogue = os.path.join(store, "catalogue.sqlite")
        writer = sqlite3.connect(catalogue)
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('note', 'committed, not checkpointed')")
        writer.commit()
        crashed = os.path.join(self.tmp, "crashed")
        os.makedirs(crashed)
        for name in ("catalogue.sqlite", "catalogue.sqlite-wal"):
            shutil.copy(os.path.join(store, name), crashed)  # as a kill -9 leaves them, less the -shm
        writer.close()
        self.assertGreater(os.path.getsize(os.path.join(crashed, "catalogue.sqlite-wal")), 0)
        store = crashed
        r = read_only("info", "--store", "crashed")
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("write-ahead log", r.stderr)

    # 10. A folder named with a trailing slash is the same folder.
    def test_prune_and_index_accept_a_trailing_slash(self):
        folder = self.photos("p", [os.path.join(SEED, n + ".jpg") for n in NAMES])
        self.index("p/", "--store", "s")
        os.remove(os.path.join(folder, "dog1.jpg"))
        os.remove(os.path.join(folder, "dog2.jpg"))
        r = run(self.tmp, "prune", "p/", "--store", "s", "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 2)
        r = run(self.tmp, "prune", "/", "--store", "s", "--dry-run")
        self.assertEqual(len(r.stdout.splitlines()), 2, r.stderr)
        r = self.index("p/", "--store", "s", "--prune")
        self.assertIn("2 pruned", r.stderr)
        os.remove(os.path.join(folder, "dog3.jpg"))
        r = run(self.tmp, "prune", "p/", "--store", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("removed 1", r.stderr)

    # A model replaced by another of the same size and mtime is hashed, not trusted.
    def test_a_model_swapped_for_one_of_the_same_size_and_mtime_is_refused(self):
        model = os.path.join(self.tmp, "model.pt")
        shutil.copy(MODEL, model)
        self.photos("photos", [os.path.join(SEED, n + ".jpg") for n in NAMES[:3]])
        r = run(self.tmp, "index", "photos", "--store", "s", "--model", model)
        self.assertEqual(r.returncode, 0, r.stderr)
        stat = os.stat(model)
        with open(model, "r+b") as f:  # same size; one byte changed
            f.seek(stat.st_size // 2)
            byte = f.read(1)
            f.seek(stat.st_size // 2)
            f.write(bytes([byte[0] ^ 0xFF]))
        os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        r = run(self.tmp, "query", os.path.join(SEED, "cat1.jpg"), "--store", "s")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("model mismatch", r.stderr)

    # Temporary files of a killed save are reported by check and removed by repair.
    def test_leftovers_of_a_killed_save_are_reported_and_cleaned(self):
        self.photos("photos", [os.path.join(SEED, n + ".jpg") for n in NAMES[:3]])
        self.index("photos", "--store", "s")
        leftover = os.path.join(self.tmp, "s", "index.hnsw.tmp-999999999-0")
        with open(leftover, "wb") as f:
            f.write(b"\0" * 4096)
        r = run(self.tmp, "check", "--store", "s")
        self.assertIn("index.hnsw.tmp-999999999-0", r.stderr)
        r = run(self.tmp, "repair", "--store", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(leftover))

    # A remove is committed even when the index file cannot be written afterwards: exit 0, a warning.
    def test_remove_succeeds_when_the_index_file_cannot_be_written(self):
        self.photos("photos", [os.path.join(SEED, n + ".jpg") for n in NAMES[:3]])
        self.index("photos", "--store", "s")
        index_file = os.path.join(self.tmp, "s", "index.hnsw")
        os.remove(index_file)
        os.mkdir(index_file)  # a folder where the file should be: the rename fails
        r = run(self.tmp, "remove", "photos/dog1.jpg", "--store", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("removed 1 image;", r.stderr)
        os.rmdir(index_file)
        r = run(self.tmp, "query", "photos/dog2.jpg", "--store", "s", "--format", "paths")
        self.assertNotIn("dog1.jpg", r.stdout)

    # A damaged catalogue's message names the real recovery, not "run cbir check".
    def test_a_damaged_catalogue_names_the_recovery(self):
        self.photos("photos", [os.path.join(SEED, n + ".jpg") for n in NAMES[:2]])
        self.index("photos", "--store", "s")
        catalogue = os.path.join(self.tmp, "s", "catalogue.sqlite")
        with open(catalogue, "r+b") as f:
            f.seek(100)
            f.write(b"\xAB" * 4000)
        for args in (["query", "photos/dog1.jpg", "--store", "s"], ["check", "--store", "s"]):
            r = run(self.tmp, *args)
            self.assertNotEqual(r.returncode, 0)
            self.assertNotIn("run 'cbir check'", r.stderr)
            self.assertRegex(r.stderr, "backup|new store")


    # File names that are not UTF-8 come back exactly from every JSON a command prints.
    def test_names_that_are_not_utf8_round_trip_through_embed_and_dups(self):
        folder = os.path.join(self.tmp, "latin1").encode()
        os.makedirs(folder)
        names = [b"caf\xe9.jpg", b"caf\xe9-copie.jpg"]
        for name in names:
            shutil.copy(os.path.join(SEED, "dog1.jpg").encode(), os.path.join(folder, name))
        r = run(self.tmp, "embed", "latin1", "--format", "jsonl", "--model", MODEL)
        self.assertEqual(r.returncode, 0, r.stderr)
        exact = sorted(base64.b64decode(json.loads(l)["path_bytes"]) for l in r.stdout.splitlines())
        self.assertEqual(exact, sorted(os.path.join(b"latin1", n) for n in names))
        self.index("latin1", "--store", "s")
        r = run(self.tmp, "dups", "--store", "s", "--format", "jsonl")
        self.assertEqual(r.returncode, 0, r.stderr)
        group = json.loads(r.stdout.splitlines()[0])
        for shown in group["paths_bytes"]:
            self.assertTrue(os.path.exists(os.path.join(self.tmp.encode(), base64.b64decode(shown))))

class FormatOneStore(unittest.TestCase):
    """A store written before index files carried identities (tests/fixtures/store-v1) still works."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cbir-v1-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        shutil.copytree(os.path.join(SOURCE, "tests", "fixtures", "store-v1"), os.path.join(self.tmp, "store"))

    def query(self, *extra):
        return run(self.tmp, "query", os.path.join(SEED, "dog2.jpg"), "--store", "store", "--model", MODEL,
                   "--format", "tsv", *extra)

    def test_a_format_one_store_is_read_and_upgraded_on_its_first_write(self):
        exact = self.query("--exact")
        self.assertEqual(exact.returncode, 0, exact.stderr)
        self.assertEqual(len(exact.stdout.splitlines()), 1 + 3)
        # Read-only commands read it, but trust no index file: without a store id, a file of the same
        # generation from any other store would match.
        r = self.query()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([l.split("\t")[3] for l in r.stdout.splitlines()],
                         [l.split("\t")[3] for l in exact.stdout.splitlines()])
        self.assertIn("no identity yet", r.stderr)
        info = run(self.tmp, "info", "--store", "store", "--format", "tsv")
        self.assertIn("not used (this store has no identity yet", info.stdout)
        # The first write gives the store its identity; the old index file is then rebuilt once.
        r = run(self.tmp, "index", os.path.join(SEED, "cat2.jpg"), "--store", "store", "--model", MODEL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 new", r.stderr)
        r = self.query()
        self.assertEqual(len(r.stdout.splitlines()), 1 + 4)
        exact = self.query("--exact")
        self.assertEqual([l.split("\t")[3] for l in r.stdout.splitlines()],
                         [l.split("\t")[3] for l in exact.stdout.splitlines()])
        check = run(self.tmp, "check", "--store", "store")
        self.assertEqual(check.returncode, 0, check.stderr)
        with open(os.path.join(self.tmp, "store", "index.hnsw"), "rb") as f:
            self.assertEqual(f.read(12)[8:], (3).to_bytes(4, "little"))  # now the current format, 3


def same_device(a, b):
    return os.stat(a).st_dev == os.stat(b).st_dev


if __name__ == "__main__":
    unittest.main()
