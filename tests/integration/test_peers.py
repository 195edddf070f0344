"""Peer replication end to end with real agent processes (issue: lane agent core)."""
import json
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import StoreTestCase, http, wait_for  # noqa: E402


def replicas(lane, origin):
    return lane.status()["replicas"].get(origin, 0)


class Replication(StoreTestCase):
    def test_1000_messages_reach_peer_ack_and_the_peer_holds_identical_copies(self):
        l1, l2 = self.pair()
        l1.start()
        l2.start()
        sent = self.publish_many(l1, 1000, threads=16,
                                 make_data=lambda i: {"total": i * 1.5, "items": [{"sku": f"S{i}", "q": i % 7}],
                                                      "note": "ünïcødé ✓", "i": i})
        self.assertEqual(len(sent), 1000)
        wait_for(lambda: l1.counts()["peer_ack"] == 1000, 60, what="1000 peer_ack on L1")
        self.assertEqual(l1.counts()["pending"], 0)
        wait_for(lambda: replicas(l2, "L1") == 1000, 30, what="L2 holds 1000 replicas")
        seqs = set()
        for mid, data in sent.items():
            r = l2.message(mid)
            self.assertEqual(r.status, 200, r.body)
            m = r.json()
            self.assertEqual(m["data"], data)
            self.assertEqual(m["origin"], "L1")
            seqs.add(m["seq"])
        self.assertEqual(seqs, set(range(1, 1001)))
        st = l1.status()
        peer = [p for p in st["peers"] if p["terminal_id"] == "L2"][0]
        self.assertTrue(peer["connected"])
        self.assertEqual(peer["acked_through_seq"], 1000)

    def test_killed_peer_keeps_messages_pending_then_catches_up_without_gap_or_duplicate(self):
        l1, l2 = self.pair()
        l1.start()
        l2.start()
        first = self.publish_many(l1, 100)
        wait_for(lambda: l1.counts()["peer_ack"] == 100, 30, what="first 100 peer_ack")
        l2.kill9()
        wait_for(lambda: not any(p["connected"] for p in l1.status()["peers"]), 20,
                 what="L1 sees L2 gone")
        second = self.publish_many(l1, 200)
        c = l1.counts()
        self.assertEqual(c["pending"], 200, c)
        self.assertEqual(c["peer_ack"], 100, c)
        for mid in list(second)[:20]:
            self.assertEqual(l1.message(mid).json()["state"], "pending")
        l2.start()
        wait_for(lambda: l1.counts()["peer_ack"] == 300, 30, what="all 300 peer_ack after restart")
        wait_for(lambda: replicas(l2, "L1") == 300, 30, what="L2 holds 300")
        seqs = sorted(l2.message(mid).json()["seq"] for mid in {**first, **second})
        self.assertEqual(seqs, list(range(1, 301)))

    def test_lane_peered_only_with_l2_catches_up_on_l1_through_l2(self):
        l1 = self.store.lane("L1")
        l2 = self.store.lane("L2")
        l3 = self.store.lane("L3")
        l1.peer_with(l2)
        l2.peer_with(l1)
        l3.peer_with(l2)
        l1.start()
        l2.start()
        sent = self.publish_many(l1, 300)
        wait_for(lambda: replicas(l2, "L1") == 300, 30, what="L2 holds L1's messages")
        l3.start()  # late: everything it gets from L1 must come through L2
        wait_for(lambda: replicas(l3, "L1") == 300, 30, what="L3 holds L1's messages via L2")
        for mid, data in list(sent.items())[:50]:
            self.assertEqual(l3.message(mid).json()["data"], data)
        # And the other way: L3's own messages reach L1 through L2.
        own = self.publish_many(l3, 50)
        wait_for(lambda: replicas(l1, "L3") == 50, 30, what="L1 holds L3's messages via L2")
        wait_for(lambda: l3.counts()["peer_ack"] == 50, 30, what="L3's messages peer_ack")
        self.assertEqual(len(own), 50)

    def test_quorum_two_needs_two_peers(self):
        l1 = self.store.lane("L1", PEER_ACK_QUORUM=2)
        l2 = self.store.lane("L2")
        l3 = self.store.lane("L3")
        l1.peer_with(l2, l3)
        l2.peer_with(l1)
        l3.peer_with(l1)
        l1.start()
        l2.start()
        self.publish_many(l1, 20)
        wait_for(lambda: replicas(l2, "L1") == 20, 30, what="L2 holds 20")
        self.assertEqual(l1.counts()["pending"], 20, "one peer is not a quorum of two")
        l3.start()
        wait_for(lambda: l1.counts()["peer_ack"] == 20, 30, what="quorum of two reached")


