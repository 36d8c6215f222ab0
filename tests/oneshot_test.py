#!/usr/bin/env python3
"""One-shot `cbir query` through a running `cbir serve` (its local socket, lib/serve/served_query.h):
byte-identical output to the same query run without a server (several formats, stdin lists, exit
codes, both binaries), answered by the server without loading LibTorch; and a local search whenever
the server must not answer: killed (stale socket), a socket that is not one or is open to others,
another store's server, a catalogue changed since the server's index was saved, another precision.

Run by ctest (CBIR_BIN_DIR, CBIR_SOURCE_DIR); standard library only.
"""
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_test import BIN, CBIR, COREL, MODEL, NAMES, SEED, Server, clean_env, request  # noqa: E402

CBIR_QUERY = os.path.join(BIN, "cbir-query")
SOCKET = os.path.join("store", "serve", "query.sock")


def run_query(cwd, args, stdin=None, extra_env=None, binary=None):
    """(exit code, stdout bytes, stderr bytes) of `cbir query ARGS --store store`."""
    env = clean_env()
    env.update(extra_env or {})
    command = [binary] if binary else [CBIR, "query"]
    r = subprocess.run(command + list(args) + ["--store", "store"], cwd=cwd, env=env, input=stdin,
                       capture_output=True, timeout=300)
    return r.returncode, r.stdout, r.stderr


def local_socket_count(url):
    """Searches answered over the local socket: (requests, errors)."""
    status, stats = request(url + "/stats")
    assert status == 200, stats
    route = stats["requests"].get("POST /search (local socket)", {})
    return route.get("count", 0), route.get("errors", 0)


