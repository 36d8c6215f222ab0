#!/usr/bin/env python3
"""Driver of scripts/bench-serve.sh (see there). Standard library and wrk only."""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import bench_common
from cbir_assets import corel_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CBIR = os.path.join(ROOT, "build", "apps", "cbir")
MODEL = os.path.join(ROOT, "models", "resnet18-untrained-features.pt")

WRK_SCRIPT = """
local f = assert(io.open(os.getenv("CBIR_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("CBIR_BENCH_TYPE")
"""


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


def start_server(store):
    server = subprocess.Popen([CBIR, "serve", "--store", store, "--port", "0"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    for line in server.stderr:
        found = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return server, int(found.group(1))
    sys.exit("bench: cbir serve did not start")


def sequential(port, path, body, content_type, count, expect=200):
    """Latencies (ms) of `count` requests one after another on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("POST", path, body, {"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        if response.status != expect:
            sys.exit(f"bench: POST {path} answered {response.status}")
        latencies.append((time.perf_counter() - started) * 1000)
    connection.close()
    return latencies


def wrk(port, body_file, content_type, seconds, connections, work):
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    env = dict(os.environ, CBIR_BENCH_BODY=body_file, CBIR_BENCH_TYPE=content_type)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
                          f"http://127.0.0.1:{port}/search?k=10"], env=env, capture_output=True, text=True, check=True).stdout
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def latency(p):
        value, unit = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * units[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"bench: wrk saw {errors.group(1)} failed requests:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), latency(50), latency(99)


def one_shot_queries(query_image, store, runs, verbose=False):
    """Wall times (ms) of `cbir query` processes, start to exit, one after another; and the last output."""
    walls, out = [], None
    for _ in range(runs):
        started = time.perf_counter()
        r = subprocess.run([CBIR, "query", query_image, "--store", store, "-k", "10", "--format", "tsv",
                            "-v" if verbose else "-q"], check=True, capture_output=True)
        walls.append((time.perf_counter() - started) * 1000)
        out = r
    return walls, out


def load_average():
    return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store-size", type=int, default=100000, help="synthetic vectors in the served store")
    parser.add_argument("--seconds", type=int, default=15, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--runs", type=int, default=7, help="one-shot cbir query runs")
    parser.add_argument("--uploads", type=int, default=100, help="distinct Corel photos added with POST /images")
    parser.add_argument("--one-shot-only", action="store_true",
                        help="only the one-shot cbir query, without and with a server (no wrk, no uploads)")
    bench_common.add_arguments(parser)
    args = parser.parse_args()
    if not args.one_shot_only and not shutil.which("wrk"):
        sys.exit("bench: wrk not found (scripts/install-deps.sh --test)")
    corel = corel_images()
    query_image = os.path.join(corel, "950.jpg") if corel else os.path.join(ROOT, "images", "dog1.jpg")
    work = tempfile.mkdtemp(prefix="cbir-bench-serve-")
    host = bench_common.Machine(args.max_load, args.quiet_wait, max_other_cores=args.max_other)
    try:
        store = os.path.join(work, "store")
        subprocess.run([CBIR, "bench", "synth-store", "--store", store, "--count", str(args.store_size), "--model", MODEL],
                       check=True, capture_output=True)
        vector = json.loads(subprocess.run([CBIR, "embed", query_image, "--format", "jsonl", "--model", MODEL, "-q"],
                                           check=True, capture_output=True, text=True).stdout)["vector"]
        vector_file = os.path.join(work, "vector.json")
        with open(vector_file, "w") as f:
            json.dump({"vector": vector}, f)
        with open(query_image, "rb") as f:
            image_bytes = f.read()
        print(f"bench: {args.store_size}-vector HNSW store; query image {query_image}; {host.header()}",
              file=sys.stderr)

        loads = [load_average()]
        walls, alone = one_shot_queries(query_image, store, args.runs)
        rows = [("`cbir query` process, image (one at a time)", 1000 / statistics.median(walls),
                 statistics.median(walls), percentile(walls, 99))]

        server, port = start_server(store)
        try:
            # The same one-shot query while `cbir serve` holds the store: handed to it over its local
            # socket, no LibTorch loaded; the output must be byte for byte the same.
            _, through = one_shot_queries(query_image, store, 1, verbose=True)
            if b"answered by the server" not in through.stderr or through.stdout != alone.stdout:
                sys.exit("bench: cbir query did not go through the server, or printed something else:\n" +
                         through.stderr.decode(errors="replace"))
            walls, _ = one_shot_queries(query_image, store, max(args.runs, 11))
            rows.append(("`cbir query` process, image, through the server's local socket (one at a time)",
                         1000 / statistics.median(walls), statistics.median(walls), percentile(walls, 99)))
            loads.append(load_average())
            if args.one_shot_only:
                raise StopIteration

            sequential(port, "/search?k=10", image_bytes, "image/jpeg", 5)  # first requests warm up
            for label, body, content_type, body_file, count in [
                    ("image", image_bytes, "image/jpeg", query_image, 100),
                    ("vector", json.dumps({"vector": vector}).encode(), "application/json", vector_file, 500)]:
                latencies = sequential(port, "/search?k=10", body, content_type, count)
                rows.append((f"`cbir serve` POST /search, {label}, 1 client", 1000 / statistics.median(latencies),
                             statistics.median(latencies), percentile(latencies, 99)))
                rate, p50, p99 = wrk(port, body_file, content_type, args.seconds, args.connections, work)
                rows.append((f"`cbir serve` POST /search, {label}, wrk {args.connections} connections", rate, p50, p99))
                print(f"bench: {label} done", file=sys.stderr)
            if corel:
                # Inserts: distinct photos uploaded one after another, each searchable when answered.
                latencies = []
                for number in range(args.uploads):
                    with open(os.path.join(corel, f"{number}.jpg"), "rb") as f:
                        latencies += sequential(port, "/images", f.read(), "image/jpeg", 1, expect=201)
                rows.append((f"`cbir serve` POST /images, {args.uploads} distinct uploads, 1 client",
                             1000 / statistics.median(latencies), statistics.median(latencies), percentile(latencies, 99)))
            loads.append(load_average())
        except StopIteration:
            pass
        finally:
            server.terminate()
            server.wait(60)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    one_shot = rows[0][2]
    host.finish()
    print(f"\n{host.header()}\nStore: {args.store_size} synthetic 512-d vectors, HNSW32, top-10. Query image: "
          f"{os.path.basename(query_image)} ({len(image_bytes)} bytes). " +
          ("" if args.one_shot_only else
           f"wrk: 1 thread, {args.seconds} s per run, on the same two cores as the server. ") +
          f"Load average (1, 5, 15 min) at the start, after the one-shot rows and at the end: {'; '.join(loads)}.\n")
    print("| client | requests/s | p50 ms | p99 ms | p50 vs `cbir query` |")
    print("|---|---:|---:|---:|---:|")
    for label, rate, p50, p99 in rows:
        print(f"| {label} | {rate:.1f} | {p50:.2f} | {p99:.2f} | {one_shot / p50:.1f} |")


if __name__ == "__main__":
    main()
