#!/usr/bin/env bash
# ANN benchmark: every index kind on the same vectors, side by side, on this machine: build time,
# size on disk, open time, the first query after opening, resident memory after opening and after
# the queries, single-thread queries/s and recall@10 against exact search, over the search knob (ef
# for HNSW, nprobe for IVF). Prints a markdown table, with the load average before and after (timings
# taken while the machine is busy are not performance figures).
#   scripts/bench-ann.sh [--count N] [--queries Q] [--vectors-from STORE] [--index SPEC ...]
# Defaults: 1,000,000 synthetic clustered 512-d vectors (see lib/bench/synthetic.cpp), 200 queries.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -x "$root/build/apps/cbir" ]] || "$root/scripts/build.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--count 1000000 --queries 200)
[[ $# -gt 0 ]] && args=("$@")
# The machine and the CPU other processes took meanwhile (scripts/bench_common.py).
PYTHONPATH="$root/scripts" /usr/bin/python3 - "$root/build/apps/cbir" "$work" "${args[@]}" <<'PY'
import json, subprocess, sys
import bench_common
cbir, work, args = sys.argv[1], sys.argv[2], sys.argv[3:]
host = bench_common.Machine()
out = subprocess.run([cbir, "bench", "ann", *args, "--work-dir", work], check=True, stdout=subprocess.PIPE, text=True).stdout
host.finish()
rows = [json.loads(line) for line in out.splitlines() if line.strip()]
print(f"{host.header()} `cbir bench ann {' '.join(args)}`; {rows[0]['vectors']} vectors.\n")
print("| index | knob | build s | file MiB | open s | first query ms | RSS after open MiB | RSS after queries MiB "
      "| queries/s (1 thread) | recall@10 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['index']} | {r['knob']} | {r['build_seconds']:.1f} | {r['file_mib']:.0f} | {r['load_seconds']:.3f} | "
          f"{1000 * r['first_query_seconds']:.1f} | {r['resident_mib']:.0f} | {r['resident_after_queries_mib']:.0f} | "
          f"{r['queries_per_second']:.0f} | {r['recall_at_10']:.3f} |")
PY
