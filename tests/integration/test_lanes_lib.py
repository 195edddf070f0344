"""scripts/lib/lanes.py itself, without the agent: ports, waits, HTTP, and the process rules
(started, healthy, stopped, killed, exits noticed) against a stand-in agent written here."""
from http import server as httpserver
import os
import shutil
import sys
import tempfile
import textwrap
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
import lanes  # noqa: E402
from lanes import Deadline, Http, Monitor, Store, free_port, http, wait_for  # noqa: E402

# `fake agent --env FILE`: serves GET /healthz on LOCAL_API_PORT, exits 0 on SIGTERM, or exits 3
# by itself once the file named by FAKE_EXIT_FLAG exists.
FAKE_AGENT = textwrap.dedent("""\
    #!/usr/bin/env python3
    import http.server, os, signal, sys, threading
    env = dict(l.rstrip("\\n").split("=", 1) for l in open(sys.argv[3])
               if "=" in l and not l.startswith("#"))
    print("fake agent", env["TERMINAL_ID"], "cwd", os.getcwd(), "inherited PEER_SECRET",
          "PEER_SECRET" in os.environ, flush=True)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(env["LOCAL_API_PORT"])), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    flag = env.get("FAKE_EXIT_FLAG")
    while not stop.wait(0.02):
        if flag and os.path.exists(flag):
            sys.exit(3)
    sys.exit(0)
    """)


class Ports(unittest.TestCase):
    def test_never_twice_and_below_the_ephemeral_range(self):
        lo, _ = lanes._ephemeral_range()
        ports = [free_port() for _ in range(200)]
        self.assertEqual(len(set(ports)), len(ports))
        if lo - 10000 >= 1024:
            self.assertTrue(all(lo - 10000 <= p < lo for p in ports), ports)


class Waits(unittest.TestCase):
    def test_returns_the_first_truthy_value(self):
        n = iter(range(10))
        self.assertEqual(wait_for(lambda: next(n) >= 3 and "three", 5), "three")

    def test_exceptions_mean_not_yet_and_are_named(self):
        def boom():
            raise ConnectionRefusedError("starting")
        with self.assertRaises(Deadline) as cm:
            wait_for(boom, 0.2, what="a thing")
        self.assertIn("a thing", str(cm.exception))
        self.assertIn("starting", str(cm.exception))

    def test_a_deadline_from_the_predicate_ends_the_wait_at_once(self):
        def give_up():
            raise Deadline("gave up")
        t = time.monotonic()
        with self.assertRaises(Deadline):
            wait_for(give_up, 30)
        self.assertLess(time.monotonic() - t, 5)

    def test_a_deadline_is_a_test_failure(self):
        self.assertTrue(issubclass(Deadline, AssertionError))


class Requests(unittest.TestCase):
    def setUp(self):
        class H(httpserver.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ct = self.headers["Content-Type"].encode()
                out = b'{"got": ' + body + b', "ct": "' + ct + b'"}'
                self.send_response(201)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self):
                self.send_response(404)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"nah")

            def log_message(self, *a):
                pass
        self.srv = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(t.join, 5)
        self.addCleanup(self.srv.server_close)
        self.addCleanup(self.srv.shutdown)

    def test_one_shot_json_and_error_status(self):
        r = http("POST", f"http://127.0.0.1:{self.port}/x", {"a": 1})
        self.assertEqual(r.status, 201)
        self.assertEqual(r.json(), {"got": {"a": 1}, "ct": "application/json"})
        r = http("GET", f"http://127.0.0.1:{self.port}/missing")
        self.assertEqual((r.status, r.body), (404, b"nah"))

    def test_keep_alive_client(self):
        h = Http(self.port)
        self.addCleanup(h.close)
        for i in range(3):
            self.assertEqual(h.request("POST", "/x", {"i": i}),
                             (201, {"got": {"i": i}, "ct": "application/json"}))
        self.assertEqual(h.request("GET", "/missing"), (404, b"nah"))


class Processes(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="lanes-lib-")
        self.fake = os.path.join(self.tmp, "fake-agent")
        with open(self.fake, "w") as f:
            f.write(FAKE_AGENT)
        os.chmod(self.fake, 0o755)
        self.store = Store("lanes-lib", binary=self.fake)
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(self.store.close)

    def test_start_healthy_stop_in_its_folder_without_our_settings(self):
        os.environ["PEER_SECRET"] = "from-the-parent-environment"
        self.addCleanup(os.environ.pop, "PEER_SECRET", None)
        a, b = self.store.lane("L1"), self.store.lane("L2", EXTRA_KEY=7)
        a.peer_with(b)
        a.start()
        self.assertTrue(a.running())
        self.assertEqual(http("GET", a.api + "/healthz").status, 200)
        self.assertEqual(a.stop(), 0)
        self.assertFalse(a.running())
        with open(a.env_path) as f:
            env = f.read()
        self.assertIn(f"PEER_TERMINALS={b.peer_url}\n", env)
        self.assertIn(f"PEER_SECRET={lanes.SECRET}\n", env)
        self.assertIn("LOG_LEVEL=debug\n", env)
        self.assertNotIn("#", env, "no label: the env file is only settings")
        self.assertEqual(a.log_text(), f"fake agent L1 cwd {os.path.realpath(self.store.dir)} "
                                       "inherited PEER_SECRET False\n")
        self.assertEqual(b.env["EXTRA_KEY"], "7")
        self.assertEqual(b.stop(), None, "never started")
        self.assertEqual(b.terminate(), 0, "never started")

    def test_label_marks_env_file_and_each_start(self):
        store = Store("labelled", binary=self.fake, label="harness")
        self.addCleanup(store.close)
        a = store.lane("L1")
        a.start()
        a.kill9()
        a.start()
        self.assertEqual(a.terminate(), 0)
        self.assertEqual(a.starts, 2)
        self.assertEqual(len(a.log_lines("---- harness: start #")), 2)
        with open(a.env_path) as f:
            self.assertTrue(f.readline().startswith("# written by harness"))

    def test_an_exit_nobody_asked_for_is_noticed(self):
        flag = os.path.join(self.tmp, "exit-now")
        a = self.store.lane("L1", FAKE_EXIT_FLAG=flag)
        a.start()
        mon = Monitor([a])
        self.addCleanup(mon.close)
        open(flag, "w").close()
        wait_for(lambda: a.unexpected_exits, 10, what="the exit noticed")
        self.assertEqual(a.unexpected_exits[0][1], 3)
        self.assertFalse(a.running())

    def test_a_lane_that_dies_while_starting_fails_at_once(self):
        flag = os.path.join(self.tmp, "exit-now")
        open(flag, "w").close()
        a = self.store.lane("L1", FAKE_EXIT_FLAG=flag, LOCAL_API_PORT=1)  # cannot bind: exits
        t = time.monotonic()
        with self.assertRaises(Deadline) as cm:
            a.start(timeout=30)
        self.assertIn("exited", str(cm.exception))
        self.assertLess(time.monotonic() - t, 20)

    def test_close_stops_every_lane(self):
        ls = [self.store.lane(f"L{i}") for i in (1, 2, 3)]
        for lane in ls:
            lane.start()
        ls[1].pause()
        folder = self.store.dir
        self.store.close()
        self.assertFalse(any(lane.running() for lane in ls))
        self.assertFalse(os.path.exists(folder))


if __name__ == "__main__":
    unittest.main()
