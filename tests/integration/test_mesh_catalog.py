"""Head office's catalog carried by the peer mesh (protocol v3, docs/protocol.md "Catalog"),
with real agent processes.

The cloud puller is not part of this test: a lane's catalog is seeded by writing the outbox's
catalog tables directly while the lane is stopped (as if the puller had applied pages, source
"cloud"), and every other lane must end with exactly that state through its peers. A Python
peer speaking v2 and v1 checks that older lanes never see a catalog frame and keep
replicating messages."""
import hashlib
import hmac
import os
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import SECRET, StoreTestCase, wait_for  # noqa: E402

from wsclient import WsClient


def seed(lane, scope, rows, through, horizon=0, source="cloud"):
    """Writes `rows` ({key: (version, data or None)}) and the scope's state into the stopped
    lane's outbox (started once first, so the schema exists)."""
    if not os.path.exists(lane.outbox_path):
        lane.start()
        lane.stop()
    db = sqlite3.connect(lane.outbox_path)
    with db:
        db.execute("INSERT INTO catalog_scopes(scope, through, horizon, head, applied_at, source) "
                   "VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT(scope) DO UPDATE SET through = excluded.through, "
                   "horizon = excluded.horizon, head = excluded.head, source = excluded.source",
                   (scope, through, horizon, through, source))
        for key, (version, data) in rows.items():
            db.execute("INSERT OR REPLACE INTO catalog(scope, key, version, deleted, data, changed_at, "
                       "applied_at) VALUES (?, ?, ?, ?, ?, 0, 1)",
                       (scope, key, version, 1 if data is None else 0, "null" if data is None else data))
    db.close()


def catalog(lane, scope):
    """(through, snapshot_active, {key: (version, deleted, data)}) read from the lane's outbox."""
    db = sqlite3.connect(f"file:{lane.outbox_path}?mode=ro", uri=True, timeout=10)
    try:
        st = db.execute("SELECT through, snapshot FROM catalog_scopes WHERE scope = ?", (scope,)).fetchone()
        rows = {k: (v, bool(d), data) for k, v, d, data in
                db.execute("SELECT key, version, deleted, data FROM catalog WHERE scope = ?", (scope,))}
    finally:
        db.close()
    return (st[0] if st else 0, bool(st[1]) if st else False, rows)


def live(rows):
    return {k: (v, data) for k, (v, deleted, data) in rows.items() if not deleted}


def mac(role, store, client, server, nc, ns):
    msg = "\n".join(["lanesync-peer/1", role, store, client, server, nc, ns])
    return hmac.new(SECRET.encode(), msg.encode(), hashlib.sha256).hexdigest()


