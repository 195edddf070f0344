"""Priorities order the upload backlog (docs/uploader.md "Priorities"), with a real agent and
the real local cloud: a lane whose uploads are refused collects a backlog of thousands of
messages of every level, written in mixed order; once the cloud answers again every critical
message reaches it before any high one, and so on, in seq order within a level. TOPIC_PRIORITY
sets the level of a message whose request names none; status and /metrics show the backlog per
level."""
import json
import os
import random
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "lib"))
from lanes import CloudStoreTestCase, http, sql_str, wait_for  # noqa: E402
from cloudlib import HoldingProxy  # noqa: E402

LEVELS = ["critical", "high", "normal", "low"]
PER_LEVEL = 800   # 3200 messages in all: whole batches per level
BATCH = 100       # CLOUD_BATCH_SIZE: every level fills whole batches
# By topic, so TOPIC_PRIORITY decides the level of the messages that name none.
TOPIC_OF = {"critical": "sale.void", "high": "transaction", "normal": "customer.visit",
            "low": "audit"}


class Priorities(CloudStoreTestCase):

    def test_a_backlog_of_thousands_reaches_the_cloud_most_urgent_first(self):
        proxy = HoldingProxy(self.cloud.url)
        self.addCleanup(proxy.close)
        proxy.refuse.set()
        env = dict(self.cloud.lane_env(), SUPABASE_URL=proxy.url, CLOUD_BATCH_SIZE=BATCH,
                   SYNC_BACKOFF_MAX_MS=300,
                   TOPIC_PRIORITY="sale.void:critical,transaction:high,audit:low")
        lane = self.store.lane("L1", **env)
        lane.start()

        # Every level in a shuffled order of seqs; half of each level names its priority, the
        # other half gets it from TOPIC_PRIORITY (normal: no entry at all).
        plan = [level for level in LEVELS for _ in range(PER_LEVEL)]
        random.Random(20261202).shuffle(plan)
        for start in range(0, len(plan), 100):
            batch = []
            for i, level in enumerate(plan[start:start + 100], start):
                m = {"topic": TOPIC_OF[level], "data": {"total": i, "i": i}}
                if i % 2:
                    m["priority"] = level
                batch.append(m)
            r = http("POST", lane.api + "/v1/messages", {"messages": batch})
            self.assertEqual(r.status, 201, r.body)
        self.assertEqual(lane.counts()["pending"], len(plan))

        # The backlog per level, in status and /metrics, while nothing reaches the cloud.
        backlog = lane.status()["outbox"]["backlog"]
        self.assertEqual(sorted(backlog), sorted(LEVELS))
        for level in LEVELS:
            self.assertEqual(backlog[level], {"pending": PER_LEVEL, "peer_ack": 0}, level)
            self.assertEqual(lane.metric("lanesync_outbox_backlog", state="pending",
                                         priority=level), PER_LEVEL)
        # The refusals are answered by the proxy: nothing was forwarded.
        self.assertEqual(proxy.posted, [])

        proxy.refuse.clear()
        wait_for(lambda: lane.counts()["cloud_ack"] == len(plan), 120,
                 what=f"all {len(plan)} messages cloud_ack")
        for level in LEVELS:
            self.assertEqual(lane.metric("lanesync_outbox_backlog", state="pending",
                                         priority=level), 0)

        # What the cloud holds: each message once, with the level it was written at.
        rows = self.cloud.sql("select seq, priority, (data->>'i')::int from pos_messages where "
                              f"store_id = {sql_str(self.sid)}")
        self.assertEqual(len(rows), len(plan))
        for seq, prio, i in rows:
            self.assertEqual(prio, plan[int(i)], f"seq {seq} (message {i})")

        # The order of the requests as the cloud received them. With levels that fill whole
        # batches, every request carries one level, the levels never go back up, and within a
        # level each request is the next run of that level's seqs (two requests of one level
        # may be in flight at once, so two neighbours may arrive swapped).
        with proxy.lock:
            bodies = [json.loads(b) for b in proxy.posted]
        requests = [[(m["priority"], m["seq"]) for m in b["messages"]] for b in bodies
                    if b["messages"]]
        self.assertEqual(sum(len(r) for r in requests), len(plan),
                         "every message uploaded once (no request failed after the release)")
        levels = []
        for r in requests:
            self.assertEqual(len({p for p, _ in r}), 1, f"one level per request: {r[:3]}...")
            seqs = [s for _, s in r]
            self.assertEqual(seqs, sorted(seqs), "seq order within a request")
            levels.append(LEVELS.index(r[0][0]))
        self.assertEqual(levels, sorted(levels), f"levels in the order sent: {levels}")
        for level in LEVELS:
            runs = sorted([s for _, s in r] for r in requests if r[0][0] == level)
            flat = [s for run in runs for s in run]
            self.assertEqual(flat, sorted(flat), f"{level}: requests are runs of seqs")
            self.assertEqual(len(flat), PER_LEVEL)
        self.assertEqual(lane.status()["outbox"]["backlog"]["critical"],
                         {"pending": 0, "peer_ack": 0})

    def test_topic_priority_and_the_request_priority(self):
        env = dict(self.cloud.lane_env(), TOPIC_PRIORITY="audit:low,transaction:high")
        lane = self.store.lane("L1", **env)
        lane.start()
        cases = [("audit", None, "low"), ("audit", "critical", "critical"),
                 ("transaction", None, "high"), ("transaction", "normal", "normal"),
                 ("stock.count", None, "normal")]
        for topic, asked, stored in cases:
            r = lane.publish(topic, {"total": 1}, priority=asked)
            self.assertEqual(r.status, 201, r.body)
            got = http("GET", lane.api + "/v1/messages/" + r.json()["id"]).json()
            self.assertEqual(got["priority"], stored, (topic, asked))
        # The CLI's publish (another process on the same file) takes the same defaults.
        r = lane.cli("publish", "--env", lane.env_path, "--topic", "audit", "--data", '{"n": 1}')
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: lane.counts()["cloud_ack"] == len(cases) + 1, 30,
                 what="every message in the cloud")
        rows = self.cloud.sql("select topic, priority from pos_messages where "
                              f"store_id = {sql_str(self.sid)} order by seq")
        self.assertEqual([tuple(r) for r in rows],
                         [(t, p) for t, _, p in cases] + [("audit", "low")])


if __name__ == "__main__":
    unittest.main()
