"""Store survival (issue 9): a lane whose disk is lost (`disk-loss`) or replaced by an old copy
(`backup-restore`) is rebuilt from its peers and goes on; a lane that dies for good while the
cloud is unreachable from it only (`lane-dead`) has its peer_ack messages uploaded by a peer.

The loss accounting is the driver's (verify.account_losses / verify.accounting): messages that
were only `pending` on a destroyed disk are an expected loss, counted apart; a message the
AckWatcher saw at `peer_ack` and that is gone is a violation. Timing of faults is scheduled
relative to the load; every wait for a state is a condition with a deadline.
"""
import os
import time

from faultproxy import Proxy
from lanes import Deadline, free_port, log, wait_for
from scenarios import Skip, start_all


def _peers_hold(ctx, victim):
    """The highest seq of `victim`'s origin that a running peer holds (status.origins hwm,
    else the replica count: a peer holds an origin contiguously from 1)."""
    best = 0
    for lane in ctx.lanes:
        if lane is victim or not lane.running():
            continue
        st = lane.status()
        row = next((o for o in st.get("origins", []) if o.get("origin") == victim.id), None)
        held = row.get("hwm", 0) if row else st.get("replicas", {}).get(victim.id, 0)
        best = max(best, held or 0)
    return best


def wait_replicated(ctx):
    """Until every lane holds what every other lane had published when this wait began: a
    lane rebuilt earlier has caught up on its replicas again, so destroying the next disk
    tests one loss at a time (two lanes' disks lost while a message sat on those two only is
    beyond PEER_ACK_QUORUM=1)."""
    want = {lane.id: lane.status()["outbox"]["last_seq"] for lane in ctx.lanes}

    def ok():
        for lane in ctx.lanes:
            rep = lane.status(timeout=2).get("replicas", {})
            if any(rep.get(o, 0) < n for o, n in want.items() if o != lane.id):
                return False
        return True
    try:
        wait_for(ok, ctx.opts.deadline, "every lane to hold the others' messages", interval=0.1)
    except Deadline as e:
        ctx.violations.append(str(e))


def _before(lane):
    """(last_seq, incarnation) of a running lane, (None, None) if it does not answer."""
    try:
        st = lane.status(timeout=2)
        return st["outbox"]["last_seq"], st.get("incarnation") or \
            (st.get("rebuild") or {}).get("incarnation")
    except Exception:  # noqa: BLE001 - restarting or rebuilding: unknown
        return None, None


def _rebuild(ctx, victim, what, last, inc):
    """Restarts a lane whose outbox was just deleted or replaced; waits until it has restored
    what its peers hold of its origin and accepts publishes again; checks the rebuild shows
    (a new incarnation, lanesync_rebuild_restored_total)."""
    held = _peers_hold(ctx, victim)
    t = time.monotonic()
    victim.start(rebuilding_ok=True)
    try:
        st = victim.wait_rebuilt(held, timeout=ctx.opts.deadline)
    except Deadline as e:
        ctx.violations.append(f"{what} of {victim.id}: {e}; rebuild state "
                              f"{_safe(victim.rebuild_state)}")
        return
    took = time.monotonic() - t
    ctx.metrics.setdefault("rebuild_s", []).append(round(took, 1))
    new_inc = st.get("incarnation") or (st.get("rebuild") or {}).get("incarnation")
    if inc and new_inc == inc:
        ctx.violations.append(f"{what} of {victim.id}: incarnation {inc} unchanged by the rebuild")
    restored = _safe(lambda: victim.metric("lanesync_rebuild_restored_total"))
    if held and not restored:
        ctx.violations.append(f"{what} of {victim.id}: peers held seq {held} of it but "
                              f"lanesync_rebuild_restored_total is {restored}")
    ctx.notes.append(f"{what} of {victim.id} at seq {last}: peers held {held}, restarted and "
                     f"rebuilt in {took:.1f}s (restored {restored})")
    log(f"    {victim.id} rebuilt through seq {held} in {took:.1f}s")


