"""Lane rebuild end to end with real agent processes (issue 9, item 3).

A lane whose outbox was lost (wiped disk) or replaced by an old copy (backup restore) restores
its own messages from its peers, takes a new incarnation, and only then hands out new seqs,
continuing its one seq sequence. While it rebuilds POST /v1/messages answers 503 with
Retry-After and /healthz 503 "rebuilding"; a peer that is gone holds the rebuild until an
operator runs `lanesync rebuild --env F --without L3`.
"""
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import StoreTestCase, http, wait_for  # noqa: E402

OUTBOX_SUFFIXES = ("", "-wal", "-shm")


def replicas(lane, origin):
    return lane.status()["replicas"].get(origin, 0)


def wipe(lane):
    """The lane's disk was lost: its outbox files are gone."""
    for suffix in OUTBOX_SUFFIXES:
        path = lane.env["OUTBOX_PATH"] + suffix
        if os.path.exists(path):
            os.remove(path)


def backup(lane, dest):
    """Copies a stopped lane's outbox files to `dest` (a folder)."""
    os.makedirs(dest, exist_ok=True)
    for suffix in OUTBOX_SUFFIXES:
        path = lane.env["OUTBOX_PATH"] + suffix
        if os.path.exists(path):
            shutil.copy2(path, os.path.join(dest, os.path.basename(path)))


def restore(lane, src):
    wipe(lane)
    for suffix in OUTBOX_SUFFIXES:
        name = os.path.basename(lane.env["OUTBOX_PATH"] + suffix)
        if os.path.exists(os.path.join(src, name)):
            shutil.copy2(os.path.join(src, name), lane.env["OUTBOX_PATH"] + suffix)


def wait_listening(lane, timeout=30):
    """The agent answers /healthz (200, or 503 while it rebuilds)."""
    def up():
        if lane.proc.poll() is not None:
            raise AssertionError(f"lane {lane.id} exited; log tail:\n{lane.log_tail()}")
        return http("GET", lane.api + "/healthz", timeout=1).status in (200, 503)
    wait_for(up, timeout, f"lane {lane.id} answering")


class Publisher:
    """A POS that retries a publish while the lane answers the rebuild 503."""

    def __init__(self, test, lane):
        self.test = test
        self.lane = lane
        self.refusals = 0

    def publish(self, data, timeout=60):
        end = time.monotonic() + timeout
        while True:
            r = self.lane.publish("transaction", data)
            if r.status == 201:
                return r.json()
            self.test.assertEqual(r.status, 503, r.body)
            body = r.json()
            self.test.assertTrue(body["error"].startswith("rebuilding: "), body)
            self.test.assertTrue(body["rebuild"]["active"], body)
            self.test.assertEqual(r.headers.get("Retry-After"), "2")
            self.refusals += 1
            if time.monotonic() > end:
                raise AssertionError(f"still rebuilding after {timeout}s: {body}")
            time.sleep(0.2)  # the POS's retry pace (not a synchronisation)


