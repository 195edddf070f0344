"""The local API and the command line against a real agent process: every bad input gets
the documented status or exit code and writes nothing."""
import json
import os
import socket
import sys
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import BIN, StoreTestCase, http, wait_for  # noqa: E402


class Api(StoreTestCase):
    def setUp(self):
        super().setUp()
        self.l1 = self.store.lane("L1", MAX_MESSAGE_BYTES=4096)
        self.l1.start()

    def total(self):
        c = self.l1.counts()
        return c["pending"] + c["peer_ack"] + c["cloud_ack"] + c["failed"]

    def post(self, body, **kw):
        return http("POST", self.l1.api + "/v1/messages", body, **kw)

    def test_created_then_idempotent_then_conflict(self):
        mid = str(uuid.uuid4())
        r = self.post({"topic": "transaction", "data": {"total": 5}, "id": mid})
        self.assertEqual(r.status, 201, r.body)
        body = r.json()
        self.assertEqual((body["id"], body["origin"], body["seq"], body["state"]),
                         (mid, "L1", 1, "pending"))
        self.assertIn("created_at", body)
        r = self.post({"topic": "transaction", "data": {"total": 5}, "id": mid.upper()})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["seq"], 1)
        r = self.post({"topic": "transaction", "data": {"total": 6}, "id": mid})
        self.assertEqual(r.status, 409, r.body)
        self.assertIn("error", r.json())
        self.assertEqual(self.total(), 1)

    def test_bad_inputs_fail_with_400_and_write_nothing(self):
        cases = [
            b"{not json",
            b"[]",
            b'"text"',
            json.dumps({"data": {}}).encode(),
            json.dumps({"topic": 5, "data": {}}).encode(),
            json.dumps({"topic": "", "data": {}}).encode(),
            json.dumps({"topic": "Bad Topic", "data": {}}).encode(),
            json.dumps({"topic": "x" * 65, "data": {}}).encode(),
            json.dumps({"topic": "t"}).encode(),
            json.dumps({"topic": "t", "data": [1, 2]}).encode(),
            json.dumps({"topic": "t", "data": "s"}).encode(),
            json.dumps({"topic": "t", "data": {}, "id": "nope"}).encode(),
            json.dumps({"topic": "t", "data": {}, "id": 7}).encode(),
            json.dumps({"topic": "t", "data": {}, "priority": "urgent"}).encode(),
            json.dumps({"topic": "t", "data": {}, "extra": 1}).encode(),
            b'{"topic":"t","data":{"s":"\xff\xfe"}}',
        ]
        for body in cases:
            with self.subTest(body=body[:60]):
                r = self.post(body)
                self.assertEqual(r.status, 400, r.body)
                self.assertIn("error", r.json())
        self.assertEqual(self.total(), 0)

    def test_oversized_body_is_413_and_writes_nothing(self):
        big = {"topic": "t", "data": {"blob": "x" * 5000}}
        r = self.post(big)
        self.assertEqual(r.status, 413, r.body)
        self.assertIn("error", r.json())
        self.assertEqual(self.total(), 0)
        # The agent keeps serving.
        self.assertEqual(self.post({"topic": "t", "data": {}}).status, 201)

    def test_cross_origin_and_foreign_host_requests_are_refused(self):
        r = self.post({"topic": "t", "data": {}}, headers={"Origin": "https://evil.example"})
        self.assertEqual(r.status, 403, r.body)
        r = self.post({"topic": "t", "data": {}}, headers={"Host": "evil.example"})
        self.assertEqual(r.status, 403, r.body)
        r = http("POST", self.l1.api + "/v1/cloud/pause", headers={"Origin": "null"})
        self.assertEqual(r.status, 403, r.body)
        self.assertEqual(self.total(), 0)
        r = self.post({"topic": "t", "data": {}}, headers={"Origin": f"http://127.0.0.1:{self.l1.api_port}"})
        self.assertEqual(r.status, 201, r.body)

    def test_get_message_and_unknowns(self):
        r = self.post({"topic": "inventory", "data": {"sku": "A", "delta": -2}, "priority": "high"})
        mid = r.json()["id"]
        m = self.l1.message(mid).json()
        self.assertEqual(m["topic"], "inventory")
        self.assertEqual(m["priority"], "high")
        self.assertEqual(m["data"], {"sku": "A", "delta": -2})
        self.assertEqual(self.l1.message(str(uuid.uuid4())).status, 404)
        self.assertEqual(self.l1.message("not-a-uuid").status, 400)
        self.assertEqual(http("GET", self.l1.api + "/nope").status, 404)
        self.assertEqual(http("DELETE", self.l1.api + "/v1/messages").status, 405)

    def test_list_by_state(self):
        ids = [self.post({"topic": "t", "data": {"i": i}}).json()["id"] for i in range(5)]
        r = http("GET", self.l1.api + "/v1/messages?state=pending&limit=3")
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["count"], 5)
        self.assertEqual([m["id"] for m in body["messages"]], ids[:3])
        self.assertEqual(http("GET", self.l1.api + "/v1/messages?state=bogus").status, 400)

    def test_garbage_http_does_not_stop_the_agent(self):
        with socket.create_connection(("127.0.0.1", self.l1.api_port), timeout=5) as s:
            s.sendall(b"\x00\x01\x02 garbage\r\n\r\n")
            try:
                s.recv(1000)
            except OSError:
                pass
        self.assertEqual(http("GET", self.l1.api + "/healthz").status, 200)

    def test_status_has_the_documented_shape(self):
        st = self.l1.status()
        for key in ("terminal_id", "store_id", "version", "outbox", "replicas", "peers", "cloud"):
            self.assertIn(key, st)
        for key in ("pending", "peer_ack", "cloud_ack", "failed", "oldest_pending_age_s"):
            self.assertIn(key, st["outbox"])
        self.assertEqual(st["terminal_id"], "L1")
        self.assertFalse(st["cloud"]["enabled"])


