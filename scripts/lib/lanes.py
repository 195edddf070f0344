"""Real lanesync agents and the local cloud as processes: the one library the integration
tests (tests/integration) and the multi-terminal harness (scripts/harness) start them with.

Python standard library only. The rules it keeps for both:
  - ports are picked at run time, below the kernel's ephemeral range, never the same one
    twice in a process (a lane restarted after a kill gets its old ports back: peers know them);
  - waits are conditions with deadlines (`wait_for`), never sleeps used as synchronisation;
  - every process started here can be stopped here (`Lane.terminate`/`stop`/`kill9`/`cleanup`,
    `Store.close`, `Cloud.down`); lanes started from the main thread also die with their
    parent (PR_SET_PDEATHSIG), even if it is killed with SIGKILL.

Import it with scripts/lib on sys.path (the tests and the harness insert it themselves).
"""
import ctypes
from http import client as http_client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.abspath(os.environ.get("LANESYNC_BIN") or os.path.join(REPO, "build", "lanesync"))
ARTIFACTS = os.environ.get("LANESYNC_ARTIFACTS") or os.path.join(os.path.dirname(BIN),
                                                                 "test-artifacts")
SECRET = "integration-test-secret-0123456789"
# lanesync listens on loopback: requests never go through an http_proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# ---- progress lines -------------------------------------------------------------------------
_T0 = time.monotonic()
_log_lock = threading.Lock()
VERBOSE = False


def log(msg, *, verbose=False):
    """Progress line on stderr, prefixed with seconds since this module was loaded."""
    if verbose and not VERBOSE:
        return
    with _log_lock:
        sys.stderr.write(f"[{time.monotonic() - _T0:7.1f}s] {msg}\n")
        sys.stderr.flush()


