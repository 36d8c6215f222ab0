#!/usr/bin/env bash
# Builds cbir with AddressSanitizer and UndefinedBehaviorSanitizer into build-sanitize/ and runs the
# whole test suite there. Any ASan report or UB aborts the test that hit it. Leak detection is off:
# LibTorch and FAISS keep process-lifetime allocations that LeakSanitizer reports as leaks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-deps.sh --test
./scripts/fetch-assets.sh
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCBIR_SANITIZE=ON >/dev/null
cmake --build build-sanitize -j2
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-sanitize --output-on-failure -j2 "$@"
