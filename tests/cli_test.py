#!/usr/bin/env python3
"""End-to-end tests of cbir in shell pipelines and of its everyday commands: stdin path lists,
every output format read back with a real parser, exit codes 0/1/2, a closed pipe, --max-distance,
similarity, dups, info, embed and the montage. Run by ctest with Debian's /usr/bin/python3 (PIL
makes the near-duplicate copies)."""
import csv
import io
import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import unittest

from PIL import Image

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.environ.get("CBIR_SOURCE_DIR", ".")
MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
SEED = os.path.join(SOURCE, "images")
NAMES = ["dog1", "dog2", "dog3", "cat1", "cat2", "person1", "person2"]
CBIR = os.path.join(BIN, "cbir")


def png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", header[16:24])


class Pipelines(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-cli-")
        os.makedirs(os.path.join(cls.tmp, "photos"))
        for n in NAMES:
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(cls.tmp, "photos", n + ".jpg"))
        # A name with spaces, and a second folder of queries that are not in the store.
        shutil.copy(os.path.join(SEED, "cat1.jpg"), os.path.join(cls.tmp, "photos", "a cat, copied.jpg"))
        os.makedirs(os.path.join(cls.tmp, "queries"))
        for n in ("dog2", "person1", "cat2"):
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(cls.tmp, "queries", n + ".jpg"))
        Image.new("RGB", (300, 200), (128, 128, 128)).save(os.path.join(cls.tmp, "queries", "grey.png"))
        cls.env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
        cls.env["CBIR_MODEL"] = MODEL
        listing = subprocess.run(["find", "photos", "-name", "*.jpg", "-print0"], cwd=cls.tmp, capture_output=True,
                                 check=True).stdout
        cls.index_run = cls.run_cbir("index", "-", "-0", stdin=listing)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def run_cbir(cls, *args, stdin=None, text=True):
        if isinstance(stdin, bytes):
            text = False
        return subprocess.run([CBIR, *args], cwd=cls.tmp, env=cls.env, input=stdin, capture_output=True, text=text,
                              timeout=600)

    def test_writing_commands_do_not_create_a_missing_store(self):
        missing = os.path.join(self.tmp, "no-store-here")
        for command in (["remove", "x.jpg"], ["prune"], ["repair"], ["reindex"], ["serve", "--port", "0"]):
            r = self.run_cbir(*command, "--store", missing)
            self.assertEqual(r.returncode, 2, (command, r.stderr))
            self.assertIn("no cbir store", r.stderr)
            self.assertFalse(os.path.exists(missing), command)

    def test_index_reads_nul_separated_paths_from_stdin(self):
        self.assertEqual(self.index_run.returncode, 0, self.index_run.stderr)
        self.assertIn(b"indexed 8 new", self.index_run.stderr)

    def test_several_queries_from_stdin_each_row_names_its_query(self):
        listing = "queries/dog2.jpg\nqueries/person1.jpg\nqueries/cat2.jpg\n"
        r = self.run_cbir("query", "-", "--format", "jsonl", "-k", "3", stdin=listing)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual([row["query"] for row in rows], ["queries/dog2.jpg"] * 3 + ["queries/person1.jpg"] * 3 +
                         ["queries/cat2.jpg"] * 3)
        for row in rows[::3]:  # each copy finds its original first
            self.assertEqual(os.path.basename(row["path"]), os.path.basename(row["query"]))
            self.assertLess(row["distance"], 1e-3)

    def test_every_format_parses(self):
        args = ["query", "photos/dog1.jpg", "-k", "4"]
        tsv = list(csv.DictReader(io.StringIO(self.run_cbir(*args, "--format", "tsv").stdout), delimiter="\t"))
        rows = list(csv.DictReader(io.StringIO(self.run_cbir(*args, "--format", "csv").stdout)))
        jsonl = [json.loads(l) for l in self.run_cbir(*args, "--format", "jsonl").stdout.splitlines()]
        array = json.loads(self.run_cbir(*args, "--format", "json").stdout)
        paths = self.run_cbir(*args, "--format", "paths", "-0").stdout.split("\0")[:-1]
        table = self.run_cbir(*args, "--format", "table").stdout.splitlines()
        expected = [r["path"] for r in jsonl]
        self.assertEqual(len(expected), 4)
        self.assertEqual([r["path"] for r in tsv], expected)
        self.assertEqual([r["path"] for r in rows], expected)
        self.assertEqual([r["path"] for r in array], expected)
        self.assertEqual(paths, expected)
        self.assertEqual(len(table), 5)
        for parsed in (tsv, rows, array):
            for a, b in zip(parsed, jsonl):
                self.assertAlmostEqual(float(a["distance"]), b["distance"], places=4)

    def test_csv_quotes_a_path_with_a_comma(self):
        r = self.run_cbir("query", "photos/a cat, copied.jpg", "-k", "2", "--format", "csv")
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        self.assertEqual({row["path"] for row in rows}, {"photos/a cat, copied.jpg", "photos/cat1.jpg"})

    def test_exit_codes(self):
        self.assertEqual(self.run_cbir("query", "photos/dog1.jpg").returncode, 0)
        self.assertEqual(self.run_cbir("query", "photos/dog1.jpg", "--top-k", "0").returncode, 2)
        self.assertEqual(self.run_cbir("query", "photos/dog1.jpg", "--threads", "-1").returncode, 2)
        self.assertEqual(self.run_cbir("query", "photos/dog1.jpg", "--format", "xml").returncode, 2)
        self.assertEqual(self.run_cbir("index", "photos", "--metric", "hamming").returncode, 2)
        self.assertEqual(self.run_cbir("query", "-", stdin="").returncode, 2)
        self.assertEqual(self.run_cbir("query", "photos/dog1.jpg", "--min-similarity", "0.9").returncode, 2)  # l2 store

    def test_max_distance_filters_and_exit_1_when_nothing_passes(self):
        # A copy of person1 from outside the store is at ~0 from photos/person1.jpg; every other photo is >= 25.
        r = self.run_cbir("query", "queries/person1.jpg", "--max-distance", "1", "--format", "paths")
        self.assertEqual((r.returncode, r.stdout), (0, "photos/person1.jpg\n"))
        r = self.run_cbir("query", "photos/dog3.jpg", "--max-distance", "0", "--format", "paths")
        self.assertEqual((r.returncode, r.stdout), (0, "photos/dog3.jpg\n"))  # itself, at exactly 0
        r = self.run_cbir("query", "queries/grey.png", "--max-distance", "1", "--format", "paths")
        self.assertEqual((r.returncode, r.stdout), (1, ""))  # like grep: nothing passed

    def test_closed_pipe_is_quiet_and_exit_0(self):
        process = subprocess.Popen([CBIR, "embed", "photos", "--format", "jsonl", "-q"], cwd=self.tmp, env=self.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdout.close()  # the reader goes away before anything is written, like `| head -0`
        _, err = process.communicate(timeout=300)
        self.assertEqual(process.returncode, 0, err)
        self.assertEqual(err, b"")

    def test_similarity_matches_the_reference_table(self):
        r = self.run_cbir("similarity", "photos/dog1.jpg", "photos/dog2.jpg", "photos/person1.jpg", "--format", "jsonl")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = {(os.path.basename(x["a"]), os.path.basename(x["b"])): x for x in map(json.loads, r.stdout.splitlines())}
        self.assertEqual(len(rows), 3)
        self.assertAlmostEqual(rows[("dog1.jpg", "dog2.jpg")]["cosine"], 0.968118, delta=0.001)
        self.assertAlmostEqual(rows[("dog1.jpg", "dog2.jpg")]["squared_l2"], 16.145108, delta=0.16)
        self.assertAlmostEqual(rows[("dog1.jpg", "person1.jpg")]["squared_l2"], 27.190037, delta=0.27)
        matrix = self.run_cbir("similarity", "photos/dog1.jpg", "photos/dog2.jpg", "--matrix", "cosine",
                               "--format", "tsv").stdout
        lines = [l.split("\t") for l in matrix.splitlines()]
        self.assertEqual(float(lines[1][1]), 1.0)
        self.assertAlmostEqual(float(lines[1][2]), 0.968118, delta=0.001)

    def test_info_describes_the_store(self):
        r = self.run_cbir("info", "--format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        info = json.loads(r.stdout)
        self.assertEqual(info["images"], 8)
        self.assertEqual(info["dimension"], 512)
        self.assertTrue(info["metric"].startswith("l2"))
        self.assertIs(info["model_untrained"], True)
        self.assertTrue(info["index_file"].startswith("current"))

    def test_embed_npy_is_readable_and_matches_jsonl(self):
        out = os.path.join(self.tmp, "v.npy")
        r = self.run_cbir("embed", "photos/dog1.jpg", "photos/cat1.jpg", "--format", "npy", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), ["photos/dog1.jpg", "photos/cat1.jpg"])
        with open(out, "rb") as f:
            data = f.read()
        self.assertEqual(data[:6], b"\x93NUMPY")
        header_length = struct.unpack("<H", data[8:10])[0]
        header = data[10:10 + header_length].decode()
        self.assertIn("'shape': (2, 512)", header)
        self.assertEqual((10 + header_length) % 64, 0)
        values = struct.unpack("<1024f", data[10 + header_length:])
        jsonl = [json.loads(l) for l in self.run_cbir("embed", "photos/dog1.jpg", "photos/cat1.jpg").stdout.splitlines()]
        for got, want in zip(values[:512], jsonl[0]["vector"]):
            self.assertAlmostEqual(got, want, places=5)

    def test_embed_output_file_implies_npy_and_other_combinations_are_refused(self):
        out = os.path.join(self.tmp, "implied.npy")
        r = self.run_cbir("embed", "photos/dog1.jpg", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), ["photos/dog1.jpg"])  # the row order, not JSONL
        with open(out, "rb") as f:
            self.assertEqual(f.read(6), b"\x93NUMPY")
        for args in (["-o", os.path.join(self.tmp, "v.jsonl")], ["--format", "tsv", "-o", out]):
            r = self.run_cbir("embed", "photos/dog1.jpg", *args)
            self.assertEqual(r.returncode, 2, args)
            self.assertEqual(r.stdout, "")
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)  # refused before the model loads
            self.assertIn("cbir: error:", r.stderr)

    def test_montage_is_a_png_of_the_expected_grid(self):
        out = os.path.join(self.tmp, "sheet.png")
        r = self.run_cbir("query", "photos/dog1.jpg", "-k", "7", "--montage", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        # 8 tiles (the query and 7 hits) in one row of tiles of 204 x 230 pixels.
        self.assertEqual(png_size(out), (8 * 204, 230))
        with Image.open(out) as image:
            image.load()  # decodes completely
            self.assertEqual(image.mode, "RGB")

    def test_help_lists_every_command_and_environment_variables(self):
        r = self.run_cbir("--help")
        for command in ("index", "query", "embed", "similarity", "dups", "info", "eval", "bench"):
            self.assertIn(command, r.stdout)
        q = self.run_cbir("query", "--help").stdout
        for text in ("--top-k", "CBIR_TOP_K", "CBIR_STORE", "CBIR_FORMAT", "--max-distance", "--montage", "--null"):
            self.assertIn(text, q)


class BrokenAndOddInputs(unittest.TestCase):
    """A corpus of broken and unusual files made here: each is embedded or skipped with one line
    naming it; nothing crashes or hangs, and the rest is indexed."""

    def test_corpus(self):
        tmp = tempfile.mkdtemp(prefix="cbir-corpus-")
        try:
            photos = os.path.join(tmp, "photos")
            os.makedirs(photos)
            with Image.open(os.path.join(SEED, "dog1.jpg")) as dog:
                dog = dog.convert("RGB")
                small = dog.resize((320, 240))
            jpeg = open(os.path.join(SEED, "dog2.jpg"), "rb").read()
            png_buffer = io.BytesIO()
            small.save(png_buffer, "PNG")
            png = png_buffer.getvalue()
            bomb = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
                    + b"\0" * 4 + struct.pack(">I", 0) + b"IEND" + b"\0" * 4)
            files = {
                "empty.jpg": b"",
                "truncated.jpg": jpeg[: len(jpeg) // 3],
                "truncated.png": png[: len(png) // 2],
                "noise.jpg": os.urandom(5000),
                "bomb.png": bomb,
                "png-named.jpg": png,
            }
            for name, data in files.items():
                with open(os.path.join(photos, name), "wb") as f:
                    f.write(data)
            small.convert("L").save(os.path.join(photos, "gray.jpg"))
            small.convert("L").convert("I").point(lambda v: v * 257).save(os.path.join(photos, "gray16.png"))  # 16-bit
            small.convert("CMYK").save(os.path.join(photos, "cmyk.jpg"))
            small.convert("RGBA").save(os.path.join(photos, "rgba.png"))
            small.save(os.path.join(photos, "pages.tiff"), save_all=True, append_images=[small.rotate(90)])
            small.save(os.path.join(photos, "anim.gif"), save_all=True, append_images=[small.rotate(90)], duration=100)
            small.save(os.path.join(photos, "a name with spaces.jpg"))
            small.save(os.path.join(photos, "new\nline.jpg"))
            small.save(os.path.join(photos.encode(), b"bytes-\xff\xfe.jpg"), format="JPEG")  # a name that is not UTF-8
            os.symlink("..", os.path.join(photos, "loop"))  # a symlinked folder is not followed
            env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
            env["CBIR_MODEL"] = MODEL
            r = subprocess.run([CBIR, "index", "photos"], cwd=tmp, env=env, capture_output=True, timeout=300)
            err = r.stderr.decode(errors="replace")
            self.assertEqual(r.returncode, 0, err)
            self.assertIn("indexed 10 new", err)  # anim.gif too: its first frame
            self.assertIn("5 skipped", err)
            for name, reason in [("empty.jpg", "empty file"), ("truncated.jpg", "truncated JPEG"),
                                 ("truncated.png", "not a decodable image"), ("noise.jpg", "not a decodable image"),
                                 ("bomb.png", "decompression bomb")]:
                # libpng prints its own warnings to stderr from reader threads, without a newline, so a
                # skip line may not start a line: find it anywhere.
                lines = re.findall(rf"cbir: skipped photos/{re.escape(name)}: [^\n]*", err)
                self.assertEqual(len(lines), 1, (name, err))
                self.assertIn(reason, lines[0])
            # A PNG named .jpg is read by its content: the same vector as the PNG itself.
            r = subprocess.run([CBIR, "similarity", "photos/png-named.jpg", "photos/rgba.png", "--format", "tsv"],
                               cwd=tmp, env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertAlmostEqual(float(r.stdout.splitlines()[1].split("\t")[2]), 1.0, places=5)
            out = subprocess.run([CBIR, "query", "photos/a name with spaces.jpg", "-k", "20", "--format", "jsonl"],
                                 cwd=tmp, env=env, capture_output=True, text=True)
            paths = [json.loads(l)["path"] for l in out.stdout.splitlines()]
            self.assertEqual(len(paths), 10)
            self.assertIn("photos/new\nline.jpg", paths)
            self.assertIn("photos/anim.gif", paths)
            self.assertTrue(any(p.startswith("photos/bytes-") for p in paths))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class Duplicates(unittest.TestCase):
    """A resized and recompressed copy, and a copy stored sideways with an EXIF rotation tag, are
    duplicates at the default threshold; other photos, of dogs too, are not (the threshold's
    measurements: scripts/measure_dups_threshold.py, in the README)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cbir-dups-")
        photos = os.path.join(self.tmp, "photos")
        os.makedirs(photos)
        for n in NAMES:
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(photos, n + ".jpg"))
        with Image.open(os.path.join(SEED, "dog1.jpg")) as image:
            image = image.convert("RGB")
            image.resize((image.width // 2, image.height // 2), Image.LANCZOS).save(
                os.path.join(photos, "dog1-copy.jpg"), quality=70)
            # Pixels turned 90 degrees counter-clockwise, tagged "rotate 90 CW to display" (EXIF 6).
            exif = Image.Exif()
            exif[0x0112] = 6
            image.transpose(Image.ROTATE_90).save(os.path.join(photos, "dog1-sideways.jpg"), quality=95,
                                                  exif=exif.tobytes())
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
        self.env["CBIR_MODEL"] = MODEL
        subprocess.run([CBIR, "index", "photos", "-q"], cwd=self.tmp, env=self.env, check=True)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_default_threshold_finds_the_copy_and_only_it(self):
        r = subprocess.run([CBIR, "dups", "--format", "jsonl"], cwd=self.tmp, env=self.env, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        groups = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(len(groups), 1, groups)
        self.assertEqual(sorted(groups[0]["paths"]), ["photos/dog1-copy.jpg", "photos/dog1-sideways.jpg",
                                                      "photos/dog1.jpg"])
        paths = subprocess.run([CBIR, "dups", "--format", "paths"], cwd=self.tmp, env=self.env, capture_output=True,
                               text=True).stdout
        self.assertEqual(len(paths.splitlines()), 2)  # all but one of the group: what `| xargs rm` would remove
        self.assertNotIn(paths.splitlines()[0], paths.splitlines()[1:])

    def test_no_duplicates_exits_1(self):
        r = subprocess.run([CBIR, "dups", "--min-similarity", "0.99999"], cwd=self.tmp, env=self.env,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)


class EverydayUse(unittest.TestCase):
    """What a new user met in issue 16: exit codes a script can trust, one-line errors, hints that
    name the store in use, and no silent no-ops."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-everyday-")
        os.makedirs(os.path.join(cls.tmp, "photos"))
        for n in NAMES:
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(cls.tmp, "photos", n + ".jpg"))
        os.makedirs(os.path.join(cls.tmp, "empty"))
        cls.env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
        cls.env["CBIR_MODEL"] = MODEL
        r = cls.cbir("index", "photos", "-q")
        assert r.returncode == 0, r.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def cbir(cls, *args, cwd=None, stdin=None, env=None):
        return subprocess.run([CBIR, *args], cwd=cwd or cls.tmp, env=env or cls.env, input=stdin, capture_output=True,
                              text=True, timeout=600)

    def assert_one_error_line(self, r, *fragments):
        self.assertEqual(r.returncode, 2, r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("cbir: error: "), r.stderr)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def test_a_path_named_on_the_command_line_that_does_not_exist_is_an_error(self):
        for command in (["index", "nope_dir"], ["embed", "nope_dir"]):
            r = self.cbir(*command)
            self.assert_one_error_line(r, "nope_dir: no such file or folder")

    def test_an_index_run_over_an_empty_folder_makes_an_empty_store(self):
        store = os.path.join(self.tmp, "e.cbir")
        r = self.cbir("index", "empty", "--store", store)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.isfile(os.path.join(store, "catalogue.sqlite")), r.stderr)
        q = self.cbir("query", "photos/dog1.jpg", "--store", store)
        self.assertEqual(q.returncode, 1, q.stderr)  # nothing to print, as documented; not "no store"
        self.assertNotIn("error", q.stderr)
        info = json.loads(self.cbir("info", "--store", store, "--format", "json").stdout)
        self.assertEqual(info["images"], 0)

    def test_a_folder_or_a_missing_file_as_query_fails_before_the_model_loads(self):
        r = self.cbir("query", "photos")
        self.assert_one_error_line(r, "photos: is a folder", "cbir query photos/*")
        r = self.cbir("query", "nope.jpg")
        self.assert_one_error_line(r, "nope.jpg: no such file")  # no model warning, no header first
        self.assertEqual(r.stdout, "")
        # Files that cannot be read up to their header: refused without starting the model (whose
        # untrained-model note would come first).
        with open(os.path.join(self.tmp, "empty.jpg"), "wb"):
            pass
        with open(os.path.join(self.tmp, "notes.jpg"), "w") as f:
            f.write("not an image\n")
        for name, cause in (("empty.jpg", "empty file"), ("notes.jpg", "not a")):
            r = self.cbir("query", name)
            self.assert_one_error_line(r, f"{name}: {cause}")
            self.assertEqual(r.stdout, "")
        # With a readable query beside them, each is answered or refused in its turn, as before.
        r = self.cbir("query", "photos/dog1.jpg", "empty.jpg", "--format", "tsv")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("empty.jpg: empty file", r.stderr)
        self.assertIn("photos/dog1.jpg", r.stdout)

    def test_a_refused_run_leaves_no_folder_and_an_unfinished_one_is_said(self):
        r = self.cbir("index", "photos", "--store", "refused.cbir", "--precision", "int8")  # a float model
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "refused.cbir")))
        # A store whose index run was killed (as the cluster test does for real): its record is read back.
        store = os.path.join(self.tmp, "unfinished.cbir")
        self.assertEqual(self.cbir("index", "photos", "--store", store, "-q").returncode, 0)
        with sqlite3.connect(os.path.join(store, "catalogue.sqlite")) as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('unfinished_index_run', "
                       "'pid 4242, started 2026-11-26 19:04:05 UTC')")
        r = self.cbir("query", "photos/dog1.jpg", "--store", store, "--format", "tsv")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("an index run has not finished (pid 4242, started 2026-11-26 19:04:05 UTC; killed, or still "
                      "running): the store answers from the 7 images it committed", r.stderr)
        self.assertIn("photos/dog1.jpg", r.stdout)
        check = self.cbir("check", "--store", store)
        self.assertEqual(check.returncode, 0, check.stderr)  # a sound store holding part of its images
        self.assertIn("an index run has not finished", check.stderr)
        self.assertEqual(self.cbir("index", "photos", "--store", store, "-q").returncode, 0)
        self.assertNotIn("has not finished", self.cbir("query", "photos/dog1.jpg", "--store", store).stderr)

    def test_unknown_and_missing_commands_are_named_in_one_line(self):
        r = self.cbir("frobnicate")
        self.assert_one_error_line(r, "unknown command 'frobnicate'", "index, query,")
        r = self.cbir()
        self.assert_one_error_line(r, "no command given", "index, query,")
        self.assertEqual(self.cbir("stats", "--format", "json").returncode, 0)  # an alias is a command
        # A typo or two away: the nearest name.
        self.assert_one_error_line(self.cbir("querry", "photos/dog1.jpg"), "unknown command 'querry' (did you mean query?)")
        self.assert_one_error_line(self.cbir("query", "photos/dog1.jpg", "--topk", "3"), "--topk",
                                   "(did you mean --top-k?)")

    def test_counts_of_one_are_singular_and_export_wants_a_folder(self):
        one = os.path.join(self.tmp, "one")
        os.makedirs(one)
        shutil.copy(os.path.join(self.tmp, "photos", "dog1.jpg"), one)
        store = os.path.join(self.tmp, "one.cbir")
        r = self.cbir("index", "one", "--store", store)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"1 image in {store};", r.stderr)
        r = self.cbir("export", "--store", store, "-o", "out")  # which format: said with the choices
        self.assert_one_error_line(r, "--format is required: milvus-npy", "or npy")
        r = self.cbir("export", "--store", store, "--format", "npy", "-o", "out.npy")
        self.assert_one_error_line(r, "out.npy: export writes a folder of files", "-o out")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out.npy")))
        r = self.cbir("export", "--store", store, "--format", "npy", "-o", "out")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("exported 1 vector of 512 dimensions", r.stderr)

    def test_range_and_parse_errors_are_one_line_in_words(self):
        r = self.cbir("query", "photos/dog1.jpg", "--max-distance", "-1")
        self.assert_one_error_line(r, "--max-distance", "must be >= 0 (got -1)")
        self.assertLess(len(r.stderr), 120)  # not DBL_MAX's 309 digits
        r = self.cbir("query", "photos/dog1.jpg", "--top-k", "0")
        self.assert_one_error_line(r, "--top-k", "must be between 1 and 10,000 (got 0)")
        self.assert_one_error_line(self.cbir("query", "photos/dog1.jpg", "--no-such-flag"), "--no-such-flag")

    def test_cosine_distances_are_never_negative(self):
        store = os.path.join(self.tmp, "cos.cbir")
        self.assertEqual(self.cbir("index", "photos", "--metric", "cosine", "--store", store, "-q").returncode, 0)
        r = self.cbir("query", "photos/dog1.jpg", "photos/cat1.jpg", "--store", store, "-k", "7", "--format", "jsonl")
        distances = [json.loads(line)["distance"] for line in r.stdout.splitlines()]
        self.assertEqual(len(distances), 14)
        self.assertTrue(all(0.0 <= d <= 2.0 for d in distances), distances)
        table = self.cbir("query", "photos/dog1.jpg", "--store", store, "-k", "1", "--format", "table").stdout
        self.assertNotIn("-0.0000", table)

    def test_a_format_a_command_cannot_print_is_refused(self):
        env = dict(self.env, CBIR_FORMAT="paths")
        for command in (["info"], ["similarity", "photos/dog1.jpg", "photos/dog2.jpg"], ["eval"]):
            r = self.cbir(*command, env=env)
            self.assert_one_error_line(r, "--format paths", command[0] + " prints")
        r = self.cbir("query", "photos/dog1.jpg", "-k", "1", env=env)  # paths is a query format
        self.assertEqual((r.returncode, r.stdout), (0, "photos/dog1.jpg\n"))

    def test_errors_name_the_file_asked_for_not_a_temporary_one(self):
        for args in (["embed", "photos/dog1.jpg", "-o", "nodir/x.npy", "-q"],
                     ["query", "photos/dog1.jpg", "--montage", "nodir/x.png", "-q"]):
            r = self.cbir(*args)
            self.assert_one_error_line(r, "nodir/x.", ": cannot create")
            self.assertNotIn(".tmp-", r.stderr)

    def test_hints_name_the_store_in_use(self):
        store = os.path.join(self.tmp, "hint.cbir")
        self.assertEqual(self.cbir("index", "photos/dog1.jpg", "photos/dog2.jpg", "--store", store, "-q").returncode, 0)
        r = self.cbir("index", "photos", "--store", store, "--index", "flat")
        self.assert_one_error_line(r, "'cbir reindex --index Flat --store hint.cbir'")
        # The suggested command does what it says on that store, not on ./.cbir.
        self.assertEqual(self.cbir("reindex", "--index", "Flat", "--store", "hint.cbir", "-q").returncode, 0)
        self.assertEqual(json.loads(self.cbir("info", "--store", store, "--format", "json").stdout)["index"],
                         "Flat")
        self.assertEqual(json.loads(self.cbir("info", "--format", "json").stdout)["index"], "HNSW32")

    def test_index_settings_on_an_existing_store_are_refused_not_ignored(self):
        r = self.cbir("index", "photos", "--hnsw-m", "16")
        self.assert_one_error_line(r, "HNSW32", "'cbir reindex --index HNSW16'")
        r = self.cbir("index", "photos", "--hnsw-m", "32")  # what it has: fine
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_reports_a_damaged_catalogue_in_one_line_with_details_under_v(self):
        damaged = os.path.join(self.tmp, "damaged.cbir")
        shutil.copytree(os.path.join(self.tmp, ".cbir"), damaged)
        import sqlite3
        db = sqlite3.connect(os.path.join(damaged, "catalogue.sqlite"))
        db.execute("PRAGMA writable_schema=ON")  # the index's entries no longer match its definition
        db.execute("UPDATE sqlite_master SET sql='CREATE INDEX images_sha256 ON images(size)' "
                   "WHERE name='images_sha256'")
        db.commit()
        db.close()
        r = self.cbir("check", "--store", damaged)
        self.assertEqual(r.returncode, 1, r.stderr)
        problems = [l for l in r.stderr.splitlines() if l.startswith("cbir: error:")]
        self.assertEqual(len(problems), 1, r.stderr)
        self.assertIn("row 1 missing from index images_sha256, and 6 more with -v", problems[0])
        verbose = self.cbir("check", "--store", damaged, "-v")
        self.assertIn("row 7 missing from index images_sha256", verbose.stderr)

    def test_store_flag_may_name_the_folder_holding_the_store(self):
        r = self.cbir("query", "photos/dog1.jpg", "--store", ".", "-k", "1", "--format", "paths")
        self.assertEqual((r.returncode, r.stdout), (0, "photos/dog1.jpg\n"), r.stderr)
        r = self.cbir("index", "photos", "--store", self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "catalogue.sqlite")))  # not beside the photos
        self.assertIn("7 unchanged", r.stderr)

    def test_an_index_run_says_when_it_adds_to_a_store_in_a_parent_folder(self):
        sub = os.path.join(self.tmp, "photos")
        r = self.cbir("index", "dog1.jpg", cwd=sub)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("adding to " + os.path.join(self.tmp, ".cbir") + ", found above this folder", r.stderr)
        here = self.cbir("index", "photos/dog1.jpg")
        self.assertNotIn("found above", here.stderr)

    def test_remove_names_what_is_not_there_and_takes_folders(self):
        store = os.path.join(self.tmp, "remove.cbir")
        self.assertEqual(self.cbir("index", "photos", "--store", store, "-q").returncode, 0)
        r = self.cbir("remove", "nope.jpg", "--store", store)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not in the store: nope.jpg", r.stderr)
        r = self.cbir("remove", "photos", "--store", store)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("removed 7 images; 0 images in the store", r.stderr)

    def test_null_separated_stdin_needs_no_dash(self):
        r = self.cbir("query", "-0", "-k", "1", "--format", "paths", stdin="photos/dog2.jpg\0")
        self.assertEqual((r.returncode, r.stdout), (0, "photos/dog2.jpg\0"), r.stderr)
        r = self.cbir("query", "-k", "1")
        self.assert_one_error_line(r, "no paths given")

    def test_info_json_is_typed_and_jsonl_floats_match_tsv(self):
        info = json.loads(self.cbir("info", "--format", "json").stdout)
        self.assertEqual(info["dimension"], 512)
        self.assertIs(info["model_untrained"], True)
        jsonl = self.cbir("query", "photos/dog1.jpg", "-k", "3", "--format", "jsonl").stdout.splitlines()
        tsv = self.cbir("query", "photos/dog1.jpg", "-k", "3", "--format", "tsv").stdout.splitlines()[1:]
        self.assertEqual(len(jsonl), 3)
        for j, t in zip(jsonl, tsv):
            shown = re.search(r'"distance":([^,]+)', j).group(1)
            self.assertEqual(shown if shown != "0.0" else "0", t.split("\t")[2])  # 12.340004, not 12.340003967285156

    def test_embed_says_when_it_found_no_image(self):
        r = self.cbir("embed", "empty")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no images found", r.stderr)

    def test_montage_is_one_row_per_query_and_jpeg_when_named_so(self):
        out = os.path.join(self.tmp, "sheet.jpg")
        r = self.cbir("query", "photos/dog1.jpg", "photos/cat1.jpg", "-k", "7", "--montage", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with Image.open(out) as image:
            self.assertEqual(image.format, "JPEG")
            self.assertEqual(image.size, (8 * 204, 2 * 230))  # a row of 8 tiles per query
        r = self.cbir("query", "photos/dog1.jpg", "--montage", os.path.join(self.tmp, "sheet.gif"))
        self.assert_one_error_line(r, "--montage writes .png or .jpg")


class EvalWithUnlabelledImages(unittest.TestCase):
    """`cbir eval` with a label file that leaves images out: the exact ranking and the index's top-k
    both ignore them (the index's used to count them as misses), and the run says how many."""

    def test_unlabelled_images_are_left_out_of_both_rankings(self):
        tmp = tempfile.mkdtemp(prefix="cbir-eval-unlabelled-")
        try:
            os.makedirs(os.path.join(tmp, "photos"))
            for n in NAMES:
                shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(tmp, "photos", n + ".jpg"))
            with open(os.path.join(tmp, "photos", "labels.tsv"), "w") as f:  # Corel-1K's three columns
                f.write("file\tclass_id\tclass_name\n")
                for n in NAMES:
                    if not n.startswith("person"):
                        f.write(f"{n}.jpg\t{0 if n.startswith('dog') else 1}\t{n[:3]}\n")
            env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
            env["CBIR_MODEL"] = MODEL
            subprocess.run([CBIR, "index", "photos", "-q"], cwd=tmp, env=env, check=True)
            r = subprocess.run([CBIR, "eval", "--labels", "photos/labels.tsv", "--per-class", "--format", "jsonl"],
                               cwd=tmp, env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("2 of the store's 7 images have no label", r.stderr)
            rows = [json.loads(line) for line in r.stdout.splitlines()]
            exact, index = rows[0], rows[1]
            self.assertEqual(index["search"], "hnsw")
            for key in ("p_at_1", "p_at_5", "p_at_10"):  # 7 vectors: HNSW is exact here
                self.assertAlmostEqual(index[key], exact[key], places=6, msg=key)
            self.assertEqual(sorted(row["search"] for row in rows[2:]), ["exact, class cat", "exact, class dog"])
            # Four others at most: P@5 and P@10 still divide by 5 and 10 (dogs 2 of 5, cats 1 of 5), not 0.
            self.assertAlmostEqual(exact["p_at_5"], (3 * 2 / 5 + 2 * 1 / 5) / 5, places=6)
            self.assertAlmostEqual(exact["p_at_10"], (3 * 2 / 10 + 2 * 1 / 10) / 5, places=6)
            # Without labels every image's class is its folder: one folder, one class, no score.
            r = subprocess.run([CBIR, "eval"], cwd=tmp, env=env, capture_output=True, text=True)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("every labelled image is in one class ('photos')", r.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
