"""The named scenarios. Each builds a store of lanes, drives load, injects its faults and
returns once the load is done and every fault is healed; the driver then waits for
convergence and verifies.

Timing of faults is scheduled relative to the load ("cut the link 2 s in"): that is the
experiment, not synchronisation. Every wait for a state is a condition with a deadline.
"""
import os
import random
import time

from faultproxy import Proxy
from flakyproxy import FlakyProxy
from lanes import AckWatcher, Deadline, Store, free_port, log, wait_for
from load import Ledger, LoadRun, make_plan
import verify


class Context:
    def __init__(self, name, opts, seed, root, cloud, binary):
        self.name = name
        self.opts = opts
        self.seed = seed
        self.rng = random.Random(f"{seed}:{name}")
        self.folder = os.path.join(root, name)
        self.cloud = cloud
        self.cloud_enabled = cloud is not None
        self.binary = binary
        self.store_id = f"h{seed}-{name}"[:64]
        self.secret = "harness-" + "%032x" % self.rng.getrandbits(128)
        # The scenario's lanes: env files, outboxes and logs in its folder (kept by the driver).
        self.store = Store(name, folder=self.folder, store_id=self.store_id, secret=self.secret,
                           binary=binary, label="harness")
        self.lanes = self.store.lanes
        self.ledger = Ledger()
        # which 201s reached peer_ack (the loss accounting of verify.accounting)
        self.ledger.watcher = self.watcher = AckWatcher()
        self.faults = {}
        self.violations = []
        self.notes = []
        self.metrics = {}
        self.proxy = None
        self.flaky = None
        self.replica_sample = 200 if opts.quick else 1000
        self.cloud_down = False
        self.after_converge = None
        self.covered_origins = set()   # lanes a peer uploads for (lane-dead)

    # ---- building the store --------------------------------------------------------------
    def make_lanes(self, n, via_proxy=False, cloud_url=None, **extra):
        env = {
            "LOG_LEVEL": self.opts.log_level,
            "CLOUD_SYNC_INTERVAL_MS": 200,
            "SYNC_BACKOFF_BASE_MS": 100,
            "SYNC_BACKOFF_MAX_MS": 2000,
            "CLOUD_BATCH_SIZE": 50,
            "PEER_ACK_QUORUM": self.opts.quorum,
        }
        if self.cloud_enabled:
            env["SUPABASE_URL"] = cloud_url or self.cloud.url
            env["SUPABASE_SERVICE_KEY"] = self.cloud.key
        env.update(extra)
        for i in range(n):
            self.store.lane(f"L{i + 1}", **env)
        if via_proxy:
            self.proxy = Proxy()
        for a in self.lanes:
            for b in self.lanes:
                if a is b:
                    continue
                if via_proxy:
                    port = free_port()
                    self.proxy.add_link(f"{a.id}>{b.id}", port, b.peer_port,
                                        seed=f"{self.seed}:{self.name}:{a.id}>{b.id}")
                    a.peer_urls.append(f"ws://127.0.0.1:{port}/v1/peer")
                else:
                    a.peer_urls.append(b.peer_url)
        return self.lanes

    def lane(self, lid):
        return next(l for l in self.lanes if l.id == lid)

    def fault(self, kind, n=1):
        self.faults[kind] = self.faults.get(kind, 0) + n

    def poison_counts(self):
        out = {}
        for m in self.ledger.msgs.values():
            if m.poison:
                out[m.lane] = out.get(m.lane, 0) + 1
        return out

    # ---- load -------------------------------------------------------------------------------
    def plans(self, lanes, count, start=0, poison=0.0):
        # One RNG per lane and phase: ids never collide between lanes or phases.
        return {l.id: make_plan(random.Random(f"{self.seed}:{self.name}:plan:{l.id}:{start}"),
                                l.id, count, start, self.opts.payload, poison_frac=poison)
                for l in lanes}

    def load(self, plans, rate=None, failover=False):
        run = LoadRun(self.ledger, plans, {l.id: l for l in self.lanes}, self.opts.clients,
                      self.opts.rate if rate is None else rate,
                      retry_deadline=max(120.0, self.opts.deadline),
                      seed=f"{self.seed}:{self.name}", failover=self.opts.failover or failover)
        pace = f"at {run.rate:g}/s per lane" if run.rate else "unpaced"
        log(f"  load: {sum(len(p) for p in plans.values())} messages on {', '.join(plans)} "
            f"{pace}, {self.opts.clients} clients per lane")
        return run.start()

    def load_seconds(self, count, rate=None):
        rate = self.opts.rate if rate is None else rate
        return count / rate if rate else 5.0

    def finish_load(self, run, what="load"):
        limit = self.load_seconds(max(len(p) for p in run.plans.values()), run.rate) * 4 + \
            max(120.0, self.opts.deadline)
        if not run.wait(limit):
            run.abort.set()
            self.violations.append(f"{what} did not finish within {limit:.0f}s")
            run.wait(30)
        log(f"  {what} done: {self.ledger.count()} accepted in "
            f"{(run.finished_at or time.monotonic()) - run.started_at:.1f}s, "
            f"{self.ledger.retries} retried attempts")

    def at(self, t0, offset):
        """Sleeps until t0 + offset: scheduling the moment of a fault."""
        d = t0 + offset - time.monotonic()
        if d > 0:
            time.sleep(d)

    def wait_peers_connected(self, lane, timeout=30):
        """Until `lane` has an authenticated session with every other running lane."""
        others = {l.id for l in self.lanes if l is not lane and l.running()}

        def ok():
            st = lane.status(timeout=2)
            up = {p.get("terminal_id") for p in st.get("peers", []) if p.get("connected")}
            return others <= up
        wait_for(ok, timeout, f"{lane.id} connected to {sorted(others)}")

    def restore(self):
        """Everything back to normal before convergence: lanes running, links healed, cloud up."""
        if self.proxy is not None:
            self.proxy.heal()
        for lane in self.lanes:
            if lane.paused:
                lane.resume()
            if not lane.running():
                log(f"  restarting {lane.id} (down at the end of the scenario)")
                lane.start()
        if self.cloud_down:
            self.cloud.up()
            self.cloud_down = False

    def close(self):
        self.watcher.close()
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        if self.flaky is not None:
            self.flaky.close()
            self.flaky = None


