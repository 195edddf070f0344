"""What operators watch, against real agents and the real local cloud: /metrics parsed by the
Prometheus client library, secrets absent from every output, JSON log lines, and the
`status --store` / `--watch` views of a three-lane store.

Runs under Debian's /usr/bin/python3 (tests/integration.cmake): python3-prometheus-client is
installed for that interpreter only."""
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import ARTIFACTS, BIN, Cloud, StoreTestCase, http, wait_for  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families

from wsclient import WsClient

# Every family issue 5 asks for, with its type. The parser names a counter family without its
# _total suffix.
FAMILIES = {
    "lanesync_accepted": "counter",
    "lanesync_peer_acked": "counter",
    "lanesync_cloud_acked": "counter",
    "lanesync_cloud_failed": "counter",
    "lanesync_peer_frames": "counter",
    "lanesync_peer_auth_failures": "counter",
    "lanesync_peer_malformed_frames": "counter",
    "lanesync_upload_requests": "counter",
    "lanesync_upload_retries": "counter",
    "lanesync_outbox_messages": "gauge",
    "lanesync_oldest_pending_age_seconds": "gauge",
    "lanesync_peers_connected": "gauge",
    "lanesync_cloud_backoff_seconds": "gauge",
    "lanesync_publish_to_peer_ack_seconds": "histogram",
    "lanesync_peer_ack_to_cloud_ack_seconds": "histogram",
}

# A message the edge function refuses (inventory delta must not be 0): ends `failed`.
REJECTED = ("inventory", {"sku": "X", "delta": 0})


class Metrics:
    """One scrape of /metrics, parsed by prometheus_client, plus strict checks of the text."""

    def __init__(self, lane, case):
        r = http("GET", lane.api + "/metrics")
        case.assertEqual(r.status, 200)
        case.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        self.text = r.body.decode()
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}
        self._strict(case)

    def _strict(self, case):
        # Each family: one HELP and one TYPE line, before its samples; lanesync_ names only.
        seen_help, seen_type = set(), set()
        for line in self.text.splitlines():
            m = re.match(r"# (HELP|TYPE) (\S+) (.+)$", line)
            if m:
                (seen_help if m.group(1) == "HELP" else seen_type).add(m.group(2))
                continue
            case.assertFalse(line.startswith("#"), line)
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            case.assertTrue(name.startswith("lanesync_"), line)
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            case.assertTrue(name in seen_type or base in seen_type, f"sample before its TYPE: {line}")
        case.assertEqual(seen_help, seen_type)
        for f in self.families.values():
            if f.type == "counter":
                case.assertTrue(all(s.name.endswith("_total") for s in f.samples), f.name)
            if f.type == "histogram":
                buckets = [s.value for s in f.samples if s.name.endswith("_bucket")]
                case.assertEqual(buckets, sorted(buckets), f"{f.name} buckets are cumulative")
                count = [s.value for s in f.samples if s.name.endswith("_count")][0]
                case.assertEqual(buckets[-1], count, f"{f.name}: +Inf bucket == count")

    def value(self, family, suffix="", **labels):
        f = self.families[family]
        name = family + (suffix or ("_total" if f.type == "counter" else ""))
        total = None
        for s in f.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total = (total or 0) + s.value
        if total is None:
            raise KeyError(f"{name}{labels}")
        return total


def secrets_hit(text, secrets):
    """The secrets (or their first 12 characters: a truncated echo) found in `text`."""
    return [s for s in secrets if s in text or s[:12] in text]


_cloud = None


def setUpModule():
    """One local cloud for the whole module (each test uses its own store id)."""
    global _cloud
    _cloud = Cloud().up()


def tearDownModule():
    _cloud.destroy()


class WithCloud(StoreTestCase):
    def setUp(self):
        super().setUp()
        self.cloud = _cloud
        self.store.store_id = "st-" + uuid.uuid4().hex[:10]

    def mesh(self, *lanes):
        for l in lanes:
            l.peer_with(*[o for o in lanes if o is not l])
        for l in lanes:
            l.start()
        for l in lanes:
            wait_for(lambda l=l: all(p["connected"] for p in l.status()["peers"]), 20,
                     what=f"{l.id} connected to its peers")