# ---- ports ----------------------------------------------------------------------------------
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
    """A TCP port free on 127.0.0.1 right now, never handed out before by this process.

    Chosen below the kernel's ephemeral range when there is room (else above it), so that a
    lane's port cannot be taken by some outgoing connection while the lane is down between a
    kill and its restart.
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


# ---- waiting --------------------------------------------------------------------------------
class Deadline(AssertionError):
    """A wait that ran out of time, or a predicate that gave up (it propagates at once)."""


def wait_for(predicate, timeout=30.0, what="condition", interval=0.02):
    """Polls `predicate` until it returns something truthy (returned); raises Deadline.

    Exceptions from the predicate count as "not yet" (a process that is starting refuses
    connections) and the last one is named in the error; a Deadline raised by the predicate
    ends the wait at once.
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
            raise Deadline(f"timed out after {timeout:g}s waiting for {what}"
                           + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


# ---- HTTP -----------------------------------------------------------------------------------
class HttpResult:
    def __init__(self, status, body, headers):
        self.status = status
        self.body = body
        self.headers = headers

    def json(self):
        return json.loads(self.body)


def http(method, url, body=None, headers=None, timeout=10.0):
    """One request to a full URL; any status is returned (never raised) as an HttpResult.
    `body`: bytes, str, or anything else as JSON (Content-Type application/json by default)."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with _opener.open(req, timeout=timeout) as r:
            return HttpResult(r.status, r.read(), dict(r.headers))
    except urllib.error.HTTPError as e:
        with e:
            return HttpResult(e.code, e.read(), dict(e.headers))


class Http:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:port (a POS client), reopened after
    any error."""

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
            self.conn = http_client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
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


# ---- processes ------------------------------------------------------------------------------
# Variables a lane (or the CLI, psql, the cloud scripts) must not inherit from our own
# environment: everything a lane needs is written into its env file.
_LANE_KEYS = ("TERMINAL_", "STORE_ID", "PEER_", "LOCAL_API", "OUTBOX_", "SUPABASE_",
              "SYNC_", "CLOUD_", "MAX_MESSAGE_BYTES", "LOG_",
              # a test runner started by systemd: its lanes are not services of their own
              "NOTIFY_SOCKET", "WATCHDOG_", "JOURNAL_STREAM")


def child_env(**extra):
    """Our environment without any lanesync configuration, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LANE_KEYS)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


_libc = None


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when its parent dies (even by SIGKILL). Linux only;
    PR_SET_PDEATHSIG = 1. The signal fires when the spawning *thread* exits, so it is only
    set for lanes spawned from the main thread."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


class Lane:
    """One lanesync agent: env file, outbox, log and process in `folder`.

    `env` overrides (or adds to) the generated settings; `label`, when given, names who wrote
    the env file in a comment and marks each start in the log (the harness does; the tests
    keep their logs exactly what the agent wrote).
    """

    def __init__(self, folder, lane_id, *, store_id, secret=SECRET, binary=None, env=None,
                 peer_port=None, api_port=None, label=None):
        self.folder = folder
        self.id = lane_id
        self.store_id = store_id
        self.binary = binary or BIN
        self.label = label
        self.peer_port = peer_port or free_port()
        self.api_port = api_port or free_port()
        self.peer_urls = []
        self.env = {
            "TERMINAL_ID": lane_id,
            "STORE_ID": store_id,
            "TERMINAL_PORT": str(self.peer_port),
            "TERMINAL_BIND": "127.0.0.1",
            "PEER_SECRET": secret,
            "LOCAL_API_PORT": str(self.api_port),
            "OUTBOX_PATH": os.path.join(folder, f"{lane_id}.db"),
            "LOG_LEVEL": "debug",
        }
        self.env.update({k: str(v) for k, v in (env or {}).items()})
        self.env_path = os.path.join(folder, f"{lane_id}.env")
        self.log_path = os.path.join(folder, f"{lane_id}.log")
        self.proc = None
        self.expected_down = True      # not started yet
        self.paused = False
        self.starts = 0
        self.unexpected_exits = []     # (time, returncode), noted by a Monitor
        self.lock = threading.Lock()

    @property
    def peer_url(self):
        return f"ws://127.0.0.1:{self.peer_port}/v1/peer"

    @property
    def api(self):
        return f"http://127.0.0.1:{self.api_port}"

    def peer_with(self, *lanes):
        """PEER_TERMINALS = these lanes (replaces the list)."""
        self.peer_urls = [l.peer_url for l in lanes]
        return self

    def write_env(self):
        env = dict(self.env)
        if self.peer_urls:
            env["PEER_TERMINALS"] = ",".join(self.peer_urls)
        # 0600, as `lanesync init-store` writes them: the file holds PEER_SECRET (the agent
        # warns about an env file with secrets that others can read).
        fd = os.open(self.env_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            if self.label:
                f.write(f"# written by {self.label} for lane {self.id}\n")
            for k, v in env.items():
                f.write(f"{k}={v}\n")
        return self.env_path

    # ---- process ---------------------------------------------------------------------------
    def start(self, wait=True, timeout=30, rebuilding_ok=False):
        assert not self.running(), f"lane {self.id} already running"
        self.write_env()
        main = threading.current_thread() is threading.main_thread()
        with open(self.log_path, "ab") as logf:
            if self.label:
                logf.write(f"---- {self.label}: start #{self.starts + 1} of {self.id} at "
                           f"{time.strftime('%H:%M:%S')} ----\n".encode())
                logf.flush()
            self.proc = subprocess.Popen([self.binary, "agent", "--env", self.env_path],
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.folder,
                                         env=child_env(),
                                         preexec_fn=_die_with_parent if main else None)
        self.starts += 1
        with self.lock:
            self.expected_down = False
        self.paused = False
        if wait:
            self.wait_healthy(timeout, rebuilding_ok)
        return self

    def wait_healthy(self, timeout=30, rebuilding_ok=False):
        """Until /healthz answers 200 (or, with `rebuilding_ok`, 503 "rebuilding": a lane that
        restores its outbox from its peers is up, it only refuses publishes meanwhile)."""
        def ok():
            if self.proc.poll() is not None:
                raise Deadline(f"lane {self.id} exited with {self.proc.returncode} while "
                               f"starting; log tail:\n{self.log_tail()}")
            st, body = self.health()
            return st == 200 or (rebuilding_ok and st == 503 and
                                 isinstance(body, dict) and body.get("status") == "rebuilding")
        wait_for(ok, timeout, f"lane {self.id} healthy")

    def health(self, timeout=1.0):
        """GET /healthz: (status, parsed JSON or None)."""
        r = http("GET", self.api + "/healthz", timeout=timeout)
        try:
            return r.status, r.json()
        except ValueError:
            return r.status, None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        """Records an exit nobody asked for (called by a Monitor)."""
        with self.lock:
            if self.proc is not None and not self.expected_down:
                rc = self.proc.poll()
                if rc is not None:
                    self.unexpected_exits.append((time.monotonic(), rc))
                    self.expected_down = True
                    log(f"!! lane {self.id} exited on its own with code {rc}")

    def kill9(self):
        with self.lock:
            self.expected_down = True
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)
        self.paused = False

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def terminate(self, timeout=20):
        """SIGTERM (after SIGCONT if paused) and wait; returns the exit code, 0 if it never
        started, or None if it had to be killed after `timeout` seconds."""
        with self.lock:
            self.expected_down = True
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def stop(self, timeout=15.0):
        """terminate() for tests: returns the exit code (None if never started) and fails
        when the lane did not stop on SIGTERM within `timeout` seconds."""
        if self.proc is None:
            return None
        rc = self.terminate(timeout)
        if rc is None:
            raise AssertionError(f"lane {self.id} did not stop on SIGTERM within {timeout}s")
        return rc

    def cleanup(self):
        """Best effort stop for a finally path: continue, SIGTERM, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with self.lock:
            self.expected_down = True
        try:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.kill()
            self.proc.wait()

    # ---- log -------------------------------------------------------------------------------
    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_lines(self, *needles, limit=20):
        """The last `limit` log lines containing any of `needles`."""
        out = []
        try:
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    if any(n in line for n in needles):
                        out.append(line.rstrip("\n"))
        except OSError:
            pass
        return out[-limit:]

    # ---- the outbox file (a lost disk, a restored backup) -----------------------------------
    @property
    def outbox_path(self):
        return self.env["OUTBOX_PATH"]

    def outbox_files(self):
        """The outbox and its SQLite companions (-wal, -shm, -journal) that exist now."""
        p = self.outbox_path
        return [f for f in (p, p + "-wal", p + "-shm", p + "-journal") if os.path.exists(f)]

    def wipe_outbox(self):
        """Deletes the outbox with its -wal/-shm: the disk is lost. The lane must be down.
        Returns the files removed."""
        assert not self.running(), f"lane {self.id}: wipe_outbox while it runs"
        files = self.outbox_files()
        for f in files:
            os.remove(f)
        return files

    def backup_outbox(self, dest):
        """A consistent copy of the outbox in the single file `dest` (no -wal), taken with
        SQLite's online backup: safe while the agent runs (it reads one snapshot; the agent's
        writes go on). Returns dest."""
        import sqlite3  # standard library; only the backup helpers need it
        if os.path.exists(dest):
            os.remove(dest)
        src = sqlite3.connect(f"file:{self.outbox_path}?mode=ro", uri=True, timeout=30)
        try:
            dst = sqlite3.connect(dest)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
        return dest

    def restore_outbox(self, backup):
        """Replaces the outbox (and its -wal/-shm) with the copy `backup` made by
        backup_outbox(): an old copy of the disk put back. The lane must be down."""
        self.wipe_outbox()
        shutil.copyfile(backup, self.outbox_path)

    # ---- local API and CLI -----------------------------------------------------------------
    def publish(self, topic="transaction", data=None, id=None, priority=None):
        body = {"topic": topic, "data": data if data is not None else {"total": 1}}
        if id is not None:
            body["id"] = id
        if priority is not None:
            body["priority"] = priority
        return http("POST", self.api + "/v1/messages", body)

    def status(self, timeout=5.0):
        """GET /v1/status as a dict; raises unless it answers 200."""
        r = http("GET", self.api + "/v1/status", timeout=timeout)
        if r.status != 200:
            raise RuntimeError(f"GET /v1/status on {self.id} answered {r.status}: {r.body!r}")
        return r.json()

    def counts(self):
        return self.status()["outbox"]

    def message(self, mid):
        return http("GET", self.api + f"/v1/messages/{mid}")

    def metric(self, name, **labels):
        """The value of one sample of GET /metrics (the sum of every sample of `name` whose
        labels include `labels`), or None when there is none."""
        r = http("GET", self.api + "/metrics", timeout=5)
        if r.status != 200:
            raise RuntimeError(f"GET /metrics on {self.id} answered {r.status}")
        total = None
        want = [f'{k}="{v}"' for k, v in labels.items()]
        for line in r.body.decode(errors="replace").splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            base, _, lab = key.partition("{")
            if base != name or not all(w in lab for w in want):
                continue
            total = (total or 0.0) + float(value)
        return total

    def own_ids(self, state, limit=10000, timeout=10.0):
        """Ids of this lane's own messages in `state` (GET /v1/messages?state=), lowest seq
        first; raises unless it answers 200."""
        r = http("GET", self.api + f"/v1/messages?state={state}&limit={limit}", timeout=timeout)
        if r.status != 200:
            raise RuntimeError(f"GET /v1/messages?state={state} on {self.id} answered "
                               f"{r.status}: {r.body[:200]!r}")
        return [m["id"] for m in r.json().get("messages", [])]

    def rebuild_state(self):
        """status.rebuild: {"active": false, "incarnation": ...} or the rebuild in progress."""
        return self.status().get("rebuild") or {}

    def origin_row(self, origin):
        """This lane's status.origins entry for `origin` (held, cloud_through, covered_by,
        last_seen_ms ...), or None when it knows nothing of that origin."""
        return next((o for o in self.status().get("origins", []) if o.get("origin") == origin),
                    None)

    def wait_rebuilt(self, own_seq, timeout=60):
        """Until this lane has restored its own origin through `own_seq` (what its peers
        held), finished its rebuild and accepts publishes again (healthz 200). Returns the
        status document."""
        def done():
            if self.proc is not None and self.proc.poll() is not None:
                raise Deadline(f"lane {self.id} exited with {self.proc.returncode} while "
                               f"rebuilding; log tail:\n{self.log_tail()}")
            st = self.status(timeout=2)
            if (st.get("rebuild") or {}).get("active") or st["outbox"]["last_seq"] < own_seq:
                return None
            return st if self.health()[0] == 200 else None
        return wait_for(done, timeout, f"lane {self.id} rebuilt through seq {own_seq}",
                        interval=0.05)

    def client(self, timeout=5.0):
        """A keep-alive connection to this lane's local API (close it when done)."""
        return Http(self.api_port, timeout)

    def cli(self, *args, check=None, input=None, timeout=60, cwd=None):
        """Runs `lanesync ARGS` (without our environment's lanesync settings)."""
        r = subprocess.run([self.binary, *args], capture_output=True, text=True, env=child_env(),
                           input=input, timeout=timeout, cwd=cwd)
        if check is not None:
            assert r.returncode == check, (
                f"lanesync {' '.join(args)} exited {r.returncode}, expected {check}\n"
                f"stdout:{r.stdout}\nstderr:{r.stderr}")
        return r

    def check_db(self):
        """`lanesync check-db` on this lane's outbox: (exit code, output)."""
        r = self.cli("check-db", "--env", self.env_path, timeout=120, cwd=self.folder)
        return r.returncode, (r.stdout + r.stderr).strip()


class Monitor:
    """Background thread noticing lanes that exit without being told to."""

    def __init__(self, lanes):
        self.lanes = lanes
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.2):
            for lane in list(self.lanes):
                lane.check_alive()

    def close(self):
        self.stop.set()
        self.thread.join(timeout=5)


