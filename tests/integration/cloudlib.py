"""The local cloud (scripts/cloud-up.sh: real PostgreSQL + the edge function on a real Deno)
for integration tests: its own folder and free ports, always brought down afterwards."""
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.request

from lanesync_testlib import free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class LocalCloud:
    def __init__(self, tls=False):
        self.dir = tempfile.mkdtemp(prefix="lanesync-cloud-")
        self.env = dict(os.environ, CLOUD_DIR=self.dir, CLOUD_API_PORT=str(free_port()),
                        CLOUD_DB_PORT=str(free_port()))
        self.tls = tls
        self.lines = {}

    def up(self):
        args = [os.path.join(ROOT, "scripts", "cloud-up.sh")] + (["--tls"] if self.tls else [])
        r = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError(f"cloud-up failed ({r.returncode}):\n{r.stderr[-3000:]}")
        self.lines = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
        return self

    def down(self, *flags):
        subprocess.run([os.path.join(ROOT, "scripts", "cloud-down.sh"), *flags], env=self.env,
                       capture_output=True, text=True, timeout=120)

    def destroy(self):
        self.down("--purge")
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self):
        return self.lines["SUPABASE_URL"]

    @property
    def key(self):
        return self.lines["SUPABASE_SERVICE_KEY"]

    def lane_env(self):
        env = {"SUPABASE_URL": self.url, "SUPABASE_SERVICE_KEY": self.key,
               "CLOUD_SYNC_INTERVAL_MS": 200, "SYNC_BACKOFF_BASE_MS": 50, "SYNC_BACKOFF_MAX_MS": 1000}
        if "SUPABASE_CA_FILE" in self.lines:
            env["SUPABASE_CA_FILE"] = self.lines["SUPABASE_CA_FILE"]
        return env

    def sql(self, query):
        r = subprocess.run(["psql", self.lines["SUPABASE_DB_URL"], "-At", "-F", "\t", "-c", query],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"psql failed: {r.stderr}")
        return [l.split("\t") for l in r.stdout.splitlines() if l]


class HoldingProxy:
    """An HTTP proxy in front of the function. While `hold` is set, it forwards a request,
    records the function's answer (the batch is committed in the cloud), and then never
    answers the lane: the test kills the lane in that window."""

    def __init__(self, target):
        self.target = target.rstrip("/")
        self.hold = threading.Event()
        self.held = threading.Event()
        self.held_answer = None
        self.answers = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if proxy.held.is_set() and proxy.hold.is_set():
                    # One batch is already committed and unanswered; the lane's retries must
                    # not reach the cloud before the test has killed the lane.
                    self.close_connection = True
                    return
                req = urllib.request.Request(proxy.target + self.path, data=body, method="POST",
                                             headers={k: v for k, v in self.headers.items()
                                                      if k.lower() not in ("host", "content-length", "connection")})
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        status, payload = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, payload = e.code, e.read()
                proxy.answers.append((status, payload))
                if proxy.hold.is_set() and status == 200:
                    proxy.held_answer = payload
                    proxy.held.set()
                    self.close_connection = True
                    return  # the cloud committed; the lane never hears about it
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