class Crashes(StoreTestCase):
    def test_kill9_during_a_burst_loses_no_accepted_message_and_leaves_no_gap(self):
        l1 = self.store.lane("L1")
        l1.start()
        accepted = {}
        lock = threading.Lock()
        stop = threading.Event()

        def worker(k):
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    r = l1.publish("transaction", {"total": i, "worker": k})
                except Exception:
                    return  # connection refused/reset once the process is gone
                if r.status == 201:
                    with lock:
                        accepted[r.json()["id"]] = r.json()["seq"]
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in ts:
            t.start()
        wait_for(lambda: len(accepted) >= 500, 30, what="500 accepted before the kill")
        l1.kill9()
        stop.set()
        for t in ts:
            t.join()
        n = len(accepted)
        l1.start()
        for mid, seq in accepted.items():
            r = l1.message(mid)
            self.assertEqual(r.status, 200, f"accepted message {mid} lost after kill -9")
            self.assertEqual(r.json()["seq"], seq)
        c = l1.counts()
        total = c["pending"] + c["peer_ack"] + c["cloud_ack"] + c["failed"]
        self.assertGreaterEqual(total, n)
        # Seq has no gap: every seq 1..total is present (last_seq == number of messages).
        self.assertEqual(c.get("last_seq", total), total)
        r = l1.cli("check-db", "--env", l1.env_path, check=0)
        self.assertIn("ok", r.stdout.lower())

    def test_sigterm_stops_cleanly_and_keeps_everything(self):
        l1 = self.store.lane("L1")
        l1.start()
        sent = self.publish_many(l1, 200)
        self.assertEqual(l1.stop(), 0)
        self.assertIn("agent.stopped", l1.log_text())
        l1.start()
        self.assertEqual(l1.counts()["pending"], 200)
        for mid in list(sent)[:20]:
            self.assertEqual(l1.message(mid).status, 200)


# A lane whose outbox was lost or replaced (issue 9): it rebuilds from its peers instead of
# being refused for good, and never gets a false peer_ack; see test_rebuild.py.


class IdConflict(StoreTestCase):
    def test_same_id_accepted_on_two_lanes_replicates_both_origins(self):
        # A POS that retried on another lane with its idempotency key: both lanes hold the id
        # as their own (here with other data on L2). Each lane stores the other's copy as a
        # row of that origin; replication of both origins goes on past it (docs/outbox.md).
        l1, l2 = self.pair()
        mid = "11111111-2222-4333-8444-555555555555"
        for lane, data in ((l1, '{"sale":1}'), (l2, '{"sale":2}')):
            lane.write_env()
            lane.cli("publish", "--env", lane.env_path, "--topic", "pos.note", "--data", data,
                     "--id", mid, check=0)
            lane.cli("publish", "--env", lane.env_path, "--topic", "pos.note", "--data", '{"n":2}',
                     check=0)
        l1.start()
        l2.start()
        wait_for(lambda: l1.counts()["peer_ack"] == 2 and l2.counts()["peer_ack"] == 2, 20,
                 what="both origins replicated past the shared id")
        for lane, other in ((l1, l2), (l2, l1)):
            self.assertEqual(lane.status()["replicas"].get(other.id), 2)
            got = lane.message(mid).json()
            self.assertEqual((got["origin"], got["own"]), (lane.id, True), "GET: the own copy")
        self.assertNotIn("id conflict", l1.log_text() + l2.log_text())
        self.assertEqual(l1.message(mid).json()["data"], {"sale": 1})
        self.assertEqual(l2.message(mid).json()["data"], {"sale": 2})


class Refusals(StoreTestCase):
    def _refused(self, intruder, reason_fragment):
        l1 = self.store.lane("L1")
        l1.start()
        intruder.peer_with(l1)
        intruder.start()
        got = self.publish_many(intruder, 10)
        self.assertEqual(len(got), 10)
        wait_for(lambda: reason_fragment in l1.log_text() or reason_fragment in intruder.log_text(),
                 20, what=f"refusal '{reason_fragment}' logged")
        st = l1.status()
        self.assertEqual(st["replicas"].get(intruder.id, 0), 0, "nothing from the intruder stored")
        self.assertEqual(intruder.counts()["pending"], 10, "the intruder got no peer_ack")
        return l1

    def test_wrong_secret_is_refused_and_nothing_stored(self):
        intruder = self.store.lane("L9", PEER_SECRET="a-completely-different-secret")
        l1 = self._refused(intruder, "authentication failed")
        self.assertNotIn("a-completely-different-secret", l1.log_text())
        self.assertNotIn("a-completely-different-secret", intruder.log_text())

    def test_other_store_is_refused(self):
        intruder = self.store.lane("L9", STORE_ID="another-store")
        self._refused(intruder, "store mismatch")

    def test_duplicate_terminal_id_is_refused(self):
        l1 = self.store.lane("L1")
        l2 = self.store.lane("L2")
        l2.peer_with(l1)
        l1.start()
        l2.start()
        wait_for(lambda: any(p["connected"] for p in l1.status()["peers"]), 20, what="L2 connected")
        fake = self.store.lane("L2")  # same id, its own outbox
        fake.env["OUTBOX_PATH"] = fake.env["OUTBOX_PATH"].replace("L2.db", "L2-fake.db")
        fake.log_path = fake.log_path.replace("L2.log", "L2-fake.log")
        fake.env_path = fake.env_path.replace("L2.env", "L2-fake.env")
        fake.peer_with(l1)
        fake.start()
        fake_msgs = self.publish_many(fake, 5)
        wait_for(lambda: "duplicate terminal id" in l1.log_text(), 20, what="duplicate refused")
        for mid in fake_msgs:
            self.assertEqual(l1.message(mid).status, 404, "nothing from the duplicate stored")

    def test_a_lane_claiming_our_own_id_is_refused(self):
        l1 = self.store.lane("L1")
        l1.start()
        twin = self.store.lane("L1")
        twin.env["OUTBOX_PATH"] = twin.env["OUTBOX_PATH"].replace("L1.db", "L1-twin.db")
        twin.log_path = twin.log_path.replace("L1.log", "L1-twin.log")
        twin.env_path = twin.env_path.replace("L1.env", "L1-twin.env")
        twin.peer_with(l1)
        twin.start()
        wait_for(lambda: "own id" in l1.log_text() or "own id" in twin.log_text(), 20,
                 what="self id refused")


if __name__ == "__main__":
    unittest.main()
