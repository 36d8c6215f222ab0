#!/usr/bin/env python3
"""Hostile image files are refused before they cost memory, by the CLI (`cbir embed`, `cbir index`)
and by `cbir serve` (POST /search, POST /images by path), each with one line naming the file and
the cause: a JPEG with a stray byte after APP0 whose frame claims 32767x32767 pixels, a CCITT G4
TIFF of 16000x16000, a PPM declaring 32000x32000 (and one padded to 700 MB, whose header alone is
read), and a 1.5 GB sparse file named .jpg. Peak memory
is read from the kernel (wait4's ru_maxrss for a command, VmHWM for the server) and compared with
the same command on a normal image. With the pixel cap lowered, a TIFF under it decodes within the
memory the README promises per pixel, and one over it is refused.

The files are made here. Run by ctest (CBIR_BIN_DIR, CBIR_SOURCE_DIR) with Debian's python3 (PIL).
"""
import io
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import unittest
import urllib.error
import urllib.request
import zlib

from PIL import Image

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.path.abspath(os.environ.get("CBIR_SOURCE_DIR", "."))
MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
SEED = os.path.join(SOURCE, "images")
CBIR = os.path.join(BIN, "cbir")

MIB = 1 << 20
DEFAULT_MAX_PIXELS = 250_000_000
# What a refused file may add to a command's peak memory: nothing is decoded, at most the first
# 64 KiB of the file are read. The margin is for allocator and thread noise.
REFUSED_MARGIN = 64 * MIB
# The README's bound for decoding one image: 16 bytes per pixel of the cap (TIFF's worst case,
# 16-bit RGBA in one strip, measures 12).
BYTES_PER_CAPPED_PIXEL = 16


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    env["CBIR_MODEL"] = MODEL
    env.update(extra)
    return env