class Cli(StoreTestCase):
    def test_publish_while_agent_runs_and_while_stopped(self):
        l1 = self.store.lane("L1")
        l1.write_env()
        r = l1.cli("publish", "--env", l1.env_path, "--topic", "transaction", "--data", '{"total": 1}', check=0)
        self.assertEqual(json.loads(r.stdout)["seq"], 1)
        l1.start()
        r = l1.cli("publish", "--env", l1.env_path, "--topic", "transaction", "--data", '{"total": 2}', check=0)
        self.assertEqual(json.loads(r.stdout)["seq"], 2)
        r = l1.publish("transaction", {"total": 3})
        self.assertEqual(r.json()["seq"], 3)
        data_file = os.path.join(self.store.dir, "d.json")
        with open(data_file, "w") as f:
            f.write('{"total": 4}')
        r = l1.cli("publish", "--env", l1.env_path, "--topic", "transaction", "--data", "@" + data_file, check=0)
        self.assertEqual(json.loads(r.stdout)["seq"], 4)
        self.assertEqual(l1.counts()["pending"], 4)

    def test_publish_bad_input_exits_2_and_writes_nothing(self):
        l1 = self.store.lane("L1")
        l1.write_env()
        l1.cli("publish", "--env", l1.env_path, "--topic", "Bad", "--data", "{}", check=2)
        l1.cli("publish", "--env", l1.env_path, "--topic", "t", "--data", "[1]", check=2)
        l1.cli("publish", "--env", l1.env_path, "--topic", "t", "--data", "{oops", check=2)
        l1.cli("publish", "--env", l1.env_path, "--topic", "t", check=2)
        l1.start()
        self.assertEqual(l1.counts()["pending"], 0)

    def test_check_config_names_file_line_and_key(self):
        path = os.path.join(self.store.dir, "bad.env")
        with open(path, "w") as f:
            f.write("TERMINAL_ID=L1\nTERMINAL_PORT=notaport\n")
        r = self.store.lane("X").cli("check-config", "--env", path, check=2)
        self.assertIn("bad.env:2", r.stderr)
        self.assertIn("TERMINAL_PORT", r.stderr)

    def test_check_config_ok_and_secret_never_printed(self):
        l1 = self.store.lane("L1")
        l2 = self.store.lane("L2")
        l1.peer_with(l2)
        l1.write_env()
        r = l1.cli("check-config", "--env", l1.env_path, check=0)
        self.assertNotIn(l1.env["PEER_SECRET"], r.stdout + r.stderr)

    def test_corrupt_env_file_exits_2(self):
        path = os.path.join(self.store.dir, "corrupt.env")
        with open(path, "wb") as f:
            f.write(b"TERMINAL_ID=L1\nPEER_SECRET='unterminated\n\x00\xff\n")
        r = self.store.lane("X").cli("agent", "--env", path, check=2)
        self.assertIn("corrupt.env", r.stderr)

    def test_status_works_with_agent_down(self):
        l1 = self.store.lane("L1")
        l1.start()
        self.publish_many(l1, 3)
        r = l1.cli("status", "--env", l1.env_path, "--json", check=0)
        self.assertEqual(json.loads(r.stdout)["outbox"]["pending"], 3)
        l1.stop()
        r = l1.cli("status", "--env", l1.env_path, "--json", check=0)
        st = json.loads(r.stdout)
        self.assertEqual(st["outbox"]["pending"], 3)
        self.assertFalse(st.get("agent_running", True))
        r = l1.cli("status", "--env", l1.env_path, check=0)
        self.assertIn("not running", r.stdout + r.stderr)

    def test_version_and_help(self):
        x = self.store.lane("X")
        r = x.cli("--version", check=0)
        self.assertIn("0.1.0", r.stdout)
        r = x.cli("--help", check=0)
        for cmd in ("agent", "publish", "status", "retry", "sync-now", "pause", "resume", "prune",
                    "check-config", "check-db"):
            self.assertIn(cmd, r.stdout)
        x.cli("no-such-command", check=2)

    def test_port_in_use_fails_loudly(self):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        try:
            l1 = self.store.lane("L1", TERMINAL_PORT=blocker.getsockname()[1])
            l1.start(wait=False)
            wait_for(lambda: l1.proc.poll() is not None, 20, what="agent exits")
            self.assertEqual(l1.proc.returncode, 1)
            self.assertIn("cannot listen", l1.log_text())
        finally:
            blocker.close()


if __name__ == "__main__":
    unittest.main()
