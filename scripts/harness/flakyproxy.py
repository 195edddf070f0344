"""HTTP-aware fault proxy in front of the edge function (cloud-flaky scenario).

The lanes' SUPABASE_URL points here; each request is forwarded to the real function unless
the seeded dice say otherwise. Faults, each with its own probability:

- `fail`:   answer 503 {"error"} without forwarding (nothing was committed);
- `lost`:   forward, let the function commit, then answer 502 instead of its 200: the lane
            must retry and the function must answer `duplicate` (exactly once in effect);
- `stall`:  wait `stall_s` (uniform range) before forwarding, a slow network or cold start;
- `hang`:   forward, then hold the answer for `hang_s` seconds (beyond the lane's request
            timeout when configured so) and close without an answer;
- `cut`:    forward, then send half of the answer and close the connection.

Thread-per-connection (http.server), HTTP/1.1 keep-alive towards the lanes, a new upstream
connection per request.
"""
import http.client
import http.server
import json
import random
import socketserver
import threading
import time


class FlakyProxy:
    def __init__(self, listen_port, upstream_port, seed, fail=0.0, lost=0.0, stall=0.0,
                 hang=0.0, cut=0.0, stall_s=(0.5, 3.0), hang_s=(5.0, 8.0)):
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.probs = {"fail": fail, "lost": lost, "stall": stall, "hang": hang, "cut": cut}
        self.stall_s = stall_s
        self.hang_s = hang_s
        self.enabled = True
        self.stats = {"requests": 0, "forwarded": 0, "fail": 0, "lost": 0, "stall": 0,
                      "hang": 0, "cut": 0, "upstream_errors": 0}
        self.stopping = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                proxy._handle(self)

            do_GET = do_POST
            do_PUT = do_POST
            do_DELETE = do_POST

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", listen_port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="flakyproxy",
                                       daemon=True)
        self.thread.start()

    def _pick(self):
        with self.lock:
            self.stats["requests"] += 1
            if not self.enabled:
                return "forward", 0.0
            r = self.rng.random()
            acc = 0.0
            for name, p in self.probs.items():
                acc += p
                if r < acc:
                    self.stats[name] += 1
                    extra = 0.0
                    if name == "stall":
                        extra = self.rng.uniform(*self.stall_s)
                    elif name == "hang":
                        extra = self.rng.uniform(*self.hang_s)
                    return name, extra
            return "forward", 0.0

    def _read_body(self, h):
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(h.rfile.read(size))
                h.rfile.readline()
            return b"".join(parts)
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    def _send(self, h, status, body, headers=()):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _forward(self, h, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            hdrs = {k: v for k, v in h.headers.items()
                    if k.lower() not in ("host", "connection", "transfer-encoding",
                                         "content-length", "keep-alive")}
            conn.request(h.command, h.path, body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, r.read(), [(k, v) for k, v in r.getheaders()
                                        if k.lower() in ("content-type", "x-request-id", "allow")]
        finally:
            conn.close()

    def _handle(self, h):
        try:
            body = self._read_body(h)
        except (ValueError, OSError):
            h.close_connection = True
            return
        action, extra = self._pick()
        if action == "fail":
            self._send(h, 503, json.dumps({"error": "harness: injected 503"}).encode(),
                       [("Content-Type", "application/json")])
            return
        if action == "stall":
            self.stopping.wait(extra)
        try:
            status, rbody, rheaders = self._forward(h, body)
            with self.lock:
                self.stats["forwarded"] += 1
        except (OSError, http.client.HTTPException) as e:
            with self.lock:
                self.stats["upstream_errors"] += 1
            self._send(h, 502, json.dumps({"error": f"harness: upstream error {e}"}).encode(),
                       [("Content-Type", "application/json")])
            return
        if action == "lost":
            self._send(h, 502, json.dumps({"error": "harness: answer lost after commit"}).encode(),
                       [("Content-Type", "application/json")])
            return
        if action == "hang":
            self.stopping.wait(extra)
            h.close_connection = True
            return
        if action == "cut":
            h.send_response(status)
            for k, v in rheaders:
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(rbody)))
            h.end_headers()
            h.wfile.write(rbody[: len(rbody) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        self._send(h, status, rbody, rheaders)

    def close(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
