"""Live reload with real agents (docs/configuration.md "Live reload"): `lanesync reload`,
SIGHUP and POST /v1/reload re-read the env file; live keys apply without a restart and without
touching the peer sessions (their counters do not move), a key that cannot change live refuses
the reload whole, an invalid file keeps the running configuration and is reported with
FILE:LINE; against the real local cloud, a rotated service key takes over the uploads."""
import os
import signal
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import CloudStoreTestCase, StoreTestCase, http, wait_for  # noqa: E402


def reload_state(lane):
    return lane.status()["reload"]


class Reload(StoreTestCase):

    def setUp(self):
        super().setUp()
        self.l1, self.l2 = self.pair()
        self.l1.start()
        self.l2.start()
        # One message acked by the peer: both sessions are up and have moved data.
        r = self.l1.publish(data={"n": 0})
        self.assertEqual(r.status, 201, r.body)
        wait_for(lambda: self.l1.counts()["peer_ack"] == 1, 20, what="the first message peer_ack")
        # Each lane dials the other: two sessions on each once both links are up (a lane
        # started before its peer dials again after a backoff).
        wait_for(lambda: [l.metric("lanesync_peer_sessions_total") for l in (self.l1, self.l2)]
                 == [2, 2], 20, what="both directions' sessions up")
        self.sessions = [2, 2]
        self.pid = self.l1.proc.pid

    def sessions_unmoved(self):
        self.assertEqual([l.metric("lanesync_peer_sessions_total") for l in (self.l1, self.l2)],
                         self.sessions)
        self.assertEqual(self.l1.proc.pid, self.pid)
        self.assertTrue(self.l1.running())

    def still_replicates(self, n):
        r = self.l1.publish(data={"n": n})
        self.assertEqual(r.status, 201, r.body)
        wait_for(lambda: self.l1.counts()["peer_ack"] == n + 1, 20,
                 what=f"message {n} peer_ack after the reload")

    def reload_cli(self, check):
        return self.l1.cli("reload", "--env", self.l1.env_path, check=check, cwd=self.l1.folder)

    def test_live_keys_apply_and_sessions_survive(self):
        self.l1.env.update(LOG_LEVEL="info", CLOUD_BATCH_SIZE="7", TOPIC_PRIORITY="audit:low")
        self.l1.write_env()
        r = self.reload_cli(0)
        self.assertEqual(r.stdout.strip(), "ok: reloaded: CLOUD_BATCH_SIZE, TOPIC_PRIORITY, "
                                           "LOG_LEVEL")
        st = reload_state(self.l1)
        self.assertEqual(st["result"], "applied")
        self.assertEqual(st["trigger"], "api")
        self.assertEqual(st["changed"], ["CLOUD_BATCH_SIZE", "TOPIC_PRIORITY", "LOG_LEVEL"])
        # TOPIC_PRIORITY is in force: a request naming no priority takes the topic's.
        mid = self.l1.publish(topic="audit", data={"a": 1}).json()["id"]
        self.assertEqual(self.l1.message(mid).json()["priority"], "low")
        # LOG_LEVEL=info: no more debug lines after the reload's own line.
        text = self.l1.log_text()
        after = text[text.index("config.reloaded"):]
        self.assertIn("changed=CLOUD_BATCH_SIZE,TOPIC_PRIORITY,LOG_LEVEL", after.splitlines()[0])
        self.still_replicates(2)
        self.assertNotIn(" debug ", self.l1.log_text()[len(text) - len(after):])
        # The same file again: nothing changed.
        self.assertEqual(self.reload_cli(0).stdout.strip(), "ok: nothing changed")
        self.assertEqual(reload_state(self.l1)["result"], "unchanged")
        self.sessions_unmoved()

    def test_sighup_reloads(self):
        self.l1.env.update(TOPIC_PRIORITY="audit:critical")
        self.l1.write_env()
        self.l1.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: (reload_state(self.l1) or {}).get("result") == "applied", 10,
                 what="the SIGHUP reload")
        self.assertEqual(reload_state(self.l1)["trigger"], "SIGHUP")
        mid = self.l1.publish(topic="audit", data={"a": 1}).json()["id"]
        self.assertEqual(self.l1.message(mid).json()["priority"], "critical")
        self.sessions_unmoved()

    def test_a_key_that_cannot_change_live_refuses_the_whole_reload(self):
        port = self.l1.peer_port
        self.l1.env.update(TERMINAL_PORT=str(port + 1), TOPIC_PRIORITY="audit:low")
        self.l1.write_env()
        r = self.reload_cli(2)
        self.assertIn("TERMINAL_PORT cannot change while the agent runs", r.stderr)
        self.assertIn("nothing was applied", r.stderr)
        st = reload_state(self.l1)
        self.assertEqual(st["result"], "refused")
        self.assertEqual(st["changed"], [])
        # Nothing applied: TOPIC_PRIORITY from the same file is not in force.
        mid = self.l1.publish(topic="audit", data={"a": 1}).json()["id"]
        self.assertEqual(self.l1.message(mid).json()["priority"], "normal")
        self.assertIn("TERMINAL_PORT cannot change", self.l1.cli(
            "status", "--env", self.l1.env_path, cwd=self.l1.folder).stdout)
        self.assertTrue(self.l1.log_lines("config.reload_refused"))
        self.l1.env["TERMINAL_PORT"] = str(port)  # the cleanup's status reads use this file
        self.l1.write_env()
        self.sessions_unmoved()
        self.still_replicates(2)

    def test_an_invalid_file_keeps_the_running_configuration(self):
        self.l1.env.update(CLOUD_BATCH_SIZE="0", TOPIC_PRIORITY="audit:low")
        path = self.l1.write_env()
        with open(path) as f:
            line = next(i for i, l in enumerate(f.read().splitlines(), 1)
                        if l.startswith("CLOUD_BATCH_SIZE="))
        # The command checks the file first: exit 2 naming FILE:LINE, the agent is not asked.
        r = self.reload_cli(2)
        self.assertIn(f"{path}:{line}: CLOUD_BATCH_SIZE", r.stderr)
        self.assertIsNone(reload_state(self.l1))
        # Asked directly (POST /v1/reload, as SIGHUP does), the agent says the same and keeps
        # its configuration.
        a = http("POST", self.l1.api + "/v1/reload")
        self.assertEqual(a.status, 422, a.body)
        self.assertIn(f"{path}:{line}: CLOUD_BATCH_SIZE", a.json()["error"])
        self.assertIn("the running configuration stays", a.json()["error"])
        st = reload_state(self.l1)
        self.assertEqual(st["result"], "invalid")
        self.assertIn(f"{path}:{line}", st["error"])
        mid = self.l1.publish(topic="audit", data={"a": 1}).json()["id"]
        self.assertEqual(self.l1.message(mid).json()["priority"], "normal")
        self.sessions_unmoved()
        self.still_replicates(2)

    def test_reload_without_a_running_agent_exits_1(self):
        self.l2.stop()
        r = self.l2.cli("reload", "--env", self.l2.env_path, check=1, cwd=self.l2.folder)
        self.assertIn("agent is not running", r.stderr)

    def test_reload_route_takes_post_only(self):
        r = http("GET", self.l1.api + "/v1/reload")
        self.assertEqual(r.status, 405, r.body)
        self.assertIsNone(reload_state(self.l1))


