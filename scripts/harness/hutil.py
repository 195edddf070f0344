"""Small helpers shared by the harness modules (Python standard library only)."""
import datetime
import http.client
import json
import random
import socket
import sys
import threading
import time

_T0 = time.monotonic()
_log_lock = threading.Lock()
VERBOSE = False


def log(msg, *, verbose=False):
    """Progress line on stderr, prefixed with seconds since the harness started."""
    if verbose and not VERBOSE:
        return
    with _log_lock:
        sys.stderr.write(f"[{time.monotonic() - _T0:7.1f}s] {msg}\n")
        sys.stderr.flush()


_issued = set()
_port_lock = threading.Lock()
_port_rng = random.SystemRandom()


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A TCP port free on 127.0.0.1 right now, never handed out before in this run.

    Chosen below the kernel's ephemeral range when there is room (else above it), so that a
    lane's port cannot be taken by some outgoing connection while the lane is down between a
    kill and its restart (a restarted lane must get its old ports back: peers know them).
    """
    lo, hi = _ephemeral_range()
    if lo - 10000 >= 1024:
        pool = (lo - 10000, lo - 1)
    elif hi + 2000 <= 65535:
        pool = (hi + 1, 65535)
    else:
        pool = None
    with _port_lock:
        for _ in range(500):
            if pool is None:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", 0))
                    port = s.getsockname()[1]
            else:
                port = _port_rng.randint(*pool)
            if port in _issued:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _issued.add(port)
            return port
    raise RuntimeError("no free TCP port found")


class Deadline(Exception):
    pass


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls `predicate` until it returns something truthy; raises Deadline naming `what`.

    Exceptions from the predicate count as "not yet" (a process that is starting refuses
    connections); the last one is named in the error.
    """
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except Deadline:
            raise
        except Exception as e:  # noqa: BLE001 - anything means "not yet"
            last = e
        if time.monotonic() >= end:
            raise Deadline(f"timed out after {timeout:.0f}s waiting for {what}"
                           + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


class Http:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port, reopened after any error."""

    def __init__(self, port, timeout=5.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None

    def request(self, method, path, body=None):
        """Returns (status, parsed JSON or raw bytes). Raises OSError/HTTPException on
        transport errors (after closing the connection)."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        headers = {}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=data, headers=headers)
            r = self.conn.getresponse()
            raw = r.read()
            if r.getheader("Connection", "").lower() == "close":
                self.close()
        except Exception:
            self.close()
            raise
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw


def http_once(port, method, path, body=None, timeout=5.0):
    h = Http(port, timeout)
    try:
        return h.request(method, path, body)
    finally:
        h.close()


def parse_iso_ms(s):
    """'2026-11-22T03:57:20.123Z' -> unix milliseconds (float); None stays None."""
    if s is None:
        return None
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(s).timestamp() * 1000.0


def percentile(values, p):
    """Nearest-rank percentile of a list of numbers (None when empty)."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def json_equal(a, b):
    """Structural JSON equality that keeps true/1 and "1"/1 apart (Python's == does not)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b