class AckWatcher:
    """Learns which accepted messages reached peer_ack on their lane, by polling: one thread
    per lane, each round (every `interval` s) one `GET /v1/messages?state=pending` (the ids
    still pending are skipped) and one `GET /v1/messages/{id}` per other watched id. An id is
    reported to its callback once the lane's own copy (same origin and seq) is `peer_ack` or
    `cloud_ack`, or carries `peer_acked_at`: the harness then knows that message was promised
    to survive the loss of its lane. Ids the lane answers 404 for `gone_after` times are
    dropped (its disk was lost). Paused or stopped lanes are skipped; nothing is ever
    inferred from a missing answer."""

    def __init__(self, interval=0.2, gone_after=3):
        self.interval = interval
        self.gone_after = gone_after
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.watched = {}      # lane id -> {msg id: [seq, callback, 404 count]}
        self.threads = {}
        self.seen = 0

    def watch(self, lane, mid, seq, on_acked):
        with self.lock:
            self.watched.setdefault(lane.id, {})[mid] = [seq, on_acked, 0]
            if lane.id not in self.threads:
                t = threading.Thread(target=self._run, args=(lane,), name=f"ackwatch-{lane.id}",
                                     daemon=True)
                self.threads[lane.id] = t
                t.start()

    def pending(self, lane_id=None):
        with self.lock:
            return sum(len(w) for k, w in self.watched.items() if lane_id in (None, k))

    def _run(self, lane):
        h = Http(lane.api_port, timeout=2.0)
        try:
            while not self.stop.wait(self.interval):
                if not lane.running() or lane.paused:
                    h.close()
                    continue
                try:
                    self._round(lane, h)
                except Exception:  # noqa: BLE001 - the lane is restarting: next round
                    h.close()
        finally:
            h.close()

    def _round(self, lane, h):
        with self.lock:
            todo = dict(self.watched.get(lane.id, {}))
        if not todo:
            return
        st, body = h.request("GET", "/v1/messages?state=pending&limit=10000")
        still = {m["id"] for m in body.get("messages", [])} if st == 200 else set()
        for mid, (seq, cb, _) in todo.items():
            if mid in still or self.stop.is_set():
                continue
            st, m = h.request("GET", f"/v1/messages/{mid}")
            if st == 404:
                with self.lock:
                    w = self.watched[lane.id].get(mid)
                    if w is not None:
                        w[2] += 1
                        if w[2] >= self.gone_after:
                            del self.watched[lane.id][mid]
                continue
            if st != 200 or not isinstance(m, dict) or m.get("origin") != lane.id or \
                    m.get("seq") != seq:
                continue
            if m.get("state") in ("peer_ack", "cloud_ack") or m.get("peer_acked_at"):
                with self.lock:
                    self.watched[lane.id].pop(mid, None)
                    self.seen += 1
                cb(mid, m)

    def close(self):
        self.stop.set()
        for t in list(self.threads.values()):
            t.join(timeout=5)


