"""Processes the harness starts: the local cloud (scripts/cloud-up.sh) and lane agents."""
import ctypes
import json
import os
import signal
import subprocess
import threading
import time

from hutil import Deadline, Http, http_once, log, wait_until

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Variables a lane must not inherit from the harness' own environment: everything a lane
# needs is written into its env file.
_LANE_KEYS = ("TERMINAL_", "STORE_ID", "PEER_", "LOCAL_API_PORT", "OUTBOX_", "SUPABASE_",
              "SYNC_", "CLOUD_", "MAX_MESSAGE_BYTES", "LOG_")


def _child_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(_LANE_KEYS)}


_libc = None


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the harness dies (even by SIGKILL), so no lane
    outlives it. Linux only; PR_SET_PDEATHSIG = 1. Lanes are spawned from the main thread
    only, because the signal fires when the spawning *thread* exits."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


class Cloud:
    """The local cloud in its own CLOUD_DIR on free ports (never the default ones)."""

    def __init__(self, cloud_dir, api_port, db_port):
        self.dir = cloud_dir
        self.api_port = api_port
        self.db_port = db_port
        self.url = self.key = self.db_url = None
        self.started = False
        self.logs = os.path.join(cloud_dir, "logs")

    def _env(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("SUPABASE_"):
                del env[k]
        env.update(CLOUD_DIR=self.dir, CLOUD_API_PORT=str(self.api_port),
                   CLOUD_DB_PORT=str(self.db_port))
        return env

    def _script(self, name, *args, timeout=180):
        t = time.monotonic()
        r = subprocess.run([os.path.join(REPO, "scripts", name), *args], env=self._env(),
                           capture_output=True, text=True, timeout=timeout)
        log(f"  {name} {' '.join(args)} -> {r.returncode} ({time.monotonic() - t:.1f}s)",
            verbose=True)
        if r.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed ({r.returncode}):\n"
                               + r.stderr[-3000:])
        return r.stdout

    def up(self):
        self.started = True
        out = self._script("cloud-up.sh", "--no-tls")
        kv = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        self.url = kv["SUPABASE_URL"]
        self.key = kv["SUPABASE_SERVICE_KEY"]
        self.db_url = kv["SUPABASE_DB_URL"]

    def down(self, part=None):
        """part: None (everything), 'functions' or 'db'."""
        args = {None: [], "functions": ["--functions-only"], "db": ["--db-only"]}[part]
        self._script("cloud-down.sh", *args, timeout=60)

    def purge(self):
        self._script("cloud-down.sh", "--purge", timeout=60)

    def psql(self, sql, timeout=30):
        """Runs one statement; returns stdout (unaligned, tuples only). Raises on failure."""
        env = _child_env()
        env.update(PGCONNECT_TIMEOUT="5", PGOPTIONS="-c statement_timeout=20000")
        r = subprocess.run(["psql", self.db_url, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                            "-c", sql], env=env, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.strip()[-500:]}")
        return r.stdout

    def psql_json(self, sql):
        out = self.psql(sql).strip()
        return json.loads(out) if out else None


class Lane:
    """One lanesync agent: env file, outbox, log and process under the scenario folder."""

    def __init__(self, binary, folder, lane_id, store_id, secret, peer_port, api_port, extra):
        self.binary = binary
        self.folder = folder
        self.id = lane_id
        self.store_id = store_id
        self.peer_port = peer_port
        self.api_port = api_port
        self.peer_urls = []
        self.env = {
            "TERMINAL_ID": lane_id,
            "STORE_ID": store_id,
            "TERMINAL_PORT": str(peer_port),
            "TERMINAL_BIND": "127.0.0.1",
            "PEER_SECRET": secret,
            "LOCAL_API_PORT": str(api_port),
            "OUTBOX_PATH": os.path.join(folder, f"{lane_id}.db"),
        }
        self.env.update({k: str(v) for k, v in extra.items()})
        self.env_path = os.path.join(folder, f"{lane_id}.env")
        self.log_path = os.path.join(folder, f"{lane_id}.log")
        self.proc = None
        self.expected_down = True      # not started yet
        self.paused = False
        self.starts = 0
        self.unexpected_exits = []     # (time, returncode)
        self.lock = threading.Lock()

    @property
    def peer_url(self):
        return f"ws://127.0.0.1:{self.peer_port}/v1/peer"

    def write_env(self):
        env = dict(self.env)
        if self.peer_urls:
            env["PEER_TERMINALS"] = ",".join(self.peer_urls)
        with open(self.env_path, "w") as f:
            f.write(f"# written by scripts/harness for lane {self.id}\n")
            for k, v in env.items():
                f.write(f"{k}={v}\n")

    def start(self, wait=True, timeout=30):
        assert threading.current_thread() is threading.main_thread(), \
            "lanes are spawned from the main thread (PR_SET_PDEATHSIG)"
        assert not self.running(), f"{self.id} already running"
        self.write_env()
        with open(self.log_path, "ab") as logf:
            logf.write(f"---- harness: start #{self.starts + 1} of {self.id} at "
                       f"{time.strftime('%H:%M:%S')} ----\n".encode())
            logf.flush()
            self.proc = subprocess.Popen([self.binary, "agent", "--env", self.env_path],
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.folder,
                                         env=_child_env(), preexec_fn=_die_with_parent)
        self.starts += 1
        self.expected_down = False
        self.paused = False
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=30):
        def ok():
            if self.proc.poll() is not None:
                raise Deadline(f"lane {self.id} exited with {self.proc.returncode} while "
                               f"starting; log tail:\n{self.log_tail()}")
            return http_once(self.api_port, "GET", "/healthz", timeout=1)[0] == 200
        wait_until(ok, timeout, f"lane {self.id} healthy")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        """Records an exit nobody asked for (called by the monitor thread)."""
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
        if self.proc is not None and self.running():
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def terminate(self, timeout=20):
        """SIGTERM and wait; returns the exit code, or None if it had to be killed."""
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

    def cleanup(self):
        """Best effort stop for the finally path: continue, SIGTERM, then SIGKILL."""
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

    def status(self, timeout=5):
        st, body = http_once(self.api_port, "GET", "/v1/status", timeout=timeout)
        if st != 200:
            raise RuntimeError(f"GET /v1/status on {self.id} answered {st}")
        return body

    def client(self, timeout=5.0):
        return Http(self.api_port, timeout)

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_lines(self, *needles, limit=20):
        out = []
        try:
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    if any(n in line for n in needles):
                        out.append(line.rstrip("\n"))
        except OSError:
            pass
        return out[-limit:]

    def check_db(self):
        r = subprocess.run([self.binary, "check-db", "--env", self.env_path], cwd=self.folder,
                           env=_child_env(), capture_output=True, text=True, timeout=120)
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
