#!/usr/bin/env bash
# Indexing benchmark, side by side on one folder and one machine: the notebook's Python pipeline
# (batch 1, the best batched variants, the int8 model), `cbir index` in fp32, bf16 and int8
# (models/resnet18-untrained-int8.pt), each precision's relative L2 and top-10 overlap with fp32 and
# `cbir eval` P@k/mAP on Corel-1K, inference alone per precision, decode alone, peak RSS, and
# `cbir query` wall time on a 100k-vector synthetic store. Variants run interleaved (A B C A B C)
# for --runs rounds (default 3) with the load average recorded; it warns above 0.3 per core
# (--max-load) and can wait for quiet (--quiet-wait SECONDS). Prints markdown tables.
# Needs scripts/install-deps.sh --test.
#   scripts/bench-index.sh [FOLDER] [--runs N] [--limit N] [--precisions fp32,bf16,int8]
#                          [--query-store-size N] [--max-load L] [--quiet-wait S]
#                          [--large-photos DIR [--only-large-photos]]
# --large-photos DIR adds the large-photo table (issue 15; DIR from ../shared/tools/make-large-photos.py):
# Python notebook, Python batched + optimize_for_inference, cbir index exact and --fast-decode, run
# interleaved, with the load average, the CPU time of each stage, and the fidelity of --fast-decode
# (relative L2, top-10 overlap, Corel-1K mAP); --only-large-photos skips the rest.
# FOLDER defaults to Corel-1K from $CBIR_ASSETS or ../shared/assets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -x "$root/build/apps/cbir" ]] || "$root/scripts/build.sh"
exec /usr/bin/python3 "$root/scripts/bench_index.py" "$@"