class MetricsTest(WithCloud):
    def test_every_family_has_its_type_and_moves_with_traffic(self):
        l1 = self.store.lane("L1", **self.cloud.lane_env())
        # L2 uses a wrong service key: its uploads fail with 401, so retries and backoff move.
        l2 = self.store.lane("L2", **dict(self.cloud.lane_env(), SUPABASE_SERVICE_KEY="wrong-" + uuid.uuid4().hex))
        self.mesh(l1, l2)

        m0 = Metrics(l1, self)
        for name, kind in FAMILIES.items():
            self.assertIn(name, m0.families, f"{name} missing from /metrics")
            self.assertEqual(m0.families[name].type, kind, name)
            self.assertTrue(m0.families[name].documentation, f"{name} has no HELP text")
        for state in ("pending", "peer_ack", "cloud_ack", "failed"):
            self.assertEqual(m0.value("lanesync_outbox_messages", state=state), 0)
        for d in ("in", "out"):
            m0.value("lanesync_peer_frames", direction=d)
        for outcome in ("ok", "http_error", "network", "timeout"):
            self.assertEqual(m0.value("lanesync_upload_requests", outcome=outcome), 0)
        self.assertEqual(m0.value("lanesync_peers_connected"), 1)

        # Traffic: 100 good messages and one the cloud rejects; a hostile client on the peer port.
        self.publish_many(l1, 100)
        self.assertEqual(l1.publish(*REJECTED).status, 201)
        bad = WsClient(l1.peer_port)
        self.addCleanup(bad.close)
        bad.send_text("this is not JSON")
        bad.expect_close()
        liar = WsClient(l1.peer_port)
        self.addCleanup(liar.close)
        liar.send_json({"type": "hello", "v": 1, "store": self.store.store_id, "terminal": "PY", "nonce": "ab" * 32})
        liar.recv()  # the challenge
        liar.send_json({"type": "auth", "mac": "0" * 64})
        liar.expect_close()
        self.publish_many(l2, 5)
        wait_for(lambda: l1.counts()["cloud_ack"] == 100 and l1.counts()["failed"] == 1, 60,
                 what="L1: 100 cloud_ack, 1 failed")
        wait_for(lambda: l2.status()["cloud"]["last_http_status"] == 401, 30, what="L2 sees 401")
        wait_for(lambda: Metrics(l2, self).value("lanesync_upload_retries") >= 1, 30, what="L2 retries")
        wait_for(lambda: l2.counts()["peer_ack"] == 5, 30, what="L2's 5 messages peer_ack")

        m1 = Metrics(l1, self)
        self.assertEqual(m1.value("lanesync_accepted"), 101)
        self.assertEqual(m1.value("lanesync_peer_acked"), 101)
        self.assertEqual(m1.value("lanesync_cloud_acked"), 100)
        self.assertEqual(m1.value("lanesync_cloud_failed"), 1)
        for d in ("in", "out"):
            self.assertGreater(m1.value("lanesync_peer_frames", direction=d),
                               m0.value("lanesync_peer_frames", direction=d))
        self.assertGreaterEqual(m1.value("lanesync_peer_auth_failures"), 1)
        self.assertGreaterEqual(m1.value("lanesync_peer_malformed_frames"), 1)
        self.assertGreater(m1.value("lanesync_upload_requests", outcome="ok"), 0)
        self.assertEqual(m1.value("lanesync_outbox_messages", state="cloud_ack"), 100)
        self.assertEqual(m1.value("lanesync_outbox_messages", state="failed"), 1)
        self.assertEqual(m1.value("lanesync_outbox_messages", state="pending"), 0)
        self.assertEqual(m1.value("lanesync_cloud_backoff_seconds"), 0)
        self.assertEqual(m1.value("lanesync_publish_to_peer_ack_seconds", "_count"), 101)
        self.assertGreater(m1.value("lanesync_publish_to_peer_ack_seconds", "_sum"), 0)
        self.assertGreaterEqual(m1.value("lanesync_peer_ack_to_cloud_ack_seconds", "_count"), 100)
        self.assertGreater(m1.value("lanesync_peer_ack_to_cloud_ack_seconds", "_sum"), 0)

        m2 = Metrics(l2, self)
        self.assertGreater(m2.value("lanesync_upload_requests", outcome="http_error"), 0)
        self.assertGreaterEqual(m2.value("lanesync_upload_retries"), 1)
        self.assertGreater(m2.value("lanesync_cloud_backoff_seconds"), 0)
        self.assertEqual(m2.value("lanesync_outbox_messages", state="peer_ack"), 5)
        self.assertEqual(m2.value("lanesync_cloud_acked"), 0)

        # With its peer gone, L1's new messages stay pending and age; the gauges say so.
        self.assertEqual(l2.stop(), 0)
        wait_for(lambda: Metrics(l1, self).value("lanesync_peers_connected") == 0, 20, what="L1 sees L2 gone")
        self.publish_many(l1, 3)
        m3 = wait_for(lambda: (lambda m: m.value("lanesync_oldest_pending_age_seconds") > 0 and m)(Metrics(l1, self)),
                      10, what="oldest pending age above 0")
        self.assertEqual(m3.value("lanesync_outbox_messages", state="pending"), 3)
        self.assertEqual(m3.value("lanesync_accepted"), 104)


