#!/usr/bin/env bash
# README command 1: installs the dependencies, fetches the model and the sample photos, builds,
# indexes images/ into ./.cbir and queries it with images/dog1.jpg. Idempotent: a second run finds
# every photo unchanged and only queries.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-deps.sh
./scripts/fetch-assets.sh
./scripts/build.sh
export PATH="$root/build/apps:$PATH"

echo "+ cbir index ./images" >&2
cbir index ./images
echo "+ cbir query images/dog1.jpg --top-k 10" >&2
cbir query images/dog1.jpg --top-k 10 --format table
echo >&2
echo "cbir is built in build/apps; to use it anywhere: export PATH=\"$root/build/apps:\$PATH\"" >&2
echo "to search from a browser: cbir serve, then open http://127.0.0.1:19121/" >&2
