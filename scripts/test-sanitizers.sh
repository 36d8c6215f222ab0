#!/usr/bin/env bash
# Builds cbir with sanitizers and runs tests there; any report aborts the test that hit it.
#   scripts/test-sanitizers.sh [CTEST ARGS...]           AddressSanitizer + UndefinedBehaviorSanitizer
#                                                        into build-sanitize/, the whole suite
#   scripts/test-sanitizers.sh --thread [REGEX]          ThreadSanitizer into build-tsan/, the tests of
#                                                        what runs on many threads (default "serve":
#                                                        cbir serve and its batcher; e2e or crash for
#                                                        the indexer's reader threads)
# ASan: leak detection is off (LibTorch and FAISS keep process-lifetime allocations). TSan: Debian's
# libraries are not instrumented; tests/tsan.supp silences reports from inside them, with reasons.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
thread=0
if [[ "${1:-}" == "--thread" ]]; then
  thread=1
  shift
fi
./scripts/install-deps.sh --test
./scripts/fetch-assets.sh
if ((thread)); then
  build=build-tsan
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCBIR_TSAN=ON >/dev/null
  export CBIR_TSAN=1  # tests too slow under TSan skip themselves
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp"
  set -- -R "${1:-serve}"
else
  build=build-sanitize
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCBIR_SANITIZE=ON >/dev/null
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
cmake --build "$build" -j2
ctest --test-dir "$build" --output-on-failure -j2 "$@"
