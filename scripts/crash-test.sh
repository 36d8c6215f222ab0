#!/usr/bin/env bash
# Crash test: kills `cbir index` with SIGKILL at random moments, again and again, then checks that
# the store is consistent (`cbir check`), that nothing committed was lost (the catalogue never
# shrinks), and that a final run completes with exactly the expected count.
#   scripts/crash-test.sh [--kills N] [--images DIR]
# Defaults: 30 kills, Corel-1K from $CBIR_ASSETS or ../shared/assets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec /usr/bin/python3 "$root/tests/crash_test.py" "$@"
