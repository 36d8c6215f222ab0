#!/usr/bin/env python3
"""Driver of scripts/bench-cluster.sh (see there). Standard library, Open MPI's mpirun and wrk."""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import bench_common
from cbir_assets import corel_images, machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CBIR = os.path.join(ROOT, "build", "apps", "cbir")
MODEL = os.path.join(ROOT, "models", "resnet18-untrained-features.pt")
ENV = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
ENV.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

WRK_SCRIPT = """
local f = assert(io.open(os.getenv("CBIR_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def load_average():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def launch(ranks, args, pinned=False):
    """A cbir command as an MPI job of `ranks` ranks (alone when ranks is 1: no MPI at all). `pinned`:
    each rank on a core of its own (one process alone on core 0), as ranks on separate machines
    would each have their own cores: on one machine a process alone already uses every core."""
    if pinned:
        return (["mpirun", "-np", str(ranks), "--bind-to", "core", "--map-by", "core"] if ranks > 1
                else ["taskset", "-c", "0"]) + [CBIR] + args
    mpirun = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none"] if ranks > 1 else []
    return mpirun + [CBIR] + args


def rank_pids(process, ranks):
    if ranks == 1:
        return {0: process.pid}
    pids = {}
    for task in os.listdir(f"/proc/{process.pid}/task"):
        with open(f"/proc/{process.pid}/task/{task}/children") as f:
            for child in f.read().split():
                with open(f"/proc/{child}/environ", "rb") as e:
                    for var in e.read().split(b"\0"):
                        if var.startswith(b"OMPI_COMM_WORLD_RANK="):
                            pids[int(var.split(b"=")[1])] = int(child)
    return pids


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resident_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wrk(port, body_file, seconds, connections, work):
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
                          f"http://127.0.0.1:{port}/search"], capture_output=True, text=True,
                         env=dict(os.environ, CBIR_BENCH_BODY=body_file), check=True).stdout
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        sys.exit(f"bench: wrk saw failed requests:\n{out}")

    def ms(label):
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), ms("50"), ms("99")


def serve(set_dir, ranks, pinned=False):
    process = subprocess.Popen(launch(ranks, ["serve", "--store", set_dir, "--port", "0", "-q"], pinned), env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        found = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return process, int(found.group(1))
    sys.exit(f"bench: cbir serve of {set_dir} on {ranks} ranks did not start")


def stop(process, ranks):
    os.kill(rank_pids(process, ranks)[0], signal.SIGTERM)  # rank 0: every rank closes, exit 0
    process.wait(120)


def query_body(port, work):
    """A stored vector, nudged: a query from the set's own distribution that is not a row."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/images/1?vector=1", timeout=60) as r:
        vector = json.loads(r.read())["vector"]
    body = os.path.join(work, "query.json")
    with open(body, "w") as f:
        json.dump({"vector": [v * 1.01 + 0.001 for v in vector], "k": 10}, f)
    return body


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200000, help="vectors in the synthetic sets")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--ranks", default="1,2,4", help="ranks to serve with (comma-separated)")
    parser.add_argument("--tasks", default="1,2,4", help="MPI tasks to index with (comma-separated)")
    parser.add_argument("--index-images", type=int, default=200, help="Corel photos indexed per run")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections")
    parser.add_argument("--work", help="working folder (default: a temporary one, removed)")
    args = parser.parse_args()
    ranks_list = [int(r) for r in args.ranks.split(",")]
    tasks_list = [int(t) for t in args.tasks.split(",")]
    if not shutil.which("mpirun") or not shutil.which("wrk"):
        sys.exit("bench: needs mpirun and wrk (scripts/install-deps.sh --test)")
    work = args.work or tempfile.mkdtemp(prefix="cbir-bench-cluster-")
    os.makedirs(work, exist_ok=True)
    rows, host = [], bench_common.Machine()
    log(f"machine: {host.description}; load average {host.load_before}")
    try:
        # Indexing: the same photos into a set of --shards shards by 1, 2, 4 tasks.
        photos = os.path.join(work, "photos")
        os.makedirs(photos, exist_ok=True)
        corel = sorted(glob.glob(os.path.join(corel_images() or "/nonexistent", "*.jpg")))[:args.index_images]
        for path in corel:
            shutil.copy(path, photos)
        for tasks in tasks_list if corel else []:
            set_dir = os.path.join(work, f"index-{tasks}.set")
            started = time.monotonic()
            subprocess.run(launch(tasks, ["index", photos, "--store", set_dir, "--shards", str(args.shards),
                                          "--model", MODEL, "-q"]), env=ENV, check=True)
            seconds = time.monotonic() - started
            rows.append(("index", f"{tasks} task(s)", f"{len(corel) / seconds:.1f} images/s",
                         f"{len(corel)} Corel photos, {args.shards} shards, {seconds:.1f} s wall"))
            log(f"indexed with {tasks} task(s)")

        # Serving: exact (flat) and HNSW sets of the same synthetic vectors, by ranks.
        for kind, spec in (("exact", "flat"), ("hnsw", "hnsw")):
            set_dir = os.path.join(work, f"{kind}.set")
            started = time.monotonic()
            subprocess.run([CBIR, "bench", "synth-store", "--store", set_dir, "--count", str(args.count), "--shards",
                            str(args.shards), "--index", spec, "--model", MODEL], env=ENV, check=True)
            log(f"{kind} set of {args.count} vectors made in {time.monotonic() - started:.0f} s")
            for ranks in ranks_list:
                process, port = serve(set_dir, ranks)
                try:
                    body = query_body(port, work)
                    one = wrk(port, body, args.seconds, 1, work)  # one client: each query's own latency
                    rate, p50, p99 = wrk(port, body, args.seconds, args.connections, work)
                    pids = rank_pids(process, ranks)
                    memory = [resident_mib(pids[r]) for r in sorted(pids)]
                    time.sleep(1)  # idle: past the short polls that follow the last request
                    before = {r: cpu_seconds(pid) for r, pid in pids.items()}
                    time.sleep(5)
                    idle = max((cpu_seconds(pid) - before[r]) / 5 for r, pid in pids.items())
                finally:
                    stop(process, ranks)
                rows.append((f"search {kind}, 1 client", f"{ranks} rank(s)", f"{one[0]:.1f} queries/s",
                             f"p50 {one[1]:.2f} ms, p99 {one[2]:.2f} ms"))
                rows.append((f"search {kind}, {args.connections} clients", f"{ranks} rank(s)", f"{rate:.1f} queries/s",
                             f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; RSS per rank {', '.join(f'{m:.0f}' for m in memory)} "
                             f"MiB; idle CPU (busiest rank) {idle:.1%}"))
                log(f"{kind} on {ranks} rank(s) done")
            # What a rank's own cores bring: one core per rank, up to the cores there are.
            for ranks in [r for r in ranks_list if r <= (os.cpu_count() or 1)] if kind == "exact" else []:
                process, port = serve(set_dir, ranks, pinned=True)
                try:
                    rate, p50, p99 = wrk(port, query_body(port, work), args.seconds, args.connections, work)
                finally:
                    stop(process, ranks)
                rows.append((f"search {kind}, {args.connections} clients, one core per rank", f"{ranks} rank(s)",
                             f"{rate:.1f} queries/s", f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"))
                log(f"{kind} on {ranks} pinned rank(s) done")

        # The MPI exchange alone that every served search adds.
        for ranks in [r for r in ranks_list if r > 1]:
            out = subprocess.run(launch(ranks, ["bench", "fanout", "--iterations", "5000"]), env=ENV, check=True,
                                 capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rows.append(("fan-out", f"{ranks} ranks", f"p50 {r['p50_us']:.1f} µs",
                         f"p99 {r['p99_us']:.1f} µs, mean {r['mean_us']:.1f} µs ({r['iterations']} round trips)"))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    host.finish()
    print(f"\n{host.header()}")
    print(f"Synthetic sets: {args.count} 512-d vectors in {args.shards} shards, top-10, wrk {args.connections} "
          f"connections for {args.seconds} s; one model loaded per rank.\n")
    print("| what | parallelism | result | details |")
    print("|---|---|---:|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(json.dumps({"machine": host.as_dict(), "rows": rows}), file=sys.stderr)


if __name__ == "__main__":
    main()