def stray_byte_jpeg(width, height):
    """An 8x8 JPEG whose frame header claims width x height, with a stray byte after APP0: libjpeg
    warns ("extraneous bytes before marker") and reads on, so the decoder sees the claimed size."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, "JPEG")
    jpeg = bytearray(buffer.getvalue())
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    assert jpeg[2:4] == b"\xff\xe0"
    app0_end = 4 + struct.unpack(">H", jpeg[4:6])[0]
    jpeg[app0_end:app0_end] = b"\x00"
    return bytes(jpeg)


def g4_tiff(path, side):
    Image.new("1", (side, side), 1).save(path, compression="group4")  # a few KB


def rgba16_tiff(path, width, height):
    """A 16-bit RGBA TIFF in one deflate strip (the layout that costs OpenCV the most per pixel)."""
    strip = zlib.compressobj(1)
    data = b"".join(strip.compress(bytes(width * 8 * 256)) for _ in range(height // 256))
    data += strip.compress(bytes(width * 8 * (height % 256))) + strip.flush()
    entries = [  # tag, type (3 SHORT, 4 LONG), count, value or offset
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 4, None), (259, 3, 1, 8), (262, 3, 1, 2),
        (273, 4, 1, None), (277, 3, 1, 4), (278, 4, 1, height), (279, 4, 1, len(data)), (284, 3, 1, 1),
        (338, 3, 1, 2),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    bits_at = 8 + ifd_size
    data_at = bits_at + 8
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        if tag == 258:
            value = bits_at
        elif tag == 273:
            value = data_at
        ifd += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1
                                                         else struct.pack("<I", value))
    with open(path, "wb") as f:
        f.write(b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + struct.pack("<4H", 16, 16, 16, 16) + data)


def run_measured(args, env, cwd):
    """(returncode, stdout, stderr, peak RSS in bytes) of one command, the peak from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen([CBIR, *args], cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"), \
            usage.ru_maxrss * 1024


def skip_line(stderr, path):
    lines = re.findall(rf"cbir: skipped {re.escape(path)}: [^\n]*", stderr)
    assert len(lines) == 1, (path, stderr)
    return lines[0]


def empty_scans_jpeg(width, height, scans):
    """A greyscale progressive JPEG: one DC scan of zeros, then `scans` AC scans with no data."""
    def segment(marker, payload):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload
    data = b"\xff\xd8" + segment(0xDB, b"\x00" + bytes([1] * 64))
    data += segment(0xC2, b"\x08" + struct.pack(">HH", height, width) + b"\x01\x01\x11\x00")
    data += segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00" + b"\x10" + bytes([1] + [0] * 15) + b"\x00")
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    data += segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + bytes(blocks // 8 + (1 if blocks % 8 else 0))
    data += segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") * scans
    return data + b"\xff\xd9"


class Hostile:
    """The hostile files, in a folder."""

    def __init__(self, folder):
        os.makedirs(folder)
        self.folder = folder
        self.bomb_jpeg = os.path.join(folder, "stray-byte-bomb.jpg")
        with open(self.bomb_jpeg, "wb") as f:
            f.write(stray_byte_jpeg(32767, 32767))
        self.g4_tiff = os.path.join(folder, "g4-16000.tif")
        g4_tiff(self.g4_tiff, 16000)
        self.ppm = os.path.join(folder, "huge.ppm")
        with open(self.ppm, "wb") as f:
            f.write(b"P6\n32000 32000\n255\n" + bytes(3000))
        self.sparse = os.path.join(folder, "sparse.jpg")
        with open(self.sparse, "wb") as f:
            f.truncate(1500 * MIB)
        # Under the file cap, but its header is over the pixel cap: refused from the first bytes,
        # the other 700 MB are never read.
        self.sparse_ppm = os.path.join(folder, "sparse-huge.ppm")
        with open(self.sparse_ppm, "wb") as f:
            f.write(b"P6\n32000 32000\n255\n")
            f.truncate(700 * MIB)
        # A progressive JPEG of 1024x1024 with 400 empty AC scans: small, under every cap, and a pass
        # over every block per scan (at 20,000 scans a 325 KB file took 99 s of CPU).
        self.scan_bomb = os.path.join(folder, "scan-bomb.jpg")
        with open(self.scan_bomb, "wb") as f:
            f.write(empty_scans_jpeg(1024, 1024, 400))
        self.expected = {  # file -> the cause its skip line or error must give
            self.scan_bomb: "JPEG of 401 scans (at most 100",
            self.bomb_jpeg: f"image of 32767\u00d732767 pixels exceeds the limit of {DEFAULT_MAX_PIXELS} (CBIR_MAX_PIXELS",
            self.g4_tiff: f"image of 16000\u00d716000 pixels exceeds the limit of {DEFAULT_MAX_PIXELS} (CBIR_MAX_PIXELS",
            self.ppm: f"image of 32000\u00d732000 pixels exceeds the limit of {DEFAULT_MAX_PIXELS} (CBIR_MAX_PIXELS",
            self.sparse_ppm: f"image of 32000\u00d732000 pixels exceeds the limit of {DEFAULT_MAX_PIXELS} (CBIR_MAX_PIXELS",
            self.sparse: f"file of {1500 * MIB} bytes is larger than the {DEFAULT_MAX_PIXELS * 3 + 64 * MIB} allowed "
                         "(CBIR_MAX_FILE_BYTES)",
        }


class CommandLine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-limits-")
        cls.hostile = Hostile(os.path.join(cls.tmp, "photos"))
        cls.normal = os.path.join(cls.tmp, "photos", "dog2.jpg")
        shutil.copy(os.path.join(SEED, "dog2.jpg"), cls.normal)
        code, _, err, cls.baseline = run_measured(["embed", cls.normal], clean_env(), cls.tmp)
        assert code == 0, err

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_refused_at_bounded_memory(self, stderr, peak):
        for path, cause in self.hostile.expected.items():
            self.assertIn(cause, skip_line(stderr, os.path.relpath(path, self.tmp)))
        self.assertLess(peak, self.baseline + REFUSED_MARGIN,
                        f"peak RSS {peak / MIB:.0f} MiB, {self.baseline / MIB:.0f} MiB for a normal photo")

    def test_embed_refuses_each_hostile_file_and_embeds_the_rest(self):
        names = [os.path.relpath(p, self.tmp) for p in [*self.hostile.expected, self.normal]]
        code, out, err, peak = run_measured(["embed", *names], clean_env(), self.tmp)
        self.assertEqual(code, 2, err)  # an input failed
        self.assertEqual([json.loads(line)["path"] for line in out.splitlines()], ["photos/dog2.jpg"])
        self.assert_refused_at_bounded_memory(err, peak)

    def test_fast_decode_refuses_each_hostile_file_too(self):
        # --fast-decode decodes JPEGs by another call (DCT-scaled): the same checks come first.
        names = [os.path.relpath(p, self.tmp) for p in [*self.hostile.expected, self.normal]]
        code, out, err, peak = run_measured(["embed", "--fast-decode", *names], clean_env(), self.tmp)
        self.assertEqual(code, 2, err)
        self.assertEqual([json.loads(line)["path"] for line in out.splitlines()], ["photos/dog2.jpg"])
        self.assert_refused_at_bounded_memory(err, peak)

    def test_index_walks_past_each_hostile_file(self):
        code, _, err, peak = run_measured(["index", "photos", "--store", "store"], clean_env(), self.tmp)
        self.assertEqual(code, 0, err)
        self.assertIn("indexed 1 new", err)
        self.assertIn("6 skipped", err)
        self.assert_refused_at_bounded_memory(err, peak)

    def test_the_pixel_cap_bounds_decoding_memory(self):
        cap = 20_000_000
        under = os.path.join(self.tmp, "under-the-cap.tif")
        rgba16_tiff(under, 4464, 4464)  # 19.9 MP
        over = os.path.join(self.tmp, "over-the-cap.tif")
        rgba16_tiff(over, 6000, 6000)  # 36 MP
        env = clean_env(CBIR_MAX_PIXELS=str(cap))
        code, out, err, peak = run_measured(["embed", "under-the-cap.tif"], env, self.tmp)
        self.assertEqual(code, 0, err)
        self.assertEqual(len(out.splitlines()), 1)
        self.assertLess(peak, self.baseline + cap * BYTES_PER_CAPPED_PIXEL, f"peak RSS {peak / MIB:.0f} MiB")
        code, _, err, peak = run_measured(["embed", "over-the-cap.tif"], env, self.tmp)
        self.assertEqual(code, 2, err)  # an input failed
        self.assertIn(f"image of 6000\u00d76000 pixels exceeds the limit of {cap} (CBIR_MAX_PIXELS",
                      skip_line(err, "over-the-cap.tif"))
        self.assertLess(peak, self.baseline + REFUSED_MARGIN, f"peak RSS {peak / MIB:.0f} MiB")


from serve_test import request  # noqa: E402  (the one HTTP helper of the tests)


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024


class Server(unittest.TestCase):
    """The same files as uploads to POST /search and as paths to POST /images."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-limits-serve-")
        cls.hostile = Hostile(os.path.join(cls.tmp, "photos"))
        shutil.copy(os.path.join(SEED, "dog1.jpg"), os.path.join(cls.tmp, "dog1.jpg"))
        r = subprocess.run([CBIR, "index", "dog1.jpg", "--store", "store"], cwd=cls.tmp, env=clean_env(),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        cls.process = subprocess.Popen([CBIR, "serve", "--store", "store", "--port", "0"], cwd=cls.tmp,
                                       env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        cls.url = None
        ready = threading.Event()

        def read_stderr():
            for line in cls.process.stderr:
                found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
                if found:
                    cls.url = found.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read_stderr, daemon=True).start()
        if not ready.wait(120) or cls.url is None:
            cls.process.kill()
            raise RuntimeError("cbir serve did not start")

    @classmethod
    def tearDownClass(cls):
        cls.process.terminate()
        cls.process.wait(60)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_uploads_and_paths_are_refused_at_bounded_memory(self):
        # A real search first, so that the model and its buffers are in the baseline.
        with open(os.path.join(SEED, "dog2.jpg"), "rb") as f:
            status, answer = request(self.url + "/search", "POST", f.read(), {"Content-Type": "image/jpeg"})
        self.assertEqual(status, 200, answer)
        baseline = peak_rss(self.process.pid)
        for path in (self.hostile.bomb_jpeg, self.hostile.g4_tiff, self.hostile.ppm, self.hostile.scan_bomb):
            with open(path, "rb") as f:
                status, answer = request(self.url + "/search", "POST", f.read(), {"Content-Type": "image/jpeg"})
            self.assertEqual(status, 422, (path, answer))
            self.assertIn(self.hostile.expected[path], answer["error"])
        for path, cause in self.hostile.expected.items():
            status, answer = request(self.url + "/images?path=" + os.path.relpath(path, self.tmp), "POST", b"")
            self.assertEqual(status, 422, (path, answer))
            self.assertTrue(answer["error"].startswith(f"{os.path.relpath(path, self.tmp)}: {cause}"), answer)
        self.assertLess(peak_rss(self.process.pid), baseline + REFUSED_MARGIN)


if __name__ == "__main__":
    unittest.main()
