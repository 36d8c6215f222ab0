#!/usr/bin/env bash
# Installs cbir's build and test dependencies from Debian bookworm's packages (run as root, or with sudo).
# Idempotent: packages already present are skipped by apt-get, and apt-get update is skipped when
# nothing is missing.
#   --python   also install the Python reference stack (python3-torch, torchvision, PIL) used by
#              scripts/reference_features.py and the benchmarks; the tool itself never needs it.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates curl
  libtorch-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libcli11-dev libhnswlib-dev libfmt-dev doctest-dev
  libfaiss-dev libopenblas0-pthread libsqlite3-dev nlohmann-json3-dev libssl-dev libxxhash-dev
  python3 python3-pil
)
if [[ "${1:-}" == "--python" ]]; then
  packages+=(python3-torch python3-torchvision python3-numpy)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present" >&2
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
