#!/usr/bin/env bash
# Serving benchmark, side by side on one store and one machine: a one-shot `cbir query` process per
# image (alone, then through the local socket of a `cbir serve` holding the store), then `cbir serve`
# answering POST /search with an image and with a precomputed vector, from one sequential client
# (latency) and from wrk with several connections (throughput, p50/p99); and POST /images of
# distinct photos (inserts into the served index). The load average is recorded with the table.
# Needs scripts/install-deps.sh --test (wrk; not with --one-shot-only). Prints a markdown table.
#   scripts/bench-serve.sh [--store-size N] [--seconds S] [--connections C] [--one-shot-only]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -x "$root/build/apps/cbir" ]] || "$root/scripts/build.sh"
exec /usr/bin/python3 "$root/scripts/bench_serve.py" "$@"
