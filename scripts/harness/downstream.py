"""Downstream (issue 13): head office publishes price and catalog changes while the store is
under faults, and every lane must end with exactly the cloud's current state.

The last lane's cloud link is cut for the whole run (its SUPABASE_URL names a port nobody
listens on): it can only get head office's changes from its peers (the mesh). During the load
head office updates prices, adds and deletes products (chain-wide, lanesync.products) and
publishes store-specific rows (lanesync.publish_set), while a lane is killed -9 and the cloud's
database goes down for a while. After the scenario: the cut lane must hold the cloud's state
through its peers; then its link is restored (so its messages reach the cloud for the driver's
checks), and after convergence every lane's catalog must equal the cloud's, versions included.
Figures: change -> all lanes latency (p50/p99) of the price changes.

Timing of faults is scheduled relative to the load; every wait for a state is a condition
with a deadline.
"""
import random
import threading
import time

from lanes import Deadline, catalog_cursor, catalog_held, catalog_synced, free_port, log, sql_str, wait_for
from scenarios import Skip, start_all

SCOPES = ("prices", "products")


def _scopes(ctx):
    return [(s, ctx.sku_prefix) for s in SCOPES] + [(ctx.hq_scope, "")]


def _differences(ctx, lane):
    """Keys where the lane and the cloud differ, per scope (empty: the same)."""
    out = []
    for scope, prefix in _scopes(ctx):
        cloud = {k: v for k, v in ctx.cloud.catalog(ctx.store_id, scope).items()
                 if k.startswith(prefix)}
        held = catalog_held(lane, scope, prefix)
        bad = sorted(k for k in set(cloud) | set(held) if cloud.get(k) != held.get(k))
        if bad:
            out.append(f"{scope}: {len(bad)} keys differ, e.g. {bad[:3]}")
    return out


def _holds_cloud_state(ctx, lane):
    head = ctx.cloud.log_head()
    return all(catalog_synced(lane, s, head) for s, _ in _scopes(ctx)) and not _differences(ctx, lane)


class Arrivals:
    """Polls the lanes (every 100 ms, on its own thread) for each committed price round and
    keeps how long it took to be on every lane."""

    def __init__(self, ctx, office):
        self.ctx, self.office = ctx, office
        self.latencies = []
        self.seen = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _arrived(self, version):
        """Every lane's prices scope is complete through the round's version (the log head
        right after it committed; its own price rows have that version or a lower one)."""
        for lane in self.ctx.lanes:
            try:
                cursor = catalog_cursor(lane, "prices")
            except Exception:  # noqa: BLE001 - a lane being restarted: not yet
                return False
            if cursor is None or cursor["snapshot"] or cursor["through"] < version:
                return False
        return True

    def _run(self):
        while not self.stop.is_set():
            while self.seen < len(self.office.committed):
                version, at, _ = self.office.committed[self.seen]
                if not self._arrived(version):
                    break
                self.latencies.append(time.monotonic() - at)
                self.seen += 1
            if self.office.done.is_set() and self.seen == len(self.office.committed):
                return
            self.stop.wait(0.1)


class HeadOffice:
    """Publishes rounds of changes on its own thread; keeps when each price round committed."""

    def __init__(self, ctx, rounds):
        self.ctx = ctx
        self.rounds = rounds
        self.rng = random.Random(f"{ctx.seed}:{ctx.name}:head-office")
        self.committed = []     # (version, monotonic time, skus) of each price round
        self.errors = 0
        self.done = threading.Event()
        self.next_sku = ctx.products
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _round(self, i):
        c, p = self.ctx.cloud, self.ctx.sku_prefix
        skus = [f"{p}{self.rng.randrange(1, self.ctx.products + 1):06d}" for _ in range(5)]
        c.psql(f"update lanesync.products set price_cents = price_cents + 1 "
               f"where sku in ({', '.join(sql_str(s) for s in skus)})")
        self.committed.append((c.log_head(), time.monotonic(), skus))
        if i % 3 == 0:
            self.next_sku += 1
            c.psql(f"insert into lanesync.products (sku, name, price_cents) values "
                   f"({sql_str(f'{p}{self.next_sku:06d}')}, 'New {i}', {100 + i})")
        if i % 4 == 1:
            c.psql(f"delete from lanesync.products where sku = "
                   f"{sql_str(f'{p}{self.rng.randrange(1, self.ctx.products + 1):06d}')}")
        c.publish_many(self.ctx.store_id, self.ctx.hq_scope,
                       [(f"k{self.rng.randrange(200)}", None if self.rng.random() < 0.1 else {"r": i})
                        for _ in range(20)])

    def _run(self):
        for i in range(self.rounds):
            try:
                self._round(i)
            except Exception:  # noqa: BLE001 - the database is down on purpose for a while
                self.errors += 1
                time.sleep(0.5)  # head office retries later: pacing, not synchronisation
            time.sleep(0.2)      # the pace of head office's changes
        self.done.set()