class SecretsTest(WithCloud):
    def test_service_key_and_peer_secret_never_appear_anywhere(self):
        peer_secret = "peer-SECRET-" + uuid.uuid4().hex
        other_secret = "peer-OTHERS-" + uuid.uuid4().hex  # a lane of the store with a wrong secret
        wrong_key = "svc-WRONGKEY-" + uuid.uuid4().hex
        secrets = [peer_secret, other_secret, wrong_key, self.cloud.key]
        env = dict(self.cloud.lane_env(), PEER_SECRET=peer_secret, LOG_LEVEL="trace")
        l1 = self.store.lane("L1", **env)                                  # text logs, good key
        l2 = self.store.lane("L2", **dict(env, SUPABASE_SERVICE_KEY=wrong_key, LOG_FORMAT="json"))
        l3 = self.store.lane("L3", **dict(env, PEER_SECRET=other_secret, LOG_FORMAT="json"))
        l1.peer_with(l2)
        l2.peer_with(l1)
        l3.peer_with(l1)
        for l in (l1, l2, l3):
            l.start()
        self.publish_many(l1, 20)
        self.publish_many(l2, 5)
        wait_for(lambda: l1.counts()["cloud_ack"] == 20, 60, what="L1 uploads")
        wait_for(lambda: l2.status()["cloud"]["last_http_status"] == 401, 30, what="L2 gets 401")
        wait_for(lambda: "authentication" in json.dumps(l3.status()["peers"]), 30, what="L3 refused by L1")

        outputs = {}
        for l in (l1, l2, l3):
            for path in ("/v1/status", "/metrics", "/", "/v1/messages?state=peer_ack",
                         "/v1/messages?state=cloud_ack&limit=5", "/healthz", "/nope"):
                outputs[f"{l.id} GET {path}"] = http("GET", l.api + path).body.decode()
            outputs[f"{l.id} sync"] = http("POST", l.api + "/v1/sync").body.decode()
            for args in (["status", "--env", l.env_path], ["status", "--env", l.env_path, "--json"],
                         ["check-config", "--env", l.env_path], ["check-db", "--env", l.env_path],
                         ["sync-now", "--env", l.env_path],
                         ["publish", "--env", l.env_path, "--topic", "Bad!", "--data", "{}"]):
                r = l.cli(*args)
                outputs[f"{l.id} lanesync {' '.join(args[:1])}"] = r.stdout + r.stderr
        r = l1.cli("status", "--store", self.store.dir)
        outputs["status --store"] = r.stdout + r.stderr
        self.assertIn("401", outputs["L2 GET /v1/status"])  # the error is shown, without the key

        # Invalid env files holding the secrets: every error message leaves them out.
        bad_envs = {
            "bad-port": f"TERMINAL_ID=L9\nSTORE_ID=s\nPEER_SECRET={peer_secret}\nLOCAL_API_PORT=notaport\n"
                        f"SUPABASE_URL={self.cloud.url}\nSUPABASE_SERVICE_KEY={wrong_key}\n",
            "short-secret": f"TERMINAL_ID=L9\nSTORE_ID=s\nPEER_SECRET={peer_secret[:14]}\n"
                            f"PEER_TERMINALS=ws://127.0.0.1:1/v1/peer\n",
            "blank-in-key": f"TERMINAL_ID=L9\nSTORE_ID=s\nSUPABASE_URL={self.cloud.url}\n"
                            f"SUPABASE_SERVICE_KEY=\"{wrong_key[:20]} {wrong_key[20:]}\"\n",
            "wrong-separator": f"TERMINAL_ID=L9\nPEER_SECRET:{peer_secret}=x\n",
            "unterminated": f"TERMINAL_ID=L9\nPEER_SECRET=\"{peer_secret}\nSTORE_ID=s\n",
            "bad-url": f"TERMINAL_ID=L9\nSTORE_ID=s\nSUPABASE_URL=ftp://u:{wrong_key}@example/\n"
                       f"SUPABASE_SERVICE_KEY={wrong_key}\n",
        }
        for name, text in bad_envs.items():
            path = os.path.join(self.store.dir, f"{name}.conf")
            with open(path, "w") as f:
                f.write(text)
            for cmd in ("check-config", "agent", "status"):
                r = l1.cli(cmd, "--env", path)
                self.assertEqual(r.returncode, 2, f"{name} {cmd}: {r.stdout}{r.stderr}")
                self.assertTrue(r.stderr.strip(), f"{name} {cmd} says why")
                outputs[f"{name} {cmd}"] = r.stdout + r.stderr
        for short in (peer_secret[:14], wrong_key[:20], wrong_key[20:]):
            for k, v in outputs.items():
                if k.split()[0] in bad_envs:
                    self.assertNotIn(short, v, k)

        for l in (l1, l2, l3):
            self.assertEqual(l.stop(), 0)
            outputs[f"{l.id} log"] = l.log_text()
            outputs[f"{l.id} status (stopped)"] = "".join(
                (lambda r: r.stdout + r.stderr)(l.cli("status", "--env", l.env_path, *a)) for a in ([], ["--json"]))
        self.assertIn("cloud.upload.failed", outputs["L2 log"])
        self.assertIn("peer.refused", outputs["L3 log"])  # L1 proved it knows a secret L3 does not
        for k, v in outputs.items():
            self.assertEqual(secrets_hit(v, secrets), [], f"a secret appears in {k}")