class Rebuild(StoreTestCase):
    def _filled_pair(self, n):
        l1, l2 = self.pair()
        l1.start()
        l2.start()
        sent = self.publish_many(l1, n)
        wait_for(lambda: l1.counts()["peer_ack"] == n, 60, what=f"{n} peer_ack on L1")
        wait_for(lambda: replicas(l2, "L1") == n, 30, what=f"L2 holds {n} of L1")
        return l1, l2, sent

    def _check_own_copies(self, lane, sent):
        for mid, data in sent.items():
            r = lane.message(mid)
            self.assertEqual(r.status, 200, r.body)
            m = r.json()
            self.assertEqual((m["origin"], m["own"], m["data"]), (lane.id, True, data), m)

    def test_wiped_lane_rebuilds_from_its_peer_then_continues_at_the_next_seq(self):
        l1, l2, sent = self._filled_pair(100)
        old_inc = l1.status()["incarnation"]
        l1.kill9()
        wipe(l1)
        l1.start(wait=False)
        wait_listening(l1)
        pos = Publisher(self, l1)
        new = pos.publish({"total": 101, "after": "rebuild"})
        self.assertEqual(new["seq"], 101, "one seq sequence per origin, continued")
        st = l1.status()
        self.assertFalse(st["rebuild"]["active"], st["rebuild"])
        self.assertNotEqual(st["incarnation"], old_inc, "a rebuild takes a new incarnation")
        self.assertEqual(http("GET", l1.api + "/healthz").status, 200)
        self._check_own_copies(l1, sent)
        seqs = sorted(l1.message(mid).json()["seq"] for mid in sent)
        self.assertEqual(seqs, list(range(1, 101)))
        wait_for(lambda: l1.message(new["id"]).json()["state"] == "peer_ack", 30,
                 what="the new message reaches peer_ack")
        got = l2.message(new["id"])
        self.assertEqual(got.status, 200)
        self.assertEqual(got.json()["seq"], 101)
        wait_for(lambda: l1.counts()["peer_ack"] == 101, 30, what="restored messages re-acked")
        self.assertIn("lane.rebuild_finished", l1.log_text())

    def test_wiped_lane_that_handed_out_seqs_while_alone_never_gets_a_false_peer_ack(self):
        # The issue's regression: L2 holds L1's old 1..100; L1 is wiped and hands out 150 new
        # seqs while L2 is down (its start check finds nobody). When L2 is back, its marks of L1
        # name other messages: L1 must never promote the new ones on them.
        l1, l2, _ = self._filled_pair(100)
        l1.stop()
        l2.stop()
        wipe(l1)
        l1.start()
        new = self.publish_many(l1, 150)
        self.assertEqual(l1.counts()["pending"], 150)
        l2.start()
        wait_for(lambda: "peer.outbox_behind_peer" in l1.log_text()
                 or "incarnation mismatch" in l1.log_text(), 30,
                 what="L1 finds that L2 holds other messages of its origin", interval=0.2)
        # Several sessions in both directions (reconnects, L2's own link): nothing promoted.
        wait_for(lambda: (l1.log_text() + l2.log_text()).count("peer.refused") >= 2, 30,
                 what="a second refused session", interval=0.2)
        c = l1.counts()
        self.assertEqual(c["peer_ack"], 0, c)
        self.assertEqual(c["pending"], 150, c)
        self.assertEqual(replicas(l2, "L1"), 100, "L2 took none of the new messages")
        for mid in list(new)[:30]:
            self.assertEqual(l1.message(mid).json()["state"], "pending")
            self.assertEqual(l2.message(mid).status, 404)
        # L1 rebuilds and stays so: L2 holds other messages at its seqs (a conflict only an
        # operator can settle); new sales are refused meanwhile.
        rb = wait_for(lambda: (lambda r: r if r["active"] and r["conflicts"] else None)(
            l1.status()["rebuild"]), 30, what="L1 rebuilding with a conflict", interval=0.2)
        self.assertIn("incarnation mismatch", rb["conflicts"][0])
        self.assertEqual(l1.publish("transaction", {"total": 1}).status, 503)
        # The operator leaves L2 out: L1 keeps its 150 and goes on at 151; L2's stale copy of
        # L1 is refused from now on (below its trust cap too), never a rebuild again.
        l1.cli("rebuild", "--env", l1.env_path, "--without", "L2", check=0)
        more = Publisher(self, l1).publish({"total": 151})
        self.assertEqual(more["seq"], 151)
        self.assertEqual(l1.status()["rebuild"]["trust_caps"], {"L2": 150})
        wait_for(lambda: "was excluded from this lane's rebuild" in l1.log_text(), 30,
                 what="L2's next session refused", interval=0.2)
        def permanent():
            for p in l1.status()["peers"]:
                if p["permanent_failure"] and "excluded from this lane's rebuild" in (
                        p["last_error"] or ""):
                    return p
            return None
        wait_for(permanent, 30, what="L1's link to L2 shown as a permanent mismatch", interval=0.2)
        self.assertFalse(l1.status()["rebuild"]["active"], "no rebuild loop")
        self.assertEqual(l1.counts()["peer_ack"], 0)
        self.assertEqual(replicas(l2, "L1"), 100)

    def test_missing_peer_holds_the_rebuild_until_the_operator_leaves_it_out(self):
        l1 = self.store.lane("L1")
        l2 = self.store.lane("L2")
        l3 = self.store.lane("L3")
        l1.peer_with(l2, l3)
        l2.peer_with(l1, l3)
        l3.peer_with(l1, l2)
        for lane in (l1, l2, l3):
            lane.start()
        sent = self.publish_many(l1, 60)
        wait_for(lambda: l1.counts()["peer_ack"] == 60, 60, what="60 peer_ack")
        wait_for(lambda: replicas(l2, "L1") == 60 and replicas(l3, "L1") == 60, 30,
                 what="L2 and L3 hold L1's 60")
        l3.stop()
        l1.kill9()
        wipe(l1)
        l1.start(wait=False)
        wait_listening(l1)

        def restored_waiting():
            rb = l1.status()["rebuild"]
            return rb if rb["active"] and rb["target"] == 60 and rb["restored"] == 60 else None
        rb = wait_for(restored_waiting, 30, what="L1 restored 60 from L2, waits for L3",
                      interval=0.2)
        self.assertEqual(rb["waiting_for"], [l3.peer_url], rb)
        self.assertEqual(rb["from"], "L2")
        r = l1.publish("transaction", {"total": 1})
        self.assertEqual(r.status, 503, r.body)
        self.assertEqual(r.headers.get("Retry-After"), "2")
        h = http("GET", l1.api + "/healthz")
        self.assertEqual(h.status, 503)
        self.assertEqual(h.json()["status"], "rebuilding")
        self.assertIn("60 of 60", h.json()["progress"])

        # A crash mid-rebuild: the rebuild is in the outbox and resumes at the next start.
        l1.kill9()
        l1.start(wait=False)
        wait_listening(l1)
        def resumed():  # restored counts from this start: what the outbox held is kept
            rb = l1.status()["rebuild"]
            return rb if rb["active"] and rb["target"] == 60 and rb["from"] == "L2" else None
        rb = wait_for(resumed, 30, what="the rebuild resumed after kill -9", interval=0.2)
        self.assertEqual(rb["waiting_for"], [l3.peer_url], rb)
        self.assertEqual(l1.counts()["last_seq"], 60)
        self.assertIn("lane.rebuild_resumed", l1.log_text())
        cli_pub = l1.cli("publish", "--env", l1.env_path, "--topic", "t", "--data", "{}", check=1)
        self.assertIn("rebuilding", cli_pub.stderr)
        shown = l1.cli("rebuild", "--env", l1.env_path, check=0)
        self.assertIn("rebuilding from L2", shown.stdout)
        self.assertIn(l3.peer_url, shown.stdout)
        bad = l1.cli("rebuild", "--env", l1.env_path, "--without", "L9!", check=1)
        self.assertIn("unknown peer", bad.stderr)
        done = l1.cli("rebuild", "--env", l1.env_path, "--without", "L3", check=0)
        self.assertIn("L3", done.stdout)

        new = Publisher(self, l1).publish({"total": 61})
        self.assertEqual(new["seq"], 61)
        st = l1.status()
        self.assertFalse(st["rebuild"]["active"])
        self.assertEqual(st["rebuild"]["trust_caps"], {"L3": 60})
        self._check_own_copies(l1, sent)
        wait_for(lambda: l2.message(new["id"]).status == 200, 30, what="L2 holds L1:61")
        after = l1.cli("rebuild", "--env", l1.env_path, check=0)
        self.assertIn("not rebuilding", after.stdout)
        again = l1.cli("rebuild", "--env", l1.env_path, "--without", "L3", check=1)
        self.assertIn("not rebuilding", again.stderr)

        # L3 comes back holding nothing of L1 beyond the cap: it is checked by id, takes L1's
        # new history, and once it acked past the cap with L1's own ids the cap goes for good.
        l3.start()
        wait_for(lambda: l3.message(new["id"]).status == 200, 30, what="L3 holds L1:61")
        wait_for(lambda: l1.status()["rebuild"]["trust_caps"] == {}, 30,
                 what="L3's trust cap lifted", interval=0.2)
        self.assertIn("lane.trust_cap_lifted", l1.log_text())
        rows = {p["terminal_id"]: p for p in l1.status()["peers"] if p.get("terminal_id")}
        self.assertFalse(rows.get("L3", {}).get("permanent_failure", False), rows)
        # ... and stays trusted across sessions: a restart of L3, another message, L3 acks it.
        l3.stop()
        l3.start()
        newer = Publisher(self, l1).publish({"total": 62})
        wait_for(lambda: l3.message(newer["id"]).status == 200, 30, what="L3 holds L1:62")
        self.assertEqual(l1.status()["rebuild"]["trust_caps"], {})

    def test_an_old_backup_put_back_catches_up_from_the_peer_and_continues(self):
        l1, l2, first = self._filled_pair(50)
        l1.stop()
        saved = os.path.join(self.store.dir, "backup")
        backup(l1, saved)
        l1.start()
        second = self.publish_many(l1, 50)
        wait_for(lambda: l1.counts()["peer_ack"] == 100, 60, what="100 peer_ack")
        wait_for(lambda: replicas(l2, "L1") == 100, 30, what="L2 holds 100 of L1")
        l1.stop()
        restore(l1, saved)
        l1.start(wait=False)
        wait_listening(l1)
        new = Publisher(self, l1).publish({"total": 101})
        self.assertEqual(new["seq"], 101, "continues after what the peer held, not the backup")
        self._check_own_copies(l1, {**first, **second})
        self.assertEqual(l1.counts()["last_seq"], 101)
        wait_for(lambda: l1.counts()["peer_ack"] == 101, 30, what="all 101 peer_ack")
        self.assertEqual(l2.message(new["id"]).json()["seq"], 101)


if __name__ == "__main__":
    unittest.main()
