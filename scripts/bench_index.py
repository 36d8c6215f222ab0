#!/usr/bin/env python3
"""Driver of scripts/bench-index.sh (see there). Standard library only; measures each command's
wall time and peak resident memory (wait4's ru_maxrss) from outside the process."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from cbir_assets import corel_images, machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CBIR = os.path.join(ROOT, "build", "apps", "cbir")
MODEL = os.path.join(ROOT, "models", "resnet18-untrained-features.pt")


def run_measured(command):
    """Like run, with peak RSS: fork/exec by hand so wait4 sees the child's rusage."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                os.execv(command[0], command)
            finally:
                os._exit(127)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench: {' '.join(command)} failed:\n{stderr}")
    return wall, usage.ru_maxrss / 1024.0, stdout, stderr


def corel_folder():
    folder = corel_images()
    if folder is None:
        sys.exit("bench: give a folder (Corel-1K not found in $CBIR_ASSETS or ../shared/assets)")
    return folder


def count_images(folder):
    extensions = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
    return sum(f.lower().endswith(extensions) for _, _, files in os.walk(folder) for f in files)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--query-store-size", type=int, default=100000)
    args = parser.parse_args()
    folder = os.path.abspath(args.folder or corel_folder())
    images = count_images(folder)
    work = tempfile.mkdtemp(prefix="cbir-bench-")
    rows = []  # (what, images/s or seconds, peak RSS MiB, note)

    def python_reference(batch, optimize):
        command = ["/usr/bin/python3", os.path.join(ROOT, "scripts", "reference_features.py"), folder, "--model", MODEL,
                   "--batch", str(batch)] + (["--optimize"] if optimize else [])
        results = [run_measured(command) for _ in range(args.runs)]
        return statistics.median(images / r[0] for r in results), max(r[1] for r in results)

    def cbir_index(precision):
        results = []
        for i in range(args.runs):
            store = os.path.join(work, f"store-{precision}-{i}")
            results.append(run_measured([CBIR, "index", folder, "--store", store, "--model", MODEL, "--precision",
                                         precision, "-q"]))
            shutil.rmtree(store)
        return statistics.median(images / r[0] for r in results), max(r[1] for r in results)

    print(f"bench: {images} images in {folder}; {args.runs} runs each; machine: {machine()}", file=sys.stderr)
    measured = {}
    for label, batch, optimize in [("Python notebook (PIL, batch 1)", 1, False),
                                   ("Python batched (batch 16)", 16, False),
                                   ("Python batched + optimize_for_inference (batch 16)", 16, True)]:
        rate, rss = python_reference(batch, optimize)
        measured[label] = rate
        rows.append((label, rate, rss))
        print(f"bench: {label}: {rate:.1f} images/s", file=sys.stderr)
    best_python = max(measured.values())
    for precision in ("fp32", "bf16"):
        rate, rss = cbir_index(precision)
        label = f"cbir index ({precision})"
        measured[label] = rate
        rows.append((label, rate, rss))
        print(f"bench: {label}: {rate:.1f} images/s", file=sys.stderr)

    # Stages alone.
    stage_rows = []
    for precision in ("fp32", "bf16"):
        _, _, out, _ = run_measured([CBIR, "bench", "inference", "--model", MODEL, "--batch", "1,8,16", "--precision",
                                     precision, "--seconds", "3"])
        for line in out.splitlines():
            r = json.loads(line)
            stage_rows.append((f"inference {precision}, batch {r['batch']}", r["images_per_second"]))
    for readers in (1, 2):
        _, _, out, _ = run_measured([CBIR, "bench", "decode", folder, "--readers", str(readers)])
        stage_rows.append((f"decode + preprocess, {readers} reader(s)", json.loads(out)["images_per_second"]))

    # Query start-to-exit on a large synthetic store.
    store = os.path.join(work, "synthetic")
    build_wall, build_rss, _, _ = run_measured([CBIR, "bench", "synth-store", "--store", store, "--count",
                                                str(args.query_store_size), "--model", MODEL])
    query_image = os.path.join(ROOT, "images", "dog1.jpg")
    query_runs = [run_measured([CBIR, "query", query_image, "--store", store, "-k", "10", "-q"])
                  for _ in range(max(5, args.runs))]
    query_wall = statistics.median(r[0] for r in query_runs)
    query_rss = max(r[1] for r in query_runs)
    shutil.rmtree(work)

    print(f"\nMachine: {machine()}. Folder: {folder} ({images} images). Median of {args.runs} runs.\n")
    print("| pipeline | images/s | × best Python | peak RSS MiB |")
    print("|---|---:|---:|---:|")
    for label, rate, rss in rows:
        print(f"| {label} | {rate:.1f} | {rate / best_python:.2f} | {rss:.0f} |")
    print("\n| stage alone | images/s |")
    print("|---|---:|")
    for label, rate in stage_rows:
        print(f"| {label} | {rate:.1f} |")
    print(f"\n`cbir query` (one image not in the store, top-10, process start to exit) on a "
          f"{args.query_store_size}-vector HNSW store: median {query_wall:.3f} s, peak RSS {query_rss:.0f} MiB "
          f"(store built in {build_wall:.1f} s, peak RSS {build_rss:.0f} MiB).")


if __name__ == "__main__":
    main()
