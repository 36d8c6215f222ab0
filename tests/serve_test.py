#!/usr/bin/env python3
"""`cbir serve` end to end: the real server on a loopback port, every endpoint through a real HTTP
client (urllib), answers compared with `cbir query`, bad requests, path tricks, a clean shutdown,
and a concurrency run (parallel searches while images are added and removed).

Run by ctest (CBIR_BIN_DIR, CBIR_SOURCE_DIR); standard library only.
"""
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib

from PIL import Image

BIN = os.environ.get("CBIR_BIN_DIR", "build/apps")
SOURCE = os.path.abspath(os.environ.get("CBIR_SOURCE_DIR", "."))
MODEL = os.path.join(SOURCE, "models", "resnet18-untrained-features.pt")
SEED = os.path.join(SOURCE, "images")
NAMES = ["dog1", "dog2", "dog3", "cat1", "cat2", "person1", "person2"]
sys.path.insert(0, os.path.join(SOURCE, "scripts"))
from cbir_assets import corel_images  # noqa: E402

CBIR = os.path.join(BIN, "cbir")
COREL = corel_images()


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}


class Server:
    """`cbir serve --port 0` in a folder; the port comes from its "serving … at http://…" line."""

    def __init__(self, cwd, *args):
        self.cwd = cwd
        self.process = subprocess.Popen([CBIR, "serve", "--store", "store", "--port", "0", *args], cwd=cwd,
                                        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stderr_lines = []
        self.ready = threading.Event()
        self.url = None
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self.ready.wait(120) or self.url is None:
            self.process.kill()
            raise RuntimeError("cbir serve did not start:\n" + "".join(self.stderr_lines))

    def _read_stderr(self):
        for line in self.process.stderr:
            self.stderr_lines.append(line)
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
            if found:
                self.url = found.group(1)
                self.ready.set()
        self.ready.set()

    def stop(self, sig=signal.SIGTERM):
        self.process.send_signal(sig)
        return self.wait()

    def wait(self):
        code = self.process.wait(60)
        time.sleep(0.1)  # the reader thread drains the last lines
        self.process.stderr.close()
        return code, "".join(self.stderr_lines)


def request(url, method="GET", body=None, headers=None):
    """(status, parsed JSON or bytes) of one HTTP request; 4xx/5xx are answers, not exceptions."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as response:  # slow under load (cluster_serve)
            status, data, kind = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, data, kind = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, (json.loads(data) if kind.startswith("application/json") else data)


def post_json(url, payload):
    return request(url, "POST", json.dumps(payload).encode(), {"Content-Type": "application/json"})


def post_image(url, path, content_type="image/jpeg"):
    with open(path, "rb") as f:
        return request(url, "POST", f.read(), {"Content-Type": content_type})


def post_multipart(url, fields, file_field, path):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    with open(path, "rb") as f:
        data = f.read()
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; '
                 f'filename="{os.path.basename(path)}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return request(url, "POST", b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def cbir(cwd, *args):
    return subprocess.run([CBIR, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=600)


def cli_query(cwd, image, k=10):
    """`cbir query`'s hits as (absolute path, distance)."""
    r = cbir(cwd, "query", image, "--store", "store", "-k", str(k), "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    return [(os.path.normpath(os.path.join(cwd, row["path"])), row["distance"]) for row in rows]


def bomb_png():
    """A valid PNG header claiming 100000 x 100000 pixels: refused from the header, never decoded."""
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@unittest.skipUnless(COREL, "Corel-1K not found in $CBIR_ASSETS or ../shared/assets")
class ServeEndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-serve-")
        cls.photos = os.path.join(cls.tmp, "photos")
        os.makedirs(cls.photos)
        for n in NAMES:
            shutil.copy(os.path.join(SEED, n + ".jpg"), cls.photos)
        for i in range(0, 300, 20):  # 15 Corel photos of several classes
            shutil.copy(os.path.join(COREL, f"{i}.jpg"), os.path.join(cls.photos, f"corel{i}.jpg"))
        r = cbir(cls.tmp, "index", "photos", "--store", "store", "--model", MODEL)
        assert r.returncode == 0, r.stderr
        cls.outside = os.path.join(cls.tmp, "not-indexed")  # query images that are not in the store
        os.makedirs(cls.outside)
        for i in (401, 555, 777, 903):
            shutil.copy(os.path.join(COREL, f"{i}.jpg"), os.path.join(cls.outside, f"q{i}.jpg"))
        cls.server = Server(cls.tmp)
        cls.url = cls.server.url

    @classmethod
    def tearDownClass(cls):
        if cls.server.process.poll() is None:
            cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def assert_same_hits(self, answer, expected):
        got = [(hit["path"], hit["distance"]) for hit in answer["results"]]
        self.assertEqual([p for p, _ in got], [p for p, _ in expected])
        for (_, d), (_, e) in zip(got, expected):
            self.assertAlmostEqual(d, e, delta=1e-4 * max(1.0, e))

    def test_health_stats_and_page(self):
        self.assertEqual(request(self.url + "/health"), (200, {"status": "ok"}))
        status, stats = request(self.url + "/stats")
        self.assertEqual(status, 200)
        self.assertEqual(stats["images"], stats["indexed"])
        self.assertGreaterEqual(stats["images"], 22)
        self.assertEqual((stats["metric"], stats["dimension"], stats["index"]["spec"]), ("l2", 512, "HNSW32"))
        self.assertTrue(stats["model"]["untrained"])
        self.assertEqual(stats["store"], os.path.join(self.tmp, "store"))
        self.assertIn("GET /health", stats["requests"])
        status, page = request(self.url + "/")
        self.assertEqual(status, 200)
        self.assertIn(b'type="file"', page)

    def test_thumbnails(self):
        status, answer = post_image(self.url + "/search?k=1", os.path.join(self.photos, "dog1.jpg"))
        hit = answer["results"][0]
        with Image.open(os.path.join(self.photos, "dog1.jpg")) as original:
            width, height = original.size
        for size, expected in ((128, (128, round(128 * height / width))), (4 * width // 3, (width, height))):
            req = urllib.request.Request(self.url + f"{hit['thumbnail']}?size={size}")
            with urllib.request.urlopen(req, timeout=60) as response:
                self.assertEqual(response.headers["Content-Type"], "image/jpeg")
                with Image.open(io.BytesIO(response.read())) as thumbnail:
                    self.assertEqual((thumbnail.format, thumbnail.size), ("JPEG", expected))  # never enlarged
        self.assertEqual(request(self.url + f"{hit['thumbnail']}?size=5")[0], 400)
        self.assertEqual(request(self.url + "/images/999999/thumbnail")[0], 404)

    def test_search_by_uploaded_image_equals_cbir_query(self):
        for name in ("q401.jpg", "q903.jpg"):
            path = os.path.join(self.outside, name)
            expected = cli_query(self.tmp, path, k=8)
            status, raw = post_image(self.url + "/search?k=8", path)
            self.assertEqual(status, 200, raw)
            self.assertEqual(raw["query"], "embedded")
            self.assert_same_hits(raw, expected)
            status, multipart = post_multipart(self.url + "/search", {"k": "8"}, "image", path)
            self.assertEqual(status, 200, multipart)
            self.assert_same_hits(multipart, expected)

    def test_indexed_image_finds_itself_as_cbir_query_does(self):
        path = os.path.join(self.photos, "dog1.jpg")
        status, answer = post_image(self.url + "/search?k=5", path)
        self.assertEqual((status, answer["query"]), (200, "stored"))
        self.assertEqual(answer["results"][0]["distance"], 0.0)
        self.assert_same_hits(answer, cli_query(self.tmp, path, k=5))

    def test_search_by_vector_and_by_id(self):
        path = os.path.join(self.outside, "q555.jpg")
        r = cbir(self.tmp, "embed", path, "--format", "jsonl", "--model", MODEL)
        vector = json.loads(r.stdout)["vector"]
        status, answer = post_json(self.url + "/search", {"vector": vector, "k": 6})
        self.assertEqual((status, answer["query"]), (200, "vector"))
        self.assert_same_hits(answer, cli_query(self.tmp, path, k=6))
        first = answer["results"][0]
        status, by_id = post_json(self.url + "/search?k=3", {"id": first["id"]})
        self.assertEqual(status, 200)
        self.assertEqual(by_id["results"][0], {**first, "rank": 1, "distance": 0.0})
        # max_distance keeps only the hits at that distance or closer; ef is accepted.
        limit = answer["results"][2]["distance"]
        status, near = post_json(self.url + "/search", {"vector": vector, "k": 6, "max_distance": limit, "ef": 100})
        self.assertEqual([h["id"] for h in near["results"]], [h["id"] for h in answer["results"][:3]])

    def test_bad_requests_get_json_errors(self):
        cases = [
            (request(self.url + "/search", "POST", b"not an image at all", {"Content-Type": "image/jpeg"}), 422),
            (request(self.url + "/search", "POST", bomb_png(), {"Content-Type": "image/png"}), 422),
            (request(self.url + "/search", "POST", b"{oops", {"Content-Type": "application/json"}), 400),
            (post_json(self.url + "/search", {"vector": [1.0, 2.0]}), 400),
            (post_json(self.url + "/search", {"vector": "abc"}), 400),
            (post_json(self.url + "/search", {"id": 10 ** 9}), 404),
            (post_json(self.url + "/search", {"nothing": 1}), 400),
            (post_json(self.url + "/search", {"id": 1, "k": 2 ** 40}), 400),
            (post_json(self.url + "/search", {"id": 1, "k": "5"}), 400),
            (post_image(self.url + "/search?k=0", os.path.join(self.photos, "dog1.jpg")), 400),
            (post_image(self.url + "/search?k=ten", os.path.join(self.photos, "dog1.jpg")), 400),
            (request(self.url + "/search", "POST", b"", {"Content-Type": "image/jpeg"}), 400),
            (request(self.url + "/images/999999"), 404),
            (request(self.url + "/images/999999", "DELETE"), 404),
            (request(self.url + "/no/such/route"), 404),
        ]
        for (status, body), expected in cases:
            self.assertEqual(status, expected, body)
            self.assertEqual(body["status"], expected)
            self.assertTrue(body["error"])
        self.assertEqual(request(self.url + "/health")[0], 200)  # still serving

    def raw_request(self, text):
        """One request written by hand on a socket (no Content-Length unless `text` has one)."""
        port = int(self.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
            connection.sendall(text.encode())
            answer = b""
            while b"}" not in answer:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                answer += chunk
        head, _, body = answer.decode("latin-1").partition("\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    def test_a_post_without_a_body_is_an_empty_body(self):
        # curl -X POST '/images?path=…' sends neither a body nor a Content-Length.
        status, body = self.raw_request("POST /images?path=photos/dog2.jpg HTTP/1.1\r\nHost: localhost\r\n"
                                        "Connection: close\r\n\r\n")
        self.assertEqual((status, body["status"]), (200, "unchanged"), body)
        status, body = self.raw_request("POST /search HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        self.assertEqual(status, 400, body)
        self.assertIn("empty body", body["error"])  # not "could not be read"

    def test_unknown_parameters_are_refused_with_the_known_ones(self):
        dog = os.path.join(self.photos, "dog1.jpg")
        status, body = post_image(self.url + "/search?top_k=3", dog)
        self.assertEqual(status, 400, body)
        self.assertIn('"top_k"', body["error"])
        self.assertIn("k, ef, nprobe, max_distance", body["error"])
        status, body = post_json(self.url + "/search", {"id": 1, "min_similarity": 0.9})
        self.assertEqual(status, 400, body)
        self.assertIn('"min_similarity"', body["error"])
        status, body = request(self.url + "/images/1/thumbnail?width=64")
        self.assertEqual(status, 400, body)
        self.assertIn("takes size", body["error"])
        self.assertEqual(post_image(self.url + "/search?k=3", dog)[0], 200)  # known ones still work

    def test_the_page_asks_for_as_many_results_as_the_api_gives_by_default(self):
        page = request(self.url + "/")[1].decode()
        page_default = int(re.search(r'id="k" value="(\d+)"', page).group(1))
        status, answer = post_image(self.url + "/search", os.path.join(self.photos, "dog1.jpg"))
        self.assertEqual(status, 200)
        self.assertEqual(page_default, answer["k"])
        self.assertEqual(len(answer["results"]), page_default)
        self.assertEqual(request(self.url + "/stats")[1]["search"], {"k": answer["k"], "k_max": 10000})

    def test_paths_outside_the_roots_are_refused(self):
        os.symlink("/etc", os.path.join(self.photos, "etc-link"))
        with open(os.path.join(self.photos, "notes.txt"), "w") as f:
            f.write("text, not an image\n")
        cases = {
            "../../../../etc/hostname": 403,
            "/etc/hostname": 403,
            "photos/etc-link/hostname": 403,
            "photos/../../outside.jpg": 403,
            "photos/missing.jpg": 404,
            "photos/notes.txt": 422,
        }
        for path, expected in cases.items():
            status, body = post_json(self.url + "/images", {"path": path})
            self.assertEqual(status, expected, (path, body))
        status, body = request(self.url + "/images?path=" + urllib.parse.quote("/etc/passwd"), "POST", b"")
        self.assertEqual(status, 403, body)

    def test_upload_is_searchable_at_once_and_visible_to_cbir_query(self):
        path = os.path.join(self.outside, "q777.jpg")
        status, added = post_image(self.url + "/images", path)
        self.assertEqual((status, added["status"]), (201, "added"), added)
        self.assertTrue(added["path"].startswith(os.path.join(self.tmp, "store", "uploads") + "/"))
        status, answer = post_image(self.url + "/search?k=1", path)
        self.assertEqual(answer["results"][0]["id"], added["id"])
        self.assertEqual(answer["results"][0]["distance"], 0.0)
        self.assertEqual(post_image(self.url + "/images", path)[1]["status"], "unchanged")
        status, meta = request(self.url + f"/images/{added['id']}?vector=1")
        self.assertEqual(status, 200)
        with Image.open(path) as image:
            self.assertEqual((meta["width"], meta["height"], len(meta["vector"])), (*image.size, 512))
        with open(path, "rb") as f:
            self.assertEqual(request(self.url + meta["file"])[1], f.read())
        # The CLI, in another process, sees the upload while the server runs.
        hits = cli_query(self.tmp, path, k=1)
        self.assertEqual(hits[0][0], added["path"])
        self.assertAlmostEqual(hits[0][1], 0.0, delta=1e-3)

    def test_add_by_path_and_delete_every_way(self):
        for i in (610, 620, 630):
            shutil.copy(os.path.join(COREL, f"{i}.jpg"), os.path.join(self.photos, f"new{i}.jpg"))
        status, a = post_json(self.url + "/images", {"path": "photos/new610.jpg"})
        self.assertEqual((status, a["status"]), (201, "added"), a)
        self.assertEqual(a["path"], os.path.join(self.photos, "new610.jpg"))
        status, b = post_json(self.url + "/images", {"path": os.path.join(self.photos, "new620.jpg")})
        status, c = request(self.url + "/images?path=photos/new630.jpg", "POST", b"")
        self.assertEqual(status, 201, c)
        status, again = post_json(self.url + "/images", {"path": "photos/new610.jpg"})
        self.assertEqual((status, again["status"]), (200, "unchanged"))
        upload = post_image(self.url + "/images", os.path.join(COREL, "640.jpg"))[1]

        self.assertEqual(request(self.url + f"/images/{a['id']}", "DELETE")[0], 200)
        quoted = urllib.parse.quote(b["path"], safe="")
        self.assertEqual(request(self.url + f"/images/{quoted}", "DELETE")[0], 200)
        self.assertEqual(request(self.url + "/images?path=photos/new630.jpg", "DELETE")[0], 200)
        self.assertEqual(request(self.url + f"/images/{upload['id']}", "DELETE")[0], 200)
        for gone in (a, b, c, upload):
            self.assertEqual(request(self.url + f"/images/{gone['id']}")[0], 404)
            status, answer = post_json(self.url + "/search?k=50", {"vector": [0.5] * 512})
            self.assertNotIn(gone["id"], [h["id"] for h in answer["results"]])
        self.assertTrue(os.path.exists(os.path.join(self.photos, "new610.jpg")))  # the user's file stays
        self.assertFalse(os.path.exists(upload["path"]))  # the store's own copy goes
        self.assertEqual(request(self.url + f"/images/{a['id']}", "DELETE")[0], 404)

    def test_a_second_writer_is_refused_while_serving(self):
        for command in (["index", "photos"], ["serve", "--port", "0"]):
            r = cbir(self.tmp, *command, "--store", "store")
            self.assertEqual(r.returncode, 2, r.stderr)
            # It names the server and the way to add through it.
            self.assertIn(f"a cbir serve (pid {self.server.process.pid}) holds this store; add or remove images "
                          "through it", r.stderr)


@unittest.skipUnless(COREL, "Corel-1K not found in $CBIR_ASSETS or ../shared/assets")
class ServeLifecycle(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cbir-serve-life-")
        self.photos = os.path.join(self.tmp, "photos")
        os.makedirs(self.photos)
        for i in range(5):
            shutil.copy(os.path.join(COREL, f"{i * 100}.jpg"), self.photos)
        r = cbir(self.tmp, "index", "photos", "--store", "store", "--model", MODEL)
        self.assertEqual(r.returncode, 0, r.stderr)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_start_failures_are_reported(self):
        missing = os.path.join(self.tmp, "missing")
        r = cbir(self.tmp, "serve", "--store", missing, "--port", "0")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no cbir store", r.stderr)
        self.assertFalse(os.path.exists(missing))  # reported, not created
        shutil.copytree(os.path.join(self.tmp, "store"), os.path.join(self.tmp, "other"))
        server = Server(self.tmp)
        try:
            port = server.url.rsplit(":", 1)[1]
            r = cbir(self.tmp, "serve", "--store", "other", "--port", port)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(f"cannot listen on 127.0.0.1:{port}", r.stderr)
        finally:
            server.stop()

    def test_a_quiet_server_still_says_where_it_listens(self):
        server = Server(self.tmp, "-q")  # raises unless the "serving … at http://…" line came
        try:
            self.assertEqual(request(server.url + "/health")[0], 200)
        finally:
            code, stderr = server.stop()
        self.assertEqual(code, 0)
        self.assertEqual(len(stderr.strip().splitlines()), 1, stderr)  # that line, and nothing else

    def test_shutdown_saves_the_index_and_the_store_checks(self):
        server = Server(self.tmp, "--save-interval", "0")
        added = post_image(server.url + "/images", os.path.join(COREL, "950.jpg"))[1]
        code, stderr = server.stop(signal.SIGINT)
        self.assertEqual(code, 0, stderr)
        self.assertIn("stopped; 6 images", stderr)
        check = cbir(self.tmp, "check", "--store", "store")
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        r = cbir(self.tmp, "query", os.path.join(COREL, "950.jpg"), "--store", "store", "-k", "1", "--format", "jsonl",
                 "-v")
        self.assertNotIn("stale", r.stderr)  # the server wrote the index file at shutdown
        self.assertEqual(os.path.normpath(os.path.join(self.tmp, json.loads(r.stdout)["path"])), added["path"])

    def test_a_request_in_flight_is_answered_at_shutdown(self):
        big = os.path.join(self.tmp, "big.jpg")  # 24 MP: its decode keeps the request busy for a while
        Image.effect_noise((6000, 4000), 60).convert("RGB").save(big, quality=90)
        server = Server(self.tmp)
        answers = []
        client = threading.Thread(target=lambda: answers.append(post_image(server.url + "/search?k=3", big)))
        client.start()
        time.sleep(0.15)
        server.process.send_signal(signal.SIGTERM)
        client.join(60)
        code, stderr = server.wait()
        self.assertEqual(len(answers), 1)
        status, body = answers[0]
        self.assertEqual((status, body["query"], len(body["results"])), (200, "embedded", 3), body)
        self.assertEqual(code, 0, stderr)
        self.assertIn("stopping", stderr)

    @unittest.skipIf(os.environ.get("CBIR_TSAN"), "FAISS's k-means takes over 10 minutes under ThreadSanitizer")
    def test_ivf_store_takes_inserts_and_deletes(self):
        """FAISS's IVF lists change under the server's exclusive lock while searches go on."""
        store = os.path.join(self.tmp, "store")
        shutil.rmtree(store)
        r = cbir(self.tmp, "bench", "synth-store", "--store", store, "--count", "12000", "--index", "IVF64,Flat",
                 "--model", MODEL)
        self.assertEqual(r.returncode, 0, r.stderr)
        server = Server(self.tmp)
        try:
            status, stats = request(server.url + "/stats")
            self.assertEqual((stats["index"]["searched"], stats["images"]), ("ivf", 12000))
            added = post_image(server.url + "/images", os.path.join(COREL, "555.jpg"))[1]
            status, found = post_image(server.url + "/search?k=3&nprobe=64", os.path.join(COREL, "555.jpg"))
            self.assertEqual((found["index"], found["results"][0]["id"], found["results"][0]["distance"]),
                             ("ivf", added["id"], 0.0))
            self.assertEqual(request(server.url + f"/images/{added['id']}", "DELETE")[0], 200)
            status, found = post_json(server.url + "/search?k=3&nprobe=64", {"id": 1})
            self.assertNotIn(added["id"], [h["id"] for h in found["results"]])
            self.assertEqual(request(server.url + "/stats")[1]["indexed"], 12000)
        finally:
            code, stderr = server.stop()
        self.assertEqual(code, 0, stderr)
        check = cbir(self.tmp, "check", "--store", "store")
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_body_limit(self):
        """A body declared larger than --max-body-mb is refused from its headers, before it is read."""
        server = Server(self.tmp, "--max-body-mb", "1")
        try:
            port = int(server.url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
                connection.sendall(b"POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/jpeg\r\n"
                                   b"Content-Length: 2097152\r\n\r\n" + os.urandom(4096))
                answer = b""
                while b"}" not in answer:  # headers and JSON body may come in separate packets
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
                answer = answer.decode("latin-1")
            self.assertTrue(answer.startswith("HTTP/1.1 413"), answer)
            self.assertIn('"status":413', answer)
            small = os.path.join(COREL, "0.jpg")
            self.assertEqual(post_image(server.url + "/search", small)[0], 200)  # under the limit: served
        finally:
            server.stop()

    def test_parallel_searches_while_adding_and_removing(self):
        """4 threads search without pause while 2 threads add 30 Corel photos (uploads and paths) and
        1 removes some: every request succeeds, every added image is found by the search right after
        its add returns, and removed ones never come back."""
        server = Server(self.tmp)
        url = server.url
        errors = []
        searches = [0]
        stop = threading.Event()
        query_images = [os.path.join(SEED, n + ".jpg") for n in NAMES]
        vector = [0.7] * 512

        def searcher(n):
            i = 0
            while not stop.is_set():
                i += 1
                if i % 2:
                    status, body = post_image(url + "/search?k=5", query_images[(n + i) % len(query_images)])
                else:
                    status, body = post_json(url + "/search", {"vector": vector, "k": 20})
                if status != 200 or not body["results"] or not all(hit["path"] for hit in body["results"]):
                    errors.append(("search", status, body))  # a hit without its path would be a torn read
                searches[0] += 1

        added = {}
        lock = threading.Lock()

        def adder(numbers, by_path):
            for number in numbers:
                source = os.path.join(COREL, f"{number}.jpg")
                if by_path:
                    target = os.path.join(self.photos, f"added{number}.jpg")
                    shutil.copy(source, target)
                    status, body = post_json(url + "/images", {"path": target})
                else:
                    status, body = post_image(url + "/images", source)
                if status != 201:
                    errors.append(("add", number, status, body))
                    continue
                status, found = post_image(url + "/search?k=1", source)
                if status != 200 or found["results"][0]["id"] != body["id"] or found["results"][0]["distance"] != 0.0:
                    errors.append(("not found right after add", number, found))
                with lock:
                    added[number] = body["id"]

        removed = []

        def remover():
            while len(removed) < 5 and not stop.is_set():
                with lock:
                    candidates = [n for n in added if n not in removed]
                if not candidates:
                    time.sleep(0.05)
                    continue
                status, body = request(url + f"/images/{added[candidates[0]]}", "DELETE")
                if status != 200:
                    errors.append(("remove", status, body))
                removed.append(candidates[0])

        def recording(body, *args):  # an exception (a dropped connection) is an error, not a dead thread
            try:
                body(*args)
            except Exception as e:  # noqa: BLE001
                errors.append(("exception", repr(e)))

        searchers = [threading.Thread(target=recording, args=(searcher, n)) for n in range(4)]
        writers = [threading.Thread(target=recording, args=(adder, range(1, 300, 20), False)),
                   threading.Thread(target=recording, args=(adder, range(11, 300, 20), True)),
                   threading.Thread(target=recording, args=(remover,))]
        for t in searchers + writers:
            t.start()
        for t in writers:
            t.join(600)
        stop.set()
        for t in searchers:
            t.join(120)
        self.assertEqual(errors, [], "".join(server.stderr_lines[-60:]))
        self.assertEqual(len(added), 30)
        self.assertEqual(len(removed), 5)
        self.assertGreater(searches[0], 20)  # hundreds in a normal build, fewer under ThreadSanitizer
        status, stats = request(url + "/stats")
        self.assertEqual((stats["images"], stats["indexed"]), (5 + 30 - 5, 5 + 30 - 5))
        self.assertEqual(stats["requests"]["POST /search"]["errors"], 0)
        for number, image_id in added.items():
            status, found = post_image(url + "/search?k=1", os.path.join(COREL, f"{number}.jpg"))
            if number in removed:
                self.assertNotEqual(found["results"][0]["id"], image_id)
            else:
                self.assertEqual((found["results"][0]["id"], found["results"][0]["distance"]), (image_id, 0.0))
        code, stderr = server.stop()
        self.assertEqual(code, 0, stderr)
        check = cbir(self.tmp, "check", "--store", "store")
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


if __name__ == "__main__":
    unittest.main()
