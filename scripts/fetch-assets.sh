#!/usr/bin/env bash
# Puts a model (and, from the shared assets, its int8 variant) into models/ and the seven sample
# photos into images/ (both gitignored).
# Looks in $CBIR_ASSETS, then ../shared/assets beside the checkout; elsewhere it downloads the
# public originals and checks their sha256:
#   - the sample photos from the original tutorial's repository, at a fixed commit;
#   - with --imagenet, torchvision's ImageNet ResNet18 weights, exported to TorchScript by
#     scripts/export_resnet18.py (needs Debian's python3-torch and python3-torchvision).
# Idempotent: files already in place with the right hash are left alone.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
want_imagenet=0
for arg in "$@"; do
  case "$arg" in
    --imagenet) want_imagenet=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "fetch-assets: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { echo "fetch-assets: $*" >&2; }

assets=""
for candidate in "${CBIR_ASSETS:-}" "$root/../shared/assets"; do
  if [[ -n "$candidate" && -d "$candidate/models" && -d "$candidate/images/seed" ]]; then
    assets=$(cd "$candidate" && pwd)
    break
  fi
done

seed_photos=(
  "dog1.jpg 00ee5858992b5658e65453cba85bedf0bf97387f73a4f1e016d625f0cf943381"
  "dog2.jpg 6ccadf15772371307ed72fc8c562e118d5f306879054596481f04a4ce713f419"
  "dog3.jpg d3b22b7ef484301d0f50fd64763cba544f37d9eca238827545a68d4e9986d3a4"
  "cat1.jpg fa484d4d17608cfb4b095a3faebe2c2ddaae832c6581ba9161a3c044c5bef6c8"
  "cat2.jpg 5906b85bf82d12c2752119108a159416277bde9da07e5d0613a722dba3334b1b"
  "person1.jpg 1f0019b94ee4c55508cd1e9172b8baff2039b91d024471cc695d08e2193ae798"
  "person2.jpg 4c0f0ce94d3c878abfc64c0710b6835977333a36e96be305073f19056ac8ec85"
)
seed_upstream="https://raw.githubusercontent.com/dshvimer/milvus-up-and-running/080033eb1229a9aa6116571befab6dfb94cd0fb5/notebook/images"
imagenet_url="https://download.pytorch.org/models/resnet18-f37072fd.pth"
imagenet_sha_prefix="f37072fd"  # torchvision names its weight files by their sha256 prefix and checks that
untrained_sha="8c7ce75a74f35c6c9b0d3823232285b6c07fb3ffe233766d1b229941813fea9f"
untrained_int8_sha="0b3f55035f3df993102c3a850e695c4f1401aaebb3932f70ede7862a6bc97e30"

has_sha() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

# copy_checked SRC DEST SHA256
copy_checked() {
  if has_sha "$2" "$3"; then return 0; fi
  cp "$1" "$2.tmp" && chmod u+w "$2.tmp"
  has_sha "$2.tmp" "$3" || { rm -f "$2.tmp"; say "$1 does not have the expected sha256"; exit 1; }
  mv "$2.tmp" "$2"
}

download_checked() {
  if has_sha "$2" "$3"; then return 0; fi
  say "downloading $1"
  curl -fsSL --retry 2 -o "$2.tmp" "$1" || { rm -f "$2.tmp"; say "download failed: $1"; exit 1; }
  has_sha "$2.tmp" "$3" || { rm -f "$2.tmp"; say "$1 does not have the expected sha256"; exit 1; }
  mv "$2.tmp" "$2"
}

mkdir -p "$root/models" "$root/images"

for entry in "${seed_photos[@]}"; do
  read -r name sha <<<"$entry"
  if [[ -n "$assets" ]]; then
    copy_checked "$assets/images/seed/$name" "$root/images/$name" "$sha"
  else
    download_checked "$seed_upstream/$name" "$root/images/$name" "$sha"
  fi
done
say "images/: ${#seed_photos[@]} sample photos"

if [[ -n "$assets" ]]; then
  copy_checked "$assets/models/resnet18-untrained-features.pt" "$root/models/resnet18-untrained-features.pt" "$untrained_sha"
  for f in reference-seed-features-untrained.tsv reference-seed-distances-untrained.tsv imagenet-classes.txt; do
    cp -f "$assets/models/$f" "$root/models/$f" && chmod u+w "$root/models/$f"
  done
  say "models/: untrained ResNet18 stand-in and its reference features (from $assets)"
  # Its int8 variant (see the assets' PROVENANCE.md): copied when the assets hold it, else made here
  # with scripts/export_resnet18.py --int8 from Corel-1K (needs Debian's python3-torch; ~2 min).
  int8_target="$root/models/resnet18-untrained-int8.pt"
  if [[ -f "$assets/models/resnet18-untrained-int8.pt" ]]; then
    copy_checked "$assets/models/resnet18-untrained-int8.pt" "$int8_target" "$untrained_int8_sha"
    say "models/: its int8 variant (from $assets)"
  elif [[ -f "$int8_target" ]]; then
    say "models/: $(basename "$int8_target") already present"
  elif [[ -d "$assets/datasets/corel1k/images" ]] && /usr/bin/python3 -c 'import torch, torchvision, PIL' 2>/dev/null; then
    /usr/bin/python3 "$root/scripts/export_resnet18.py" --int8 --calibrate "$assets/datasets/corel1k/images" \
      --model "$root/models/resnet18-untrained-features.pt" --out "$root/models" --name "$(basename "$int8_target")"
  else
    say "models/: no int8 variant (needs Corel-1K and python3-torch to make one; int8 tests are skipped)"
  fi
fi

if (( want_imagenet )) || [[ -z "$assets" ]]; then
  target="$root/models/resnet18-imagenet-features.pt"
  if [[ -f "$target" ]]; then
    say "models/: $(basename "$target") already present"
  else
    weights="$root/models/resnet18-f37072fd.pth"
    if [[ ! -f "$weights" ]]; then
      say "downloading $imagenet_url"
      curl -fsSL --retry 2 -o "$weights.tmp" "$imagenet_url" || { rm -f "$weights.tmp"; say "download failed (no network?)"; exit 1; }
      [[ "$(sha256sum "$weights.tmp" | cut -c1-8)" == "$imagenet_sha_prefix" ]] || { rm -f "$weights.tmp"; say "weights fail the sha256 check"; exit 1; }
      mv "$weights.tmp" "$weights"
    fi
    /usr/bin/python3 "$root/scripts/export_resnet18.py" --weights "$weights" --out "$root/models" \
      --name resnet18-imagenet-features.pt
    say "models/: ImageNet ResNet18 exported to TorchScript"
  fi
fi
