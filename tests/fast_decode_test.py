#!/usr/bin/env python3
"""--fast-decode end to end: a store built with it records the recipe and is queried with it (by
`cbir query` and `cbir serve`, with or without the flag); the flag on a store built without it is
refused by index, query and serve, and the store is left as it was.

Run by ctest (CBIR_BIN_DIR, CBIR_SOURCE_DIR); standard library only.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.path.abspath(os.environ.get("CBIR_SOURCE_DIR", "."))
MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
SEED = os.path.join(SOURCE, "images")
CBIR = os.path.abspath(os.path.join(BIN, "cbir"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_test import Server, clean_env, post_image  # noqa: E402

# Large enough to be decoded at 1/2 under --fast-decode (shorter sides 1575, 1333, 1080).
PHOTOS = ["cat2.jpg", "dog3.jpg", "person2.jpg"]
REFUSED = "the store was built without --fast-decode"


def cbir(*args, cwd):
    return subprocess.run([CBIR, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True)


class FastDecodeStore(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-fast-decode-")
        os.makedirs(os.path.join(cls.tmp, "photos"))
        os.makedirs(os.path.join(cls.tmp, "outside"))
        for name in PHOTOS:
            shutil.copy(os.path.join(SEED, name), os.path.join(cls.tmp, "photos", name))
        # The query: cat2's bytes at a path no store holds, so it is embedded, not looked up.
        cls.query = os.path.join(cls.tmp, "outside", "query.jpg")
        shutil.copy(os.path.join(SEED, "cat2.jpg"), cls.query)
        for store, flags in (("fast", ["--fast-decode"]), ("exact", [])):
            r = cbir("index", "photos", "--store", store, "--model", MODEL, "-q", *flags, cwd=cls.tmp)
            assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def recipe_gap(cls):
        """Squared L2 between this photo's exact and --fast-decode vectors: what a query made with the
        other recipe would be off by (a batch of another size moves a vector by ~1e-10 only)."""
        if not hasattr(cls, "gap"):
            vectors = {}
            for flags in ([], ["--fast-decode"]):
                r = cbir("embed", cls.query, "--model", MODEL, *flags, cwd=cls.tmp)
                assert r.returncode == 0, r.stderr
                vectors[bool(flags)] = json.loads(r.stdout)["vector"]
            cls.gap = sum((a - b) ** 2 for a, b in zip(vectors[False], vectors[True]))
        return cls.gap

    def assert_own_row_first(self, hit):
        """The query (cat2's bytes) finds cat2's row at distance ~0: made by the same recipe."""
        name, distance = hit
        self.assertEqual(name, "cat2.jpg")
        self.assertGreater(self.recipe_gap(), 1e-2)
        self.assertLess(distance, self.recipe_gap() * 1e-6)

    def top_hit(self, store, *flags):
        r = cbir("query", self.query, "--store", store, "-k", "1", "--format", "jsonl", *flags, cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        hit = json.loads(r.stdout.splitlines()[0])
        return os.path.basename(hit["path"]), hit["distance"]

    def test_the_recipe_is_recorded(self):
        info = {}
        for store in ("fast", "exact"):
            r = cbir("info", "--store", store, cwd=self.tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            info[store] = r.stdout
        self.assertIn("pil-bilinear-224x224-imagenet-norm-v1+jpeg-dct-scaled-min-side-", info["fast"])
        self.assertNotIn("jpeg-dct-scaled", info["exact"])

    def test_a_fast_decode_store_is_queried_with_its_recipe(self):
        self.assert_own_row_first(self.top_hit("fast"))  # no flag: the store's recipe
        self.assert_own_row_first(self.top_hit("fast", "--fast-decode"))
        self.assert_own_row_first(self.top_hit("exact"))

    def test_the_server_embeds_uploads_with_the_stores_recipe(self):
        server = Server(self.tmp_store_dir("fast"), "--model", MODEL)
        try:
            status, answer = post_image(server.url + "/search?k=1", self.query)
            self.assertEqual(status, 200, answer)
            hit = answer["results"][0]
            self.assert_own_row_first((os.path.basename(hit["path"]), hit["distance"]))
        finally:
            code, err = server.stop()
        self.assertEqual(code, 0, err)

    def tmp_store_dir(self, store):
        """A folder whose ./store is `store` (serve_test.Server serves ./store)."""
        folder = os.path.join(self.tmp, "serve-" + store)
        if not os.path.exists(folder):
            os.makedirs(folder)
            os.symlink(os.path.join(self.tmp, store), os.path.join(folder, "store"))
        return folder

    def test_the_flag_on_an_exact_store_is_refused_and_changes_nothing(self):
        before = cbir("info", "--store", "exact", cwd=self.tmp).stdout
        r = cbir("query", self.query, "--store", "exact", "--fast-decode", cwd=self.tmp)
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn(REFUSED, r.stderr)
        shutil.copy(os.path.join(SEED, "dog1.jpg"), os.path.join(self.tmp, "outside", "new.jpg"))
        r = cbir("index", "outside", "--store", "exact", "--fast-decode", "--model", MODEL, cwd=self.tmp)
        self.assertEqual(r.returncode, 2)
        self.assertIn(REFUSED, r.stderr)
        self.assertEqual(cbir("info", "--store", "exact", cwd=self.tmp).stdout, before)
        r = subprocess.run([CBIR, "serve", "--store", "store", "--port", "0", "--fast-decode", "--model", MODEL],
                           cwd=self.tmp_store_dir("exact"), env=clean_env(), capture_output=True, text=True,
                           timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(REFUSED, r.stderr)


if __name__ == "__main__":
    unittest.main()
