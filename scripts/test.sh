#!/usr/bin/env bash
# README command 2: installs the dependencies, fetches the model and photos, builds, runs every
# test (doctest unit tests and end-to-end tests of the binaries) under ctest. Idempotent.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/install-deps.sh --test
./scripts/fetch-assets.sh
./scripts/build.sh
ctest --test-dir build --output-on-failure -j2