class MeshCatalog(StoreTestCase):
    def test_a_seeded_catalog_reaches_a_lane_two_hops_away(self):
        l1 = self.store.lane("L1")
        l2 = self.store.lane("L2")
        l3 = self.store.lane("L3")
        l1.peer_with(l2)
        l2.peer_with(l1)
        l3.peer_with(l2)  # L3 hears of L1's catalog only through L2
        rows = {f"sku-{i:05d}": (i, '{"price_cents":%d}' % (100 + i)) for i in range(1, 1201)}
        rows["sku-00007"] = (1300, None)  # a delete travels as a tombstone
        seed(l1, "prices", rows, through=1400)
        seed(l1, "products", {"p1": (5, '{"name":"tea"}')}, through=5)
        for lane in (l1, l2, l3):
            lane.start()
        want = live(catalog(l1, "prices")[2])
        self.assertEqual(len(want), 1199)

        def synced(lane):
            through, active, got = catalog(lane, "prices")
            return through == 1400 and not active and live(got) == want and \
                catalog(lane, "products")[0] == 5

        wait_for(lambda: synced(l2), 60, what="L2 holds L1's catalog")
        wait_for(lambda: synced(l3), 60, what="L3 holds L1's catalog through L2")
        self.assertTrue(catalog(l3, "prices")[2]["sku-00007"][1])  # the tombstone arrived
        self.assertGreaterEqual(l3.metric("lanesync_catalog_peer_pages_total", direction="received"), 3)
        self.assertGreaterEqual(l1.metric("lanesync_catalog_peer_pages_total", direction="sent"), 3)
        applied = [l for l in l3.log_lines("peer.catalog_applied", limit=1000) if "prices" in l]
        self.assertTrue(applied, "one peer.catalog_applied line per page")

    def test_a_lane_below_the_horizon_gets_a_snapshot_that_drops_deleted_keys(self):
        l1, l2 = self.pair()
        rows = {f"k{i:03d}": (100 + i, '{"v":%d}' % i) for i in range(1, 41)}
        seed(l1, "prices", rows, through=200, horizon=150)  # tombstones up to 150 purged
        # L2 is at 50 and still holds a key L1 deleted long ago, and an old price of k001.
        seed(l2, "prices", {"gone": (40, '{"v":0}'), "k001": (30, '{"v":-1}')}, through=50)
        l1.start()
        l2.start()
        want = live(catalog(l1, "prices")[2])

        def synced():
            through, active, got = catalog(l2, "prices")
            return through == 200 and not active and live(got) == want

        wait_for(synced, 60, what="L2's prices equal L1's after a snapshot")
        self.assertTrue(catalog(l2, "prices")[2]["gone"][1])  # deleted by the snapshot's end
        self.assertTrue([l for l in l2.log_lines("peer.catalog_applied", limit=1000) if "reset" in l])

    def _handshake(self, lane, v):
        ws = WsClient(lane.peer_port)
        self.addCleanup(ws.close)
        nc = os.urandom(32).hex()
        ws.send_json({"type": "hello", "v": v, "store": lane.store_id, "terminal": "PY", "nonce": nc})
        ch = ws.recv()
        self.assertEqual(ch["type"], "challenge")
        self.assertEqual(ch["v"], v)
        ws.send_json({"type": "auth", "mac": mac("client", lane.store_id, "PY", lane.id, nc, ch["nonce"])})
        ready = ws.recv()
        self.assertEqual(ready["type"], "ready")
        ws.send_json({"type": "ready", "hwm": {}})
        return ws

    def _frames_until_batch(self, ws, timeout=15):
        """Frame types received until the first batch (acked, so the lane counts the peer)."""
        types = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = ws.recv()
            types.append(f["type"])
            if f["type"] == "batch":
                return types, f
        self.fail(f"no batch within {timeout}s: {types}")

    def test_v2_and_v1_peers_replicate_messages_and_never_see_catalog_frames(self):
        l1 = self.store.lane("L1")
        seed(l1, "prices", {"a": (1, '{"v":1}')}, through=1)
        l1.start()
        ids = [l1.publish("transaction", {"i": i}).json()["id"] for i in range(5)]
        for v in (2, 1):
            ws = self._handshake(l1, v)
            types, batch = self._frames_until_batch(ws)
            self.assertNotIn("catalog_have", types, f"v{v}")
            self.assertNotIn("catalog", types, f"v{v}")
            self.assertEqual(sorted(m["id"] for m in batch["messages"]), sorted(ids))
            top = max(batch["messages"], key=lambda m: m["seq"])
            mark = {"seq": top["seq"], "id": top["id"]} if v == 2 else top["seq"]
            ws.send_json({"type": "ack", "n": batch["n"], "hwm": {"L1": mark}})
            if v == 2:  # a catalog frame in a v2 session is a protocol error
                ws.send_json({"type": "catalog_have", "acked": 0, "scopes": []})
                c = ws.expect_close()
                self.assertEqual(c.code, 1008)
                self.assertIn("catalog_have in a v2 session", c.reason)
            ws.close()
        wait_for(lambda: l1.counts()["peer_ack"] == 5, 20, what="the v2/v1 peer's acks promote")
        # the positive control: a v3 peer gets our catalog_have right after the ready
        ws = self._handshake(l1, 3)
        deadline = time.monotonic() + 15
        have = None
        while have is None and time.monotonic() < deadline:
            f = ws.recv()
            if f["type"] == "catalog_have":
                have = f
        self.assertIsNotNone(have, "a v3 session gets a catalog_have")
        self.assertEqual(have["scopes"], [{"scope": "prices", "through": 1, "horizon": 0}])


if __name__ == "__main__":
    unittest.main()