class ReloadCloud(CloudStoreTestCase):

    def test_a_rotated_service_key_takes_over_the_uploads(self):
        """A lane started with a key the cloud refuses holds its messages peer_ack; the right
        key, reloaded live, gets them uploaded without a restart."""
        env = dict(self.cloud.lane_env(), SUPABASE_SERVICE_KEY="not-the-key-" + "x" * 20)
        l1, l2 = self.pair(**env)
        l1.start()
        l2.start()
        self.publish_many(l1, 50)
        wait_for(lambda: l1.counts()["peer_ack"] == 50, 30, what="50 messages peer_ack")
        wait_for(lambda: (l1.status()["cloud"].get("last_error") or "") != "", 20,
                 what="the cloud refusing the old key")
        self.assertEqual(l1.counts()["cloud_ack"], 0)
        sessions = l1.metric("lanesync_peer_sessions_total")
        l1.env["SUPABASE_SERVICE_KEY"] = self.cloud.key
        l1.write_env()
        r = l1.cli("reload", "--env", l1.env_path, check=0, cwd=l1.folder)
        self.assertEqual(r.stdout.strip(), "ok: reloaded: SUPABASE_SERVICE_KEY")
        wait_for(lambda: l1.counts()["cloud_ack"] == 50, 30, what="50 messages cloud_ack")
        self.assertEqual(l1.metric("lanesync_peer_sessions_total"), sessions)
        # Neither key is ever written to the log or the status.
        for text in (l1.log_text(), str(l1.status())):
            self.assertNotIn(self.cloud.key, text)
            self.assertNotIn("not-the-key-", text)


if __name__ == "__main__":
    unittest.main()
