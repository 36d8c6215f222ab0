#!/usr/bin/env bash
# Installs cbir's build and test dependencies from Debian bookworm's packages (run as root, or with sudo).
# Idempotent: packages already present are skipped by apt-get, and apt-get update is skipped when
# nothing is missing.
#   --test     also install what the tests and benchmarks use and the tool never needs: the Python
#              reference stack (python3-torch, torchvision, numpy) for scripts/reference_features.py
#              and the fidelity tests, chromium for the web page's browser test, wrk for
#              scripts/bench-serve.sh, Slurm with munge for the cluster tests (the tests start
#              their own single-node cluster; nothing is configured system-wide), and the
#              encoders the format tests make HEIC and AVIF files with (heif-enc, avifenc).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates curl
  libtorch-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libjpeg62-turbo-dev libturbojpeg0-dev libtiff-dev libwebp-dev libgif-dev libheif-dev libraw-dev
  libcli11-dev libhnswlib-dev libfmt-dev doctest-dev
  libfaiss-dev libopenblas0-pthread libsqlite3-dev nlohmann-json3-dev libssl-dev libxxhash-dev
  libcpp-httplib-dev
  openmpi-bin libopenmpi-dev
  python3 python3-pil
)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(python3-torch python3-torchvision python3-numpy chromium wrk libheif-examples libavif-bin)
  # A real single-node Slurm cluster for tests/slurm_test.py (slurmctld + slurmd + munge on localhost).
  packages+=(slurmctld slurmd slurm-client munge)
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