def _safe(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - for a message only
        return f"unavailable ({e})"


def lose_disk(ctx, victim, run, isolate_s=0.0):
    """kill -9 `victim`, delete its outbox with -wal/-shm, restart it: it rebuilds. With
    `isolate_s`, its peer links are cut that long before the kill, so that the messages it
    accepts meanwhile are only pending on the disk that is lost (an expected loss the
    accounting must count apart)."""
    links = _isolate(ctx, victim, isolate_s)
    last, inc = _before(victim)
    log(f"  kill -9 {victim.id} and delete its outbox (load {run.progress():.0%}, "
        f"last seq {last})")
    victim.kill9()
    ctx.ledger.disk_event(victim.id, "disk lost")
    files = victim.wipe_outbox()
    ctx.fault("disk lost")
    log(f"    deleted {', '.join(os.path.basename(f) for f in files)}")
    if links:
        ctx.proxy.heal(*links)
    _rebuild(ctx, victim, "disk loss", last, inc)


def _isolate(ctx, victim, secs):
    """Cuts `victim`'s peer links (through the fault proxy) for `secs` before its disk goes:
    what it accepts meanwhile is only pending there. Returns the links to heal."""
    links = [n for n in ctx.proxy.links if victim.id in n.split(">")] \
        if (ctx.proxy and secs) else []
    if links:
        log(f"  cut {victim.id} from its peers for {secs:g}s before the kill")
        ctx.proxy.cut(*links)
        ctx.fault("lane isolated")
        time.sleep(secs)  # the isolation itself
    return links


def disk_loss(ctx):
    """kill -9 a lane under load, delete its outbox (db, -wal, -shm) and restart it: it rebuilds
    its own origin from its peers (POSTs answered 503 meanwhile), continues its seq sequence
    and goes on publishing (1 / 3 times, a different lane each time). Peer links pass the TCP
    fault proxy: in the quick form (and the second loss of the long form) the lane is cut from
    its peers 1 s (1.5 s) before the kill, so some messages are only pending on the lost disk:
    they are counted apart; none seen at peer_ack may be lost."""
    if ctx.opts.lanes < 2:
        raise Skip("needs two lanes")
    ctx.make_lanes(ctx.opts.lanes, via_proxy=True)
    start_all(ctx)
    dur = ctx.load_seconds(ctx.opts.messages)
    at = [0.4] if ctx.opts.quick else [0.2, 0.45, 0.7]
    isolate = [1.0] if ctx.opts.quick else [0.0, 1.5, 0.0]
    order = ctx.rng.sample(ctx.lanes, len(ctx.lanes))
    victims = [order[i % len(order)] for i in range(len(at))]
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages))
    for frac, v, iso in zip(at, victims, isolate):
        ctx.at(run.started_at, frac * dur)
        if run.done.is_set():
            break
        wait_replicated(ctx)
        lose_disk(ctx, v, run, iso)
    ctx.finish_load(run)


def backup_restore(ctx):
    """Take an online copy of a lane's outbox (SQLite's backup API) early in the load; later
    stop the lane (kill -9 after 1 s cut from its peers, or SIGTERM in the second round of the
    long form), put the old copy back (its -wal/-shm removed) and restart it: its peers hold
    more of its origin than the copy, so it rebuilds from them. Long form: a load three times slower, two rounds, copies 40 and 60 s old."""
    if ctx.opts.lanes < 2:
        raise Skip("needs two lanes")
    ctx.make_lanes(ctx.opts.lanes, via_proxy=True)
    start_all(ctx)
    q = ctx.opts.quick
    rate = ctx.opts.rate if q else (ctx.opts.rate / 3 if ctx.opts.rate else 0)
    dur = ctx.load_seconds(ctx.opts.messages, rate)
    # (victim, take the copy at, restore at, how to stop) as fractions of the load
    rounds = [(0.2, 0.6, "kill -9")] if q else [(0.05, 0.5, "kill -9"), (0.15, 0.85, "SIGTERM")]
    victims = ctx.rng.sample(ctx.lanes, len(rounds))
    run = ctx.load(ctx.plans(ctx.lanes, ctx.opts.messages), rate)
    t0 = run.started_at
    copies = {}
    events = sorted([(b, "backup", v, how) for v, (b, _, how) in zip(victims, rounds)] +
                    [(r, "restore", v, how) for v, (_, r, how) in zip(victims, rounds)],
                    key=lambda e: e[0])
    for frac, kind, v, how in events:
        ctx.at(t0, frac * dur)
        if kind == "backup":
            path = os.path.join(ctx.folder, f"{v.id}.backup-{len(copies) + 1}.db")
            last, _ = _before(v)
            v.backup_outbox(path)
            copies[v.id] = (path, time.monotonic(), last)
            log(f"  copied {v.id}'s outbox at seq {last} (load {run.progress():.0%})")
            continue
        path, taken, seq = copies[v.id]
        wait_replicated(ctx)
        links = _isolate(ctx, v, 1.0 if how == "kill -9" else 0.0)
        last, inc = _before(v)
        log(f"  {how} {v.id}, put back its copy from {time.monotonic() - taken:.0f}s ago "
            f"(seq {seq}; now {last}; load {run.progress():.0%})")
        if how == "SIGTERM":
            rc = v.terminate(timeout=20)
            if rc != 0:
                ctx.violations.append(f"{v.id}: SIGTERM exit code {rc} (expected 0)")
        else:
            v.kill9()
        ctx.ledger.disk_event(v.id, "backup restored")
        v.restore_outbox(path)
        ctx.fault("old outbox restored")
        if links:
            ctx.proxy.heal(*links)
        _rebuild(ctx, v, f"restore of a {time.monotonic() - taken:.0f}s old copy", last, inc)
    ctx.finish_load(run)


