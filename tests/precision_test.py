#!/usr/bin/env python3
"""Precision as part of a store's recipe (issues 17 and 18): an int8 (quantized) model loads, indexes
and answers queries; a store records the precision its vectors were made in and shows it in `info`;
queries and `serve` run in the store's precision and refuse another one; `--precision auto` follows
its written rule (int8 model -> int8; else bf16 where the CPU has native bf16; else fp32).
The int8 model is models/resnet18-untrained-int8.pt (scripts/fetch-assets.sh)."""
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

from PIL import Image

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.environ.get("CBIR_SOURCE_DIR", ".")
CBIR = os.path.join(BIN, "cbir")
FLOAT_MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
INT8_MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-int8.pt")
SEED = os.path.join(SOURCE, "images")


def cpu_has_native_bf16():
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


@unittest.skipUnless(os.path.isfile(INT8_MODEL), "no int8 model: run scripts/fetch-assets.sh")
class Precision(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-precision-")
        cls.env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
        # A photo that is in no store: queries of it must embed with the store's model and precision.
        cls.new_photo = os.path.join(cls.tmp, "dog1-copy.jpg")
        shutil.copy(os.path.join(SEED, "dog1.jpg"), cls.new_photo)
        # And one whose content is in no store either (a copy's vector would be reused, nothing embedded).
        cls.mirrored = os.path.join(cls.tmp, "dog1-mirrored.jpg")
        Image.open(os.path.join(SEED, "dog1.jpg")).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(cls.mirrored)
        cls.stores = {}
        for name, model, precision in (("int8", INT8_MODEL, None), ("bf16", FLOAT_MODEL, "bf16"),
                                       ("fp32", FLOAT_MODEL, None)):
            store = os.path.join(cls.tmp, name)
            r = cls.cbir("index", SEED, "--store", store, "--model", model,
                         *(["--precision", precision] if precision else []))
            assert r.returncode == 0, r.stderr
            cls.stores[name] = store

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def cbir(cls, *args):
        return subprocess.run([CBIR, *args], env=cls.env, capture_output=True, text=True, timeout=300)

    def info(self, store):
        r = self.cbir("info", "--store", store, "--format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_int8_model_indexes_the_sample_photos_and_answers_queries(self):
        info = self.info(self.stores["int8"])
        self.assertEqual(info["images"], 7)
        self.assertEqual(info["dimension"], 512)
        r = self.cbir("query", self.new_photo, "--store", self.stores["int8"], "-k", "1", "--format", "jsonl", "-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        hit = json.loads(r.stdout.splitlines()[0])
        self.assertEqual(os.path.basename(hit["path"]), "dog1.jpg")
        self.assertLess(hit["distance"], 1e-6)  # the same int8 pipeline as the store's row
        self.assertIn("runs in int8", r.stderr)

    def test_info_shows_precision_and_engine(self):
        self.assertEqual(self.info(self.stores["int8"])["precision"], "int8")
        self.assertIn("onednn", self.info(self.stores["int8"])["engine"])
        self.assertEqual(self.info(self.stores["bf16"])["precision"], "bf16")
        self.assertIn("bf16", self.info(self.stores["bf16"])["engine"])
        self.assertEqual(self.info(self.stores["fp32"])["precision"], "fp32")

    def test_a_store_made_before_precision_was_recorded_reads_as_fp32(self):
        old = os.path.join(self.tmp, "old")
        shutil.copytree(self.stores["fp32"], old)
        with sqlite3.connect(os.path.join(old, "catalogue.sqlite")) as db:
            tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
            meta = next(t for t in tables if "meta" in t)
            db.execute(f"delete from {meta} where key = 'precision'")
        self.assertTrue(self.info(old)["precision"].startswith("fp32"))
        r = self.cbir("query", self.new_photo, "--store", old, "-k", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.cbir("query", self.new_photo, "--store", old, "-k", "1", "--precision", "bf16")
        self.assertEqual(r.returncode, 2)
        self.assertIn("precision mismatch", r.stderr)
        r = self.cbir("index", self.mirrored, "--store", old)  # its first write records what it is
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.info(old)["precision"], "fp32")

    def test_queries_run_in_the_store_precision_and_refuse_another(self):
        r = self.cbir("query", self.new_photo, "--store", self.stores["bf16"], "-k", "1", "-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("runs in bf16", r.stderr)
        for store, asked in (("bf16", "fp32"), ("fp32", "bf16"), ("int8", "bf16"), ("int8", "fp32")):
            r = self.cbir("query", self.new_photo, "--store", self.stores[store], "--precision", asked)
            self.assertEqual(r.returncode, 2, (store, asked, r.stdout))
            self.assertEqual(len([l for l in r.stderr.splitlines() if l.startswith("cbir: error:")]), 1, r.stderr)
            self.assertIn("precision mismatch", r.stderr)
            self.assertIn(f"made in {store}", r.stderr)

    def test_index_into_a_store_refuses_another_precision(self):
        store = os.path.join(self.tmp, "grow")
        shutil.copytree(self.stores["bf16"], store)
        r = self.cbir("index", self.mirrored, "--store", store, "--precision", "fp32")
        self.assertEqual(r.returncode, 2)
        self.assertIn("precision mismatch", r.stderr)
        r = self.cbir("index", self.mirrored, "--store", store)  # its own precision: accepted
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.info(store)["images"], 8)

    def test_serve_refuses_another_precision_before_listening(self):
        r = self.cbir("serve", "--store", self.stores["fp32"], "--port", "0", "--precision", "bf16")
        self.assertEqual(r.returncode, 2)
        self.assertIn("precision mismatch", r.stderr)

    def test_bf16_is_refused_for_an_int8_model(self):
        r = self.cbir("embed", self.new_photo, "--model", INT8_MODEL, "--precision", "bf16")
        self.assertEqual(r.returncode, 2)
        self.assertIn("runs only in int8", r.stderr)
        r = self.cbir("embed", self.new_photo, "--model", FLOAT_MODEL, "--precision", "int8")
        self.assertEqual(r.returncode, 2)
        self.assertIn("needs a quantized model", r.stderr)

    def test_auto_follows_the_written_rule(self):
        expected = "bf16" if cpu_has_native_bf16() else "fp32"
        for model, want in ((FLOAT_MODEL, expected), (INT8_MODEL, "int8")):
            store = os.path.join(self.tmp, "auto-" + want)
            r = self.cbir("index", self.new_photo, "--store", store, "--model", model, "--precision", "auto")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.info(store)["precision"], want)
            if want == "bf16":
                self.assertNotIn("emulated", r.stderr)
        # auto on an existing store is the store's precision, whatever the CPU.
        r = self.cbir("query", self.new_photo, "--store", self.stores["fp32"], "--precision", "auto", "-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("runs in fp32", r.stderr)


if __name__ == "__main__":
    unittest.main()
