"""Waiting for acks (?wait=peer_ack|cloud_ack, `lanesync publish --wait`) and batch publish
against real agent processes (docs/api.md "Waiting for acks", "Batches"; docs/cli.md)."""
import json
import os
import statistics
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import StoreTestCase, http, log, wait_for  # noqa: E402

WAIT = "/v1/messages?wait=peer_ack&timeout_ms={}"


def sale(n, **extra):
    return dict({"topic": "transaction", "data": {"total": n}}, **extra)


class WaitTwoLanes(StoreTestCase):
    def connected(self, lane):
        peers = lane.status()["peers"]
        return peers and all(p["connected"] for p in peers)

    def test_wait_peer_ack_201_then_202_pending_with_the_peer_stopped(self):
        l1, l2 = self.pair()
        l1.start()
        l2.start()
        wait_for(lambda: self.connected(l1) and self.connected(l2), 30, "the two lanes connected")
        c = l1.client(timeout=15)
        self.addCleanup(c.close)

        # Replicated before the answer: 201 with state peer_ack, and L2 holds the copy.
        took = []
        ids = []
        for i in range(50):
            t0 = time.perf_counter()
            st, body = c.request("POST", WAIT.format(10000), sale(i))
            took.append(time.perf_counter() - t0)
            self.assertEqual(st, 201, body)
            self.assertEqual(body["state"], "peer_ack", body)
            ids.append(body["id"])
        r = l2.message(ids[-1])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["origin"], "L1")
        took.sort()
        log(f"wait=peer_ack on a 2-lane store, 50 sequential POSTs: "
            f"p50 {statistics.median(took) * 1000:.2f} ms, max {took[-1] * 1000:.2f} ms")

        # A batch waits for all of its messages.
        st, body = c.request("POST", WAIT.format(10000),
                             {"messages": [sale(100), sale(101), sale(102)]})
        self.assertEqual(st, 201, body)
        self.assertEqual([m["state"] for m in body["messages"]], ["peer_ack"] * 3)
        self.assertEqual([m["status"] for m in body["messages"]], [201] * 3)

        # The CLI waits through the agent: exit 0 with state peer_ack.
        r = l1.cli("publish", "--env", l1.env_path, "--topic", "transaction", "--data",
                   '{"total": 7}', "--wait", "peer_ack", "--timeout-ms", "20000")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "peer_ack")

        # The peer stopped: the message is stored, the answer is 202 pending after timeout_ms.
        l2.stop()
        t0 = time.monotonic()
        mid = str(uuid.uuid4())
        st, body = c.request("POST", WAIT.format(400), sale(200, id=mid))
        elapsed = time.monotonic() - t0
        self.assertEqual(st, 202, body)
        self.assertEqual(body["state"], "pending")
        self.assertGreaterEqual(elapsed, 0.4)
        r = l1.message(mid)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["state"], "pending")
        # ... and the CLI says so: exit 1, the message printed as stored.
        r = l1.cli("publish", "--env", l1.env_path, "--topic", "transaction", "--data",
                   '{"total": 8}', "--wait", "peer_ack", "--timeout-ms", "300")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "pending")
        self.assertIn("not peer_ack within 300 ms", r.stderr)

        # The peer back: a long poll of the 202 message ends with 200 peer_ack; a retried POST
        # of the same message answers 200 (it existed) once reached.
        l2.start()
        r = http("GET", l1.api + f"/v1/messages/{mid}?wait=peer_ack&timeout_ms=30000", timeout=40)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["state"], "peer_ack")
        st, body = c.request("POST", WAIT.format(10000), sale(200, id=mid))
        self.assertEqual(st, 200, body)
        self.assertEqual(body["state"], "peer_ack")


class WaitSingleLane(StoreTestCase):
    def test_without_peers_wait_peer_ack_is_refused_and_nothing_is_stored(self):
        l1 = self.store.lane("L1")
        l1.start()
        r = http("POST", l1.api + "/v1/messages?wait=peer_ack", sale(1))
        self.assertEqual(r.status, 400, r.body)
        self.assertIn("cloud_ack", r.json()["error"])
        r = l1.cli("publish", "--env", l1.env_path, "--topic", "transaction", "--data", "{}",
                   "--wait", "peer_ack")
        self.assertEqual(r.returncode, 2, r.stderr)
        for bad in (["--wait", "pending"], ["--timeout-ms", "100"],
                    ["--wait", "cloud_ack", "--timeout-ms", "0"]):
            with self.subTest(args=bad):
                r = l1.cli("publish", "--env", l1.env_path, "--topic", "t", "--data", "{}", *bad)
                self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(l1.counts()["pending"], 0)
        # cloud_ack without a cloud: stored, and not reached in time.
        r = http("POST", l1.api + "/v1/messages?wait=cloud_ack&timeout_ms=100", sale(2))
        self.assertEqual(r.status, 202, r.body)
        self.assertEqual(r.json()["state"], "pending")
        self.assertEqual(l1.counts()["pending"], 1)


if __name__ == "__main__":
    unittest.main()
