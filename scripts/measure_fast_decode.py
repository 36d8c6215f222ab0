#!/usr/bin/python3
"""How far --fast-decode's features are from the exact path's, per shorter-side floor: the evidence
behind kFastDecodeMinSide (lib/image/preprocess.h) and the README's figures.

For each folder (the large-photo folder, Corel-1K) and each floor, cbir's own vectors (`cbir bench
features`, which is `cbir embed` with any floor) against the exact ones:
- relative L2 error |f_fast - f_exact| / |f_exact| (median, 95th percentile, max);
- top-10 overlap: each image queries the others by exact L2, mean |fast top-10 ∩ exact top-10| / 10;
- on a labelled folder (Corel-1K), mAP of each as `cbir eval` computes it (every image queries the rest),
  and `cbir eval` itself on an exact and a --fast-decode store.
The issue's rule for a default: overlap >= 0.99 and mAP within 0.005 on both folders. Fidelity figures
do not depend on the machine's load; the load average is printed anyway.

    scripts/measure_fast_decode.py [--large DIR] [--floors 224,448,896]
"""
import argparse
import csv
import io
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from cbir_assets import corel_images, machine  # noqa: E402

CBIR = os.path.join(ROOT, "build", "apps", "cbir")
MODEL = os.path.join(ROOT, "models", "resnet18-untrained-features.pt")


def features(folder, floor, out):
    listing = subprocess.run([CBIR, "bench", "features", folder, "--model", MODEL, "--fast-min-side", str(floor), "-o",
                              out], capture_output=True, text=True, check=True).stdout
    return [os.path.relpath(p, folder) for p in listing.splitlines()], np.load(out).astype(np.float64)


def current_floor():
    """kFastDecodeMinSide, as this cbir records it in a --fast-decode store's recipe."""
    with tempfile.TemporaryDirectory(prefix="cbir-floor-") as work:
        photo = os.path.join(ROOT, "images", "dog2.jpg")
        subprocess.run([CBIR, "index", photo, "--store", os.path.join(work, "s"), "--model", MODEL, "-q",
                        "--fast-decode"], check=True)
        info = subprocess.run([CBIR, "info", "--store", os.path.join(work, "s")], capture_output=True, text=True,
                              check=True).stdout
    return int(info.split("jpeg-dct-scaled-min-side-")[1].split()[0])


def top10(f):
    squared = (f ** 2).sum(1)
    distances = squared[:, None] + squared[None, :] - 2 * f @ f.T
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1)[:, :10]


def overlap(a, b):
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(top10(a), top10(b))]))


def mean_average_precision(f, labels):
    """As cbir eval: every labelled image queries all the others by exact L2."""
    squared = (f ** 2).sum(1)
    distances = squared[:, None] + squared[None, :] - 2 * f @ f.T
    np.fill_diagonal(distances, np.inf)
    labels = np.asarray(labels)
    total = 0.0
    for q in range(len(labels)):
        order = np.argsort(distances[q], kind="stable")[:-1]
        relevant = (labels[order] == labels[q]).astype(np.float64)
        hits = np.cumsum(relevant)
        total += (relevant * hits / np.arange(1, len(order) + 1)).sum() / relevant.sum()
    return total / len(labels)


def cbir_eval_map(images, labels_tsv, work, fast):
    store = os.path.join(work, "store-fast" if fast else "store-exact")
    subprocess.run([CBIR, "index", images, "--store", store, "--model", MODEL, "-q"] + (["--fast-decode"] if fast else []),
                   check=True)
    out = subprocess.run([CBIR, "eval", "--store", store, "--labels", labels_tsv, "--root", images, "--format", "tsv"],
                         capture_output=True, text=True, check=True).stdout
    rows = {row["search"]: row for row in csv.DictReader(io.StringIO(out), delimiter="\t")}
    return float(rows["exact"]["map"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", default=os.path.join(os.path.dirname(ROOT), "large-photos"),
                        help="the large-photo folder (../shared/tools/make-large-photos.py DIR)")
    parser.add_argument("--floors", default="224,448,896")
    args = parser.parse_args()
    floors = [int(v) for v in args.floors.split(",")]
    corel = corel_images()
    folders = [("large photos", args.large)] + ([("Corel-1K", corel)] if corel else [])
    print(f"measure: machine {machine()}; load average {os.getloadavg()[0]:.2f} at the start "
          f"(fidelity does not depend on it)", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cbir-fast-decode-") as work:
        for name, folder in folders:
            names, exact = features(folder, 0, os.path.join(work, "exact.npy"))
            labels = None
            labels_tsv = os.path.join(os.path.dirname(folder), "labels.tsv")
            if os.path.exists(labels_tsv):
                with open(labels_tsv) as f:
                    label_of = {row["file"]: row["class_id"] for row in csv.DictReader(f, delimiter="\t")}
                labels = [label_of[n] for n in names]
                exact_map = mean_average_precision(exact, labels)
            for floor in floors:
                fast_names, fast = features(folder, floor, os.path.join(work, f"fast{floor}.npy"))
                assert fast_names == names
                errors = np.linalg.norm(fast - exact, axis=1) / np.linalg.norm(exact, axis=1)
                row = {"folder": name, "floor": floor, "images": len(names), "median": float(np.median(errors)),
                       "p95": float(np.percentile(errors, 95)), "max": float(errors.max()),
                       "overlap": overlap(exact, fast)}
                if labels is not None:
                    row["map_exact"] = exact_map
                    row["map_fast"] = mean_average_precision(fast, labels)
                rows.append(row)
                print(f"measure: {row}", file=sys.stderr)
        store_maps = None
        if corel:
            images = corel
            labels_tsv = os.path.join(os.path.dirname(corel), "labels.tsv")
            store_maps = (cbir_eval_map(images, labels_tsv, work, False), cbir_eval_map(images, labels_tsv, work, True))
    print(f"\nMachine: {machine()}. cbir's exact features against its DCT-scaled JPEG decode, per shorter-side floor.\n")
    print("| folder | floor (px) | images | rel. L2 median | p95 | max | top-10 overlap | mAP exact → fast |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        m = f"{r['map_exact']:.4f} → {r['map_fast']:.4f}" if "map_exact" in r else "–"
        print(f"| {r['folder']} | {r['floor']} | {r['images']} | {100 * r['median']:.2f} % | {100 * r['p95']:.2f} % | "
              f"{100 * r['max']:.2f} % | {r['overlap']:.4f} | {m} |")
    if store_maps:
        print(f"\n`cbir eval` on Corel-1K: exact store mAP {store_maps[0]:.4f}, --fast-decode store {store_maps[1]:.4f}.")


if __name__ == "__main__":
    main()