def start_all(ctx, lanes=None):
    for lane in lanes or ctx.lanes:
        lane.start()


# ---------------------------------------------------------------------------------------------
# scenarios

def steady(ctx):
    """No faults: the baseline for latencies and convergence."""
    ctx.make_lanes(ctx.opts.lanes)
    start_all(ctx)
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages))
    ctx.finish_load(run)


def lane_crash(ctx):
    """kill -9 random lanes (sometimes two at once) at random moments during load; restart."""
    ctx.make_lanes(ctx.opts.lanes)
    start_all(ctx)
    rate = ctx.opts.rate
    dur = ctx.load_seconds(ctx.opts.messages, rate)
    kills = 3 if ctx.opts.quick else 10
    times = sorted(ctx.rng.uniform(0.1 * dur, 0.85 * dur) for _ in range(kills))
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages), rate)
    t0 = run.started_at
    for t in times:
        ctx.at(t0, t)
        if run.done.is_set():
            break
        n = 2 if (len(ctx.lanes) > 2 and ctx.rng.random() < 0.25) else 1
        victims = ctx.rng.sample(ctx.lanes, n)
        down = ctx.rng.uniform(0.2, 2.5)
        log(f"  kill -9 {', '.join(v.id for v in victims)} at {time.monotonic() - t0:.1f}s "
            f"(load {run.progress():.0%}), down for {down:.1f}s")
        held = {}
        if n == 1:
            try:
                held[victims[0].id] = verify.own_ids_in_state(victims[0], "peer_ack", 2000)
            except Exception:  # noqa: BLE001 - a lane may still be starting; skip the probe
                pass
        for v in victims:
            v.kill9()
            ctx.fault("kill -9")
        if held:
            # Guarantee 2 while the lane is dead: what it called peer_ack is on a peer.
            ctx.metrics["peer_ack_probed"] = ctx.metrics.get("peer_ack_probed", 0) + \
                verify.check_held_by_peers(ctx, victims[0], held[victims[0].id], victims)
        time.sleep(down)  # the outage itself
        for v in victims:
            v.start()
    ctx.finish_load(run)
    if ctx.metrics.get("peer_ack_probed"):
        ctx.notes.append(f"{ctx.metrics['peer_ack_probed']} peer_ack messages of killed lanes "
                         "found on a peer while their lane was down")


