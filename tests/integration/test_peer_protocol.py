"""The peer endpoint against hostile or broken clients: every bad input gets a clear close
code, is counted, and the agent keeps serving."""
import hashlib
import hmac
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import SECRET, StoreTestCase, http, wait_for  # noqa: E402

from wsclient import Closed, WsClient


def mac(secret, role, store, client, server, nc, ns):
    msg = "\n".join(["lanesync-peer/1", role, store, client, server, nc, ns])
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


class PeerEndpoint(StoreTestCase):
    def setUp(self):
        super().setUp()
        self.l1 = self.store.lane("L1")
        self.l1.start()

    def ws(self):
        c = WsClient(self.l1.peer_port)
        self.addCleanup(c.close)
        return c

    def hello(self, ws, terminal="PY", store="store-test", v=1):
        nonce = os.urandom(32).hex()
        ws.send_json({"type": "hello", "v": v, "store": store, "terminal": terminal, "nonce": nonce})
        return nonce

    def authenticate(self, terminal="PY", v=1, send_ready=True):
        ws = self.ws()
        nc = self.hello(ws, terminal, v=v)
        ch = ws.recv()
        self.assertEqual(ch["type"], "challenge")
        self.assertEqual(ch["v"], v)  # served in the version the hello offered
        self.assertEqual(ch["terminal"], "L1")
        self.assertEqual(ch["mac"], mac(SECRET, "server", "store-test", terminal, "L1", nc, ch["nonce"]))
        ws.send_json({"type": "auth", "mac": mac(SECRET, "client", "store-test", terminal, "L1", nc, ch["nonce"])})
        ready = ws.recv()
        self.assertEqual(ready["type"], "ready")
        self.ready = ready
        if send_ready:
            ws.send_json({"type": "ready", "hwm": {}})
        return ws

    def still_serving(self):
        self.assertEqual(http("GET", self.l1.api + "/healthz").status, 200)

    def metric(self, name):
        body = http("GET", self.l1.api + "/metrics").body.decode()
        total = 0.0
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def test_not_json_closes_1007(self):
        ws = self.ws()
        ws.send_text("{not json")
        c = ws.expect_close()
        self.assertEqual(c.code, 1007)
        self.still_serving()
        self.assertGreaterEqual(self.metric("lanesync_peer_malformed_frames_total"), 1)

    def test_binary_frame_closes_1008(self):
        ws = self.ws()
        ws.send_binary(b"\x00\x01")
        self.assertEqual(ws.expect_close().code, 1008)
        self.still_serving()

    def test_unknown_version_is_refused_with_reason(self):
        ws = self.ws()
        self.hello(ws, v=99)
        c = ws.expect_close()
        self.assertEqual(c.code, 1008)
        self.assertIn("version", c.reason)

    def test_v1_frame_script_is_served_as_v1_with_v1_rules(self):
        # A v1 lane (plain-number marks) against this v2 lane: served, and its plain-number
        # acks promote as they always did.
        sent = [self.l1.publish("transaction", {"i": i}).json()["id"] for i in range(3)]
        ws = self.authenticate("PY", v=1)
        self.assertEqual(self.ready["hwm"], {"L1": 3})  # v1 marks: numbers, no ids
        batch = ws.recv()
        self.assertEqual(batch["type"], "batch")
        self.assertEqual([m["seq"] for m in batch["messages"]], [1, 2, 3])
        ws.send_json({"type": "ack", "n": batch["n"], "hwm": {"L1": 3}})
        wait_for(lambda: self.l1.counts()["peer_ack"] == 3, 20, what="v1 ack promotes")
        self.assertEqual(self.l1.message(sent[0]).json()["state"], "peer_ack")
        mid = "0190a0b0-0000-7000-8000-0000000000a1"
        ws.send_json({"type": "batch", "n": 1, "messages": [
            {"id": mid, "origin": "PY", "seq": 1, "topic": "t", "priority": "low",
             "data": {}, "created_at": 1}]})
        ack = ws.recv()
        self.assertEqual(ack, {"type": "ack", "n": 1, "hwm": {"L1": 3, "PY": 1}})

    def test_v2_marks_name_their_tip_and_a_wrong_tip_is_refused(self):
        mid = self.l1.publish("transaction", {"i": 1}).json()["id"]
        ws = self.authenticate("PY", v=2, send_ready=False)
        self.assertEqual(self.ready["hwm"], {"L1": {"seq": 1, "id": mid}})
        # This peer claims to hold L1:1 as another message: refused, never promoted.
        other = "0190a0b0-0000-7000-8000-0000000000b2"
        ws.send_json({"type": "ready", "hwm": {"L1": {"seq": 1, "id": other}}})
        c = ws.expect_close()
        # Issue 9: the lane takes it for a lost outbox and rebuilds (1001, reconnect at once).
        self.assertEqual(c.code, 1001)
        self.assertIn("rebuilding: peer holds seq 1 of L1 as", c.reason)
        self.assertEqual(self.l1.counts()["peer_ack"], 0)
        self.assertTrue(self.l1.status()["rebuild"]["active"])

    def test_v2_matching_tip_promotes(self):
        mid = self.l1.publish("transaction", {"i": 1}).json()["id"]
        ws = self.authenticate("PY", v=2, send_ready=False)
        ws.send_json({"type": "ready", "hwm": {"L1": {"seq": 1, "id": mid}}})
        wait_for(lambda: self.l1.counts()["peer_ack"] == 1, 20, what="matching tip promotes")

    def test_wrong_mac_is_refused(self):
        ws = self.ws()
        self.hello(ws)
        ch = ws.recv()
        ws.send_json({"type": "auth", "mac": "0" * 64})
        c = ws.expect_close()
        self.assertEqual(c.code, 1008)
        self.assertIn("authentication failed", c.reason)
        self.assertGreaterEqual(self.metric("lanesync_peer_auth_failures_total"), 1)

    def test_data_before_authentication_is_refused(self):
        ws = self.ws()
        ws.send_json({"type": "ready", "hwm": {}})
        self.assertEqual(ws.expect_close().code, 1008)

    def test_truncated_frame_then_disconnect_leaves_agent_serving(self):
        ws = self.ws()
        frame = ws._frame(0x1, b'{"type":"hello","v":1,"store":"store-test"}')
        ws.send_raw(frame[: len(frame) // 2])
        ws.close()
        self.still_serving()
        # A well-behaved client still gets in afterwards.
        self.authenticate("PY2")

    def test_authenticated_client_batch_is_stored_and_acked(self):
        ws = self.authenticate("PY")
        mid = "0190a0b0-0000-7000-8000-000000000001"
        ws.send_json({"type": "batch", "n": 1, "messages": [
            {"id": mid, "origin": "PY", "seq": 1, "topic": "transaction", "priority": "normal",
             "data": {"total": 3}, "created_at": 1700000000000}]})
        ack = ws.recv()
        while ack["type"] != "ack":
            ack = ws.recv()
        self.assertEqual(ack["n"], 1)
        self.assertEqual(ack["hwm"]["PY"], 1)
        self.assertEqual(self.l1.message(mid).json()["data"], {"total": 3})

    def test_batch_with_a_gap_is_refused_and_nothing_stored(self):
        ws = self.authenticate("PY")
        mid = "0190a0b0-0000-7000-8000-000000000005"
        ws.send_json({"type": "batch", "n": 1, "messages": [
            {"id": mid, "origin": "PY", "seq": 5, "topic": "t", "priority": "low",
             "data": {}, "created_at": 1}]})
        c = ws.expect_close()
        self.assertEqual(c.code, 1008)
        self.assertIn("gap", c.reason)
        self.assertEqual(self.l1.message(mid).status, 404)

    def test_malformed_message_in_batch_is_refused(self):
        ws = self.authenticate("PY")
        ws.send_json({"type": "batch", "n": 1, "messages": [
            {"id": "not-a-uuid", "origin": "PY", "seq": 1, "topic": "t", "priority": "low",
             "data": {}, "created_at": 1}]})
        self.assertEqual(ws.expect_close().code, 1008)
        self.still_serving()

    def test_plain_http_and_wrong_path(self):
        r = http("GET", f"http://127.0.0.1:{self.l1.peer_port}/v1/peer")
        self.assertEqual(r.status, 426)
        r = http("GET", f"http://127.0.0.1:{self.l1.peer_port}/other")
        self.assertEqual(r.status, 404)
        self.still_serving()

    def test_garbage_bytes_instead_of_http(self):
        with socket.create_connection(("127.0.0.1", self.l1.peer_port), timeout=5) as s:
            s.sendall(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
            try:
                s.recv(100)
            except OSError:
                pass
        self.still_serving()


if __name__ == "__main__":
    unittest.main()
