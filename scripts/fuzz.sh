#!/usr/bin/env bash
# Builds the libFuzzer target with clang (ASan + UBSan) into build-fuzz/ and runs it for a bounded
# time (default 300 s) on a seed corpus of real inputs: the sample photos, a PNG, and a real HNSW
# index file. Prints libFuzzer's final statistics; a crash leaves its input in build-fuzz/.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-300}
cd "$root"
./scripts/fetch-assets.sh >/dev/null
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCBIR_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 --target fuzz_inputs
corpus=build-fuzz/corpus
mkdir -p "$corpus"
# Seeds: the first byte picks the reader (0 decode, 1 container, 2 graph payload).
for f in images/*.jpg; do { printf '\x00'; head -c 200000 "$f"; } > "$corpus/decode-$(basename "$f")"; done
if [[ -x build/apps/cbir && ! -f "$corpus/container-seed" ]]; then
  tmp=$(mktemp -d)
  CBIR_MODEL="$root/models/resnet18-untrained-features.pt" build/apps/cbir index images/dog1.jpg images/cat1.jpg \
    --store "$tmp/s" -q
  { printf '\x01'; cat "$tmp/s/index.hnsw"; } > "$corpus/container-seed"
  { printf '\x02'; tail -c +81 "$tmp/s/index.hnsw"; } > "$corpus/graph-seed"
  rm -rf "$tmp"
fi
export ASAN_OPTIONS="detect_leaks=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd build-fuzz
./tests/fuzz/fuzz_inputs -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=300000 -print_final_stats=1 corpus