def lane_pause(ctx):
    """SIGSTOP a lane (short, and longer than the 10 s peer idle timeout), then SIGCONT."""
    ctx.make_lanes(ctx.opts.lanes)
    start_all(ctx)
    pauses = [2.0, 12.0] if ctx.opts.quick else [1.0, 3.0, 12.0, 20.0]
    ctx.rng.shuffle(pauses)
    dur = ctx.load_seconds(ctx.opts.messages)
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages))
    t0 = run.started_at
    at = 0.2 * dur
    for p in pauses:
        ctx.at(t0, at)
        at += p + 1.0
        v = ctx.rng.choice(ctx.lanes)
        log(f"  SIGSTOP {v.id} for {p:.0f}s at {time.monotonic() - t0:.1f}s "
            f"(load {run.progress():.0%})")
        v.pause()
        ctx.fault("SIGSTOP")
        time.sleep(p)  # the pause itself
        v.resume()
        log(f"  SIGCONT {v.id}")
    ctx.finish_load(run)


def peer_partition(ctx):
    """Every peer link through the TCP fault proxy: latency, jitter, stalls, dropped chunks and
    resets throughout; the links between two lanes cut and healed; then one lane cut off from
    everyone (blackholed longer than the heartbeat timeout) and healed."""
    ctx.make_lanes(ctx.opts.lanes, via_proxy=True)
    q = ctx.opts.quick
    ctx.proxy.configure(latency_ms=5, jitter_ms=15, stall_prob=0.03, stall_ms=(200, 1500),
                        drop_prob=0.01, reset_prob=0.005)
    start_all(ctx)
    # slower load, so that both cuts fall inside it
    rate = ctx.opts.rate / 3 if ctx.opts.rate else 0
    dur = ctx.load_seconds(ctx.opts.messages, rate)
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages), rate)
    t0 = run.started_at
    a, b = ctx.rng.sample(ctx.lanes, 2)
    pair = [f"{a.id}>{b.id}", f"{b.id}>{a.id}"]
    ctx.at(t0, 0.15 * dur)
    hold = 4.0 if q else 15.0
    log(f"  cut {a.id}<->{b.id} for {hold:.0f}s (load {run.progress():.0%})")
    ctx.proxy.cut(*pair)
    ctx.fault("link cut")
    time.sleep(hold)
    ctx.proxy.heal(*pair)
    log(f"  healed {a.id}<->{b.id}")
    c = ctx.rng.choice(ctx.lanes)
    ctx.at(t0, 0.4 * dur)
    links = [n for n in ctx.proxy.links if c.id in n.split(">")]
    hold = 12.0 if q else 25.0
    log(f"  isolate {c.id} from every peer for {hold:.0f}s (load {run.progress():.0%})")
    ctx.proxy.cut(*links)
    ctx.fault("lane isolated")
    time.sleep(hold)
    ctx.proxy.heal(*links)
    log(f"  healed {c.id}")
    ctx.finish_load(run)
    # the wire keeps its latency and stalls, but stops corrupting while the store converges
    ctx.proxy.configure(drop_prob=0.0, reset_prob=0.0)
    t = ctx.proxy.totals()
    for k in ("stalls", "drops", "resets"):
        if t[k]:
            ctx.fault(f"chunk {k}", t[k])
    ctx.notes.append(f"proxy: {t['connections']} connections, {t['chunks']} chunks, "
                     f"{t['bytes'] // 1024} KiB, {t['held']} held during cuts")


def cloud_outage(ctx):
    """PostgreSQL down (the function answers 503), then the function down too (connection
    refused) while publishing continues; the cloud comes back only after the load ended, and
    the backlog must drain with no new publish."""
    if not ctx.cloud_enabled:
        raise Skip("needs the cloud")
    ctx.make_lanes(ctx.opts.lanes)
    start_all(ctx)
    dur = ctx.load_seconds(ctx.opts.messages)
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages))
    t0 = run.started_at
    ctx.at(t0, 0.15 * dur)
    log(f"  cloud-down.sh --db-only (load {run.progress():.0%})")
    ctx.cloud_down = True
    ctx.cloud.down("db")
    ctx.fault("db down")
    ctx.at(t0, 0.35 * dur)
    log(f"  cloud-down.sh --functions-only (load {run.progress():.0%})")
    ctx.cloud.down("functions")
    ctx.fault("function down")
    ctx.finish_load(run)

    # Everything replicated (peer_ack) and waiting: the outage held the backlog back.
    def backlog():
        total = 0
        for lane in ctx.lanes:
            ob = lane.status()["outbox"]
            if ob["pending"]:
                return None
            total += ob["peer_ack"]
        return total if total else None
    try:
        n = wait_for(backlog, 60, "every message peer_acked while the cloud is down")
        probed = 0
        for lane in ctx.lanes:
            probed += verify.check_held_by_peers(
                ctx, lane, verify.own_ids_in_state(lane, "peer_ack", 10000))
        ctx.notes.append(f"{probed} peer_ack messages found on a peer while the cloud was down")
        errs = {lane.id: lane.status()["cloud"].get("last_error") for lane in ctx.lanes}
        log(f"  backlog while the cloud is down: {n} messages at peer_ack")
        ctx.notes.append(f"backlog at cloud restart: {n} messages at peer_ack; "
                         f"cloud errors seen: {sorted(set(str(e)[:60] for e in errs.values()))}")
        if not all(errs.values()):
            ctx.violations.append(f"cloud down but status.cloud.last_error is empty on "
                                  f"{[k for k, v in errs.items() if not v]}")
    except Deadline as e:
        ctx.violations.append(f"cloud-outage: {e}")
    log("  cloud-up.sh (no more publishes from here on)")
    ctx.cloud.up()
    ctx.cloud_down = False