def lane_dead(ctx):
    """One lane reaches the cloud through the TCP fault proxy, cut from the start: its
    messages wait at peer_ack (nothing may be uploaded for it while it lives, checked after
    2 x CLOUD_TAKEOVER_AFTER_S). It is killed for good; its peers take over and upload its
    messages with uploadedBy (sync_log.uploaded_by = the taker: the lowest id alive among the lanes that hold its
    messages, here every other lane: full mesh, quorum 1). It comes
    back with its cloud still cut and must show its messages cloud_ack, learned from its
    peers' news; then its cloud is healed and the store converges with every message once."""
    if not ctx.cloud_enabled:
        raise Skip("needs the cloud")
    if ctx.opts.lanes < 2:
        raise Skip("needs two lanes")
    after = 3 if ctx.opts.quick else 10
    lanes = ctx.make_lanes(ctx.opts.lanes, CLOUD_TAKEOVER_AFTER_S=after)
    v = ctx.rng.choice(lanes)
    others = [lane for lane in lanes if lane is not v]
    taker = min(lane.id for lane in others)
    ctx.covered_origins.add(v.id)
    ctx.proxy = Proxy()
    port = free_port()
    link = f"{v.id}>cloud"
    ctx.proxy.add_link(link, port, ctx.cloud.api_port, seed=f"{ctx.seed}:{ctx.name}:cloud")
    ctx.proxy.cut(link)
    v.env["SUPABASE_URL"] = f"http://127.0.0.1:{port}"
    start_all(ctx)
    plans = ctx.plans(others, ctx.opts.messages)
    plans.update(ctx.plans([v], max(1, ctx.opts.messages // 3)))
    run = ctx.load(plans)
    t0 = run.started_at
    sid = ctx.store_id
    deadline = ctx.opts.deadline
    try:
        wait_for(lambda: ctx.ledger.count(v.id) >= len(plans[v.id]), deadline,
                 f"{v.id}'s load to be accepted")
        wait_for(lambda: v.counts()["pending"] == 0, deadline, f"{v.id}: nothing pending")
        # Alive, with messages at peer_ack, for twice the takeover time: nobody covers it.
        ctx.at(t0, max(ctx.load_seconds(len(plans[v.id])), 2 * after) + 0.5)
        n_cloud = ctx.cloud.origin_rows(sid, v.id)
        covered = {o.id: (o.origin_row(v.id) or {}).get("covered_by") for o in others}
        if n_cloud or any(covered.values()):
            ctx.violations.append(f"{v.id} alive (its cloud cut): {n_cloud} of its messages in "
                                  f"the cloud, covered_by {covered}: nothing may be uploaded "
                                  "for a lane that is alive")
        held = v.own_ids("peer_ack")
        log(f"  kill {v.id} for good with {len(held)} messages at peer_ack "
            f"(load {run.progress():.0%}); {taker} should take over after {after}s")
        v.kill9()
        ctx.fault("lane dead")
        t = time.monotonic()
        want = ctx.ledger.count(v.id)
        seen = {}

        def uploaded():
            # The taker shows the cover only while something is left to upload (lanes/cover.cpp):
            # it is looked for during the upload, not only after it.
            _look_for_cover(ctx, v, taker, seen)
            return ctx.cloud.origin_rows(sid, v.id) >= want
        wait_for(uploaded, deadline, f"{v.id}'s {want} messages in the cloud, uploaded by a peer",
                 interval=0.2)
        ctx.metrics["takeover_s"] = time.monotonic() - t
        _check_cover(ctx, v, taker, want, seen)
        ctx.finish_load(run)
        log(f"  restart {v.id}, its cloud still cut")
        v.start()
        t = time.monotonic()

        def all_cloud_ack():
            ob = v.counts()
            return ob["pending"] == 0 and ob["peer_ack"] == 0 and ob["cloud_ack"] == ob["last_seq"]
        wait_for(all_cloud_ack, deadline, f"{v.id}: its messages cloud_ack from its peers' news",
                 interval=0.1)
        back = time.monotonic() - t
        wait_for(lambda: not (ctx.lane(taker).origin_row(v.id) or {}).get("covered_by"),
                 deadline, f"{taker} to stop covering {v.id} once it is back")
        ups = ctx.cloud.uploads_by(sid, v.id)
        if None in ups:
            ctx.violations.append(f"{v.id} uploaded itself through a cut link: sync_log {ups}")
        ctx.notes.append(f"{v.id} dead: {taker} uploaded its {want} messages "
                         f"{ctx.metrics['takeover_s']:.1f}s after the kill (takeover after "
                         f"{after}s); back with its cloud cut, all cloud_ack after {back:.1f}s")
    except Deadline as e:
        ctx.violations.append(f"lane-dead: {e}")
        if not run.done.is_set():
            run.abort.set()
            ctx.finish_load(run)
    ctx.after_converge = lambda: _double_uploads(ctx, v)


def _look_for_cover(ctx, v, taker, seen):
    """Notes in `seen` what the taker's status.origins (covered_by) and /metrics
    (lanesync_origin_covered) say of the dead lane now; a value once seen as expected stays."""
    if seen.get("covered_by") != taker:
        seen["covered_by"] = (ctx.lane(taker).origin_row(v.id) or {}).get("covered_by")
    if seen.get("gauge") != 1:
        seen["gauge"] = ctx.lane(taker).metric("lanesync_origin_covered", origin=v.id, by=taker)


def _check_cover(ctx, v, taker, want, seen):
    """sync_log names the taker as uploader of every message of the dead lane; its status
    showed it covering (during the upload, or now)."""
    ups = ctx.cloud.uploads_by(ctx.store_id, v.id)
    stored = sum(u["stored"] for u in ups.values())
    if set(ups) != {taker} or stored < want:
        ctx.violations.append(f"takeover of {v.id}: sync_log by uploader {ups}, expected only "
                              f"{taker} storing {want}")
    _look_for_cover(ctx, v, taker, seen)
    if seen["covered_by"] != taker:
        ctx.violations.append(f"takeover of {v.id}: {taker}'s status.origins says covered_by "
                              f"{seen['covered_by']!r}, expected {taker!r}")
    gauge = seen["gauge"]
    if gauge != 1:
        ctx.violations.append(f"takeover of {v.id}: {taker}'s lanesync_origin_covered"
                              f"{{origin={v.id},by={taker}}} is {gauge}, expected 1")


def _double_uploads(ctx, v):
    try:
        ups = ctx.cloud.uploads_by(ctx.store_id, v.id)
    except Exception as e:  # noqa: BLE001
        ctx.violations.append(f"sync_log of {v.id} unreadable: {str(e)[:200]}")
        return
    dup = sum(u["duplicate"] for u in ups.values())
    ctx.notes.append(f"sync_log of {v.id}: " + ", ".join(
        f"{k or v.id}: {u['stored']} stored, {u['duplicate']} duplicate" for k, u in ups.items())
        + (f" ({dup} uploaded twice, applied once)" if dup else ""))
