"""Headless Chromium driven over the Chrome DevTools Protocol, standard library only: start
it, open a page, evaluate JavaScript, collect console errors (CSP violations included), take
a screenshot, and always stop it (its whole process group).

    with Chromium() as browser:
        page = browser.open("http://127.0.0.1:9123/")
        page.wait_for("document.body.dataset.updates >= 2")
        png = page.screenshot()
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from wsclient import WsClient

# Flags this machine needs as root (MACHINE-NOTES.md), plus a fresh profile per run.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio"]


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """One page target. `errors` collects console errors, exceptions and log errors."""

    def __init__(self, ws_url):
        m = re.match(r"ws://127\.0\.0\.1:(\d+)(/.*)", ws_url)
        self.ws = WsClient(int(m.group(1)), m.group(2), timeout=30.0)
        self.next_id = 0
        self.errors = []
        self.call("Runtime.enable")
        self.call("Log.enable")
        self.call("Page.enable")

    def _recv(self):
        """One whole text message (reassembling fragments), answering pings."""
        parts = []
        while True:
            b0, b1 = self.ws._read(2)
            fin, op, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self.ws._read(2), "big")
            elif n == 127:
                n = int.from_bytes(self.ws._read(8), "big")
            payload = self.ws._read(n)
            if op == 0x8:
                raise ConnectionError("DevTools closed the connection")
            if op == 0x9:
                self.ws.sock.sendall(self.ws._frame(0xA, payload))
                continue
            if op in (0x1, 0x0):
                parts.append(payload)
                if fin:
                    return json.loads(b"".join(parts))

    def _note(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.errors.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                            for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.errors.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send_text(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = self._recv()
            if msg.get("id") == mid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._note(msg)

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate {expression!r}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")

    def navigate(self, url, timeout=20.0):
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout, what=f"{url} loaded")

    def wait_for(self, expression, timeout=20.0, what=None):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                v = self.evaluate(expression)
                if v:
                    return v
                last = v
            except RuntimeError as e:  # e.g. evaluated during a navigation
                last = e
            # Runtime.evaluate is a round trip to the renderer; a short pause keeps it cheap.
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what or expression} (last: {last})")

    def screenshot(self, width=1440):
        """A PNG of the whole page at `width` CSS pixels."""
        height = self.evaluate("Math.ceil(document.documentElement.scrollHeight)") or 900
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=int(height),
                  deviceScaleFactor=1, mobile=False)
        r = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(r["data"])

    def close(self):
        self.ws.close()


class Chromium:
    def __init__(self, width=1440, height=1000):
        self.binary = chromium_binary()
        self.profile = tempfile.mkdtemp(prefix="lanesync-chromium-")
        self.proc = None
        self.port = None
        self.size = (width, height)
        self.pages = []
        self.stderr_lines = []

    def start(self, timeout=30.0):
        args = [self.binary, *FLAGS, f"--user-data-dir={self.profile}",
                f"--window-size={self.size[0]},{self.size[1]}",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"]
        # Own process group, so stop() ends Chromium's helpers (zygote, renderers) with it.
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        found = threading.Event()

        def read_stderr():
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.stderr_lines.append(line)
                m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                if m:
                    self.port = int(m.group(1))
                    found.set()
        threading.Thread(target=read_stderr, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.stderr_lines[-20:])
                self.stop()
                raise AssertionError(f"Chromium did not start its DevTools endpoint:\n{tail}")
        return self

    def open(self, url):
        """The first page target, navigated to `url`."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = Page(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
        self.pages.append(page)
        page.call("Emulation.setDeviceMetricsOverride", width=self.size[0], height=self.size[1],
                  deviceScaleFactor=1, mobile=False)
        page.navigate(url)
        return page

    def stop(self):
        for p in self.pages:
            p.close()
        self.pages = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            # Helpers that outlived the main process (same group) must not linger either.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.proc.stderr:
                self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