def cloud_flaky(ctx):
    """The lanes reach the function through an HTTP proxy that answers 503, loses the answer
    after the commit, stalls, hangs or cuts the answer for a fraction of requests, during load
    and convergence."""
    if not ctx.cloud_enabled:
        raise Skip("needs the cloud")
    port = free_port()
    q = ctx.opts.quick
    ctx.flaky = FlakyProxy(port, ctx.cloud.api_port, seed=f"{ctx.seed}:{ctx.name}:http",
                           fail=0.15, lost=0.12, stall=0.10, hang=0.03 if q else 0.01,
                           cut=0.05, stall_s=(0.3, 2.5), hang_s=(2.0, 5.0) if q else (5.0, 40.0))
    ctx.make_lanes(ctx.opts.lanes, cloud_url=f"http://127.0.0.1:{port}", CLOUD_BATCH_SIZE=20)
    start_all(ctx)
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages))
    ctx.finish_load(run)
    ctx.after_converge = lambda: _flaky_stats(ctx)


def _flaky_stats(ctx):
    s = dict(ctx.flaky.stats)
    for k in ("fail", "lost", "stall", "hang", "cut"):
        if s[k]:
            ctx.fault(f"http {k}", s[k])
    ctx.notes.append(f"http proxy: {s['requests']} requests, {s['forwarded']} forwarded")


def rolling_restart(ctx):
    """SIGTERM each lane in turn during load (clean stop, exit code 0), restart it, wait until
    it is back with its peers, next lane."""
    ctx.make_lanes(ctx.opts.lanes)
    start_all(ctx)
    rate = ctx.opts.rate / 2 if ctx.opts.rate else 0
    dur = ctx.load_seconds(ctx.opts.messages, rate)
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages), rate)
    t0 = run.started_at
    rounds = 1 if ctx.opts.quick else 2
    order = [lane for _ in range(rounds) for lane in ctx.lanes]
    for i, lane in enumerate(order):
        ctx.at(t0, dur * (i + 1) / (len(order) + 1))
        log(f"  SIGTERM {lane.id} (load {run.progress():.0%})")
        t = time.monotonic()
        rc = lane.terminate(timeout=20)
        ctx.fault("SIGTERM")
        if rc != 0:
            ctx.violations.append(f"{lane.id}: SIGTERM exit code {rc} (expected 0, "
                                  "None = did not stop within 20 s)")
        log(f"    {lane.id} stopped in {time.monotonic() - t:.1f}s; restarting")
        lane.start()
        try:
            ctx.wait_peers_connected(lane, 30)
        except Deadline as e:
            ctx.violations.append(str(e))
    ctx.finish_load(run)


