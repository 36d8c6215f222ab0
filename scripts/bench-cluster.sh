#!/usr/bin/env bash
# Store sets on a cluster, for this machine and for a user's own: indexing images/s by number of MPI
# tasks; exact and HNSW search throughput and p50/p99 of `cbir serve --store SET` by ranks (1 = one
# process, no MPI) on synthetic sets (default 200k 512-d vectors, 4 shards); memory per rank; idle
# rank CPU; the MPI fan-out (broadcast + gather) alone per query. Records the machine and its load
# average before and after: figures taken on a busy machine are not performance claims.
# Needs Open MPI (mpirun) and wrk (scripts/install-deps.sh --test). Prints a markdown table.
#   scripts/bench-cluster.sh [--count N] [--shards S] [--ranks 1,2,4] [--tasks 1,2,4] [--seconds S]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -x "$root/build/apps/cbir" ]] || "$root/scripts/build.sh"
exec /usr/bin/python3 "$root/scripts/bench_cluster.py" "$@"
