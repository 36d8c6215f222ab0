#!/usr/bin/env bash
# Indexing benchmark, side by side on one folder and one machine: the notebook's Python pipeline
# (batch 1, and the best batched variants), `cbir index` (fp32 and bf16), inference alone, decode
# alone, peak RSS, and `cbir query` wall time on a 100k-vector synthetic store. Medians of
# --runs runs (default 3); prints a markdown table. Needs scripts/install-deps.sh --test.
# --large-photos DIR adds the large-photo table (issue 15; DIR from ../shared/tools/make-large-photos.py):
# Python notebook, Python batched + optimize_for_inference, cbir index exact and --fast-decode, run
# interleaved, with the load average, the CPU time of each stage, and the fidelity of --fast-decode
# (relative L2, top-10 overlap, Corel-1K mAP); --only-large-photos skips the rest.
#   scripts/bench-index.sh [FOLDER] [--runs N] [--query-store-size N] [--large-photos DIR [--only-large-photos]]
# FOLDER defaults to Corel-1K from $CBIR_ASSETS or ../shared/assets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -x "$root/build/apps/cbir" ]] || "$root/scripts/build.sh"
exec /usr/bin/python3 "$root/scripts/bench_index.py" "$@"
