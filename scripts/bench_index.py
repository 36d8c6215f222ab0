#!/usr/bin/env python3
"""Driver of scripts/bench-index.sh (see there). Measures each command's wall time and peak resident
memory (wait4's ru_maxrss) from outside the process. Compared variants run interleaved with the
machine's load recorded (scripts/bench_common.py); the quality of each precision against fp32 uses
numpy (Debian's python3-numpy, beside python3-torch). --large-photos adds the
large-photo table and the fidelity of --fast-decode."""
import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import bench_common
from cbir_assets import corel_images, machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CBIR = os.path.join(ROOT, "build", "apps", "cbir")
MODEL = os.path.join(ROOT, "models", "resnet18-untrained-features.pt")
INT8_MODEL = os.path.join(ROOT, "models", "resnet18-untrained-int8.pt")
# The model each precision runs: int8 is a property of the model file, bf16 of how a float model runs.
PRECISION_MODELS = {"fp32": MODEL, "bf16": MODEL, "int8": INT8_MODEL}


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


def subset_folder(folder, limit, work):
    """`limit` images spread evenly over the folder (by name, so every Corel-1K class is in), copied:
    a quick run on a busy machine."""
    if not limit:
        return folder
    target = os.path.join(work, "photos")
    os.makedirs(target)
    names = sorted((f for f in os.listdir(folder) if not f.startswith(".")), key=lambda n: (len(n), n))
    names = names[::max(1, len(names) // limit)][:limit]
    for name in names:
        shutil.copy(os.path.join(folder, name), target)
    return target


def store_vectors(store):
    """{file name: float32 vector} of a store's catalogue."""
    import numpy as np
    with sqlite3.connect(f"file:{os.path.join(store, 'catalogue.sqlite')}?mode=ro", uri=True) as db:
        return {os.path.basename(path): np.frombuffer(blob, dtype="<f4")
                for path, blob in db.execute("SELECT path, vector FROM images")}


def quality_against_fp32(stores):
    """Per precision: median and max relative L2 of its vectors to fp32's, and the mean overlap of
    exact L2 top-10 lists (each image querying all others) with fp32's."""
    import numpy as np

    def top10(m):
        squared = (m ** 2).sum(1)
        distances = squared[:, None] + squared[None, :] - 2 * m @ m.T
        np.fill_diagonal(distances, np.inf)
        return np.argsort(distances, axis=1)[:, :10]

    reference = store_vectors(stores["fp32"])
    names = sorted(reference)
    ref = np.array([reference[n] for n in names], dtype=np.float64)
    ref_lists = top10(ref)
    out = {}
    for precision, store in stores.items():
        vectors = store_vectors(store)
        got = np.array([vectors[n] for n in names], dtype=np.float64)
        relative = np.linalg.norm(got - ref, axis=1) / np.linalg.norm(ref, axis=1)
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ref_lists, top10(got))])
        out[precision] = (float(np.median(relative)), float(relative.max()), float(overlap))
    return out


