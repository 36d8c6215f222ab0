#!/usr/bin/env python3
"""Fidelity: cbir's vectors against the notebook's PyTorch pipeline (scripts/reference_features.py)
on the seven sample photos and all of Corel-1K, with the same TorchScript model.

- float32: every image within 0.5 % relative L2 error (|f - f_ref| / |f_ref|);
- bf16 (opt-in, not the default): every image within 2.5 %, and exact top-10 neighbour lists on
  Corel-1K overlapping the reference's by >= 0.95 on average. That misses the 0.98 that would let
  an approximation be a default; the README gives the measured figures.
- int8: the quantized model (models/resnet18-untrained-int8.pt) run by cbir against the same file run
  by PyTorch on the onednn engine, on the sample photos and every 10th Corel-1K image: every image
  within 0.5 %, as for fp32 (parity is about the pipeline, whatever the model).

Needs /usr/bin/python3 with Debian's python3-torch, torchvision, PIL and numpy
(scripts/install-deps.sh --python, which scripts/test.sh runs).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.environ.get("CBIR_SOURCE_DIR", ".")
MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
INT8_MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-int8.pt")
sys.path.insert(0, os.path.join(SOURCE, "scripts"))
from cbir_assets import corel_images  # noqa: E402


def reference(folder, out, model=MODEL):
    subprocess.run([sys.executable, os.path.join(SOURCE, "scripts", "reference_features.py"), folder, "--model", model,
                    "--out", out, "--batch", "50"], check=True, capture_output=True)
    names, rows = [], []
    with open(out) as f:
        for line in f:
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            names.append(fields[0])
            rows.append([float(v) for v in fields[1:]])
    return names, np.array(rows, dtype=np.float64)


def cbir_embed(folder, out, *extra, model=MODEL):
    result = subprocess.run([os.path.join(BIN, "cbir"), "embed", folder, "--format", "npy", "-o", out, "-q", "--model",
                             model, *extra], capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(result.stderr)
    names = [os.path.relpath(p, folder) for p in result.stdout.splitlines()]
    return names, np.load(out).astype(np.float64)


def relative_errors(values, ref):
    return np.linalg.norm(values - ref, axis=1) / np.linalg.norm(ref, axis=1)


def top10(features):
    squared = (features ** 2).sum(1)
    distances = squared[:, None] + squared[None, :] - 2 * features @ features.T
    np.fill_diagonal(distances, np.inf)  # each image queries the others
    return np.argsort(distances, axis=1)[:, :10]


class Fidelity(unittest.TestCase):
    references = {}

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="cbir-fidelity-")

    def tearDown(self):
        self.tmp.cleanup()

    def reference_of(self, folder):
        if folder not in self.references:  # the Python pipeline is the slow part: once per folder
            self.references[folder] = reference(folder, os.path.join(self.tmp.name, "ref.tsv"))
        return self.references[folder]

    def compare(self, folder, precision, limit):
        ref_names, ref = self.reference_of(folder)
        names, got = cbir_embed(folder, os.path.join(self.tmp.name, precision + ".npy"), "--precision", precision)
        self.assertEqual(names, ref_names)
        errors = relative_errors(got, ref)
        print(f"\n{os.path.basename(os.path.dirname(folder)) or folder} {precision}: {len(errors)} images, relative "
              f"error median {np.median(errors):.2e}, max {errors.max():.2e}", file=sys.stderr)
        self.assertLessEqual(errors.max(), limit)
        return ref, got

    def test_seed_photos_float32(self):
        self.compare(os.path.join(SOURCE, "images"), "fp32", 0.005)

    @unittest.skipUnless(corel_images(), "Corel-1K not found in $CBIR_ASSETS or ../shared/assets")
    def test_corel1k_float32_and_bf16(self):
        ref, got = self.compare(corel_images(), "fp32", 0.005)
        ref, bf16 = self.compare(corel_images(), "bf16", 0.025)
        reference_lists, bf16_lists = top10(ref), top10(bf16)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(reference_lists, bf16_lists)])
        print(f"corel1k bf16 top-10 overlap with the reference: {overlap:.4f}", file=sys.stderr)
        self.assertGreaterEqual(overlap, 0.95)

    @unittest.skipUnless(os.path.isfile(INT8_MODEL), "no int8 model: run scripts/fetch-assets.sh")
    def test_int8_model_matches_the_python_int8_reference(self):
        folder = os.path.join(self.tmp.name, "int8-photos")
        os.makedirs(folder)
        for name in os.listdir(os.path.join(SOURCE, "images")):
            if name.endswith(".jpg"):
                shutil.copy(os.path.join(SOURCE, "images", name), os.path.join(folder, name))
        if corel_images():
            for name in sorted(os.listdir(corel_images()))[::10]:
                shutil.copy(os.path.join(corel_images(), name), os.path.join(folder, "corel-" + name))
        ref_names, ref = reference(folder, os.path.join(self.tmp.name, "ref-int8.tsv"), model=INT8_MODEL)
        # --precision int8 asserts that cbir runs the file as the quantized model it is.
        names, got = cbir_embed(folder, os.path.join(self.tmp.name, "int8.npy"), "--precision", "int8",
                                model=INT8_MODEL)
        self.assertEqual(names, ref_names)
        errors = relative_errors(got, ref)
        print(f"\nint8 model: {len(errors)} images, relative error to the Python int8 reference median "
              f"{np.median(errors):.2e}, max {errors.max():.2e}", file=sys.stderr)
        self.assertLessEqual(errors.max(), 0.005)


if __name__ == "__main__":
    unittest.main()
