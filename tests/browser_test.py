#!/usr/bin/env python3
"""The web page of `cbir serve` in Debian's chromium, headless: choose an image in the page's file
input, wait for the result thumbnails, compare them with `cbir query`, click a result to search by
it. Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages
separated by NUL on file descriptors 3 and 4), so nothing beyond the standard library is needed.

Run by ctest when chromium is installed (scripts/install-deps.sh --test installs it).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_test import MODEL, NAMES, SEED, Server, cbir, cli_query  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """A headless chromium and one page in it, spoken to over the DevTools protocol."""

    def __init__(self, profile_dir):
        to_browser_read, self.to_browser = os.pipe()
        self.from_browser, from_browser_write = os.pipe()

        def wire_pipes():  # the browser reads commands on fd 3 and writes answers on fd 4
            a, b = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.process = subprocess.Popen(
            # No network but the page's own loopback server: Chromium's background services (updates,
            # sync, QUIC probes) would otherwise try to reach outside hosts at every start.
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
             "--remote-debugging-pipe", f"--user-data-dir={profile_dir}", "about:blank"],
            preexec_fn=wire_pipes, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self.next_id = 0
        self.buffer = b""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def call(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:  # events come in between; wait for our answer
            while b"\0" not in self.buffer:
                chunk = os.read(self.from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def page(self, method, params=None):
        return self.call(method, params, self.session)

    def evaluate(self, expression):
        result = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def close(self):
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self.to_browser)
        os.close(self.from_browser)


# Each shown result with whether its thumbnail has loaded, as JSON.
RESULTS = """JSON.stringify([...document.querySelectorAll('.result')].map(f => ({
    id: Number(f.dataset.id), path: f.dataset.path, distance: Number(f.dataset.distance),
    loaded: f.querySelector('img').complete && f.querySelector('img').naturalWidth > 0})))"""


@unittest.skipUnless(CHROMIUM, "chromium is not installed (scripts/install-deps.sh --test)")
class WebPage(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="cbir-browser-")
        os.makedirs(os.path.join(self.tmp, "photos"))
        for n in NAMES[1:]:  # dog1 stays out: it is the uploaded query
            shutil.copy(os.path.join(SEED, n + ".jpg"), os.path.join(self.tmp, "photos"))
        r = cbir(self.tmp, "index", "photos", "--store", "store", "--model", MODEL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.server = Server(self.tmp)
        self.browser = DevTools(os.path.join(self.tmp, "profile"))

    def tearDown(self):
        self.browser.close()
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def shown_results(self, condition):
        return json.loads(self.browser.wait_for(
            f"(() => {{ const r = {RESULTS}; const rows = JSON.parse(r); return ({condition}) ? r : ''; }})()"))

    def test_upload_an_image_see_results_click_one(self):
        self.browser.page("Page.enable")
        self.browser.page("Page.navigate", {"url": self.server.url + "/"})
        self.browser.wait_for("document.readyState === 'complete' && document.querySelector('#file') !== null")
        header = self.browser.wait_for("document.getElementById('store').textContent.includes('images') && "
                                       "document.getElementById('store').textContent")
        self.assertIn("6 images", header)
        self.assertIn("untrained", self.browser.evaluate("document.getElementById('warning').textContent"))

        # Choose a file in the page's own file input, as a person would.
        query = os.path.join(SEED, "dog1.jpg")
        root = self.browser.page("DOM.getDocument")["root"]["nodeId"]
        node = self.browser.page("DOM.querySelector", {"nodeId": root, "selector": "#file"})["nodeId"]
        self.browser.page("DOM.setFileInputFiles", {"nodeId": node, "files": [query]})
        rows = self.shown_results("rows.length > 0 && rows.every(x => x.loaded)")
        # As many as the API gives by default: the page's default top is the API's.
        expected = cli_query(self.tmp, query, k=10)
        self.assertEqual([r["path"] for r in rows], [p for p, _ in expected])
        for row, (_, distance) in zip(rows, expected):
            self.assertAlmostEqual(row["distance"], distance, delta=1e-4 * max(1.0, distance))

        # Click the second result: the page searches by it, and it comes first at distance 0; the file
        # input no longer shows the file chosen before (it is not the query any more).
        self.assertTrue(self.browser.evaluate("document.getElementById('file').value"))
        clicked = rows[1]
        self.browser.evaluate("document.querySelectorAll('.result')[1].click()")
        rows = self.shown_results(f"rows.length > 0 && rows[0].id === {clicked['id']} && rows.every(x => x.loaded)")
        self.assertEqual((rows[0]["path"], rows[0]["distance"]), (clicked["path"], 0.0))
        self.assertEqual([r["path"] for r in rows], [p for p, _ in cli_query(self.tmp, clicked["path"], k=10)])
        self.assertEqual(self.browser.evaluate("document.getElementById('file').value"), "")


if __name__ == "__main__":
    unittest.main()
