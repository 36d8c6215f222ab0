#!/usr/bin/env python3
"""The formats real photo libraries hold, made here from the sample photos with Debian's encoders:
HEIC (heif-enc), AVIF and a tiled AVIF grid (avifenc), GIF (Pillow) and a DNG camera RAW (written below to the DNG specification: a thumbnail, the sensor data, a JPEG preview). A folder
of them and the JPEG originals is indexed; each is indexed and finds its JPEG original as its nearest
other image. Orientation: an AVIF with both irot and EXIF orientation (as an iPhone writes them) is
turned once; a HEIC's EXIF orientation alone does not turn it (HEIF's transformations are the
orientation); a DNG is turned by its own Orientation tag. Hostile files: a HEIC whose ispe and GIFs
whose screen or frame claim huge sizes are refused by the pixel cap from their headers, real files
of every new format are refused from their headers under a lowered cap, and truncated files are
skipped with one line each.

Run by ctest (CBIR_BIN_DIR, CBIR_SOURCE_DIR) with Debian's python3 (PIL); needs libheif-examples and
libavif-bin (scripts/install-deps.sh --test).
"""
import io
import json
import math
import os
import shutil
import struct
import subprocess
import tempfile
import unittest

from PIL import Image

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.path.abspath(os.environ.get("CBIR_SOURCE_DIR", "."))
MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
SEED = os.path.join(SOURCE, "images")
CBIR = os.path.abspath(os.path.join(BIN, "cbir"))


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    env["CBIR_MODEL"] = MODEL
    env.update(extra)
    return env


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=300, check=True, **kwargs)


def jpeg_bytes(image, exif=None):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, **({"exif": exif} if exif else {}))
    return buffer.getvalue()


def exif_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def dng(preview_jpeg, preview_size, orientation=1):
    """A little-endian DNG as the specification lays one out: IFD 0 an 8-bit RGB thumbnail with the
    DNG tags and the orientation, sub-IFD 1 the sensor data (16-bit CFA), sub-IFD 2 a JPEG preview."""
    thumb = Image.new("RGB", (32, 24), (128, 128, 128)).tobytes()
    raw_width, raw_height = 64, 48
    raw = bytes(raw_width * raw_height * 2)
    out = bytearray(8)

    def append(data):
        if len(out) % 2:
            out.append(0)
        at = len(out)
        out.extend(data)
        return at

    def ifd(entries):  # (tag, type: 1 BYTE, 2 ASCII, 3 SHORT, 4 LONG, values)
        codes = {1: "B", 2: "B", 3: "H", 4: "I"}
        fields = []
        for tag, kind, values in sorted(entries):
            if kind == 2:
                values = list(values.encode() + b"\0")
            fields.append((tag, kind, len(values), struct.pack("<" + codes[kind] * len(values), *values)))
        at = len(out) + len(out) % 2
        data_at = at + 2 + 12 * len(fields) + 4
        body, extra = struct.pack("<H", len(fields)), b""
        for tag, kind, count, blob in fields:
            if len(blob) <= 4:
                body += struct.pack("<HHI", tag, kind, count) + blob.ljust(4, b"\0")
            else:
                body += struct.pack("<HHII", tag, kind, count, data_at + len(extra))
                extra += blob + b"\0" * (len(blob) % 2)
        assert append(body + struct.pack("<I", 0) + extra) == at
        return at

    thumb_at, raw_at, preview_at = append(thumb), append(raw), append(preview_jpeg)
    raw_ifd = ifd([(254, 4, [0]), (256, 4, [raw_width]), (257, 4, [raw_height]), (258, 3, [16]), (259, 3, [1]),
                   (262, 3, [32803]), (273, 4, [raw_at]), (277, 3, [1]), (278, 4, [raw_height]),
                   (279, 4, [len(raw)]), (33421, 3, [2, 2]), (33422, 1, [0, 1, 1, 2]), (50717, 4, [65535])])
    width, height = preview_size
    preview_ifd = ifd([(254, 4, [1]), (256, 4, [width]), (257, 4, [height]), (258, 3, [8, 8, 8]), (259, 3, [7]),
                       (262, 3, [6]), (273, 4, [preview_at]), (277, 3, [3]), (278, 4, [height]),
                       (279, 4, [len(preview_jpeg)])])
    ifd0 = ifd([(254, 4, [1]), (256, 4, [32]), (257, 4, [24]), (258, 3, [8, 8, 8]), (259, 3, [1]), (262, 3, [2]),
                (271, 2, "Cbir"), (272, 2, "Test Camera"), (273, 4, [thumb_at]), (274, 3, [orientation]),
                (277, 3, [3]), (278, 4, [24]), (279, 4, [len(thumb)]), (284, 3, [1]),
                (330, 4, [raw_ifd, preview_ifd]), (50706, 1, [1, 4, 0, 0]), (50708, 2, "Cbir Test Camera")])
    out[0:8] = b"II*\x00" + struct.pack("<I", ifd0)
    return bytes(out)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def embed(paths, env):
    r = run([CBIR, "embed", *paths, "--format", "jsonl"], env=env)
    return {os.path.basename(row["path"]): row["vector"] for row in map(json.loads, r.stdout.splitlines())}