def late_joiner(ctx):
    """All lanes but one publish (hundreds in --quick, thousands otherwise) and reach the
    cloud; then the last lane starts with an empty outbox, must catch up on every replica,
    and publishes its own messages while the others go on."""
    lanes = ctx.make_lanes(ctx.opts.lanes)
    early, late = lanes[:-1], lanes[-1]
    start_all(ctx, early)
    pre = max(ctx.opts.messages, 300 if ctx.opts.quick else 2000)
    run = ctx.load(ctx.plans(early, pre), rate=0)
    ctx.finish_load(run, "phase 1 load")

    def early_done():
        if len(early) - 1 < ctx.opts.quorum:
            return True     # the early lanes alone cannot reach the quorum: they wait for it
        for lane in early:
            st = lane.status()
            ob = st["outbox"]
            if ob["pending"] or (ctx.cloud_enabled and ob["peer_ack"]):
                return False
        return True
    wait_for(early_done, ctx.opts.deadline, "the early lanes' messages to settle")
    log(f"  {ctx.ledger.count()} messages published before {late.id} starts")
    t = time.monotonic()
    late.start()
    run2 = ctx.load({**ctx.plans([late], ctx.opts.messages, start=pre),
                     **ctx.plans(early, ctx.opts.messages // 4, start=pre)})
    want = {l.id: l.status()["outbox"]["last_seq"] for l in early}

    def caught_up():
        rep = late.status().get("replicas", {})
        return all(rep.get(k, 0) >= v for k, v in want.items())
    try:
        wait_for(caught_up, ctx.opts.deadline, f"{late.id} to catch up", interval=0.1)
        ctx.metrics["catch_up_s"] = time.monotonic() - t
        ctx.notes.append(f"{late.id} held all {sum(want.values())} earlier messages "
                         f"{ctx.metrics['catch_up_s']:.1f}s after it started")
    except Deadline as e:
        ctx.violations.append(str(e))
    ctx.fault("late start")
    ctx.finish_load(run2, "phase 2 load")


def poison(ctx):
    """A fraction of messages the cloud rejects by schema: they must end failed (with a
    reason), everything else cloud_ack; failures never block the messages behind them."""
    if not ctx.cloud_enabled:
        raise Skip("needs the cloud")
    ctx.make_lanes(ctx.opts.lanes)
    start_all(ctx)
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages, poison=0.08))
    ctx.finish_load(run)
    n = sum(ctx.poison_counts().values())
    if n:
        ctx.fault("poison message", n)


def failover(ctx):
    """One id on two lanes: POS clients whose lane does not answer retry on another lane with
    the same idempotency key (`--failover` always on here) while random lanes are killed -9,
    and a fraction of sales is retried on the next lane although the first lane stored it (the
    answer was lost): 3 % with the same data, 1 % with other data. Both lanes accept the id as
    their own, replication of both origins goes on, and the cloud applies each event once:
    same content -> the later copy is a duplicate (both lanes cloud_ack), other content -> a
    conflict (that copy failed on its lane); every seq of every lane is accounted for."""
    if ctx.opts.lanes < 2:
        raise Skip("needs two lanes")
    ctx.make_lanes(ctx.opts.lanes)
    start_all(ctx)
    plans = ctx.plans(ctx.lanes, ctx.opts.messages)
    pick = random.Random(f"{ctx.seed}:{ctx.name}:elsewhere")
    for plan in plans.values():
        for m in plan:
            r = pick.random()
            if m.id is not None and not m.poison and r < 0.04:
                m.elsewhere = "same" if r < 0.03 else "other"
    dur = ctx.load_seconds(ctx.opts.messages)
    kills = 2 if ctx.opts.quick else 6
    times = sorted(ctx.rng.uniform(0.15 * dur, 0.8 * dur) for _ in range(kills))
    run = ctx.load(plans, failover=True)
    t0 = run.started_at
    for t in times:
        ctx.at(t0, t)
        if run.done.is_set():
            break
        v = ctx.rng.choice(ctx.lanes)
        down = ctx.rng.uniform(0.5, 2.5)
        log(f"  kill -9 {v.id} at {time.monotonic() - t0:.1f}s (load {run.progress():.0%}), "
            f"down for {down:.1f}s; its POS clients retry on other lanes")
        v.kill9()
        ctx.fault("kill -9")
        time.sleep(down)  # the outage itself
        v.start()
    ctx.finish_load(run)
    n = sum(len(c) for c in ctx.ledger.copies.values())
    ctx.notes.append(f"{n} sales retried on the next lane after their 201 (own on both)")


class Skip(Exception):
    pass


from survival import backup_restore, disk_loss, lane_dead  # noqa: E402 (uses Skip, start_all)
from downstream import downstream  # noqa: E402 (uses Skip, start_all)


SCENARIOS = {
    "steady": steady,
    "lane-crash": lane_crash,
    "lane-pause": lane_pause,
    "peer-partition": peer_partition,
    "cloud-outage": cloud_outage,
    "cloud-flaky": cloud_flaky,
    "rolling-restart": rolling_restart,
    "late-joiner": late_joiner,
    "poison": poison,
    "failover": failover,
    "disk-loss": disk_loss,
    "backup-restore": backup_restore,
    "lane-dead": lane_dead,
    "downstream": downstream,
}
