#!/usr/bin/env python3
"""Measures where `cbir dups` should draw the line: the cosine similarity between each sample photo
and edited copies of it (resized, recompressed, slightly rotated, all three), against the highest
cosine similarity between two different photos (the seven samples and, when present, Corel-1K).
Uses `cbir embed`; needs Debian's python3-pil and python3-numpy.

    /usr/bin/python3 scripts/measure_dups_threshold.py [--model FILE.pt]
"""
import argparse
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

from cbir_assets import corel_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CBIR = os.path.join(ROOT, "build", "apps", "cbir")
NAMES = ["dog1", "dog2", "dog3", "cat1", "cat2", "person1", "person2"]
EDITS = {
    "resized 50%": lambda im: im.resize((im.width // 2, im.height // 2), Image.LANCZOS),
    "JPEG quality 60": lambda im: Image.open(io.BytesIO(_jpeg(im, 60))),
    "rotated 3 degrees": lambda im: im.rotate(3, resample=Image.BICUBIC),
    "all three": lambda im: Image.open(io.BytesIO(_jpeg(im.rotate(3, resample=Image.BICUBIC).resize(
        (im.width // 2, im.height // 2), Image.LANCZOS), 60))),
}


def _jpeg(image, quality):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def embed(paths, model):
    out = subprocess.run([CBIR, "embed", *paths, "--format", "jsonl", "-q", "--model", model], capture_output=True,
                         text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    vectors = np.array([r["vector"] for r in rows], dtype=np.float64)
    return [r["path"] for r in rows], vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def max_cross_similarity(vectors):
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1)
    return similarity.max()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=os.path.join(ROOT, "models", "resnet18-untrained-features.pt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        originals = [os.path.join(ROOT, "images", n + ".jpg") for n in NAMES]
        copies = []
        for name, original in zip(NAMES, originals):
            with Image.open(original) as image:
                image = image.convert("RGB")
                for e, (edit, apply) in enumerate(EDITS.items()):
                    path = os.path.join(tmp, f"{name}-{e}.png")
                    apply(image).convert("RGB").save(path)
                    copies.append((name, edit, path))
        _, base = embed(originals, args.model)
        _, edited = embed([c[2] for c in copies], args.model)
        print(f"model: {os.path.basename(args.model)}")
        print("| edit | min cosine to its original | median |")
        print("|---|---:|---:|")
        for edit in EDITS:
            values = [edited[i] @ base[NAMES.index(c[0])] for i, c in enumerate(copies) if c[1] == edit]
            print(f"| {edit} | {min(values):.4f} | {np.median(values):.4f} |")
        print(f"\nhighest cosine between two different sample photos: {max_cross_similarity(base):.4f}")
        corel = corel_images()
        if corel:
            _, vectors = embed([corel], args.model)
            print(f"highest cosine between two different Corel-1K photos: {max_cross_similarity(vectors):.4f}")


if __name__ == "__main__":
    sys.exit(main())