def corel_eval(store, folder):
    """cbir eval's exact-search P@1, P@10 and mAP, when the folder is (part of) Corel-1K."""
    corel = corel_images()
    labels = os.path.join(os.path.dirname(corel), "labels.tsv") if corel else None
    if not labels or not os.path.isfile(labels):
        return None
    result = subprocess.run([CBIR, "eval", "--store", store, "--labels", labels, "--root", folder, "--format", "jsonl"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return None
    exact = json.loads(result.stdout.splitlines()[0])
    return exact["p_at_1"], exact["p_at_10"], exact["map"]


def large_photo_rows(folder, runs, work, precisions):
    """The large-photo table (issues 15, 17, 18): the Python notebook, Python batched +
    optimize_for_inference, `cbir index` exact and --fast-decode in each precision, run interleaved
    (bench_common.interleave); medians of `runs`, the median per-round ratio to the best Python
    pipeline of the same round, and peak RSS."""
    images = count_images(folder)
    rss = {}

    def measured(label, command, cleanup=None):
        def run():
            wall, peak, _, _ = run_measured(command())
            rss[label] = max(rss.get(label, 0), peak)
            if cleanup:
                cleanup()
            return images / wall
        return run

    def python(label, batch, optimize):
        return measured(label, lambda: ["/usr/bin/python3", os.path.join(ROOT, "scripts", "reference_features.py"),
                                        folder, "--model", MODEL, "--batch", str(batch)] +
                        (["--optimize"] if optimize else []))

    def cbir(label, precision, *flags):
        store = os.path.join(work, f"large-store-{precision}{'-'.join(flags)}")
        return measured(label, lambda: [CBIR, "index", folder, "--store", store, "--model", PRECISION_MODELS[precision],
                                        "--precision", precision, "-q", *flags],
                        lambda: shutil.rmtree(store, ignore_errors=True))

    python_labels = ["Python notebook (PIL, batch 1)", "Python batched + optimize_for_inference (batch 16)"]
    variants = {python_labels[0]: python(python_labels[0], 1, False),
                python_labels[1]: python(python_labels[1], 16, True)}
    for precision in precisions:
        for flags in ((), ("--fast-decode",)):
            label = f"cbir index ({precision}{', --fast-decode' if flags else ', exact'})"
            variants[label] = cbir(label, precision, *flags)
    samples = bench_common.interleave(variants, runs)
    samples["best Python"] = bench_common.best_per_round(samples, python_labels)
    rows = [(label, bench_common.median(samples[label]), bench_common.pair_ratio(samples, label, "best Python"),
             rss[label]) for label in variants]
    return images, rows


def large_photo_stages(folder):
    """CPU milliseconds per image of each stage, one thread (`cbir bench stages`), and inference alone:
    the bounds the large-photo rows are against."""
    _, _, out, _ = run_measured([CBIR, "bench", "stages", folder, "--fast-min-side", "448"])
    stages = json.loads(out)
    _, _, out, _ = run_measured([CBIR, "bench", "inference", "--model", MODEL, "--batch", "8", "--threads", "1",
                                 "--seconds", "3"])
    stages["inference_ms"] = 1000.0 / json.loads(out.splitlines()[0])["images_per_second"]
    return stages


def fast_decode_fidelity(folder, work):
    """--fast-decode against the exact path (scripts/measure_fast_decode.py, at this cbir's floor): on the
    large photos, relative L2 and top-10 overlap; on Corel-1K, `cbir eval` mAP of both stores."""
    import measure_fast_decode as m  # numpy: Debian's python3-numpy (install-deps.sh --test)
    import numpy as np
    floor = m.current_floor()
    names, exact = m.features(folder, 0, os.path.join(work, "exact.npy"))
    _, fast = m.features(folder, floor, os.path.join(work, "fast.npy"))
    errors = np.linalg.norm(fast - exact, axis=1) / np.linalg.norm(exact, axis=1)
    out = {"floor": floor, "median": float(np.median(errors)), "max": float(errors.max()),
           "overlap": m.overlap(exact, fast)}
    corel = corel_images()
    if corel:
        labels = os.path.join(os.path.dirname(corel), "labels.tsv")
        out["corel_map"] = (m.cbir_eval_map(corel, labels, work, False), m.cbir_eval_map(corel, labels, work, True))
    return out


def print_large_photo_stages(stages):
    per_image = {k: 1000.0 * v / stages["images"] for k, v in stages.items() if isinstance(v, float)}
    print("\n| stage (large photos, one thread) | CPU ms per image |")
    print("|---|---:|")
    for key, label in (("read", "read (open, checks, read)"), ("sha256", "sha256"),
                       ("decode_opencv", "decode, OpenCV imdecode (before)"), ("decode_turbo", "decode, TurboJPEG + EXIF"),
                       ("resize", "Pillow-exact resize to 224×224"), ("normalize", "normalise to CHW float"),
                       ("decode_fast", f"decode --fast-decode (>= {stages.get('fast_min_side')} px)"),
                       ("resize_fast", "resize after --fast-decode")):
        if key in per_image:
            print(f"| {label} | {per_image[key]:.1f} |")
    print(f"| inference alone, fp32, batch 8, one thread (wall ms: load counts) | {stages['inference_ms']:.1f} |")
    print(f"\nTurboJPEG and OpenCV decodes differ on {stages['jpeg_pixels_differ']} of {stages['images']} images.")


def print_large_photo_tables(folder, images, rows, host, fidelity, runs):
    print(f"\n{host.header()}\nLarge photos: {folder} ({images} images). {runs} interleaved rounds: medians, and the "
          f"median of the per-round ratios to the best Python pipeline of the same round.\n")
    print("| pipeline (large photos) | images/s | × best Python | peak RSS MiB |")
    print("|---|---:|---:|---:|")
    for label, rate, ratio, rss in rows:
        print(f"| {label} | {rate:.1f} | {ratio:.2f} | {rss:.0f} |")
    if fidelity:
        print(f"\n--fast-decode (shorter side >= {fidelity['floor']} px) against the exact path on the large photos: "
              f"relative L2 median {100 * fidelity['median']:.2f} %, max {100 * fidelity['max']:.2f} %, top-10 "
              f"overlap {fidelity['overlap']:.4f}.", end="")
        if "corel_map" in fidelity:
            exact_map, fast_map = fidelity["corel_map"]
            print(f" Corel-1K `cbir eval` mAP: exact {exact_map:.4f}, --fast-decode {fast_map:.4f}.", end="")
        print()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds (each variant once per round)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images of the folder")
    parser.add_argument("--precisions", default="fp32,bf16,int8")
    parser.add_argument("--inference-seconds", type=float, default=3)
    parser.add_argument("--query-store-size", type=int, default=100000)
    bench_common.add_arguments(parser)
    parser.add_argument("--large-photos", metavar="DIR",
                        help="also the large-photo table (../shared/tools/make-large-photos.py DIR) and the fidelity "
                             "of --fast-decode")
    parser.add_argument("--only-large-photos", action="store_true", help="only the --large-photos part")
    args = parser.parse_args()
    precisions = [p for p in args.precisions.split(",") if os.path.isfile(PRECISION_MODELS[p])]
    if args.large_photos:
        large = os.path.abspath(args.large_photos)
        work = tempfile.mkdtemp(prefix="cbir-bench-large-")
        large_host = bench_common.Machine(args.max_load, args.quiet_wait, max_other_cores=args.max_other)
        try:
            images, rows = large_photo_rows(large, args.runs, work, precisions)
            stages = large_photo_stages(large)
            fidelity = fast_decode_fidelity(large, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        large_host.finish()
        print_large_photo_tables(large, images, rows, large_host, fidelity, args.runs)
        print_large_photo_stages(stages)
        if args.only_large_photos:
            return
    work = tempfile.mkdtemp(prefix="cbir-bench-")
    folder = subset_folder(os.path.abspath(args.folder or corel_folder()), args.limit, work)
    images = count_images(folder)
    host = bench_common.Machine(args.max_load, args.quiet_wait, max_other_cores=args.max_other)
    print(f"bench: {images} images in {folder}; {args.runs} interleaved rounds; {host.header()}", file=sys.stderr)

    # End to end, all pipelines interleaved: images/s of each run, peak RSS of the largest.
    rss = {}
    stores = {}

    def python_reference(label, batch, optimize, model):
        command = ["/usr/bin/python3", os.path.join(ROOT, "scripts", "reference_features.py"), folder, "--model", model,
                   "--batch", str(batch)] + (["--optimize"] if optimize else [])

        def run():
            wall, peak, _, _ = run_measured(command)
            rss[label] = max(rss.get(label, 0), peak)
            return images / wall
        return run

    def cbir_index(label, precision):
        def run():
            store = os.path.join(work, f"store-{precision}")
            shutil.rmtree(store, ignore_errors=True)
            wall, peak, _, _ = run_measured([CBIR, "index", folder, "--store", store, "--model",
                                             PRECISION_MODELS[precision], "--precision", precision, "-q"])
            rss[label] = max(rss.get(label, 0), peak)
            stores[precision] = store  # the last round's store is kept for the quality figures
            return images / wall
        return run

    python_variants = {"Python notebook (PIL, batch 1)": (1, False, MODEL),
                       "Python batched (batch 16)": (16, False, MODEL),
                       "Python batched + optimize_for_inference (batch 16)": (16, True, MODEL)}
    if "int8" in precisions:
        python_variants["Python batched, int8 model (batch 16)"] = (16, False, INT8_MODEL)
    variants = {label: python_reference(label, *spec) for label, spec in python_variants.items()}
    for precision in precisions:
        variants[f"cbir index ({precision})"] = cbir_index(f"cbir index ({precision})", precision)
    samples = bench_common.interleave(variants, args.runs)
    # The notebook's pipeline runs the float model: the best of those is the baseline; the int8
    # model under Python is the baseline for the same model.
    float_python = [label for label, spec in python_variants.items() if spec[2] == MODEL]
    samples["best Python"] = bench_common.best_per_round(samples, float_python)
    int8_python = next((label for label, spec in python_variants.items() if spec[2] == INT8_MODEL), None)
    quality = quality_against_fp32(stores) if "fp32" in stores else {}
    evals = {p: corel_eval(store, folder) for p, store in stores.items()}

    # Inference alone (batch 8, random inputs), interleaved across precisions.
    def inference(precision):
        def run():
            _, _, out, _ = run_measured([CBIR, "bench", "inference", "--model", PRECISION_MODELS[precision], "--batch",
                                         "8", "--precision", precision, "--seconds", str(args.inference_seconds)])
            return json.loads(out.splitlines()[0])["images_per_second"]
        return run
    inference_samples = bench_common.interleave({p: inference(p) for p in precisions}, args.runs)
    stage_rows = []
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
    host.finish()

    print(f"\n{host.header()}\nFolder: {folder} ({images} images). {args.runs} interleaved rounds: medians, and "
          f"the median of the per-round ratios to the best Python pipeline of the float model (the notebook's) "
          f"and to Python running the int8 model, in the same round.\n")
    print("| pipeline | images/s | × best Python (float model) | × Python, int8 model | peak RSS MiB | rel. L2 to fp32 "
          "(median / max) | top-10 overlap with fp32 | P@1 | P@10 | mAP |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label in variants:
        precision = label[len("cbir index ("):-1] if label.startswith("cbir index") else None
        q = quality.get(precision)
        e = evals.get(precision)
        quality_cells = f"{q[0]:.4f} / {q[1]:.4f} | {q[2]:.3f}" if q else " | "
        eval_cells = f"{e[0]:.3f} | {e[1]:.3f} | {e[2]:.4f}" if e else " | | "
        int8_ratio = f"{bench_common.pair_ratio(samples, label, int8_python):.2f}" if int8_python else ""
        print(f"| {label} | {bench_common.median(samples[label]):.1f} | "
              f"{bench_common.pair_ratio(samples, label, 'best Python'):.2f} | {int8_ratio} | {rss[label]:.0f} | "
              f"{quality_cells} | {eval_cells} |")
    print("\n| inference alone (batch 8) | images/s | × fp32 |")
    print("|---|---:|---:|")
    for precision in precisions:
        ratio = (f"{bench_common.pair_ratio(inference_samples, precision, 'fp32'):.2f}"
                 if "fp32" in inference_samples else "")
        print(f"| {precision} ({os.path.basename(PRECISION_MODELS[precision])}) | "
              f"{bench_common.median(inference_samples[precision]):.1f} | {ratio} |")
    print("\n| stage alone | images/s |")
    print("|---|---:|")
    for label, rate in stage_rows:
        print(f"| {label} | {rate:.1f} |")
    print(f"\n`cbir query` (one image not in the store, top-10, process start to exit) on a "
          f"{args.query_store_size}-vector HNSW store: median {query_wall:.3f} s, peak RSS {query_rss:.0f} MiB "
          f"(store built in {build_wall:.1f} s, peak RSS {build_rss:.0f} MiB).")


if __name__ == "__main__":
    main()