def distance(a, b):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def skip_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("cbir: skipped ")]


class FormatsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-formats-")
        cls.env = clean_env()
        photos = cls.photos = os.path.join(cls.tmp, "photos")
        os.mkdir(photos)
        for name in sorted(os.listdir(SEED)):
            if name.endswith(".jpg"):
                shutil.copy(os.path.join(SEED, name), photos)
        seed = lambda name: os.path.join(SEED, name)  # noqa: E731
        # Each new-format file is made from a different original: its JPEG is its only true neighbour.
        run(["heif-enc", "-q", "80", seed("dog2.jpg"), "-o", os.path.join(photos, "dog2.heic")])
        run(["avifenc", "--speed", "8", seed("cat1.jpg"), os.path.join(photos, "cat1.avif")])
        # A grid of 2 x 2 tiles, as phones tile their photos (tiles of even size: crop one column).
        person2 = Image.open(seed("person2.jpg")).convert("RGB")
        person2.crop((0, 0, 1920, 1080)).save(os.path.join(cls.tmp, "person2.png"))
        run(["avifenc", "--speed", "8", "--grid", "2x2", os.path.join(cls.tmp, "person2.png"),
             os.path.join(photos, "person2-grid.avif")])
        Image.open(seed("person1.jpg")).convert("RGB").save(os.path.join(photos, "person1.gif"))
        dog1 = Image.open(seed("dog1.jpg")).convert("RGB")
        write(os.path.join(photos, "dog1.dng"), dng(jpeg_bytes(dog1), dog1.size))
        cls.new_files = {"dog2.heic": "dog2.jpg", "cat1.avif": "cat1.jpg", "person2-grid.avif": "person2.jpg",
                         "person1.gif": "person1.jpg", "dog1.dng": "dog1.jpg"}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_each_format_is_indexed_and_finds_its_jpeg_original(self):
        store = os.path.join(self.tmp, "s.cbir")
        r = run([CBIR, "index", self.photos, "--store", store], env=self.env)
        self.assertEqual(skip_lines(r.stderr), [])
        self.assertIn("indexed 12 new", r.stderr)
        queries = [os.path.join(self.photos, name) for name in self.new_files]
        r = run([CBIR, "query", *queries, "--store", store, "-k", "2", "--format", "jsonl"], env=self.env)
        hits = {}
        for row in map(json.loads, r.stdout.splitlines()):
            hits.setdefault(os.path.basename(row["query"]), []).append(os.path.basename(row["path"]))
        for name, original in self.new_files.items():
            with self.subTest(name):
                self.assertEqual(hits[name], [name, original])

    def test_orientation_is_applied_once(self):
        folder = os.path.join(self.tmp, "orientation")
        os.mkdir(folder)
        upright = Image.open(os.path.join(SEED, "dog2.jpg")).convert("RGB").resize((320, 190))
        turned = upright.transpose(Image.Transpose.ROTATE_270)  # what EXIF orientation 6 shows
        upright.save(os.path.join(folder, "upright.png"))
        turned.save(os.path.join(folder, "turned.png"))
        write(os.path.join(self.tmp, "exif6"), exif_orientation(6))
        # Lossless AVIF stored upright with irot 3 (90° clockwise) and EXIF orientation 6, as an iPhone
        # writes both: turned once it is exactly turned.png; turned twice it would be upside down.
        run(["avifenc", "--lossless", "--speed", "8", "--irot", "3", "--exif", os.path.join(self.tmp, "exif6"),
             os.path.join(folder, "upright.png"), os.path.join(folder, "irot-and-exif.avif")])
        # heif-enc copies a JPEG's EXIF orientation 6 but writes no irot: HEIF's orientation is its
        # transformations, so the image is shown as stored (its EXIF orientation is informative).
        write(os.path.join(folder, "exif6.jpg"), jpeg_bytes(upright, exif_orientation(6)))
        run(["heif-enc", "-q", "90", os.path.join(folder, "exif6.jpg"), "-o", os.path.join(folder, "exif-only.heic")])
        # A DNG with Orientation 6 whose preview is upright: turned by the RAW's orientation, it is the
        # same JPEG with EXIF orientation 6 as OpenCV turns it.
        preview = jpeg_bytes(upright)
        write(os.path.join(folder, "turned.dng"), dng(preview, upright.size, orientation=6))
        write(os.path.join(folder, "preview-exif6.jpg"), jpeg_bytes(upright, exif_orientation(6)))
        v = embed([os.path.join(folder, n) for n in sorted(os.listdir(folder))], self.env)
        self.assertLess(distance(v["irot-and-exif.avif"], v["turned.png"]), 1e-4)
        self.assertGreater(distance(v["upright.png"], v["turned.png"]), 0.1)  # the test can tell them apart
        self.assertLess(distance(v["exif-only.heic"], v["upright.png"]), distance(v["exif-only.heic"], v["turned.png"]))
        self.assertLess(distance(v["turned.dng"], v["preview-exif6.jpg"]), 1e-4)
        self.assertLess(distance(v["turned.dng"], v["turned.png"]), distance(v["turned.dng"], v["upright.png"]))

    def test_hostile_files_are_refused_from_their_headers_with_one_line(self):
        folder = os.path.join(self.tmp, "hostile")
        os.mkdir(folder)
        # Every ispe box (heif-enc 1.15 writes the primary's twice) claims 30000 x 30000.
        heic = bytearray(read(os.path.join(self.photos, "dog2.heic")))
        boxes = [at for at in range(len(heic)) if heic[at:at + 4] == b"ispe"]
        self.assertTrue(boxes)
        for at in boxes:
            heic[at + 8:at + 16] = struct.pack(">II", 30000, 30000)
        write(os.path.join(folder, "bomb.heic"), bytes(heic))
        gif = read(os.path.join(self.photos, "person1.gif"))
        write(os.path.join(folder, "bomb-screen.gif"), gif[:6] + struct.pack("<HH", 65535, 65535) + gif[10:])
        small = io.BytesIO()
        Image.new("P", (64, 64), 3).save(small, "GIF")
        small = small.getvalue()
        descriptor = small.find(b"\x2c\x00\x00\x00\x00\x40\x00\x40\x00")  # the frame at 0,0 of 64 x 64
        self.assertGreater(descriptor, 0)
        write(os.path.join(folder, "bomb-frame.gif"),
              small[:descriptor + 5] + struct.pack("<HH", 60000, 60000) + small[descriptor + 9:])
        for name in ("dog2.heic", "cat1.avif", "person1.gif", "dog1.dng"):
            data = read(os.path.join(self.photos, name))
            write(os.path.join(folder, "cut-" + name), data[:len(data) * 2 // 3])
        shutil.copy(os.path.join(SEED, "cat1.jpg"), folder)
        r = run([CBIR, "index", folder, "--store", os.path.join(self.tmp, "hostile.cbir")], env=self.env)
        lines = skip_lines(r.stderr)
        reasons = {os.path.basename(line.split(": ", 2)[1]): line.split(": ", 2)[2] for line in lines}
        self.assertEqual(len(lines), 7, r.stderr)
        self.assertEqual(len(reasons), 7, r.stderr)
        limit = " pixels exceeds the limit of 250000000 (CBIR_MAX_PIXELS"
        self.assertTrue(reasons["bomb.heic"].startswith("image of 30000\u00d730000" + limit), reasons)
        self.assertTrue(reasons["bomb-screen.gif"].startswith("image of 65535\u00d765535" + limit), reasons)
        self.assertTrue(reasons["bomb-frame.gif"].startswith("image of 60000\u00d760000" + limit), reasons)
        for name in ("dog2.heic", "cat1.avif", "person1.gif", "dog1.dng"):
            self.assertIn("cut-" + name, reasons)
        self.assertIn("indexed 1 new", r.stderr)
        # Real files of every new format under a lowered cap: refused with their header's size.
        r = subprocess.run([CBIR, "index", self.photos, "--store", os.path.join(self.tmp, "capped.cbir")],
                           env=clean_env(CBIR_MAX_PIXELS="100000"), capture_output=True, text=True, timeout=300)
        reasons = {os.path.basename(line.split(": ", 2)[1]): line.split(": ", 2)[2] for line in skip_lines(r.stderr)}
        expected = {"dog2.heic": "645\u00d7380", "cat1.avif": "600\u00d7400", "person2-grid.avif": "1920\u00d71080",
                    "person1.gif": "1280\u00d7720", "dog1.dng": "1100\u00d7825"}
        for name, size in expected.items():
            with self.subTest(name):
                self.assertTrue(reasons[name].startswith(f"image of {size} pixels exceeds the limit of 100000"), reasons)


    def test_a_file_coding_more_pixels_than_it_declares_is_refused_in_bounded_memory(self):
        # HEIC and AVIF codecs size their frames from the coded stream, not from ispe: large flat images
        # (a few KB coded) whose every ispe box then claims 16 x 16.
        folder = os.path.join(self.tmp, "lying")
        os.mkdir(folder)
        for size, encoder, name in ((8192, ["avifenc", "--speed", "10"], "lie.avif"),
                                    (4096, ["heif-enc", "-q", "10"], "lie.heic")):
            png = os.path.join(self.tmp, f"flat-{size}.png")
            Image.new("RGB", (size, size), (90, 120, 40)).save(png)
            coded = os.path.join(self.tmp, name)
            run(encoder + [png, "-o", coded] if encoder[0] == "heif-enc" else encoder + [png, coded])
            data = bytearray(read(coded))
            boxes = [at for at in range(len(data)) if data[at:at + 4] == b"ispe"]
            self.assertTrue(boxes)
            for at in boxes:
                data[at + 8:at + 16] = struct.pack(">II", 16, 16)
            write(os.path.join(folder, name), bytes(data))
        only_jpeg = os.path.join(self.tmp, "only-jpeg")
        os.mkdir(only_jpeg)
        shutil.copy(os.path.join(SEED, "cat1.jpg"), only_jpeg)
        shutil.copy(os.path.join(SEED, "cat1.jpg"), folder)

        def index(source, store):
            """stderr and the peak RSS in MiB of one `cbir index` and every process it started."""
            with tempfile.TemporaryFile() as err:
                process = subprocess.Popen([CBIR, "index", source, "--store", os.path.join(self.tmp, store)],
                                           env=self.env, stdout=subprocess.DEVNULL, stderr=err)
                _, status, usage = os.wait4(process.pid, 0)
                process.returncode = os.waitstatus_to_exitcode(status)
                err.seek(0)
                return process.returncode, err.read().decode(), usage.ru_maxrss / 1024

        code, _, baseline = index(only_jpeg, "only-jpeg.cbir")
        self.assertEqual(code, 0)
        code, stderr, peak = index(folder, "lying.cbir")
        self.assertEqual(code, 0, stderr)
        reasons = {os.path.basename(line.split(": ", 2)[1]): line.split(": ", 2)[2] for line in skip_lines(stderr)}
        self.assertEqual(set(reasons), {"lie.avif", "lie.heic"}, stderr)
        for name, reason in reasons.items():
            self.assertTrue(reason.startswith("not a decodable image (" + name[-4:].upper()), reason)
            self.assertIn("16\u00d716", reason)
        self.assertIn("indexed 1 new", stderr)
        # Decoded in this process, the 8192 x 8192 frame alone is 200 MiB of RGB (and three copies of it).
        self.assertLess(peak, baseline + 150, (peak, baseline))
        # A decoder named by the user is the one used, or the image is refused saying so: no fallback.
        r = subprocess.run([CBIR, "embed", os.path.join(self.photos, "dog2.heic")], capture_output=True, text=True,
                           env=clean_env(CBIR_HEIF_DECODER="/nonexistent/decoder"), timeout=300)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("CBIR_HEIF_DECODER names /nonexistent/decoder, which is not an executable program", r.stderr)


if __name__ == "__main__":
    unittest.main()
