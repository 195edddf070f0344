"""Head office's changes pulled by real lanes from the real local cloud (issue 13): a price
change reaches every lane, a lane killed mid-page resumes without a gap or a double apply, a
new lane syncs a 100,000-row catalog, and concurrent head-office writers never make a lane miss
a change. What a lane holds is read from its outbox (tables catalog and catalog_scopes,
docs/outbox.md), read-only, while it runs."""
import json
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "lib"))
from lanes import (CloudStoreTestCase, catalog_cursor, catalog_held, catalog_synced,  # noqa: E402
                   free_port, log, sql_str, wait_for)

PULL = {"CLOUD_PULL_INTERVAL_MS": 200}


lane_scope = catalog_cursor
lane_catalog = catalog_held


def wait_synced(lane, scope, head, timeout=120):
    wait_for(lambda: catalog_synced(lane, scope, head), timeout,
             what=f"{lane.id} holds {scope} through {head}")


class Pull(CloudStoreTestCase):
    """Lanes pulling from one shared local cloud; each test uses its own store id and scopes or
    sku prefix, so rows never meet."""

    def lanes(self, n=3, **extra):
        env = dict(self.cloud.lane_env(), **PULL, **extra)
        lanes = [self.store.lane(f"L{i}", **env) for i in range(1, n + 1)]
        for lane in lanes:
            lane.peer_with(*[o for o in lanes if o is not lane])
        for lane in lanes:
            lane.start()
        return lanes

    def assert_same_as_cloud(self, lane, scope, prefix=""):
        """The lane's live rows of the scope (with prefix) are exactly the cloud's, versions too."""
        cloud = {k: v for k, v in self.cloud.catalog(self.sid, scope).items() if k.startswith(prefix)}
        held = lane_catalog(lane, scope, prefix)
        missing = sorted(set(cloud) - set(held))[:5]
        extra = sorted(set(held) - set(cloud))[:5]
        wrong = sorted(k for k in set(cloud) & set(held) if cloud[k] != held[k])[:5]
        self.assertEqual((missing, extra, wrong), ([], [], []),
                         f"{lane.id} {scope}: missing, extra, different keys")
        self.assertEqual(len(held), len(cloud))

    def test_a_price_change_reaches_all_three_lanes(self):
        prefix = f"{self.sid}-"
        head = self.cloud.load_products(50, prefix=prefix)
        lanes = self.lanes()
        for lane in lanes:
            wait_synced(lane, "prices", head)
            wait_synced(lane, "products", head)
        sku = prefix + "000007"
        self.assertEqual(lane_catalog(lanes[2], "prices", sku)[sku][1],
                         {"price_cents": 107, "currency": "EUR"})
        t = time.monotonic()
        head = self.cloud.set_price(sku, 4242)
        for lane in lanes:
            wait_for(lambda lane=lane: lane_catalog(lane, "prices", sku).get(sku, [0])[0] == head,
                     60, what=f"{lane.id} has the new price")
        log(f"  price change -> all three lanes: {time.monotonic() - t:.2f} s")
        for lane in lanes:
            self.assertEqual(lane_catalog(lane, "prices", sku)[sku][1],
                             {"price_cents": 4242, "currency": "EUR"})
            self.assertEqual(lane_catalog(lane, "products", sku)[sku][1]["price_cents"], 4242)
            wait_synced(lane, "products", head)
            self.assert_same_as_cloud(lane, "prices", prefix)
            self.assert_same_as_cloud(lane, "products", prefix)
        # A delete is a tombstone on every lane.
        self.cloud.psql(f"delete from lanesync.products where sku = {sql_str(sku)}")
        head = self.cloud.log_head()
        for lane in lanes:
            wait_synced(lane, "prices", head)
            self.assertNotIn(sku, lane_catalog(lane, "prices", prefix))

    def test_a_lane_whose_cloud_link_is_cut_gets_the_change_through_its_peers(self):
        # L3's SUPABASE_URL names a port nobody listens on: only L1 and L2 reach the cloud, and
        # L3 peers with L2 alone, so a change reaches it only through the mesh (protocol v3).
        prefix = f"{self.sid}-"
        head = self.cloud.load_products(20, prefix=prefix)
        env = dict(self.cloud.lane_env(), **PULL)
        l1, l2 = self.store.lane("L1", **env), self.store.lane("L2", **env)
        cut = dict(env, SUPABASE_URL=f"http://127.0.0.1:{free_port()}")
        l3 = self.store.lane("L3", **cut)
        l1.peer_with(l2)
        l2.peer_with(l1, l3)
        l3.peer_with(l2)
        for lane in (l1, l2, l3):
            lane.start()
        for lane in (l1, l2, l3):
            wait_synced(lane, "prices", head)
        sku = prefix + "000003"
        t = time.monotonic()
        head = self.cloud.set_price(sku, 777)
        wait_for(lambda: lane_catalog(l3, "prices", sku).get(sku, [0])[0] == head, 60,
                 what="L3 has the new price through L2")
        log(f"  price change -> the lane without a cloud link: {time.monotonic() - t:.2f} s")
        self.assertEqual(lane_catalog(l3, "prices", sku)[sku][1],
                         {"price_cents": 777, "currency": "EUR"})
        self.assert_same_as_cloud(l3, "prices", prefix)
        # It never reached the cloud itself: its puller's last attempt failed.
        wait_for(lambda: l3.status()["pull"].get("last_error"), 30,
                 what="L3's puller reports its failing cloud link")
        self.assertFalse(l3.status()["pull"].get("last_ok_at"), "L3 never reached the cloud")

    def test_a_lane_killed_mid_page_resumes_without_gap_or_double_apply(self):
        scope = f"restart-{self.sid[3:]}"
        n = 20000
        head = self.cloud.publish_many(self.sid, scope, [(f"k{i:06d}", {"i": i, "v": 1})
                                                         for i in range(n)])
        lane, = self.lanes(1)

        def partway():
            s = lane_scope(lane, scope)
            return s is not None and (s["snapshot"] or s["through"] < head) and \
                len(lane_catalog(lane, scope)) > 0
        # Killed while the snapshot is under way (a page applied, more to come).
        wait_for(partway, 60, what="the snapshot under way", interval=0.005)
        lane.kill9()
        held = len(lane_catalog(lane, scope))
        log(f"  killed during the snapshot with {held} of {n} rows")
        self.assertLess(held, n, "killed before the snapshot ended")
        # Changes while it is down: updates, deletes, new keys (the log after as_of).
        later = [(f"k{i:06d}", {"i": i, "v": 2}) for i in range(0, n, 7)]
        later += [(f"k{i:06d}", None) for i in range(3, n, 11)]
        later += [(f"new{i}", {"i": i}) for i in range(100)]
        head = self.cloud.publish_many(self.sid, scope, later)
        lane.start()
        wait_synced(lane, scope, head)
        self.assert_same_as_cloud(lane, scope)

        # Killed during a catch-up (many pages of changes after its cursor).
        upd = [(f"k{i:06d}", {"i": i, "v": 3}) for i in range(n)]
        head = self.cloud.publish_many(self.sid, scope, upd)
        through0 = lane_scope(lane, scope)["through"]
        wait_for(lambda: through0 < lane_scope(lane, scope)["through"] < head, 60,
                 what="the catch-up under way", interval=0.005)
        lane.kill9()
        lane.start()
        wait_synced(lane, scope, head)
        self.assert_same_as_cloud(lane, scope)
        lane.stop()
        self.assertEqual(lane.check_db()[0], 0)

    def test_concurrent_head_office_writers_never_make_a_lane_miss_a_change(self):
        scope = f"conc-{self.sid[3:]}"
        self.cloud.publish(None, scope, "seed", {"seed": 1})
        lanes = self.lanes()
        errors = []
        counts = {"commits": 0, "rollbacks": 0}

        def writer(w):
            rnd = random.Random(w)
            try:
                for t in range(25):
                    stmts = []
                    for i in range(rnd.randint(1, 3)):
                        store = rnd.choice([sql_str(self.sid), "null", "'other-store'"])
                        data = "null" if rnd.random() < 0.15 else \
                            sql_str(json.dumps({"w": w, "t": t, "i": i})) + "::jsonb"
                        stmts.append(f"select lanesync.publish_change({store}, {sql_str(scope)}, "
                                     f"'k{rnd.randrange(40)}', {data});")
                        if rnd.random() < 0.3:
                            stmts.append(f"select pg_sleep({rnd.random() * 0.05:.3f});")
                    rollback = rnd.random() < 0.2
                    self.cloud.psql_script("\n".join(stmts) + ("\nrollback;" if rollback else ""))
                    counts["rollbacks" if rollback else "commits"] += 1
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        head = self.cloud.log_head()
        for lane in lanes:
            wait_synced(lane, scope, head)
            self.assert_same_as_cloud(lane, scope)
        log(f"  {counts['commits']} commits, {counts['rollbacks']} rollbacks; every lane holds "
            f"the cloud's {len(self.cloud.catalog(self.sid, scope))} keys")


class LargeCatalog(CloudStoreTestCase):
    """Its own cloud: the 100,000 products would otherwise reach every other test's lanes."""

    def test_a_new_lane_syncs_a_100000_row_catalog(self):
        prefix = f"{self.sid}-"
        t = time.monotonic()
        head = self.cloud.load_products(100000, prefix=prefix)
        log(f"  published 100,000 products (200,000 changes): {time.monotonic() - t:.1f} s")
        lane = self.store.lane("L1", **dict(self.cloud.lane_env(), **PULL))
        t = time.monotonic()
        lane.start()
        wait_synced(lane, "prices", head, timeout=400)
        wait_synced(lane, "products", head, timeout=400)
        took = time.monotonic() - t
        print(f"\n  new lane: 100,000-row catalog (products + prices) synced in {took:.1f} s",
              file=sys.stderr)
        for scope in ("products", "prices"):
            held = lane_catalog(lane, scope, prefix)
            self.assertEqual(len(held), 100000, scope)
            cloud = self.cloud.catalog(self.sid, scope)
            self.assertEqual(held, {k: v for k, v in cloud.items() if k.startswith(prefix)})


if __name__ == "__main__":
    unittest.main()
