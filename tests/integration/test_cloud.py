"""Lanes against the real local cloud (PostgreSQL + the edge function on Deno): every
accepted message ends in pos_messages exactly once, through outages, crashes and bad keys."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import Cloud, CloudStoreTestCase, free_port, http, wait_for  # noqa: E402

from cloudlib import HoldingProxy


class WithCloud(CloudStoreTestCase):
    """Tests share one local cloud; each uses its own store id so their rows never meet."""

    def rows_for(self, ids):
        quoted = ",".join(f"'{i}'" for i in ids)
        rows = self.cloud.sql(f"select message_id, data::text from pos_messages where message_id in ({quoted})")
        return {r[0]: json.loads(r[1]) for r in rows}

    def three_lanes(self, **extra):
        env = dict(self.cloud.lane_env(), **extra)
        lanes = [self.store.lane(f"L{i}", **env) for i in (1, 2, 3)]
        for l in lanes:
            l.peer_with(*[o for o in lanes if o is not l])
        for l in lanes:
            l.start()
        return lanes


class CloudSync(WithCloud):
    def test_three_lanes_3000_messages_reach_cloud_ack_exactly_once(self):
        lanes = self.three_lanes(CLOUD_BATCH_SIZE=100)
        sent = {}
        for l in lanes:
            sent.update(self.publish_many(l, 1000, threads=8, make_data=lambda i, l=l: {
                "total": i + 0.25, "lane": l.id, "items": [{"sku": f"S{i % 13}", "qty": 1}]}))
        self.assertEqual(len(sent), 3000)
        for l in lanes:
            wait_for(lambda l=l: l.counts()["cloud_ack"] == 1000, 180, what=f"{l.id} all cloud_ack")
            self.assertEqual(l.counts()["failed"], 0)
        rows = self.rows_for(sent)
        self.assertEqual(len(rows), 3000)
        for mid, data in sent.items():
            self.assertEqual(rows[mid], data)
        dup = self.cloud.sql("select count(*) - count(distinct message_id) from pos_messages "
                             f"where store_id = '{self.store.store_id}'")
        self.assertEqual(dup[0][0], "0")
        for l in lanes:
            seqs = self.cloud.sql(f"select min(seq), max(seq), count(*) from pos_messages "
                                  f"where terminal_id = '{l.id}' and store_id = '{self.store.store_id}'")
            self.assertEqual(seqs[0], ["1", "1000", "1000"])
        st = lanes[0].status()["cloud"]
        self.assertTrue(st["enabled"])
        self.assertIsNotNone(st["last_success_at"])

    def test_cloud_outage_backlog_drains_without_new_publishes(self):
        lanes = self.three_lanes()
        before = {}
        for l in lanes:
            before.update(self.publish_many(l, 50))
        for l in lanes:
            wait_for(lambda l=l: l.counts()["cloud_ack"] == 50, 60, what="first 50 cloud_ack")
        self.cloud.down()  # function and PostgreSQL both stop
        during = {}
        own = {l.id: 50 for l in lanes}
        try:
            t_end = time.monotonic() + 30
            while time.monotonic() < t_end:  # keep selling for 30 s with the cloud down
                for l in lanes:
                    got = self.publish_many(l, 5, threads=1)
                    during.update(got)
                    own[l.id] += len(got)
                time.sleep(0.5)  # pacing of the load (about 30 sales/s), not synchronisation
            for l in lanes:
                wait_for(lambda l=l: l.counts()["pending"] == 0, 30, what="peer_ack while cloud down")
            st = lanes[0].status()["cloud"]
            self.assertTrue(st["last_error"], "the outage shows in status")
            self.assertEqual(sum(l.counts()["cloud_ack"] for l in lanes), 150)
        finally:
            self.cloud.up()
        # No new publish from here on: the backlog must drain by itself.
        for l in lanes:
            wait_for(lambda l=l: l.counts()["cloud_ack"] == own[l.id], 120, what=f"{l.id} backlog drained")
        rows = self.rows_for(list(before) + list(during))
        self.assertEqual(len(rows), len(before) + len(during))

    def test_kill9_after_cloud_commit_before_local_mark_comes_back_as_duplicate(self):
        proxy = HoldingProxy(self.cloud.url)
        self.addCleanup(proxy.close)
        # The proxy holds the first answer it forwards: only uploads may pass through it (no
        # catalog pulls, which would be held instead of the batch).
        env = dict(self.cloud.lane_env(), SUPABASE_URL=proxy.url, CLOUD_PULL_INTERVAL_MS=0)
        l1 = self.store.lane("L1", **env)  # single lane: uploads pending directly
        l1.start()
        proxy.hold.set()
        sent = self.publish_many(l1, 40)
        wait_for(proxy.held.is_set, 30, what="a batch committed in the cloud")
        l1.kill9()
        proxy.hold.clear()
        committed = json.loads(proxy.held_answer)["results"]
        self.assertTrue(all(r["status"] == "stored" for r in committed))
        l1.start()
        wait_for(lambda: l1.counts()["cloud_ack"] == 40, 60, what="all cloud_ack after restart")
        later = proxy.answers[proxy.answers.index((200, proxy.held_answer)) + 1:]
        statuses = [r["status"] for s, p in later if s == 200 for r in json.loads(p)["results"]]
        committed_ids = {r["messageId"] for r in committed}
        redelivered = [r for s, p in later if s == 200 for r in json.loads(p)["results"]
                       if r["messageId"] in committed_ids]
        self.assertTrue(redelivered, "the committed batch was sent again")
        self.assertTrue(all(r["status"] == "duplicate" for r in redelivered), statuses)
        rows = self.cloud.sql("select count(*), count(distinct message_id) from pos_messages "
                              f"where terminal_id = 'L1' and store_id = '{self.store.store_id}'")
        self.assertEqual(rows[0], ["40", "40"])
        self.assertEqual(set(self.rows_for(sent)), set(sent))

    def test_wiped_lane_without_peers_continues_after_the_clouds_highest_seq(self):
        l1 = self.store.lane("L1", **self.cloud.lane_env())  # single lane: no peer to ask
        l1.start()
        first = self.publish_many(l1, 5)
        wait_for(lambda: l1.counts()["cloud_ack"] == 5, 60, what="first 5 cloud_ack")
        l1.stop()
        l1.wipe_outbox()  # the disk was replaced
        l1.start()
        r = l1.publish("transaction", {"total": 6})
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json()["seq"], 6, "the next seq follows the cloud's, none reused")
        wait_for(lambda: l1.counts()["cloud_ack"] == 1, 60, what="the new sale cloud_ack")
        seqs = self.cloud.sql("select seq from pos_messages where store_id = "
                              f"'{self.sid}' and terminal_id = 'L1' order by seq")
        self.assertEqual([int(x[0]) for x in seqs], [1, 2, 3, 4, 5, 6])
        self.assertEqual(len(self.rows_for(list(first) + [r.json()["id"]])), 6)
        self.assertEqual(self.cloud.uploads_by(self.sid, "L1")[None]["rejected"], 0)
        self.assertIn("lane.cloud_floor", l1.log_text())

    def test_new_lane_without_peers_waits_for_an_unreachable_cloud_until_the_operator_decides(self):
        l1 = self.store.lane("L1", SUPABASE_URL=f"http://127.0.0.1:{free_port()}",
                             SUPABASE_SERVICE_KEY="sk-unreachable-cloud-1234")
        l1.start(rebuilding_ok=True)
        r = l1.publish("transaction", {"total": 1})  # held for the start check's time, then 503
        self.assertEqual(r.status, 503, r.body)
        self.assertEqual(r.headers.get("Retry-After"), "2")
        self.assertIn("highest seq", r.json()["error"])
        h = http("GET", l1.api + "/healthz")
        self.assertEqual(h.status, 503)
        self.assertEqual(h.json()["status"], "rebuilding")
        rb = l1.rebuild_state()
        self.assertEqual(rb["waiting_for"], ["cloud"], rb)
        wait_for(lambda: "last try" in l1.rebuild_state().get("progress", ""), 30,
                 what="the failed query shows in status")
        self.assertEqual(l1.cli("rebuild", "--env", l1.env_path, "--without", "L2", check=1)
                         .returncode, 1)
        # The CLI, which writes the outbox itself, does not hand out seq 1 around the check.
        cli = ("publish", "--env", l1.env_path, "--topic", "transaction", "--data", '{"total": 3}')
        self.assertIn("highest seq", l1.cli(*cli, check=1).stderr)
        l1.cli("rebuild", "--env", l1.env_path, "--without", "cloud", check=0)
        r = l1.publish("transaction", {"total": 2})
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json()["seq"], 1)
        self.assertEqual(json.loads(l1.cli(*cli, check=0).stdout)["seq"], 2)
        self.assertEqual(l1.health()[0], 200)
        self.assertNotIn("sk-unreachable-cloud-1234", l1.log_text())

    def test_wrong_key_shows_401_loses_nothing_and_recovers_when_fixed(self):
        l1 = self.store.lane("L1", **dict(self.cloud.lane_env(), SUPABASE_SERVICE_KEY="wrong-key-wrong-key-123"))
        l1.start(rebuilding_ok=True)
        # A new outbox without peers asks the cloud for its highest seq first: with the wrong
        # key the cloud cannot tell, and the lane takes no sale until the operator decides.
        wait_for(lambda: "HTTP 401" in l1.rebuild_state().get("progress", ""), 30,
                 what="401 in the cloud check")
        self.assertEqual(l1.publish("transaction", {"total": 1}).status, 503)
        l1.cli("rebuild", "--env", l1.env_path, "--without", "cloud", check=0)
        sent = self.publish_many(l1, 20)
        wait_for(lambda: "401" in json.dumps(l1.status()["cloud"]), 30, what="401 in status")
        st = json.dumps(l1.status())
        self.assertNotIn("wrong-key-wrong-key-123", st)
        self.assertNotIn("wrong-key-wrong-key-123", l1.log_text())
        self.assertEqual(l1.counts()["cloud_ack"], 0)
        self.assertEqual(l1.counts()["pending"], 20)
        l1.stop()
        l1.env["SUPABASE_SERVICE_KEY"] = self.cloud.key
        l1.start()
        wait_for(lambda: l1.counts()["cloud_ack"] == 20, 60, what="recovered after the key was fixed")
        self.assertNotIn(self.cloud.key, l1.log_text())
        self.assertEqual(len(self.rows_for(sent)), 20)

    def test_rejected_message_fails_with_reason_and_does_not_block_others(self):
        l1 = self.store.lane("L1", **self.cloud.lane_env())
        l1.start()
        good1 = l1.publish("transaction", {"total": 1}).json()["id"]
        bad = l1.publish("inventory", {"sku": "X", "delta": 0}).json()["id"]
        good2 = l1.publish("transaction", {"total": 2}).json()["id"]
        wait_for(lambda: l1.counts()["cloud_ack"] == 2 and l1.counts()["failed"] == 1, 60,
                 what="2 cloud_ack and 1 failed")
        m = l1.message(bad).json()
        self.assertEqual(m["state"], "failed")
        self.assertTrue(m["last_error"])
        self.assertEqual(set(self.rows_for([good1, good2, bad])), {good1, good2})
        reason = m["last_error"]
        r = l1.cli("retry", "--env", l1.env_path, "--failed", check=0)
        self.assertIn("1", r.stdout)
        # Re-queued, uploaded again, rejected again with the same reason; the others stay put.
        wait_for(lambda: l1.message(bad).json()["state"] == "failed"
                 and l1.message(bad).json()["last_error"] == reason, 60,
                 what="the retried message is rejected again")
        self.assertEqual(l1.counts()["cloud_ack"], 2)


class CloudTls(WithCloud):
    @classmethod
    def setUpClass(cls):
        cls.cloud = Cloud(tls=True).up()

    def test_https_with_the_local_ca(self):
        self.assertTrue(self.cloud.url.startswith("https://"))
        l1 = self.store.lane("L1", **self.cloud.lane_env())
        l1.start()
        self.publish_many(l1, 30)
        wait_for(lambda: l1.counts()["cloud_ack"] == 30, 60, what="cloud_ack over HTTPS")

    def test_wrong_ca_fails_closed_with_a_clear_error(self):
        other = os.path.join(self.store.dir, "other-ca.pem")
        key = os.path.join(self.store.dir, "other-ca.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", other, "-days", "2", "-subj", "/CN=not the cloud CA"],
                       check=True, capture_output=True)
        l1 = self.store.lane("L1", **dict(self.cloud.lane_env(), SUPABASE_CA_FILE=other))
        l1.start(rebuilding_ok=True)
        # The new outbox's highest-seq query fails closed too, and says why.
        wait_for(lambda: "certificate" in l1.rebuild_state().get("progress", ""), 30,
                 what="a certificate error in the cloud check")
        l1.cli("rebuild", "--env", l1.env_path, "--without", "cloud", check=0)
        self.publish_many(l1, 5)
        wait_for(lambda: "certificate" in (l1.status()["cloud"]["last_error"] or "").lower(), 30,
                 what="a certificate error in status")
        self.assertEqual(l1.counts()["cloud_ack"], 0)
        self.assertEqual(l1.counts()["pending"], 5)


if __name__ == "__main__":
    unittest.main()
