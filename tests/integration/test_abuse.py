"""Abuse of the peer port and the local API is visible and bounded (docs/bad-input.md):
oversized frames close with 1009 and are counted; connections that never authenticate are
counted by reason and logged with their address, rate-limited; the connection limits refuse
the excess; replayed authentication fails; a peer's clock does not matter; hostile HTTP gets
a clear answer. Nothing of it is stored, and the agent keeps serving."""
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import SECRET, StoreTestCase, http, wait_for  # noqa: E402

from test_peer_protocol import mac  # noqa: E402
import wsclient  # noqa: E402
from wsclient import WsClient  # noqa: E402


def frame_header(opcode, n, fin=True):
    """A masked client frame header announcing `n` payload bytes, with an all-zero mask (valid
    per RFC 6455, and the payload then goes unchanged: no Python loop over 17 MiB)."""
    return wsclient.frame_header(opcode, n, fin)


def send_quietly(sock, data):
    """The agent may close while we still send: that is the point."""
    try:
        sock.sendall(data)
    except OSError:
        pass


def closed_soon(sock, timeout=5.0):
    """True when the other side closes (EOF or reset) within `timeout` without answering."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class Abuse(StoreTestCase):
    def start_lane(self, **env):
        self.l1 = self.store.lane("L1", **env)
        self.l1.start()
        return self.l1

    def ws(self):
        c = WsClient(self.l1.peer_port)
        self.addCleanup(c.close)
        return c

    def tcp(self, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(s.close)
        return s

    def authenticate(self, terminal="PY", v=1):
        ws = self.ws()
        nc = os.urandom(32).hex()
        hello = {"type": "hello", "v": v, "store": "store-test", "terminal": terminal, "nonce": nc}
        ws.send_json(hello)
        ch = ws.recv()
        auth = {"type": "auth", "mac": mac(SECRET, "client", "store-test", terminal, "L1", nc, ch["nonce"])}
        ws.send_json(auth)
        self.assertEqual(ws.recv()["type"], "ready")
        ws.send_json({"type": "ready", "hwm": {}})
        return ws, hello, auth

    def preauth(self, reason):
        return self.l1.metric("lanesync_peer_preauth_failures_total", reason=reason) or 0

    def still_serving(self):
        self.assertEqual(http("GET", self.l1.api + "/healthz").status, 200)
        ws, _, _ = self.authenticate("GOOD")
        ws.close()

    def stored_nothing(self):
        st = self.l1.status()
        self.assertEqual(st["replicas"], {})
        self.assertEqual(st["outbox"]["pending"], 0)

    # ---- oversized frames --------------------------------------------------------------------
    def test_frame_announcing_2_62_bytes_closes_1009_counted_and_logged(self):
        self.start_lane()
        ws = self.ws()
        ws.send_raw(frame_header(0x1, 1 << 62))
        c = ws.expect_close()
        self.assertEqual(c.code, 1009)
        ws.close()  # rather than answer the close (the agent would wait for that up to 10 s)
        wait_for(lambda: self.preauth("oversized_frame") == 1, 10, what="oversized_frame counted")
        self.assertGreaterEqual(self.l1.metric("lanesync_peer_malformed_frames_total"), 1)
        lines = self.l1.log_lines("peer.preauth_failed")
        self.assertTrue(any("reason=oversized_frame" in l and "remote=127.0.0.1:" in l and " warn " in l
                            for l in lines), lines)
        self.stored_nothing()
        self.still_serving()

    def test_real_17_mib_message_after_auth_closes_1009(self):
        self.start_lane()
        ws, _, _ = self.authenticate("PY")
        before = self.l1.metric("lanesync_peer_malformed_frames_total")
        # 17 fragments of 1 MiB: each frame is small, the message is over the 16 MiB limit.
        chunk = b" " * (1 << 20)
        ws.send_raw(frame_header(0x1, len(chunk), fin=False) + b"{" + chunk[1:])
        sender = threading.Thread(target=lambda: [send_quietly(ws.sock, frame_header(0x0, len(chunk), fin=(i == 15)) + chunk)
                                                  for i in range(16)])
        sender.start()
        c = ws.expect_close()
        sender.join(30)
        self.assertEqual(c.code, 1009)
        wait_for(lambda: self.l1.metric("lanesync_peer_malformed_frames_total") == before + 1, 10,
                 what="oversized message counted as malformed")
        wait_for(lambda: any("peer=PY" in l and " warn " in l for l in self.l1.log_lines("peer.frame_too_big")),
                 10, what="peer.frame_too_big warning")
        self.stored_nothing()
        self.still_serving()

    def test_invalid_utf8_text_frame_closes_1007_counted(self):
        self.start_lane()
        ws, _, _ = self.authenticate("PY")
        before = self.l1.metric("lanesync_peer_malformed_frames_total")
        ws.send_raw(frame_header(0x1, 4) + b'{"\xff"')
        self.assertEqual(ws.expect_close().code, 1007)
        ws.close()
        wait_for(lambda: self.l1.metric("lanesync_peer_malformed_frames_total") == before + 1, 10,
                 what="invalid UTF-8 counted as malformed")
        self.stored_nothing()
        self.still_serving()

    # ---- connections that never authenticate -------------------------------------------------
    def test_preauth_floods_are_counted_by_reason_and_logged_rate_limited(self):
        """Idle sockets, slowloris headers, truncated frames, refused upgrades, garbage, wrong
        secrets: each counted once under its reason, at most 10 log lines per reason."""
        self.start_lane()
        port = self.l1.peer_port
        idle = [self.tcp(port) for _ in range(14)]
        slow = [self.tcp(port) for _ in range(3)]
        for s in slow:
            s.sendall(b"GET /v1/peer HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        truncated = []
        for _ in range(3):
            w = self.ws()
            frame = w._frame(0x1, b'{"type":"hello","v":2,"store":"store-test"}')
            w.send_raw(frame[: len(frame) // 2])
            truncated.append(w)
        t0 = time.monotonic()
        for path in ("/other", "/v1/peer", "/"):
            http("GET", f"http://127.0.0.1:{port}{path}")
        for _ in range(3):
            g = self.tcp(port)
            g.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
            closed_soon(g)
        for _ in range(12):
            w = self.ws()
            nc = os.urandom(32).hex()
            w.send_json({"type": "hello", "v": 1, "store": "store-test", "terminal": "EVE", "nonce": nc})
            w.recv()
            w.send_json({"type": "auth", "mac": "0" * 64})
            self.assertEqual(w.expect_close().code, 1008)
            w.close()
        self.assertGreaterEqual(self.l1.metric("lanesync_peer_connections_open"), 20)
        wait_for(lambda: self.preauth("wrong_secret") == 12, 10, what="12 wrong secrets")
        self.assertEqual(self.preauth("refused_upgrade"), 3)
        self.assertEqual(self.preauth("bad_handshake"), 3)
        # The 10 s deadline of the handshake drops the 20 others.
        wait_for(lambda: self.preauth("timeout") == 20, 20, what="20 timeouts")
        self.assertGreaterEqual(time.monotonic() - t0, 9)
        self.assertEqual(self.l1.metric("lanesync_peer_connections_open"), 0)
        for s in idle + slow:
            self.assertTrue(closed_soon(s, 1))
        lines = self.l1.log_lines("peer.preauth_failed", limit=1000)
        for reason, n in (("timeout", 10), ("wrong_secret", 10), ("refused_upgrade", 3)):
            mine = [l for l in lines if f"reason={reason}" in l]
            self.assertEqual(len(mine), n, (reason, mine))
            self.assertTrue(all("remote=127.0.0.1:" in l and " warn " in l for l in mine), mine)
        suppressing = self.l1.log_lines("log.suppressing", limit=100)
        for key in ("timeout", "wrong_secret"):
            self.assertEqual(len([l for l in suppressing if f"key={key}" in l]), 1, suppressing)
        self.assertEqual(self.l1.log_lines("peer.handshake_failed", "peer.refused"), [])
        self.stored_nothing()
        self.still_serving()

    def test_too_many_peer_connections_are_closed_at_accept(self):
        self.start_lane(PEER_MAX_CONNECTIONS="4")
        port = self.l1.peer_port
        held = [self.tcp(port) for _ in range(4)]
        wait_for(lambda: self.l1.metric("lanesync_peer_connections_open") == 4, 10, what="4 open")
        extra = self.tcp(port)
        self.assertTrue(closed_soon(extra, 5), "the 5th connection was not closed")
        wait_for(lambda: self.preauth("too_many_connections") >= 1, 10, what="refusal counted")
        self.assertTrue(any("reason=too_many_connections" in l
                            for l in self.l1.log_lines("peer.preauth_failed")))
        for s in held:
            s.close()
        wait_for(lambda: self.l1.metric("lanesync_peer_connections_open") == 0, 10, what="0 open")
        self.still_serving()

    def test_replayed_authentication_is_refused(self):
        self.start_lane()
        ws, hello, auth = self.authenticate("PY")
        ws.close()
        replay = self.ws()
        replay.send_json(hello)  # the same nonce
        self.assertEqual(replay.recv()["type"], "challenge")  # with a fresh server nonce
        replay.send_json(auth)
        c = replay.expect_close()
        self.assertEqual(c.code, 1008)
        self.assertIn("authentication failed", c.reason)
        # The refusal is counted when the connection ends: a client that kept the socket open
        # after the close frame would hold that for the close handshake's 10 s timeout.
        replay.close()
        wait_for(lambda: self.preauth("wrong_secret") == 1, 10, what="replay counted")
        self.still_serving()

    def test_a_peer_clock_far_off_does_not_matter(self):
        """created_at is data: far in the future or the past, the batch is stored and acked."""
        self.start_lane()
        ws, _, _ = self.authenticate("PY")
        ids = ["0190a0b0-0000-7000-8000-0000000000a1", "0190a0b0-0000-7000-8000-0000000000a2"]
        ws.send_json({"type": "batch", "n": 1, "messages": [
            {"id": ids[0], "origin": "PY", "seq": 1, "topic": "t", "priority": "low",
             "data": {"k": 1}, "created_at": 253402300799999},   # 9999-12-31
            {"id": ids[1], "origin": "PY", "seq": 2, "topic": "t", "priority": "low",
             "data": {"k": 2}, "created_at": -86400000}]})       # 1969-12-31
        while (a := ws.recv())["type"] != "ack":
            pass
        self.assertEqual(a["hwm"]["PY"], 2)
        for mid in ids:
            self.assertEqual(self.l1.message(mid).status, 200)

    # ---- the local API -----------------------------------------------------------------------
    def test_too_many_api_connections_are_closed_at_accept(self):
        self.start_lane(LOCAL_API_MAX_CONNECTIONS="3")
        port = self.l1.api_port
        held = [self.tcp(port) for _ in range(3)]
        extra = self.tcp(port)
        self.assertTrue(closed_soon(extra, 5), "the 4th API connection was not closed")
        for s in held:
            s.close()
        wait_for(lambda: http("GET", self.l1.api + "/healthz").status == 200, 10, what="API back")
        self.assertGreaterEqual(self.l1.metric("lanesync_api_connections_refused_total"), 1)
        self.assertTrue(any("too many connections" in l and " warn " in l
                            for l in self.l1.log_lines("api.connection_refused")))

    def raw_api(self, data, timeout=10):
        """Sends raw bytes to the API, returns (status, JSON body) of the answer."""
        s = self.tcp(self.l1.api_port)
        send_quietly(s, data)
        s.settimeout(timeout)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        status = int(head.split(b" ")[1])
        return status, json.loads(body) if body else None

    def test_hostile_http_gets_clear_answers_and_stores_nothing(self):
        self.start_lane()
        post = "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        # A huge Content-Length: refused from the header, before any body is read.
        status, body = self.raw_api((post + "Content-Length: 99999999999\r\n\r\n{").encode())
        self.assertEqual(status, 413)
        self.assertIn("MAX_MESSAGE_BYTES", body["error"])
        status, body = self.raw_api((post + "Content-Length: 999999999999999999999999\r\n\r\n").encode())
        self.assertEqual(status, 400)
        self.assertIn("malformed HTTP request", body["error"])
        # Header floods: one huge header, and thousands of small ones.
        status, body = self.raw_api((post + "X-A: " + "a" * 20000 + "\r\n\r\n").encode())
        self.assertEqual(status, 431)
        status, body = self.raw_api((post + "".join(f"X-{i}: v\r\n" for i in range(3000)) + "\r\n").encode())
        self.assertEqual(status, 431)
        # Deeply nested JSON (over the depth limit of 64, and far over it) and invalid UTF-8.
        for data in ('{"a":' * 65 + "1" + "}" * 65, "[" * 100000 + "]" * 100000):
            r = http("POST", self.l1.api + "/v1/messages",
                     '{"topic":"t","data":{"x":' + data + "}}")
            self.assertEqual(r.status, 400, r.body[:200])
            self.assertIn("error", r.json())
        r = http("POST", self.l1.api + "/v1/messages", b'{"topic":"t","data":{"x":"\xff\xfe"}}')
        self.assertEqual(r.status, 400)
        self.assertIn("error", r.json())
        self.assertEqual(self.l1.status()["outbox"]["pending"], 0)
        self.assertEqual(http("GET", self.l1.api + "/healthz").status, 200)


if __name__ == "__main__":
    unittest.main()
