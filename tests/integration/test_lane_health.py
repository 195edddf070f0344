"""Head office's view of every lane with real agents and the real local cloud: each upload
carries the lane's summary and an idle lane sends it as a heartbeat (CLOUD_HEARTBEAT_MS), the
cloud keeps one current row per lane (lane_status), the view lane_health calls a lane that
went quiet `silent`, and scripts/store-report.sh prints it."""
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "lib"))
from lanes import CloudStoreTestCase, child_env, sql_str, wait_for  # noqa: E402

REPORT = os.path.join(HERE, "..", "..", "scripts", "store-report.sh")


class LaneHealth(CloudStoreTestCase):

    def row(self, terminal, silent_after="15 minutes"):
        """The lane's lane_health_with row as a dict (None while the cloud has none)."""
        cols = ["state", "pending", "peer_ack", "cloud_ack", "failed", "last_seq", "peers_up",
                "peers_configured", "retry_depth", "heartbeats", "requests", "agent_version"]
        rows = self.cloud.sql(
            f"select {', '.join(cols)} from public.lane_health_with(interval "
            f"{sql_str(silent_after)}, interval '5 minutes') where store_id = {sql_str(self.sid)}"
            f" and terminal_id = {sql_str(terminal)}")
        if not rows:
            return None
        out = dict(zip(cols, rows[0]))
        for k in cols[1:-1]:
            out[k] = int(out[k])
        return out

    def test_summaries_heartbeats_and_a_lane_that_goes_silent(self):
        env = dict(self.cloud.lane_env(), CLOUD_HEARTBEAT_MS=1000)
        l1, l2 = self.pair(**env)
        l1.start()
        l2.start()
        self.publish_many(l1, 20)
        wait_for(lambda: l1.counts()["cloud_ack"] == 20, 30, what="L1's messages in the cloud")
        # The next heartbeat after the acks tells the cloud where L1 stands now.
        wait_for(lambda: (self.row("L1") or {}).get("cloud_ack") == 20, 30,
                 what="L1's summary: 20 cloud_ack")
        r1 = self.row("L1")
        self.assertEqual((r1["state"], r1["pending"], r1["peer_ack"], r1["failed"]),
                         ("ok", 0, 0, 0))
        self.assertEqual((r1["last_seq"], r1["peers_configured"], r1["retry_depth"]), (20, 1, 0))
        self.assertEqual(r1["agent_version"], l1.status()["version"])
        self.assertGreater(r1["requests"], r1["heartbeats"], "uploads counted beside heartbeats")
        # L2 never uploaded a message: it is known to head office by its heartbeats alone.
        wait_for(lambda: (self.row("L2") or {}).get("heartbeats", 0) >= 2, 30,
                 what="L2's heartbeats")
        wait_for(lambda: self.row("L1")["peers_up"] == 1, 30, what="L1: its peer up")
        r2 = self.row("L2")
        self.assertEqual(r2["requests"], r2["heartbeats"])
        self.assertEqual(l2.metric("lanesync_cloud_heartbeats_total", outcome="failed") or 0, 0)

        # L2 dies: within the silence threshold (3 s here) head office sees it silent, and L1's
        # summary shows its link down; L1 itself stays ok.
        l2.kill9()
        wait_for(lambda: self.row("L2", "3 seconds")["state"] == "silent", 30,
                 what="L2 silent in lane_health")
        wait_for(lambda: self.row("L1")["peers_up"] == 0, 30, what="L1: its peer down")
        self.assertEqual(self.row("L1", "3 seconds")["state"], "ok")

        env = child_env(SUPABASE_DB_URL=self.cloud.db_url)
        r = subprocess.run(["bash", REPORT, "--store", self.sid], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [l for l in r.stdout.splitlines() if self.sid in l]
        self.assertTrue(any(" L1 " in f" {l} " or "| L1 " in l for l in lines), r.stdout)
        self.assertTrue(any("L2" in l for l in lines), r.stdout)
        env.pop("SUPABASE_DB_URL")
        r = subprocess.run(["bash", REPORT], env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("SUPABASE_DB_URL is not set", r.stderr)


if __name__ == "__main__":
    unittest.main()
