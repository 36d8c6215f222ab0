#!/usr/bin/env bash
# Two builds side by side, interleaved: index images/s and one-shot query times (scripts/bench_builds.py).
#   scripts/bench-builds.sh OLD_BUILD_DIR NEW_BUILD_DIR [FOLDER] [--runs N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec /usr/bin/python3 "$root/scripts/bench_builds.py" "$@"