LINE_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EVENT = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
LEVELS = {"trace", "debug", "info", "warn", "error"}


class JsonLogsTest(WithCloud):
    def test_every_line_is_one_json_object_and_message_events_carry_the_id(self):
        marker = "DATA-MARKER-" + uuid.uuid4().hex
        env = dict(self.cloud.lane_env(), LOG_LEVEL="debug")
        l1 = self.store.lane("L1", LOG_FORMAT="json", **env)
        l2 = self.store.lane("L2", **env)  # text format, for contrast
        self.mesh(l1, l2)
        ids = {}
        for i in range(5):
            r = l1.publish("transaction", {"total": i, "note": marker})
            self.assertEqual(r.status, 201)
            ids[r.json()["id"]] = r.json()["seq"]
        rejected = l1.publish(*REJECTED).json()["id"]
        wait_for(lambda: l1.counts()["cloud_ack"] == 5 and l1.counts()["failed"] == 1, 60,
                 what="5 cloud_ack and 1 failed")
        for l in (l1, l2):
            self.assertEqual(l.stop(), 0)

        lines = l1.log_text().splitlines()
        self.assertGreater(len(lines), 10)
        events = []
        for line in lines:
            obj = json.loads(line)  # raises on anything but one JSON value per line
            self.assertIsInstance(obj, dict, line)
            self.assertEqual(list(obj)[:4], ["ts", "level", "lane", "event"], line)
            self.assertRegex(obj["ts"], LINE_TS)
            self.assertIn(obj["level"], LEVELS)
            self.assertEqual(obj["lane"], "L1")
            self.assertRegex(obj["event"], EVENT)
            self.assertTrue(all(isinstance(v, str) for v in obj.values()), line)
            events.append(obj)
        names = {e["event"] for e in events}
        for expected in ("agent.started", "api.listening", "peer.connected", "cloud.upload.ok", "agent.stopped"):
            self.assertIn(expected, names)

        published = [e for e in events if e["event"] == "api.published"]
        self.assertEqual({e["id"]: int(e["seq"]) for e in published},
                         dict(ids, **{rejected: 6}))
        rej = [e for e in events if e["event"] == "cloud.message.rejected"]
        self.assertEqual([e["id"] for e in rej], [rejected])
        self.assertTrue(rej[0]["reason"])
        # Message data is never logged.
        self.assertNotIn(marker, l1.log_text())
        self.assertNotIn(marker, l2.log_text())

        text_line = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trace|debug|info|warn|error)\s+L2 [a-z0-9_.]+( |$)")
        for line in l2.log_text().splitlines():
            self.assertRegex(line, text_line)


def store_rows(text):
    """`status --store` table -> {lane: {column: value}} (columns split on 2+ blanks)."""
    lines = [l for l in text.splitlines() if l.strip()]
    head = re.split(r"\s{2,}", lines[0].strip())
    return {cols[0]: dict(zip(head, cols))
            for cols in (re.split(r"\s{2,}", l.strip()) for l in lines[1:])}


