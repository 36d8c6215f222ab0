#!/usr/bin/env bash
# ANN benchmark: every index kind on the same vectors, side by side, on this machine: build time,
# size on disk, load time, resident memory after load, single-thread queries/s and recall@10
# against exact search, over the search knob (ef for HNSW, nprobe for IVF). Prints a markdown table.
#   scripts/bench-ann.sh [--count N] [--queries Q] [--vectors-from STORE] [--index SPEC ...]
# Defaults: 1,000,000 synthetic clustered 512-d vectors (see lib/bench/synthetic.cpp), 200 queries.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -x "$root/build/apps/cbir" ]] || "$root/scripts/build.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--count 1000000 --queries 200)
[[ $# -gt 0 ]] && args=("$@")
machine="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
# The machine's load before and after (scripts/bench_common.py): warns above 0.3 per core.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
PYTHONPATH="$root/scripts" /usr/bin/python3 -c 'import bench_common; bench_common.Machine()' >/dev/null
"$root/build/apps/cbir" bench ann "${args[@]}" --work-dir "$work" > "$work/rows.jsonl"
PYTHONPATH="$root/scripts" /usr/bin/python3 - "$work/rows.jsonl" "$machine" "${args[*]}" "$load_before" <<'PY'
import json, os, sys
import bench_common
rows = [json.loads(line) for line in open(sys.argv[1])]
before, after = [float(v) for v in sys.argv[4].split()], os.getloadavg()[0]
limit = 0.3 * (os.cpu_count() or 1)
verdict = "quiet" if max(before[0], after) <= limit else f"BUSY (over {limit:.2f}): not performance claims, rerun on a quiet machine"
print(f"Machine: {sys.argv[2]}; flags: {' '.join(bench_common.cpu_flags())}. Load average before "
      f"{'/'.join(f'{v:.2f}' for v in before)}, after (1 min) {after:.2f}: {verdict}. "
      f"`cbir bench ann {sys.argv[3]}`; {rows[0]['vectors']} vectors.\n")
print("| index | knob | build s | file MiB | load s | RSS after load MiB | queries/s (1 thread) | recall@10 |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['index']} | {r['knob']} | {r['build_seconds']:.1f} | {r['file_mib']:.0f} | {r['load_seconds']:.2f} | "
          f"{r['resident_mib']:.0f} | {r['queries_per_second']:.0f} | {r['recall_at_10']:.3f} |")
PY