def downstream(ctx):
    """Head office's changes during faults; one lane reaches them only through its peers."""
    if not ctx.cloud_enabled:
        raise Skip("needs the cloud")
    if ctx.opts.quick:
        raise Skip("long form only (scripts/harness.sh --scenario downstream): not yet measured "
                   "under 20 s for harness.quick")
    ctx.sku_prefix = f"{ctx.store_id}-"
    ctx.hq_scope = "hq-" + ctx.store_id.lower().replace("_", "-")[:60]
    ctx.products = 2000
    ctx.cloud.load_products(ctx.products, prefix=ctx.sku_prefix)
    ctx.make_lanes(ctx.opts.lanes, CLOUD_PULL_INTERVAL_MS=300)
    cut = ctx.lanes[-1]
    real_url = cut.env["SUPABASE_URL"]
    cut.env["SUPABASE_URL"] = f"http://127.0.0.1:{free_port()}"   # nobody listens there
    ctx.fault("cloud link cut", 1)
    start_all(ctx)

    office = HeadOffice(ctx, rounds=60)
    arrivals = Arrivals(ctx, office)
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages))
    office.thread.start()
    arrivals.thread.start()
    dur = max(ctx.load_seconds(ctx.opts.messages), 12.0)
    t0 = run.started_at
    ctx.at(t0, 0.25 * dur)
    victim = ctx.lanes[0]
    log(f"  kill -9 {victim.id} during head office's changes")
    victim.kill9()
    ctx.fault("kill -9")
    time.sleep(1.5)  # the outage itself
    victim.start()
    ctx.at(t0, 0.5 * dur)
    log("  cloud-down.sh --db-only for 3 s (pulls get 503, head office waits)")
    ctx.cloud_down = True
    ctx.cloud.down("db")
    ctx.fault("db down")
    time.sleep(3.0)  # the outage itself
    ctx.cloud.up()
    ctx.cloud_down = False
    ctx.finish_load(run)
    if not office.done.wait(300):
        ctx.violations.append("head office's publisher did not finish within 300 s")

    try:
        wait_for(lambda: not arrivals.thread.is_alive(), ctx.opts.deadline,
                 "every price round on every lane")
    except Deadline as e:
        ctx.violations.append(f"downstream: {e} ({arrivals.seen} of {len(office.committed)})")
    arrivals.stop.set()
    lat = sorted(arrivals.latencies)
    if lat:
        ctx.metrics["downstream_rounds"] = len(lat)
        ctx.metrics["downstream_p50_ms"] = round(1000 * lat[len(lat) // 2])
        ctx.metrics["downstream_p99_ms"] = round(1000 * lat[min(len(lat) - 1, len(lat) * 99 // 100)])
        ctx.notes.append(f"price change -> all {len(ctx.lanes)} lanes (one through its peers only): "
                         f"p50 {ctx.metrics['downstream_p50_ms']} ms, p99 "
                         f"{ctx.metrics['downstream_p99_ms']} ms over {len(lat)} rounds; head office "
                         f"retried {office.errors} rounds while the database was down")

    try:
        wait_for(lambda: _holds_cloud_state(ctx, cut), ctx.opts.deadline,
                 f"{cut.id} (no cloud link) holds the cloud's state through its peers")
    except Deadline as e:
        ctx.violations.append(f"downstream: {e}: " + "; ".join(_differences(ctx, cut)))
    # Restore the cut lane's link so its messages reach the cloud for the driver's checks.
    cut.terminate(timeout=20)
    cut.env["SUPABASE_URL"] = real_url
    cut.start()

    def after_converge():
        for lane in ctx.lanes:
            try:
                wait_for(lambda lane=lane: _holds_cloud_state(ctx, lane), ctx.opts.deadline,
                         f"{lane.id} holds the cloud's state")
            except Deadline as e:
                ctx.violations.append(f"downstream: {e}: " + "; ".join(_differences(ctx, lane)))
    ctx.after_converge = after_converge
