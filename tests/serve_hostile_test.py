#!/usr/bin/env python3
"""`cbir serve` against hostile clients and a hostile file system: the real server on a loopback
port, attacked by raw sockets (chunked bodies past the limit, slow headers, idle connections, forged
Host and Origin headers), with catalogued files swapped for symlinks, names that are not UTF-8, and
its store removed under it. Every attack is bounded in count and time and targets 127.0.0.1 only.

Run by ctest (CBIR_BIN_DIR, CBIR_SOURCE_DIR); Debian's python3 for PIL.
"""
import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_test import (CBIR, COREL, MODEL, NAMES, SEED, Server, cbir, clean_env, post_image, post_json,  # noqa: E402
                        request)

LATIN1_NAME = b"caf\xe9 cr\xe8me.jpg"  # a legal Linux file name that is not UTF-8


def port_of(url):
    return int(url.rsplit(":", 1)[1])


def connect(url, timeout=30):
    return socket.create_connection(("127.0.0.1", port_of(url)), timeout=timeout)


def read_response(sock, timeout=30):
    """(status, headers, body) of one HTTP response read off a raw socket; None when the server closed
    the connection without answering."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, value = line.split(":", 1)
        headers.setdefault(name.strip().lower(), value.strip())
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def send_chunked_body(url, method, path, cap_bytes):
    """Sends a chunked body of random bytes until the server answers or cap_bytes are sent (then ends
    it). Returns (status of the answer or None, body bytes sent before the answer came)."""
    sock = connect(url, timeout=60)
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port_of(url)}\r\nContent-Type: image/jpeg\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n".encode())
    data = os.urandom(1 << 16)
    frame = b"%x\r\n" % len(data) + data + b"\r\n"
    answered = threading.Event()
    answer = {}

    def reader():
        try:
            answer["response"] = read_response(sock, 120)
        except OSError as e:
            answer["error"] = e
        answered.set()

    thread = threading.Thread(target=reader)
    thread.start()
    sent = 0
    try:
        while not answered.is_set() and sent < cap_bytes:
            sock.sendall(frame)
            sent += len(data)
        if not answered.is_set():
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server answered and closed
    thread.join(120)
    sock.close()
    response = answer.get("response")
    return (response[0] if response else None), sent


def multipart(files):
    boundary = uuid.uuid4().hex
    parts = []
    for name, filename, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f'Content-Type: image/jpeg\r\n\r\n'.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


class SlowSenders:
    """Sockets that each send a request's headers one byte at a time, every `interval` seconds."""

    def __init__(self, url, count, interval=0.5):
        self.sockets = [connect(url) for _ in range(count)]
        self.stop = threading.Event()
        self.closed_by_server = 0
        self.answers = []
        head = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port_of(url)}\r\nX-Padding: {'x' * 200}\r\n\r\n".encode()

        def drip():
            position = 0
            while not self.stop.is_set() and self.sockets:
                for sock in list(self.sockets):
                    try:
                        sock.send(head[position % len(head):][:1])
                    except OSError:
                        self.sockets.remove(sock)
                        self.closed_by_server += 1
                position += 1
                self.stop.wait(interval)

        self.thread = threading.Thread(target=drip, daemon=True)
        self.thread.start()

    def close(self):
        self.stop.set()
        self.thread.join(10)
        for sock in self.sockets:
            sock.close()


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@unittest.skipUnless(COREL, "Corel-1K not found in $CBIR_ASSETS or ../shared/assets")
class HostileClients(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-hostile-")
        cls.photos = os.path.join(cls.tmp, "photos")
        os.makedirs(cls.photos)
        for n in NAMES:
            shutil.copy(os.path.join(SEED, n + ".jpg"), cls.photos)
        r = cbir(cls.tmp, "index", "photos", "--store", "store", "--model", MODEL)
        assert r.returncode == 0, r.stderr
        # A copy for the tests that need a server of their own (one at a time: a store has one writer).
        cls.spare = os.path.join(cls.tmp, "spare")
        shutil.copytree(os.path.join(cls.tmp, "store"), os.path.join(cls.spare, "store"))
        cls.server = Server(cls.tmp)
        cls.url = cls.server.url

    @classmethod
    def tearDownClass(cls):
        if cls.server.process.poll() is None:
            cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def stopped_within(self, server, seconds):
        """Sends SIGTERM; the exit code and how long the server took to exit (killed past `seconds`)."""
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        try:
            code = server.process.wait(seconds)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            code = None
        return code, time.monotonic() - started

    # Item 2: every body is counted as it is read, whatever its framing and route.
    def test_chunked_bodies_past_the_limit_are_refused_as_they_come(self):
        server = Server(self.spare, "--max-body-mb", "1")
        try:
            before = peak_rss_kib(server.process.pid)
            for method, path in (("POST", "/search"), ("POST", "/images"), ("DELETE", "/images/1"),
                                 ("POST", "/no/such/route")):
                status, sent = send_chunked_body(server.url, method, path, cap_bytes=64 << 20)
                self.assertEqual(status, 413, (method, path))
                self.assertLess(sent, 32 << 20, (method, path))  # answered long before the body ended
            growth_mib = (peak_rss_kib(server.process.pid) - before) / 1024
            self.assertLess(growth_mib, 32, "the server held the bodies")
            self.assertEqual(post_image(server.url + "/search?k=1", os.path.join(SEED, "dog1.jpg"))[0], 200)
        finally:
            server.stop()

    def test_bodies_held_at_once_are_bounded(self):
        """With --request-threads 1 and --max-body-mb 1, the request bodies and files being sent held
        together may not pass 1 MiB."""
        server = Server(self.spare, "--request-threads", "1", "--max-body-mb", "1")
        try:
            head = (f"POST /search HTTP/1.1\r\nHost: 127.0.0.1:{port_of(server.url)}\r\nContent-Type: image/jpeg\r\n"
                    "Content-Length: 900000\r\n\r\n").encode()
            first = connect(server.url)
            first.sendall(head + b"\0" * 700000)  # the rest comes later
            deadline = time.monotonic() + 20  # until the server holds what it has been sent (a busy machine is slow)
            while request(server.url + "/stats")[1]["connections"]["body_bytes"] < 700000:
                self.assertLess(time.monotonic(), deadline, "the server did not read the first body")
                time.sleep(0.05)
            second = connect(server.url)
            try:
                second.sendall(head + b"\0" * 900000)
            except OSError:
                pass  # refused and closed while sending
            status, headers, body = read_response(second, 10)
            self.assertEqual((status, json.loads(body)["status"]), (503, 503))
            first.sendall(b"\0" * 200000)
            self.assertEqual(read_response(first, 10)[0], 422)  # read whole: zeros are no image
            first.close()
            second.close()
            ids = {os.path.basename(hit["path"]): hit["id"]
                   for hit in post_json(server.url + "/search", {"id": 1, "k": 50})[1]["results"]}
            for name, expected in (("cat2.jpg", 503), ("dog1.jpg", 200)):  # 1.2 MB and 70 KB
                self.assertEqual(request(server.url + f"/images/{ids[name]}/file")[0], expected, name)
        finally:
            server.stop()

    def test_requests_refused_before_their_body_is_read(self):
        gzip_headers = {"Content-Type": "image/jpeg", "Content-Encoding": "gzip"}
        self.assertEqual(request(self.url + "/search", "POST", b"\x1f\x8b" + b"\0" * 30, gzip_headers)[0], 415)
        self.assertEqual(request(self.url + "/images/1", "PUT", b"x")[0], 405)
        self.assertEqual(request(self.url + "/health")[0], 200)

    # Item 5: a file is served only if it is what the catalogue says.
    def test_a_folder_swapped_for_a_symlink_during_an_add_lets_nothing_in(self):
        """A folder under the root flips between itself and a symlink to a folder outside while a file
        in it is added by path, over and over (bounded: 30 s): the outside file is never catalogued."""
        root = os.path.join(self.tmp, "photos")
        outside = tempfile.mkdtemp(prefix="cbir-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        shutil.copy(os.path.join(COREL, "777.jpg"), os.path.join(outside, "a.jpg"))
        with open(os.path.join(outside, "a.jpg"), "rb") as f:
            outside_sha = hashlib.sha256(f.read()).hexdigest()
        real, link, flipping = [os.path.join(root, n) for n in ("race_dir", "race_link", "race")]
        os.makedirs(real)
        shutil.copy(os.path.join(SEED, "dog1.jpg"), os.path.join(real, "a.jpg"))
        os.symlink(outside, link)
        done = threading.Event()

        def flip():
            while not done.is_set():
                for source in (real, link):
                    try:
                        os.rename(source, flipping)
                        os.rename(flipping, source)
                    except OSError:
                        pass
        flipper = threading.Thread(target=flip)
        flipper.start()
        seen = set()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status, answer = post_json(self.url + "/images", {"path": "photos/race/a.jpg"})
                if status in (200, 201):
                    seen.add(request(self.url + f"/images/{answer['id']}")[1]["sha256"])
                    self.assertNotIn(outside_sha, seen, "a file outside the root was catalogued")
        finally:
            done.set()
            flipper.join()
        self.assertTrue(seen, "no add went through while the folder flipped")
        for target in (os.path.join(real, "a.jpg"), os.path.join(root, "race", "a.jpg")):
            request(self.url + "/images?path=" + urllib.parse.quote(os.path.relpath(target, self.tmp)), "DELETE")

    def test_a_catalogued_file_swapped_for_a_symlink_is_not_served(self):
        victim = os.path.join(self.photos, "person2.jpg")
        status, found = post_image(self.url + "/search?k=1", victim)
        image = found["results"][0]
        self.assertEqual(request(self.url + image["file"])[0], 200)
        original = os.stat(victim)
        with open(victim, "rb") as f:
            original_bytes = f.read()
        secret = os.path.join(self.tmp, "secret.txt")
        with open(secret, "wb") as f:
            f.write(b"TOP SECRET " * 100)
        try:
            os.remove(victim)
            os.symlink(secret, victim)
            for route in (image["file"], image["thumbnail"]):
                status, body = request(self.url + route)
                self.assertEqual(status, 410, route)
                self.assertNotIn(b"SECRET", json.dumps(body).encode())
            # Same size and mtime, other bytes: only the sha256 tells.
            os.remove(victim)
            with open(victim, "wb") as f:
                f.write(bytes(b ^ 0xFF for b in original_bytes))
            os.utime(victim, ns=(original.st_atime_ns, original.st_mtime_ns))
            self.assertEqual(request(self.url + image["file"])[0], 410)
            os.remove(victim)
            os.mkfifo(victim)  # would block a reader that waits for a writer
            status, _ = timed(lambda: request(self.url + image["thumbnail"]))[0]
            self.assertEqual(status, 410)
        finally:
            os.remove(victim)
            with open(victim, "wb") as f:
                f.write(original_bytes)
            os.utime(victim, ns=(original.st_atime_ns, original.st_mtime_ns))
        status, served = request(self.url + image["file"])
        self.assertEqual((status, served), (200, original_bytes))

    # Item 6: names that are not UTF-8 travel as "path" (display) and "path_bytes" (exact, base64).
    def test_file_names_that_are_not_utf8(self):
        latin1 = os.path.join(os.fsencode(self.photos), LATIN1_NAME)
        shutil.copy(os.path.join(COREL, "150.jpg"), latin1)
        r = cbir(self.tmp, "index", "photos", "--store", "spare/store")
        self.assertEqual(r.returncode, 0, r.stderr)
        server = Server(self.spare, "--root", self.photos)
        try:
            self.check_names_that_are_not_utf8(server.url, latin1)
        finally:
            server.stop()

    def check_names_that_are_not_utf8(self, url, latin1):
        status, found = post_image(url + "/search?k=3", latin1)
        self.assertEqual(status, 200, found)
        hit = found["results"][0]
        self.assertEqual(base64.b64decode(hit["path_bytes"]), latin1)
        self.assertIn("\ufffd", hit["path"])
        self.assertNotIn("path_bytes", found["results"][1])  # only where it is needed
        status, meta = request(url + f"/images/{hit['id']}")
        self.assertEqual((status, base64.b64decode(meta["path_bytes"])), (200, latin1))

        # Removed by its exact bytes, then added back by them, then removed by its %-escaped path.
        quoted = urllib.parse.quote(hit["path_bytes"], safe="")
        status, removed = request(url + f"/images?path_bytes={quoted}", "DELETE")
        self.assertEqual((status, removed["status"], base64.b64decode(removed["path_bytes"])), (200, "removed", latin1))
        self.assertEqual(request(url + f"/images/{hit['id']}")[0], 404)
        status, added = post_json(url + "/images", {"path_bytes": hit["path_bytes"]})
        self.assertEqual((status, base64.b64decode(added["path_bytes"])), (201, latin1), added)
        status, removed = request(url + "/images/" + urllib.parse.quote(latin1, safe=""), "DELETE")
        self.assertEqual((status, removed["id"]), (200, added["id"]))
        status, added = request(url + f"/images?path_bytes={quoted}", "POST")
        self.assertEqual(status, 201, added)

        # The CLI's JSON printers: the same rule, and the bytes name a file that exists.
        for fmt in ("jsonl", "json"):
            r = subprocess.run([CBIR, "query", latin1, "--store", "spare/store", "-k", "2", "--format", fmt],
                               cwd=self.tmp, capture_output=True, env=clean_env())
            self.assertEqual(r.returncode, 0, r.stderr)
            rows = json.loads(r.stdout) if fmt == "json" else [json.loads(line) for line in r.stdout.splitlines()]
            first = rows[0]
            self.assertTrue(os.path.exists(os.path.join(os.fsencode(self.tmp), base64.b64decode(first["path_bytes"]))))
            self.assertEqual(base64.b64decode(first["query_bytes"]), latin1)

    # Item 7: slow and idle clients.
    def test_slow_header_senders_do_not_stop_other_requests(self):
        slow = SlowSenders(self.url, 16)  # twice --request-threads
        try:
            time.sleep(1)
            for _ in range(5):
                (status, _), seconds = timed(lambda: request(self.url + "/health"))
                self.assertEqual(status, 200)
                self.assertLess(seconds, 2)
                time.sleep(0.3)
        finally:
            slow.close()

    def test_a_request_must_arrive_within_its_deadline(self):
        server = Server(self.spare, "--request-timeout", "2")
        try:
            sock = connect(server.url)
            started = time.monotonic()
            sock.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nabc")
            status, headers, body = read_response(sock, 20)
            self.assertEqual((status, json.loads(body)["status"]), (408, 408))
            self.assertLess(time.monotonic() - started, 6)
            self.assertEqual(sock.recv(100), b"")  # and closed
            sock.close()
        finally:
            server.stop()

    def test_idle_connections_make_room_for_new_ones(self):
        idle = []
        try:
            for _ in range(300):  # past the 128 connections allowed
                idle.append(connect(self.url))
            (status, _), seconds = timed(lambda: request(self.url + "/health"))
            self.assertEqual(status, 200)
            self.assertLess(seconds, 3)
            deadline = time.monotonic() + 10  # every connection accepted (a busy machine accepts slowly)
            while True:
                connections = request(self.url + "/stats")[1]["connections"]
                if connections["evicted"] >= 300 - connections["limit"] or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertLessEqual(connections["open"], connections["limit"])
            self.assertGreaterEqual(connections["evicted"], 300 - connections["limit"])
            closed = 0
            for sock in idle[:100]:  # the longest idle were closed by the server
                sock.settimeout(5)
                try:
                    closed += sock.recv(1) == b""
                except OSError:
                    closed += 1
            self.assertEqual(closed, 100)
        finally:
            for sock in idle:
                sock.close()

    def test_past_the_limit_of_busy_connections_a_client_gets_503(self):
        server = Server(self.spare, "--max-connections", "8")
        slow = SlowSenders(server.url, 8)
        try:
            time.sleep(1)
            sock = connect(server.url)
            response = read_response(sock, 10)
            self.assertIsNotNone(response)
            status, headers, body = response
            self.assertEqual((status, headers.get("connection"), json.loads(body)["status"]), (503, "close", 503))
            sock.close()
            slow.close()
            time.sleep(0.5)
            self.assertEqual(request(server.url + "/health")[0], 200)
        finally:
            slow.close()
            server.stop()

    def test_sigterm_with_held_connections_stops_promptly(self):
        server = Server(self.spare)
        slow = SlowSenders(server.url, 8)
        idle = [connect(server.url) for _ in range(100)]
        try:
            time.sleep(1)
            code, seconds = self.stopped_within(server, 30)
            self.assertEqual(code, 0)
            self.assertLess(seconds, 5)
        finally:
            slow.close()
            for sock in idle:
                sock.close()
            server.wait()

    # Smaller items.
    def test_a_post_without_a_body_has_an_empty_body(self):
        shutil.copy(os.path.join(COREL, "260.jpg"), os.path.join(self.photos, "nobody.jpg"))
        for path, expected in (("/images?path=photos/nobody.jpg", 201), ("/search", 400)):
            sock = connect(self.url)
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port_of(self.url)}\r\n\r\n".encode())
            status, headers, body = read_response(sock, 5)  # not after a read timeout
            self.assertEqual(status, expected, body)
            sock.close()
        self.assertIn("send an image", json.loads(body)["error"])

    def test_a_second_image_in_a_multipart_request_is_refused(self):
        with open(os.path.join(SEED, "dog1.jpg"), "rb") as f:
            dog = f.read()
        with open(os.path.join(SEED, "cat1.jpg"), "rb") as f:
            cat = f.read()
        for files in ([("image", "a.jpg", dog), ("image", "b.jpg", cat)], [("image", "a.jpg", dog), ("other", "b.jpg", cat)]):
            body, headers = multipart(files)
            for route in ("/search", "/images"):
                status, answer = request(self.url + route, "POST", body, headers)
                self.assertEqual(status, 400, answer)
                self.assertIn("one image per request", answer["error"])

    def test_vectors_out_of_float_range_are_refused(self):
        for vector in ([1e19] * 512, [3e38] + [0.0] * 511, [1e39] + [0.0] * 511):
            status, answer = post_json(self.url + "/search", {"vector": vector, "k": 5})
            self.assertEqual(status, 400, answer)
        status, answer = post_json(self.url + "/search", {"vector": [1e17] * 512, "k": 5})
        self.assertEqual(status, 200, answer)
        self.assertTrue(all(isinstance(hit["distance"], float) for hit in answer["results"]), answer)
        distances = [hit["distance"] for hit in answer["results"]]
        self.assertEqual(distances, sorted(distances))

    def test_large_json_bodies_and_range_requests_do_not_multiply_memory(self):
        before = peak_rss_kib(self.server.process.pid)
        nested = b"[" * (8 << 20) + b"]" * (8 << 20)  # parsed, ~40 times its size
        for path in ("/search", "/images"):
            status, answer = request(self.url + path, "POST", nested, {"Content-Type": "application/json"})
            self.assertEqual(status, 413, answer)
        # Ranges are ignored: the whole file, once, not thousands of copies of it.
        sock = connect(self.url)
        ranges = "bytes=" + ",".join(["0-"] * 2000)
        sock.sendall(f"GET /images/1/file HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: {ranges}\r\n"
                     "Connection: close\r\n\r\n".encode())
        status, headers, body = read_response(sock, 30)
        sock.close()
        self.assertEqual(status, 200)
        self.assertEqual(len(body), request(self.url + "/images/1")[1]["size"])
        growth_mib = (peak_rss_kib(self.server.process.pid) - before) / 1024
        self.assertLess(growth_mib, 100, "the server multiplied a body or a file")

    def test_identical_uploads_at_once_add_one_image(self):
        path = os.path.join(COREL, "333.jpg")
        start = threading.Barrier(4)
        answers = []

        def upload():
            start.wait()
            answers.append(post_image(self.url + "/images", path))

        threads = [threading.Thread(target=upload) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(sorted((status, body["status"]) for status, body in answers),
                         [(200, "unchanged")] * 3 + [(201, "added")], answers)
        self.assertEqual(len({body["id"] for _, body in answers}), 1)

    def test_host_and_origin_of_other_sites_are_refused(self):
        port = port_of(self.url)
        for host in ("evil.example", f"evil.example:{port}", f"rebind.attacker.test:{port}"):
            status, answer = request(self.url + "/stats", headers={"Host": host})
            self.assertEqual(status, 403, host)
            self.assertIn("Host", answer["error"])
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LocalHost"):
            self.assertEqual(request(self.url + "/health", headers={"Host": host})[0], 200, host)

        image = os.path.join(COREL, "444.jpg")
        with open(image, "rb") as f:
            data = f.read()
        foreign = {"Content-Type": "image/jpeg", "Origin": "http://evil.example"}
        self.assertEqual(request(self.url + "/images", "POST", data, foreign)[0], 403)
        self.assertEqual(request(self.url + "/search", "POST", data, foreign)[0], 403)
        self.assertEqual(request(self.url + "/images/1", "DELETE", None, {"Origin": f"http://localhost:{port}"})[0], 403)
        self.assertEqual(post_image(self.url + "/search?k=1", image)[1]["query"], "embedded")  # nothing was added
        self.assertEqual(request(self.url + "/health", headers={"Origin": "http://evil.example"})[0], 200)  # GET
        own = {"Content-Type": "image/jpeg", "Origin": f"http://127.0.0.1:{port}"}
        status, added = request(self.url + "/images", "POST", data, own)
        self.assertEqual((status, added["status"]), (201, "added"))


@unittest.skipUnless(COREL, "Corel-1K not found in $CBIR_ASSETS or ../shared/assets")
class StoreRemovedWhileServing(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cbir-hostile-store-")
        self.photos = os.path.join(self.tmp, "photos")
        os.makedirs(self.photos)
        for n in NAMES[:4]:
            shutil.copy(os.path.join(SEED, n + ".jpg"), self.photos)
        r = cbir(self.tmp, "index", "photos", "--store", "store", "--model", MODEL)
        self.assertEqual(r.returncode, 0, r.stderr)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_a_catalogue_restored_in_place_while_served_is_noticed(self):
        store = os.path.join(self.tmp, "store")
        backup = os.path.join(self.tmp, "backup.sqlite")
        with sqlite3.connect(os.path.join(store, "catalogue.sqlite")) as live, sqlite3.connect(backup) as copy:
            live.backup(copy)
        more = os.path.join(self.tmp, "more")
        os.makedirs(more)
        for n in NAMES[4:]:
            shutil.copy(os.path.join(SEED, n + ".jpg"), more)
        self.assertEqual(cbir(self.tmp, "index", "more", "--store", "store", "--model", MODEL).returncode, 0)
        server = Server(self.tmp, "--save-interval", "0")
        try:
            # A backup restored in place (sqlite3's .restore): the file keeps its inode.
            with sqlite3.connect(backup) as old, sqlite3.connect(os.path.join(store, "catalogue.sqlite")) as live:
                old.backup(live)
            status, answer = post_image(server.url + "/images", os.path.join(COREL, "10.jpg"))
            self.assertEqual(status, 503, answer)
            self.assertEqual(request(server.url + "/health")[0], 503)
        finally:
            code, stderr = server.stop()
        self.assertEqual(code, 0, stderr)
        # The server's index, of the rows before the restore, was not saved as the restored one's.
        for image in (os.path.join("photos", NAMES[0] + ".jpg"), os.path.join(COREL, "10.jpg")):
            approx = cbir(self.tmp, "query", image, "--store", "store", "--format", "tsv")
            exact = cbir(self.tmp, "query", image, "--store", "store", "--format", "tsv", "--exact")
            self.assertEqual([l.split("\t")[3] for l in approx.stdout.splitlines()],
                             [l.split("\t")[3] for l in exact.stdout.splitlines()])
        self.assertEqual(cbir(self.tmp, "check", "--store", "store").returncode, 0)

    def test_a_catalogue_truncated_or_copied_over_in_place_takes_no_write(self):
        # SQLite reads the server's own recent pages from its -wal file, so the catalogue's generation
        # and token still look right: the file itself must be seen to have changed.
        other = os.path.join(self.tmp, "other")
        os.makedirs(os.path.join(other, "photos"))
        shutil.copy(os.path.join(SEED, NAMES[5] + ".jpg"), os.path.join(other, "photos"))
        self.assertEqual(cbir(other, "index", "photos", "--store", "store", "--model", MODEL).returncode, 0)
        catalogue = os.path.join(self.tmp, "store", "catalogue.sqlite")
        for damage in ("truncate", "copy"):
            with self.subTest(damage):
                server = Server(self.tmp, "--save-interval", "0")
                try:
                    self.assertEqual(post_image(server.url + "/images", os.path.join(COREL, "10.jpg"))[0], 201)
                    if damage == "truncate":
                        os.truncate(catalogue, 0)
                    else:
                        with open(os.path.join(other, "store", "catalogue.sqlite"), "rb") as f, open(catalogue, "r+b") as out:
                            out.truncate(0)
                            out.write(f.read())
                    status, answer = post_image(server.url + "/images", os.path.join(COREL, "20.jpg"))
                    self.assertEqual(status, 503, answer)
                    self.assertEqual(request(server.url + "/health")[0], 503)
                finally:
                    code, stderr = server.stop()
                self.assertEqual(code, 0, stderr)
                self.assertIn("written by another program", stderr)
                # Start again from a sound store for the next round.
                shutil.rmtree(os.path.join(self.tmp, "store"))
                self.assertEqual(cbir(self.tmp, "index", "photos", "--store", "store", "--model", MODEL).returncode, 0)

    def test_an_index_file_overwritten_in_place_while_served_changes_no_answer(self):
        index_file = os.path.join(self.tmp, "store", "index.hnsw")
        size = os.path.getsize(index_file)
        server = Server(self.tmp, "--save-interval", "0")
        try:
            status, before = post_image(server.url + "/search", os.path.join(self.photos, NAMES[1] + ".jpg"))
            self.assertEqual(status, 200, before)
            # What cp, rsync --inplace or a restore does to the file a server holds: truncate, then
            # write other bytes of the same length. A mapping would fault (SIGBUS) or read them unchecked.
            with open(index_file, "r+b") as f:
                f.truncate(0)
                f.flush()
                os.fsync(f.fileno())
                status, during = post_image(server.url + "/search", os.path.join(self.photos, NAMES[1] + ".jpg"))
                self.assertEqual(status, 200, during)
                f.write(bytes([0x5A]) * size)
            status, after = post_image(server.url + "/search", os.path.join(self.photos, NAMES[1] + ".jpg"))
            self.assertEqual(status, 200, after)
            self.assertEqual(during["results"], before["results"])
            self.assertEqual(after["results"], before["results"])
        finally:
            code, stderr = server.stop()
        self.assertEqual(code, 0, stderr)

    def test_writes_are_refused_and_the_new_store_is_left_alone(self):
        server = Server(self.tmp, "--save-interval", "1")
        store = os.path.join(self.tmp, "store")
        try:
            self.assertEqual(post_image(server.url + "/images", os.path.join(COREL, "10.jpg"))[0], 201)
            shutil.rmtree(store)
            status, answer = post_image(server.url + "/images", os.path.join(COREL, "20.jpg"))
            self.assertEqual(status, 503, answer)
            self.assertFalse(os.path.exists(store))  # nothing re-created there
            self.assertEqual(request(server.url + "/health")[0], 503)

            r = cbir(self.tmp, "index", "photos", "--store", "store", "--model", MODEL)
            self.assertEqual(r.returncode, 0, r.stderr)  # the lock is a new file: the server holds none
            index_file = os.path.join(store, "index.hnsw")
            with open(index_file, "rb") as f:
                written = hashlib.sha256(f.read()).hexdigest()
            self.assertEqual(post_image(server.url + "/images", os.path.join(COREL, "30.jpg"))[0], 503)
            self.assertEqual(request(server.url + "/images/1", "DELETE")[0], 503)
            time.sleep(2.5)  # two save intervals
        finally:
            code, stderr = server.stop()
        self.assertEqual(code, 0, stderr)
        self.assertIn("removed, replaced or written by another program", stderr)
        with open(index_file, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), written)
        check = cbir(self.tmp, "check", "--store", "store")
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertFalse(os.path.exists(os.path.join(store, "uploads")))


if __name__ == "__main__":
    unittest.main()