class StoreViewTest(WithCloud):
    def save(self, name, text):
        os.makedirs(ARTIFACTS, exist_ok=True)
        with open(os.path.join(ARTIFACTS, name), "w") as f:
            f.write(text)

    def test_status_store_of_three_lanes_and_watch_refreshing_in_place(self):
        lanes = [self.store.lane(f"L{i}", LOG_LEVEL="info", **self.cloud.lane_env()) for i in (1, 2, 3)]
        self.mesh(*lanes)
        for l, n in zip(lanes, (30, 20, 10)):
            self.publish_many(l, n)
        for l, n in zip(lanes, (30, 20, 10)):
            wait_for(lambda l=l, n=n: l.counts()["cloud_ack"] == n, 60, what=f"{l.id} all cloud_ack")
        l1, l2, l3 = lanes

        r = l1.cli("status", "--store", self.store.dir, check=0)
        self.save("status-store.txt", r.stdout)
        rows = store_rows(r.stdout)
        self.assertEqual(list(rows), ["L1", "L2", "L3"])
        for l, n in zip(lanes, (30, 20, 10)):
            self.assertEqual(rows[l.id], {"LANE": l.id, "RUNNING": "yes", "PENDING": "0", "PEER_ACK": "0",
                                          "CLOUD_ACK": str(n), "FAILED": "0", "OLDEST PENDING": "-",
                                          "PEERS UP": "2/2", "CLOUD": "ok"})
        j = json.loads(l1.cli("status", "--store", self.store.dir, "--json", check=0).stdout)
        self.assertEqual([s["terminal_id"] for s in j], ["L1", "L2", "L3"])

        # --watch under a pseudo-terminal: two refreshes, each redrawn from the top, then Ctrl-C.
        frames, rc = self.watch(["status", "--store", self.store.dir, "--watch", "0.2"], refreshes=2)
        self.assertEqual(rc, 0)
        for f in frames[:2]:
            self.assertIn("every 0.2s, Ctrl-C to stop", f)
            self.assertEqual(store_rows(f.split("\n", 2)[2])["L2"]["CLOUD_ACK"], "20")
        self.assertEqual(len(frames[0].splitlines()), len(frames[1].splitlines()))
        frames, rc = self.watch(["status", "--env", l1.env_path, "--watch"], refreshes=1)
        self.assertEqual(rc, 0)
        self.assertIn("every 2.0s", frames[0])
        self.assertIn("PEERS (quorum 1)", frames[0])

        # L3 stops; a message published on it meanwhile waits; the others go on.
        self.assertEqual(l3.stop(), 0)
        l3.cli("publish", "--env", l3.env_path, "--topic", "transaction", "--data", '{"total": 9}', check=0)
        self.publish_many(l1, 5)
        wait_for(lambda: l1.counts()["cloud_ack"] == 35, 60, what="L1 goes on without L3")
        r = l1.cli("status", "--store", self.store.dir, check=0)
        self.save("status-store-l3-stopped.txt", r.stdout)
        rows = store_rows(r.stdout)
        self.assertEqual(rows["L3"]["RUNNING"], "no")
        self.assertEqual(rows["L3"]["PENDING"], "1")
        self.assertEqual(rows["L3"]["PEERS UP"], "-")
        self.assertEqual(rows["L3"]["CLOUD"], "on")
        self.assertNotEqual(rows["L3"]["OLDEST PENDING"], "-")
        self.assertEqual(rows["L1"]["PEERS UP"], "1/2")
        self.assertEqual(rows["L1"]["CLOUD_ACK"], "35")

    def watch(self, args, refreshes, timeout=15.0):
        """Runs `lanesync ARGS` on a pseudo-terminal until it has drawn `refreshes` + 1 frames
        (so `refreshes` are complete), then sends SIGINT. Returns (frames, exit code)."""
        master, slave = pty.openpty()
        proc = subprocess.Popen([BIN, *args], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        out = b""
        clear = b"\x1b[H\x1b[2J"
        deadline = time.monotonic() + timeout
        try:
            while out.count(clear) < refreshes + 1:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {refreshes} refreshes within {timeout}s: {out[-2000:]!r}")
                ready, _, _ = select.select([master], [], [], 0.5)
                if ready:
                    out += os.read(master, 65536)
            proc.send_signal(signal.SIGINT)
            rc = proc.wait(timeout=10)
            while True:  # whatever it printed on the way out
                ready, _, _ = select.select([master], [], [], 0)
                if not ready:
                    break
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            os.close(master)
        text = out.decode(errors="replace").replace("\r\n", "\n")
        frames = text.split(clear.decode())[1:]
        self.assertEqual(text.split(clear.decode())[0], "", "nothing before the first redraw")
        return frames, rc


if __name__ == "__main__":
    unittest.main()
