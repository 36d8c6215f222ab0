#!/usr/bin/env bash
# Builds the libFuzzer target with clang (ASan + UBSan) into build-fuzz/ and runs it for a bounded
# time (default 300 s) on a seed corpus of real inputs: the sample photos, small images of every
# decoded format and its variants (PIL, Debian's HEIC/AVIF encoders, a DNG), refused formats,
# hostile headers, and a real HNSW index file. Prints libFuzzer's final statistics; a crash leaves its input in build-fuzz/.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-300}
cd "$root"
./scripts/fetch-assets.sh >/dev/null
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCBIR_FUZZ=ON >/dev/null
cmake --build build-fuzz -j2 --target fuzz_inputs
corpus=build-fuzz/corpus
mkdir -p "$corpus"
# Seeds: the first byte picks the reader (0 image file + decode, 1 container, 2 graph payload,
# 3 thumbnail).
for f in images/*.jpg; do { printf '\x00'; head -c 200000 "$f"; } > "$corpus/decode-$(basename "$f")"; done
# Every decoded format and its variants (PIL), the formats refused by name, and hostile headers.
/usr/bin/python3 - "$corpus" <<'PY'
import io, os, struct, sys, zlib
from PIL import Image
corpus = sys.argv[1]
base = Image.open("images/dog2.jpg").convert("RGB").resize((48, 36))
def save(name, image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return name, buffer.getvalue()
exif = Image.Exif()
exif[0x0112] = 6
seeds = [
    save("baseline.jpg", base, "JPEG"), save("progressive.jpg", base, "JPEG", progressive=True),
    save("exif-rotated.jpg", base, "JPEG", exif=exif.tobytes()), save("cmyk.jpg", base.convert("CMYK"), "JPEG"),
    save("gray.jpg", base.convert("L"), "JPEG"), save("rgb.png", base, "PNG"),
    save("palette.png", base.convert("P"), "PNG"),
    save("gray16.png", base.convert("I").point(lambda v: v * 257), "PNG"), save("rgba.png", base.convert("RGBA"), "PNG"),
    save("rgb.bmp", base, "BMP"), save("palette.bmp", base.convert("P"), "BMP"),
    save("raw.tif", base, "TIFF"), save("lzw.tif", base, "TIFF", compression="tiff_lzw"),
    save("deflate.tif", base, "TIFF", compression="tiff_adobe_deflate"),
    save("g4.tif", base.convert("1"), "TIFF", compression="group4"),
    save("jpeg.tif", base, "TIFF", compression="jpeg"),
    save("pages.tif", base, "TIFF", save_all=True, append_images=[base.rotate(90)]),
    save("lossy.webp", base, "WEBP"), save("lossless.webp", base.convert("RGBA"), "WEBP", lossless=True),
    save("rgb.ppm", base, "PPM"), save("gray.pgm", base.convert("L"), "PPM"), save("bits.pbm", base.convert("1"), "PPM"),
    ("ascii.ppm", b"P3\n# comment\n2 2\n255\n255 0 0 0 255 0 0 0 255 9 9 9\n"),
    ("gif.gif", save("", base, "GIF")[1]), ("j2k.jp2", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(64)),
    ("hdr.hdr", b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 2\n" + bytes(16)),
    ("big.ppm", b"P6\n32000 32000\n255\n" + bytes(300)),
    ("g4-16000.tif", save("", Image.new("1", (16000, 16000), 1), "TIFF", compression="group4")[1]),
]
jpeg = bytearray(seeds[0][1])  # a stray byte after APP0 and a frame claiming 32767 x 32767
sof = jpeg.find(b"\xff\xc0")
jpeg[sof + 5:sof + 9] = struct.pack(">HH", 32767, 32767)
jpeg.insert(4 + struct.unpack(">H", jpeg[4:6])[0], 0)
seeds.append(("stray-byte-bomb.jpg", bytes(jpeg)))
def tiff(width, height, bits, samples, rows, tile):  # one deflate strip or tile, little-endian
    data = zlib.compress(bytes(max(1, (tile or width) * (tile or rows) * bits * samples // 8 // 64)))
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, bits), (259, 3, 1, 8),
               (262, 3, 1, 2 if samples >= 3 else 1), (277, 3, 1, samples), (284, 3, 1, 1)]
    entries += [(322, 4, 1, tile), (323, 4, 1, tile), (324, 4, 1, 0), (325, 4, 1, len(data))] if tile else \
               [(273, 4, 1, 0), (278, 4, 1, rows), (279, 4, 1, len(data))]
    entries.sort()
    data_at = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        value = data_at if tag in (273, 324) else value
        ifd += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value))
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + data
seeds += [("tiled.tif", tiff(16, 16, 8, 3, 0, 16)), ("huge-tile.tif", tiff(16, 16, 8, 3, 0, 16000)),
          ("gray16-strip.tif", tiff(16, 16, 16, 1, 16, 0))]
for name, data in seeds:
    with open(os.path.join(corpus, "image-" + name), "wb") as f:
        f.write(b"\x00" + data)
for name, data in seeds[:6]:
    with open(os.path.join(corpus, "thumbnail-" + name), "wb") as f:
        f.write(b"\x03" + data)
PY
# The formats cbir reads with its own libraries: HEIC, AVIF (and a grid) from Debian's encoders (scripts/install-deps.sh --test), an animated GIF, and a DNG (tests/formats_test.py writes it).
/usr/bin/python3 - "$corpus" <<'PY'
import io, os, shutil, subprocess, sys, tempfile
sys.path.insert(0, "tests")
from PIL import Image
from formats_test import dng, exif_orientation, jpeg_bytes
corpus = sys.argv[1]
base = Image.open("images/dog2.jpg").convert("RGB").resize((64, 48))
seeds = {"raw.dng": dng(jpeg_bytes(base), base.size, orientation=6)}
frames = io.BytesIO()
base.save(frames, "GIF", save_all=True, append_images=[base.rotate(90)], interlace=True)
seeds["animated.gif"] = frames.getvalue()
with tempfile.TemporaryDirectory() as tmp:
    base.save(os.path.join(tmp, "in.png"))
    base.resize((128, 128)).save(os.path.join(tmp, "in-grid.png"))  # AVIF grid tiles are at least 64 x 64
    with open(os.path.join(tmp, "exif6"), "wb") as f:
        f.write(exif_orientation(6))
    encoders = {"heic": ["heif-enc", "-q", "50", "in.png", "-o", "out.heic"],
                "avif": ["avifenc", "--speed", "10", "--irot", "1", "--exif", "exif6", "in.png", "out.avif"],
                "grid.avif": ["avifenc", "--speed", "10", "--grid", "2x2", "in-grid.png", "out.grid.avif"]}
    for name, command in encoders.items():
        if shutil.which(command[0]) and subprocess.run(command, cwd=tmp, capture_output=True).returncode == 0:
            with open(os.path.join(tmp, "out." + name), "rb") as f:
                seeds[name if "." in name else "image." + name] = f.read()
for name, data in seeds.items():
    with open(os.path.join(corpus, "image-" + name), "wb") as f:
        f.write(b"\x00" + data)
PY
if [[ -x build/apps/cbir && ! -f "$corpus/groups-seed" ]]; then
  # A real index file with a group of identical vectors (dog1 twice): the container, the graph (after
  # the 128-byte header, before the extension) and the groups (the extension) are seeds of their own.
  tmp=$(mktemp -d)
  mkdir "$tmp/photos"
  cp images/dog1.jpg images/cat1.jpg images/dog2.jpg "$tmp/photos/"
  cp images/dog1.jpg "$tmp/photos/dog1-copy.jpg"
  CBIR_MODEL="$root/models/resnet18-untrained-features.pt" build/apps/cbir index "$tmp/photos" --store "$tmp/s" -q
  python3 - "$tmp/s/index.hnsw" "$corpus" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
header = 128
extension = struct.unpack_from("<Q", data, 112)[0]
for name, selector, part in (("container-seed", 1, data), ("graph-seed", 2, data[header:len(data) - extension]),
                             ("groups-seed", 4, data[len(data) - extension:])):
    open(f"{sys.argv[2]}/{name}", "wb").write(bytes([selector]) + part)
PY
  rm -rf "$tmp"
fi
export ASAN_OPTIONS="detect_leaks=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd build-fuzz
./tests/fuzz/fuzz_inputs -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=300000 -print_final_stats=1 corpus
