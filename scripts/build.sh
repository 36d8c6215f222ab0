#!/usr/bin/env bash
# Configures and builds cbir into build/ (Release). Two jobs: LibTorch headers make a compiler use a
# lot of memory, and the machines have two cores. Extra arguments go to cmake's configure step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$root/build" -j2
