"""Replica takeover with real agents and the real local cloud (issue 9, item 4): a lane that
cannot reach the cloud and dies for good has its peer_ack messages uploaded by a peer on its
behalf (terminalId = the dead lane, uploadedBy = the peer, recorded in sync_log.uploaded_by);
nothing is uploaded for it while it is alive; back from the dead, it learns from the peer's
news that its messages are in the cloud (cloud_ack) without uploading them itself."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import CloudStoreTestCase, free_port, sql_str, wait_for  # noqa: E402
from cloudlib import HoldingProxy  # noqa: E402

TAKEOVER_S = 2


class Takeover(CloudStoreTestCase):

    def cloud_rows(self, terminal):
        rows = self.cloud.sql("select message_id, seq, data::text from pos_messages where "
                              f"store_id = {sql_str(self.sid)} and terminal_id = {sql_str(terminal)}")
        return {r[0]: (int(r[1]), json.loads(r[2])) for r in rows}

    def test_dead_lanes_peer_ack_messages_are_uploaded_by_its_peer(self):
        # L1's cloud is a port nothing listens on; L2 reaches the real cloud through a proxy
        # that can refuse uploads, so that the cover is seen before it has nothing left to do.
        proxy = HoldingProxy(self.cloud.url)
        self.addCleanup(proxy.close)
        env = dict(self.cloud.lane_env(), CLOUD_TAKEOVER_AFTER_S=TAKEOVER_S,
                   SUPABASE_URL=proxy.url)
        l1, l2 = self.pair(**env)
        l1.env["SUPABASE_URL"] = f"http://127.0.0.1:{free_port()}"
        l1.start()
        l2.start()
        sent = self.publish_many(l1, 30)
        own2 = self.publish_many(l2, 5)
        wait_for(lambda: l1.counts()["peer_ack"] == 30, 30, what="L1's 30 messages at peer_ack")
        wait_for(lambda: l2.counts()["cloud_ack"] == 5, 30, what="L2's own messages in the cloud")
        wait_for(lambda: "L1" in l2.status().get("replicas", {}) and
                 l2.origin_row("L1") is not None, 30, what="L2 shows origin L1")

        # Alive: nothing is uploaded for L1, watched for three times the takeover time.
        end = time.monotonic() + 3 * TAKEOVER_S
        while time.monotonic() < end:
            self.assertEqual(self.cloud_rows("L1"), {}, "uploaded for L1 while it is alive")
            self.assertIsNone(l2.origin_row("L1").get("covered_by"))
            time.sleep(0.2)  # sampling a window in which nothing may happen, not a wait
        self.assertEqual(l1.counts()["peer_ack"], 30)

        # Dead for good: L2 covers L1 (shown while its uploads are refused: a cover ends once
        # nothing of the origin is left to upload), then uploads L1's messages on its behalf.
        proxy.refuse.set()
        l1.kill9()
        wait_for(lambda: l2.origin_row("L1").get("covered_by") == "L2", 30,
                 what="L2 covering L1 after the takeover time")
        self.assertEqual(l2.metric("lanesync_origin_covered", origin="L1", by="L2"), 1)
        self.assertEqual(self.cloud_rows("L1"), {})
        proxy.refuse.clear()
        wait_for(lambda: len(self.cloud_rows("L1")) == 30, 60,
                 what="L1's 30 messages in the cloud, uploaded by L2")
        rows = self.cloud_rows("L1")
        self.assertEqual({mid: data for mid, (_, data) in rows.items()}, sent)
        self.assertEqual(sorted(seq for seq, _ in rows.values()), list(range(1, 31)))
        ups = self.cloud.uploads_by(self.sid, "L1")
        self.assertEqual(set(ups), {"L2"}, f"sync_log of L1 by uploader: {ups}")
        self.assertEqual(ups["L2"]["stored"], 30)
        self.assertEqual(ups["L2"]["rejected"], 0)
        self.assertEqual(set(self.cloud.uploads_by(self.sid, "L2")), {None},
                         "L2's own messages carry no uploadedBy")
        self.assertEqual(l2.metric("lanesync_cloud_covered_messages_total", origin="L1"), 30)
        wait_for(lambda: not l2.origin_row("L1").get("covered_by"), 30,
                 what="L2's cover of L1 ended: nothing of it left to upload")
        dup = self.cloud.sql("select count(*) - count(distinct message_id) from pos_messages "
                             f"where store_id = {sql_str(self.sid)}")
        self.assertEqual(dup[0][0], "0")
        self.assertEqual(len(self.cloud_rows("L2")), len(own2))

        # Back, its cloud still unreachable: cloud_ack learned from L2's news; L2 stops covering.
        l1.start()
        wait_for(lambda: l1.counts()["cloud_ack"] == 30, 60,
                 what="L1's messages cloud_ack from L2's news")
        wait_for(lambda: not l2.origin_row("L1").get("covered_by"), 30,
                 what="L2 no longer covering L1 once it is back")
        for mid in sent:
            m = l1.message(mid).json()
            self.assertEqual((m["state"], m["own"]), ("cloud_ack", True))
            self.assertIsNotNone(m["peer_acked_at"])
        ob = l1.counts()
        self.assertEqual((ob["pending"], ob["peer_ack"], ob["failed"]), (0, 0, 0))
        self.assertEqual(set(self.cloud.uploads_by(self.sid, "L1")), {"L2"},
                         "nothing uploaded again after L1 came back")
        self.assertEqual(len(self.cloud_rows("L1")), 30)


if __name__ == "__main__":
    unittest.main()