@unittest.skipUnless(COREL, "Corel-1K not found in $CBIR_ASSETS or ../shared/assets")
class OneShotThroughServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cbir-oneshot-")
        photos = os.path.join(cls.tmp, "photos")
        os.makedirs(photos)
        for n in NAMES:
            shutil.copy(os.path.join(SEED, n + ".jpg"), photos)
        for i in range(0, 200, 25):
            shutil.copy(os.path.join(COREL, f"{i}.jpg"), os.path.join(photos, f"corel{i}.jpg"))
        r = subprocess.run([CBIR, "index", "photos", "--store", "store", "--model", MODEL, "-q"], cwd=cls.tmp,
                           env=clean_env(), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        os.makedirs(os.path.join(cls.tmp, "outside"))
        for i in (401, 555, 903):  # query images that are not in the store
            shutil.copy(os.path.join(COREL, f"{i}.jpg"), os.path.join(cls.tmp, "outside", f"q{i}.jpg"))
        new = ["outside/q401.jpg", "outside/q903.jpg"]
        stored = "photos/dog1.jpg"
        first = run_query(cls.tmp, [new[0], "--format", "tsv"])
        assert first[0] == 0, first
        distances = sorted(float(line.split(b"\t")[2]) for line in first[1].splitlines()[1:])
        cut = repr(distances[3])  # a --max-distance that keeps some hits and drops others
        # (arguments, stdin, binary): formats, k, ef, max-distance, stdin lists, no hit (exit 1).
        cls.cases = [
            ([*new, stored, "--format", "tsv"], None, None),
            ([*new, stored, "--format", "jsonl", "-k", "5"], None, None),
            ([new[0], "--format", "csv", "--max-distance", cut], None, None),
            ([new[1], stored, "--format", "json", "--ef", "32"], None, None),
            ([*new, "--format", "table"], None, None),
            (["-", "-0", "--format", "paths", "-k", "3"], "\0".join(new + [stored]).encode(), None),
            (["-", "--format", "tsv"], "\n".join(new).encode() + b"\n", None),
            ([new[0], "--format", "tsv", "--max-distance", "0"], None, None),  # no hit: exit 1
            ([new[1], "--format", "jsonl"], None, CBIR_QUERY),
        ]
        cls.expected = [run_query(cls.tmp, args, stdin, binary=binary) for args, stdin, binary in cls.cases]
        assert cls.expected[7][0] == 1, cls.expected[7]
        assert all(e[0] == 0 for i, e in enumerate(cls.expected) if i != 7), cls.expected

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def assert_local(self, reason):
        """The query runs here (the -v line says why) and prints exactly the reference (stderr: its
        lines, among -v's)."""
        code, out, err = run_query(self.tmp, self.cases[0][0] + ["-v"])
        self.assertEqual((code, out), self.expected[0][:2])
        lines = err.splitlines()
        for line in self.expected[0][2].splitlines():
            self.assertIn(line, lines)
        self.assertIn(b"searching here, not through a server: ", err)
        self.assertIn(reason.encode(), err)
        self.assertNotIn(b"answered by the server", err)

    def assert_served(self):
        code, _, err = run_query(self.tmp, self.cases[0][0] + ["-v"])
        self.assertEqual(code, 0)
        self.assertIn(b"3 queries answered by the server at " + self.path(SOCKET).encode(), err)

    def test_answers_are_byte_identical_and_need_no_libtorch(self):
        server = Server(self.tmp)
        try:
            folder, sock = os.stat(self.path("store", "serve")), os.stat(self.path(SOCKET))
            self.assertTrue(stat.S_ISDIR(folder.st_mode) and stat.S_ISSOCK(sock.st_mode))
            self.assertEqual((stat.S_IMODE(folder.st_mode), stat.S_IMODE(sock.st_mode)), (0o700, 0o600))
            self.assertEqual((folder.st_uid, sock.st_uid), (os.geteuid(), os.geteuid()))
            self.assertEqual(request(server.url + "/stats")[1]["local_socket"], self.path(SOCKET))

            before, _ = local_socket_count(server.url)
            images = 0
            for (args, stdin, binary), expected in zip(self.cases, self.expected):
                self.assertEqual(run_query(self.tmp, args, stdin, binary=binary), expected, args)
                images += len(stdin.replace(b"\0", b"\n").split()) if stdin else sum(a.endswith(".jpg") for a in args)
            after, errors = local_socket_count(server.url)
            self.assertEqual((after - before, errors), (images, 0))  # every query image went to the server
            self.assert_served()
            # The dynamic loader names every library it opens: LibTorch's plugin is not one of them.
            code, out, err = run_query(self.tmp, self.cases[0][0], extra_env={"LD_DEBUG": "files"})
            self.assertEqual((code, out), self.expected[0][:2])
            self.assertNotIn(b"libcbir_torch.so", err)
            self.assertNotIn(b"libopencv_imgcodecs", err)
            if os.geteuid() == 0 and shutil.which("setpriv"):
                self.check_another_user_is_not_answered()
        finally:
            self.assertEqual(server.stop()[0], 0)
        self.assertFalse(os.path.exists(self.path(SOCKET)))  # removed at shutdown

    def check_another_user_is_not_answered(self):
        """The server answers its own user only (SO_PEERCRED), whatever the modes let through."""
        probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.settimeout(30)\n"
                 "try:\n s.sendall(b'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n')\n"
                 " print(s.recv(100)[:12])\nexcept OSError:\n print(b'')\n")
        modes = [(self.tmp, 0o711), (self.path("store"), 0o755), (self.path("store", "serve"), 0o711),
                 (self.path(SOCKET), 0o666)]
        saved = [(path, stat.S_IMODE(os.stat(path).st_mode)) for path, _ in modes]
        try:
            for path, mode in modes:  # let the other user reach the socket at all
                os.chmod(path, mode)
            as_owner = subprocess.run([sys.executable, "-c", probe, self.path(SOCKET)], capture_output=True,
                                      text=True, timeout=60)
            self.assertEqual(as_owner.stdout.strip(), "b'HTTP/1.1 200'", as_owner.stderr)
            as_nobody = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                                        "-c", probe, self.path(SOCKET)], capture_output=True, text=True, timeout=60)
            self.assertEqual(as_nobody.stdout.strip(), "b''", as_nobody.stderr)  # closed without a word
        finally:
            for path, mode in saved:
                os.chmod(path, mode)

    def test_a_killed_server_leaves_a_stale_socket_that_is_not_used_then_replaced(self):
        server = Server(self.tmp)
        server.process.send_signal(signal.SIGKILL)
        server.wait()
        self.assertTrue(stat.S_ISSOCK(os.stat(self.path(SOCKET)).st_mode))  # left behind
        self.assert_local("cannot connect (Connection refused)")
        code, out, err = run_query(self.tmp, self.cases[0][0], extra_env={"LD_DEBUG": "files"})
        self.assertEqual((code, out), self.expected[0][:2])
        self.assertIn(b"libcbir_torch.so", err)  # what the probe above would have seen
        server = Server(self.tmp)  # replaces the stale socket
        try:
            self.assert_served()
        finally:
            server.stop()

    def test_a_socket_not_to_be_trusted_is_not_used(self):
        os.makedirs(self.path("store", "serve"), mode=0o700, exist_ok=True)
        with open(self.path(SOCKET), "w") as f:
            f.write("not a socket\n")
        try:
            self.assert_local("not a socket")
            server = Server(self.tmp)  # leaves the file alone, serves over TCP only
            try:
                self.assertIn("exists and is not a socket", "".join(server.stderr_lines))
                self.assert_local("not a socket")
            finally:
                server.stop()
        finally:
            os.remove(self.path(SOCKET))
        server = Server(self.tmp)
        try:
            for target, mode, private in ((SOCKET, 0o660, 0o600), (os.path.join("store", "serve"), 0o750, 0o700)):
                os.chmod(self.path(target), mode)
                try:
                    self.assert_local("open to others")
                finally:
                    os.chmod(self.path(target), private)
            self.assert_served()
        finally:
            server.stop()

    def test_another_store_a_changed_catalogue_or_another_precision_is_not_answered(self):
        other = self.path("other")
        os.makedirs(os.path.join(other, "photos"))
        for n in NAMES[:4]:
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(other, "photos"))
        r = subprocess.run([CBIR, "index", "photos", "--store", "store", "--model", MODEL, "-q"], cwd=other,
                           env=clean_env(), capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        server = Server(other, "--save-interval", "0")
        try:
            # The other store's server, its socket moved into this store: it refuses (409), this searches.
            os.makedirs(self.path("store", "serve"), mode=0o700, exist_ok=True)
            os.rename(os.path.join(other, SOCKET), self.path(SOCKET))
            try:
                self.assert_local("the server answered 409: this server searches another catalogue state")
            finally:
                os.rename(self.path(SOCKET), os.path.join(other, SOCKET))
            self.assertGreater(local_socket_count(server.url)[1], 0)

            # Its own store, changed by an insert the server has not saved yet: the index a query
            # would load is not the server's graph, so the query searches itself.
            with open(os.path.join(COREL, "555.jpg"), "rb") as f:
                status, added = request(server.url + "/images", "POST", f.read())
            self.assertEqual(status, 201, added)
            code, out, err = run_query(other, ["photos/dog1.jpg", "--format", "tsv", "-v"])
            self.assertEqual(code, 0)
            self.assertIn(b"index has changes not yet saved", err)
            self.assertIn(b"uploads/", out)  # the insert is found all the same, by the local search
        finally:
            server.stop()
        server = Server(self.tmp)
        try:
            self.assert_served()
            args = self.cases[0][0] + ["--precision", "bf16"]
            bf16 = run_query(self.tmp, args)
            self.assertEqual(bf16[0], 0)
            code, _, err = run_query(self.tmp, args + ["-v"])
            self.assertIn(b"another precision", err)
        finally:
            server.stop()
        self.assertEqual(run_query(self.tmp, args), bf16)  # the same without a server


if __name__ == "__main__":
    unittest.main()
