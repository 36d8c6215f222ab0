#!/usr/bin/env python3
"""Two builds of cbir side by side on the same work, interleaved (A B A B ...), so that a refactor or
a change of format is shown not to have made anything slower: `cbir index` of a folder into a new
store (images/s), a one-shot `cbir query` of an image not in the store (process wall time), and a
query of an image in the store (no model load). Medians and the ratio B/A per measurement, with the
machine and its load named.

    scripts/bench-builds.sh OLD_BUILD_DIR NEW_BUILD_DIR [FOLDER] [--runs N]

FOLDER defaults to the first 200 Corel-1K photos. Each build makes its own stores in a temp folder.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402
from cbir_assets import corel_images  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "resnet18-untrained-features.pt")


def timed(command, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--runs", type=int, default=5)
    bench_common.add_arguments(parser)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="cbir-bench-builds-")
    folder = args.folder
    if not folder:
        corel = corel_images()
        if not corel:
            raise SystemExit("no folder given and Corel-1K not found")
        folder = os.path.join(work, "photos")
        os.makedirs(folder)
        for name in sorted(os.listdir(corel), key=lambda n: int(n.split(".")[0]))[:200]:
            shutil.copy(os.path.join(corel, name), folder)
    images = len(os.listdir(folder))
    outsider = os.path.join(ROOT, "images", "dog1.jpg")  # not in the folder: embedded at query time
    insider = os.path.join(folder, sorted(os.listdir(folder))[0])
    builds = {"A": os.path.abspath(args.old), "B": os.path.abspath(args.new)}
    samples = {(label, what): [] for label in builds for what in ("index", "query new", "query stored")}
    host = bench_common.Machine(args.max_load, args.quiet_wait, max_other_cores=args.max_other)
    for run in range(args.runs):
        # A B, then B A: neither build always runs first (a warmed cache, a job starting).
        for label, build in (list(builds.items()) if run % 2 == 0 else list(builds.items())[::-1]):
            cbir = os.path.join(build, "apps", "cbir")
            store = os.path.join(work, f"store-{label}-{run}")
            seconds = timed([cbir, "index", folder, "--store", store, "--model", MODEL, "-q"], work)
            samples[(label, "index")].append(images / seconds)
            samples[(label, "query new")].append(timed([cbir, "query", outsider, "--store", store, "-k", "10"], work))
            samples[(label, "query stored")].append(timed([cbir, "query", insider, "--store", store, "-k", "10"], work))
            shutil.rmtree(store)
    host.finish()
    print(f"{host.header()}\n{args.runs} interleaved runs (A B, B A, ...): medians, and the median of the per-run "
          f"ratios B/A; {images} images in {folder}")
    print(f"A = {builds['A']}\nB = {builds['B']}\n")
    print("| measurement | A | B | B/A |")
    print("|---|---:|---:|---:|")
    for what, unit in (("index", "images/s"), ("query new", "s"), ("query stored", "s")):
        a = statistics.median(samples[("A", what)])
        b = statistics.median(samples[("B", what)])
        ratio = bench_common.pair_ratio({"A": samples[("A", what)], "B": samples[("B", what)]}, "B", "A")
        print(f"| {what} ({unit}) | {a:.3f} | {b:.3f} | {ratio:.3f} |")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
