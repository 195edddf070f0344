"""Helpers for lanesync's multi-process tests: real agent processes on free ports.

Every process started through a `Store` is stopped when the test ends (tearDown), waits are
conditions with deadlines (never fixed sleeps), and ports are picked at run time.
Only the Python standard library is used.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

BIN = os.environ.get("LANESYNC_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "lanesync")
ARTIFACTS = os.environ.get("LANESYNC_ARTIFACTS") or os.path.join(
    os.path.dirname(BIN), "test-artifacts")
SECRET = "integration-test-secret-0123456789"


_handed_out = set()
_ports_lock = threading.Lock()


def free_port():
    """A TCP port free on 127.0.0.1 right now (the agent binds it soon after), never the same
    one twice in this test process."""
    with _ports_lock:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def wait_for(predicate, timeout=30.0, interval=0.02, what="condition"):
    """Polls `predicate` until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # a process still starting may refuse connections
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_exc})" if last_exc else ""))


class HttpResult:
    def __init__(self, status, body, headers):
        self.status = status
        self.body = body
        self.headers = headers

    def json(self):
        return json.loads(self.body)


def http(method, url, body=None, headers=None, timeout=10.0):
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return HttpResult(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as e:
        with e:
            return HttpResult(e.code, e.read(), dict(e.headers))


class Lane:
    """One agent process with its env file, outbox and log under the store's folder."""

    def __init__(self, store, lane_id, **overrides):
        self.store = store
        self.id = lane_id
        self.peer_port = free_port()
        self.api_port = free_port()
        self.env = {
            "TERMINAL_ID": lane_id,
            "STORE_ID": store.store_id,
            "TERMINAL_PORT": str(self.peer_port),
            "TERMINAL_BIND": "127.0.0.1",
            "PEER_SECRET": SECRET,
            "LOCAL_API_PORT": str(self.api_port),
            "OUTBOX_PATH": os.path.join(store.dir, f"{lane_id}.db"),
            "LOG_LEVEL": "debug",
        }
        self.env.update({k: str(v) for k, v in overrides.items()})
        self.peers = []
        self.proc = None
        self.log_path = os.path.join(store.dir, f"{lane_id}.log")
        self.env_path = os.path.join(store.dir, f"{lane_id}.env")

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.peer_port}/v1/peer"

    @property
    def api(self):
        return f"http://127.0.0.1:{self.api_port}"

    def peer_with(self, *lanes):
        self.peers = list(lanes)
        return self

    def write_env(self):
        env = dict(self.env)
        if self.peers:
            env["PEER_TERMINALS"] = ",".join(p.url for p in self.peers)
        with open(self.env_path, "w") as f:
            for k, v in env.items():
                f.write(f"{k}={v}\n")
        return self.env_path

    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.write_env()
        log = open(self.log_path, "ab")
        clean_env = {k: v for k, v in os.environ.items()
                     if not k.startswith(("SUPABASE_", "PEER_", "TERMINAL_", "LOCAL_API"))}
        self.proc = subprocess.Popen([BIN, "agent", "--env", self.env_path],
                                     stdout=log, stderr=subprocess.STDOUT, env=clean_env)
        log.close()
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout=20.0):
        def ok():
            if self.proc.poll() is not None:
                raise AssertionError(f"lane {self.id} exited with {self.proc.returncode}; "
                                     f"log:\n{self.log_tail()}")
            return http("GET", self.api + "/healthz", timeout=1).status == 200
        wait_for(ok, timeout, what=f"lane {self.id} healthy")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout=15.0):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"lane {self.id} did not stop on SIGTERM within {timeout}s")
        return self.proc.returncode

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    # ---- API helpers ---------------------------------------------------------------------
    def publish(self, topic="transaction", data=None, id=None, priority=None):
        body = {"topic": topic, "data": data if data is not None else {"total": 1}}
        if id is not None:
            body["id"] = id
        if priority is not None:
            body["priority"] = priority
        return http("POST", self.api + "/v1/messages", body)

    def status(self):
        r = http("GET", self.api + "/v1/status")
        assert r.status == 200, r.body
        return r.json()

    def message(self, mid):
        return http("GET", self.api + f"/v1/messages/{mid}")

    def counts(self):
        return self.status()["outbox"]

    def cli(self, *args, check=None, input=None, timeout=60):
        clean_env = {k: v for k, v in os.environ.items()
                     if not k.startswith(("SUPABASE_", "PEER_", "TERMINAL_", "LOCAL_API"))}
        r = subprocess.run([BIN, *args], capture_output=True, text=True, env=clean_env,
                           input=input, timeout=timeout)
        if check is not None:
            assert r.returncode == check, (f"lanesync {' '.join(args)} exited {r.returncode}, "
                                           f"expected {check}\nstdout:{r.stdout}\nstderr:{r.stderr}")
        return r


class Store:
    """A temporary folder of lanes; stops every process at the end."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix=f"lanesync-{name}-")
        self.lanes = []
        self.name = name
        self.store_id = "store-test"

    def lane(self, lane_id, **overrides):
        l = Lane(self, lane_id, **overrides)
        self.lanes.append(l)
        return l

    def close(self, failed=False):
        for l in self.lanes:
            try:
                l.kill9() if failed else l.stop()
            except Exception:
                l.kill9()
        if failed:
            dest = os.path.join(ARTIFACTS, self.name)
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(ARTIFACTS, exist_ok=True)
            shutil.copytree(self.dir, dest, ignore=shutil.ignore_patterns("*.db*"))
        shutil.rmtree(self.dir, ignore_errors=True)


class StoreTestCase(unittest.TestCase):
    """Gives each test a Store in self.store, closed (and logs kept on failure) afterwards."""

    def setUp(self):
        self.store = Store(self.id().split(".")[-1])
        # Registered first, so it runs last: sockets a test registered later close before the
        # lanes stop (a lane waits for its peers' close handshakes on SIGTERM).
        self.addCleanup(self._close_store)

    def _close_store(self):
        outcome = getattr(self, "_outcome", None)
        failed = False
        if outcome is not None and getattr(outcome, "result", None) is not None:
            res = outcome.result
            failed = any(t is self for t, _ in res.failures + res.errors)
        self.store.close(failed=failed)

    def pair(self, **overrides):
        """Lanes L1 and L2 that list each other as peers (not started)."""
        l1 = self.store.lane("L1", **overrides)
        l2 = self.store.lane("L2", **overrides)
        l1.peer_with(l2)
        l2.peer_with(l1)
        return l1, l2

    def publish_many(self, lane, n, threads=8, topic="transaction", make_data=None):
        """Publishes n messages from `threads` concurrent clients; returns {id: data}."""
        out = {}
        lock = threading.Lock()
        errors = []

        def worker(k):
            for i in range(k, n, threads):
                data = make_data(i) if make_data else {"total": i, "lane": lane.id, "i": i}
                r = lane.publish(topic, data)
                if r.status != 201:
                    errors.append((r.status, r.body))
                    continue
                with lock:
                    out[r.json()["id"]] = data
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errors, [], "every publish must answer 201")
        return out