class Store:
    """Lanes of one store in one folder (a new temporary one unless `folder` is given).

    close() stops every lane; the folder is removed if this Store created it, after copying
    it (without outboxes) to `artifacts/<name>` when the run failed."""

    def __init__(self, name, *, folder=None, store_id="store-test", secret=SECRET, binary=None,
                 label=None, env=None):
        self.name = name
        self.owned = folder is None
        self.dir = tempfile.mkdtemp(prefix=f"lanesync-{name}-") if folder is None else folder
        os.makedirs(self.dir, exist_ok=True)
        self.store_id = store_id
        self.secret = secret
        self.binary = binary
        self.label = label
        self.env = dict(env or {})     # settings every lane of this store gets
        self.lanes = []

    def lane(self, lane_id, **env):
        lane = Lane(self.dir, lane_id, store_id=self.store_id, secret=self.secret,
                    binary=self.binary, env=dict(self.env, **env), label=self.label)
        self.lanes.append(lane)
        return lane

    def close(self, failed=False, artifacts=None):
        for lane in self.lanes:
            try:
                lane.kill9() if failed else lane.stop()
            except Exception:  # noqa: BLE001 - whatever happened, it must not outlive us
                lane.kill9()
        if failed:
            dest = os.path.join(artifacts or ARTIFACTS, self.name)
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copytree(self.dir, dest, ignore=shutil.ignore_patterns("*.db*"))
        if self.owned:
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


