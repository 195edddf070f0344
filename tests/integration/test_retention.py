"""Bounded retention with real agents and the real local cloud (OUTBOX_RETENTION_DAYS as a
decimal): a lane prunes its own messages once they are cloud_ack and past the retention, its
peer prunes the replicas once it knows they are in the cloud (the lanes' news), rounds of the
same load leave the outbox at the same size (freed pages are reused), and `lanesync prune` on
a stopped lane reports what it deleted."""
import os
import re
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import CloudStoreTestCase, wait_for  # noqa: E402

RETENTION_DAYS = "0.0001"  # 8.64 s: pruned about every second
ROUND = 1500


def own_cloud_acked(path):
    """Own messages of lane L1 in cloud_ack, read from its outbox file."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("select count(*) from messages where origin = 'L1' and state = 2"
                          ).fetchone()[0]
    finally:
        db.close()


def pages(path):
    """(page_count, freelist_count) of an outbox, read beside the running agent (WAL)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return (db.execute("PRAGMA page_count").fetchone()[0],
                db.execute("PRAGMA freelist_count").fetchone()[0])
    finally:
        db.close()


class Retention(CloudStoreTestCase):

    def held(self, lane, origin):
        row = lane.origin_row(origin)
        return row["held"] if row else 0

    def test_rounds_are_pruned_and_the_file_stops_growing(self):
        env = dict(self.cloud.lane_env(), OUTBOX_RETENTION_DAYS=RETENTION_DAYS)
        l1, l2 = self.pair(**env)
        l1.start()
        l2.start()
        sizes = []
        for r in range(3):
            self.publish_many(l1, ROUND)
            wait_for(lambda: self.held(l1, "L1") == 0 and self.held(l2, "L1") == 0, 90,
                     what=f"round {r + 1}: L1's messages pruned on both lanes")
            sizes.append(pages(l1.outbox_path))
        for lane in (l1, l2):  # counted once the step's commit completed
            wait_for(lambda: lane.metric("lanesync_outbox_pruned_total") == 3 * ROUND, 10,
                     what=f"{lane.id}: lanesync_outbox_pruned_total")
        self.assertEqual(l1.counts()["last_seq"], 3 * ROUND)
        rows = self.cloud.sql(f"select count(*) from pos_messages where store_id = '{self.sid}'")
        self.assertEqual(rows[0][0], str(3 * ROUND), "every message in the cloud before it went")
        # Rounds two and three went into the pages round one freed (3x the pages otherwise).
        first, last = sizes[0][0], sizes[-1][0]
        self.assertLessEqual(last, first * 1.25 + 64, f"page counts per round: {sizes}")
        self.assertGreater(sizes[-1][1], 0, "the pruned rows' pages are on the freelist")
        self.assertTrue(l1.log_lines("outbox.pruned"), "one log line per cycle that pruned")
        for lane in (l1, l2):
            rc, out = lane.check_db()
            self.assertEqual(rc, 0, out)

        # A fourth round with L1 stopped once it is in the cloud: `lanesync prune` deletes it
        # as it ages past the retention, and says how much, in how many transactions.
        self.publish_many(l1, ROUND)
        wait_for(lambda: l1.counts()["cloud_ack"] + l1.metric("lanesync_outbox_pruned_total")
                 == 4 * ROUND, 60, what="round 4 in the cloud")
        l1.stop()
        left = own_cloud_acked(l1.outbox_path)  # what the agent had not pruned yet
        pruned = []

        def prune_once():
            r = l1.cli("prune", "--env", l1.env_path, check=0, cwd=l1.folder)
            m = re.match(r"pruned (\d+) messages? in cloud_ack for more than 0\.0001 days "
                         r"\(OUTBOX_RETENTION_DAYS\), in (\d+) transactions?, \d+ ms$",
                         r.stdout.strip())
            self.assertIsNotNone(m, r.stdout + r.stderr)
            pruned.append(int(m.group(1)))
            return sum(pruned) == left

        wait_for(prune_once, 60, what=f"lanesync prune of the {left} left", interval=1.0)
        self.assertEqual(own_cloud_acked(l1.outbox_path), 0)
        rc, out = l1.check_db()
        self.assertEqual(rc, 0, out)
        l1.start()
        self.assertEqual(l1.counts()["cloud_ack"], 0)
        self.assertEqual(l1.publish(data={"after": "prune"}).json()["seq"], 4 * ROUND + 1)


if __name__ == "__main__":
    unittest.main()
