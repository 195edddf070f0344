"""A fault-injecting HTTP proxy in front of the local cloud's function for integration tests.
The local cloud itself is lanes.Cloud (scripts/lib/lanes.py)."""
import http.server
import threading
import urllib.error
import urllib.request


class HoldingProxy:
    """An HTTP proxy in front of the function. While `hold` is set, it forwards a request,
    records the function's answer (the batch is committed in the cloud), and then never
    answers the lane: the test kills the lane in that window. While `refuse` is set, it
    answers every upload 503 without forwarding it (pulls pass through). `posted` holds the
    body of every upload forwarded to the function, in the order the proxy received them."""

    def __init__(self, target):
        self.target = target.rstrip("/")
        self.hold = threading.Event()
        self.held = threading.Event()
        self.refuse = threading.Event()
        self.held_answer = None
        self.answers = []
        self.posted = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def forward(self, method, body=None):
                req = urllib.request.Request(proxy.target + self.path, data=body, method=method,
                                             headers={k: v for k, v in self.headers.items()
                                                      if k.lower() not in ("host", "content-length", "connection")})
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        return r.status, r.read()
                except urllib.error.HTTPError as e:
                    return e.code, e.read()

            def answer(self, status, payload):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):  # the lane's highest-seq query: passed through, never held
                self.answer(*self.forward("GET"))

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if proxy.refuse.is_set() and "sync-pull" not in self.path:
                    self.answer(503, b'{"error": "refused by the test proxy"}')
                    return
                if proxy.held.is_set() and proxy.hold.is_set():
                    # One batch is already committed and unanswered; the lane's retries must
                    # not reach the cloud before the test has killed the lane.
                    self.close_connection = True
                    return
                if "sync-pull" not in self.path:
                    with proxy.lock:
                        proxy.posted.append(body)
                status, payload = self.forward("POST", body)
                proxy.answers.append((status, payload))
                if proxy.hold.is_set() and status == 200:
                    proxy.held_answer = payload
                    proxy.held.set()
                    self.close_connection = True
                    return  # the cloud committed; the lane never hears about it
                self.answer(status, payload)

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