# ---- the local cloud ------------------------------------------------------------------------
def sql_str(s):
    """A SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


class Cloud:
    """The local cloud (scripts/cloud-up.sh: PostgreSQL + the edge function on Deno) in its own
    CLOUD_DIR on free ports, never the default ones. `folder` None: a new temporary folder,
    removed by destroy()."""

    def __init__(self, folder=None, api_port=None, db_port=None, tls=False):
        self.owned = folder is None
        self.dir = tempfile.mkdtemp(prefix="lanesync-cloud-") if folder is None else folder
        self.api_port = api_port or free_port()
        self.db_port = db_port or free_port()
        self.tls = tls
        self.lines = {}
        self.started = False
        self.logs = os.path.join(self.dir, "logs")

    def _env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPABASE_")}
        env.update(CLOUD_DIR=self.dir, CLOUD_API_PORT=str(self.api_port),
                   CLOUD_DB_PORT=str(self.db_port))
        return env

    def _script(self, name, *args, timeout=300, check=True):
        t = time.monotonic()
        r = subprocess.run([os.path.join(REPO, "scripts", name), *args], env=self._env(),
                           capture_output=True, text=True, timeout=timeout)
        log(f"  {name} {' '.join(args)} -> {r.returncode} ({time.monotonic() - t:.1f}s)",
            verbose=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed ({r.returncode}):\n"
                               + r.stderr[-3000:])
        return r.stdout

    def up(self):
        """Starts (or restarts) the cloud; on failure stops what cloud-up.sh got running."""
        self.started = True
        try:
            out = self._script("cloud-up.sh", "--tls" if self.tls else "--no-tls")
        except Exception:
            self.down(check=False)
            raise
        self.lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return self

    def down(self, part=None, check=True):
        """part: None (everything), 'functions' or 'db'."""
        args = {None: [], "functions": ["--functions-only"], "db": ["--db-only"]}[part]
        self._script("cloud-down.sh", *args, timeout=120, check=check)

    def purge(self, check=True):
        """Stops everything and deletes the cloud's data."""
        self._script("cloud-down.sh", "--purge", timeout=120, check=check)

    def destroy(self):
        """purge(), and the folder too if this Cloud created it."""
        self.purge(check=False)
        if self.owned:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self):
        return self.lines["SUPABASE_URL"]

    @property
    def key(self):
        return self.lines["SUPABASE_SERVICE_KEY"]

    @property
    def db_url(self):
        return self.lines["SUPABASE_DB_URL"]

    def lane_env(self):
        """Settings that point a lane at this cloud, with fast test timings."""
        env = {"SUPABASE_URL": self.url, "SUPABASE_SERVICE_KEY": self.key,
               "CLOUD_SYNC_INTERVAL_MS": 200, "SYNC_BACKOFF_BASE_MS": 50,
               "SYNC_BACKOFF_MAX_MS": 1000,
               # Requests are counted and held by some tests: heartbeats only where asked for.
               "CLOUD_HEARTBEAT_MS": 0}
        if "SUPABASE_CA_FILE" in self.lines:
            env["SUPABASE_CA_FILE"] = self.lines["SUPABASE_CA_FILE"]
        return env

    def psql(self, sql, timeout=30, separator=None):
        """Runs one statement; returns stdout (unaligned, tuples only). Raises on failure."""
        env = child_env(PGCONNECT_TIMEOUT="5", PGOPTIONS="-c statement_timeout=20000")
        sep = ["-F", separator] if separator is not None else []
        r = subprocess.run(["psql", self.db_url, "-X", "-q", "-At", *sep, "-v", "ON_ERROR_STOP=1",
                            "-c", sql], env=env, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.strip()[-500:]}")
        return r.stdout

    def psql_json(self, sql):
        out = self.psql(sql).strip()
        return json.loads(out) if out else None

    def origin_rows(self, store_id, terminal_id):
        """How many pos_messages rows the cloud holds of lane `terminal_id` of `store_id`."""
        out = self.psql("select count(*) from pos_messages where store_id = "
                        f"{sql_str(store_id)} and terminal_id = {sql_str(terminal_id)}")
        return int(out.strip() or 0)

    def uploads_by(self, store_id, terminal_id):
        """sync_log of one lane, by uploader: {uploaded_by (None = the lane itself):
        {"stored", "duplicate", "rejected", "requests"}} (issue 9: a peer covering a dead
        lane uploads its messages with uploadedBy)."""
        rows = self.sql("select coalesce(uploaded_by, ''), sum(stored), sum(duplicate), "
                        "sum(rejected), count(*) from sync_log where store_id = "
                        f"{sql_str(store_id)} and terminal_id = {sql_str(terminal_id)} group by 1")
        return {(r[0] or None): {"stored": int(r[1]), "duplicate": int(r[2]),
                                 "rejected": int(r[3]), "requests": int(r[4])} for r in rows}

    def sql(self, query, timeout=60):
        """Rows of a query as lists of strings."""
        return [l.split("\t") for l in self.psql(query, timeout, separator="\t").splitlines()
                if l]

    # ---- downstream (issue 13): head office's changes, docs/downstream.md "Cloud" -------------
    def psql_script(self, script, timeout=300):
        """Runs a SQL script given on stdin (any size) in one transaction, without psql()'s
        statement timeout (bulk loads); returns stdout."""
        env = child_env(PGCONNECT_TIMEOUT="5")
        r = subprocess.run(["psql", self.db_url, "-X", "-q", "-At", "-1", "-v", "ON_ERROR_STOP=1",
                            "-f", "-"], input=script, env=env, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.strip()[-500:]}")
        return r.stdout

    def publish(self, store_id, scope, key, data):
        """lanesync.publish_change as head office (store_id None: every store; data None: a
        delete); returns the version."""
        store = "null" if store_id is None else sql_str(store_id)
        value = "null" if data is None else sql_str(json.dumps(data)) + "::jsonb"
        return int(self.psql(f"select lanesync.publish_change({store}, {sql_str(scope)}, "
                             f"{sql_str(key)}, {value})").strip())

    def publish_many(self, store_id, scope, items):
        """[(key, data), ...] published in one transaction (lanesync.publish_set, in order);
        returns the last version (None for no items)."""
        if not items:
            return None
        store = "null" if store_id is None else sql_str(store_id)
        doc = json.dumps([[k, d] for k, d in items])
        out = self.psql_script(
            f"with j as (select {sql_str(doc)}::jsonb as j)\n"
            f"select lanesync.publish_set({store}, {sql_str(scope)},\n"
            "  array(select e.x ->> 0 from j, jsonb_array_elements(j.j) with ordinality e(x, n)"
            " order by n),\n"
            "  array(select nullif(e.x -> 1, 'null'::jsonb) from j,"
            " jsonb_array_elements(j.j) with ordinality e(x, n) order by n));\n")
        return int(out.strip())

    def load_products(self, count, prefix="sku-", price_cents=100):
        """Inserts `count` rows into lanesync.products in one statement (the triggers publish
        scopes products and prices); sku = prefix + 6-digit number from 1, name "Product N",
        price price_cents + N % 1000. Returns the log's head after it."""
        self.psql_script(f"insert into lanesync.products (sku, name, price_cents) "
                         f"select {sql_str(prefix)} || lpad(g::text, 6, '0'), 'Product ' || g, "
                         f"{int(price_cents)} + g % 1000 from generate_series(1, {int(count)}) g;",
                         timeout=900)
        return self.log_head()

    def set_price(self, sku, price_cents):
        """Updates one product's price (publishes products and prices); returns the log's head."""
        self.psql(f"update lanesync.products set price_cents = {int(price_cents)} "
                  f"where sku = {sql_str(sku)}")
        return self.log_head()

    def log_head(self):
        """The change log's head: the highest committed version."""
        return int(self.psql("select lanesync.change_log_head()").strip())

    def catalog(self, store_id, scope):
        """The cloud's current state of a scope as store_id sees it: {key: [version, data]} of
        the live keys (of a key held chain-wide and for the store, the higher version)."""
        out = self.psql(
            "select coalesce(jsonb_object_agg(key, jsonb_build_array(version, data)), '{}') from ("
            " select distinct on (key) key, version, deleted, data from public.catalog_current"
            f" where scope = {sql_str(scope)} and store_key in ({sql_str(store_id)}, '')"
            " order by key, version desc) x where not deleted", timeout=120).strip()
        return json.loads(out) if out else {}

    def compact(self, keep="0 seconds"):
        """lanesync.compact_change_log(keep); returns the version compacted through."""
        return int(self.psql(f"select lanesync.compact_change_log({sql_str(keep)}::interval)")
                   .strip())


