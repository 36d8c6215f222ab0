#!/usr/bin/env bash
# Builds cbir with ThreadSanitizer into build-tsan/ and runs the tests of what runs on many threads at
# once: `cbir serve` (parallel searches while adding and removing) and its batcher by default; any
# ctest regex as the argument (e2e, crash: the indexer's reader threads). Libraries from Debian (LibTorch, SQLite, FAISS, cpp-httplib) are not instrumented:
# their locks are seen, their inner accesses are not.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-deps.sh --test
./scripts/fetch-assets.sh
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCBIR_TSAN=ON >/dev/null
cmake --build build-tsan -j2
export CBIR_TSAN=1  # tests too slow under TSan skip themselves
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp"
ctest --test-dir build-tsan --output-on-failure -j2 -R "${1:-serve}"