# ---- head office's data on a lane (issue 13), read from its outbox ---------------------------
def catalog_cursor(lane, scope):
    """A lane's cursor of a catalog scope, read (read-only) from its outbox while it runs:
    {through, horizon, head, snapshot}, or None when it holds nothing of that scope yet."""
    import sqlite3  # standard library; only the catalog readers need it
    try:
        db = sqlite3.connect(f"file:{lane.outbox_path}?mode=ro", uri=True, timeout=30)
        try:
            row = db.execute("select through, horizon, head, snapshot from catalog_scopes "
                             "where scope = ?", (scope,)).fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:
        return None  # no outbox yet, or one not yet at schema 4
    if row is None:
        return None
    return {"through": row[0], "horizon": row[1], "head": row[2], "snapshot": bool(row[3])}


def catalog_held(lane, scope, prefix=""):
    """A lane's live rows of a catalog scope (keys starting with prefix), read-only from its
    outbox: {key: [version, data]}, the shape of Cloud.catalog."""
    import sqlite3
    db = sqlite3.connect(f"file:{lane.outbox_path}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("select key, version, data from catalog where scope = ? and deleted = 0 "
                          "and substr(key, 1, ?) = ?", (scope, len(prefix), prefix)).fetchall()
    finally:
        db.close()
    return {k: [v, json.loads(d)] for k, v, d in rows}


def catalog_synced(lane, scope, head):
    """True when the lane holds `scope` complete through `head` (no snapshot under way)."""
    c = catalog_cursor(lane, scope)
    return c is not None and c["through"] >= head and not c["snapshot"]


class CloudStoreTestCase(StoreTestCase):
    """A StoreTestCase whose tests share one local cloud (PostgreSQL + the edge function under
    Deno, up for the class); each test gets its own store id (self.sid), so rows never meet."""
    cloud = None

    @classmethod
    def setUpClass(cls):
        cls.cloud = Cloud().up()

    @classmethod
    def tearDownClass(cls):
        cls.cloud.destroy()

    def setUp(self):
        super().setUp()
        self.store.store_id = self.sid = "st-" + uuid.uuid4().hex[:12]
