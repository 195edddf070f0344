"""Convergence wait and the end-of-scenario checks (exactly once, order, replicas, states)."""
import random
import threading
import time
from collections import Counter, defaultdict

import copies
from lanes import Http, log
from measure import json_equal, parse_iso_ms, percentile

CRASH_SIGNS = ("terminate called", "Assertion", "AddressSanitizer", "runtime error:",
               "Segmentation fault", "core dumped", "stack smashing", "double free")


def _sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def expected(ctx):
    """Per lane: (last_seq from status, poison ids) plus the status documents."""
    sts = {}
    for lane in ctx.lanes:
        sts[lane.id] = lane.status()
    return sts


def missing(ctx):
    """What still keeps the store from having converged (empty list = converged)."""
    out = []
    sts = {}
    for lane in ctx.lanes:
        try:
            sts[lane.id] = lane.status(timeout=3)
        except Exception as e:  # noqa: BLE001
            out.append(f"{lane.id}: status unreachable ({e})")
    if out:
        return out, sts
    last = {lid: st["outbox"]["last_seq"] for lid, st in sts.items()}
    poison = ctx.poison_counts()
    cloud_counts = None
    conflicts = {}
    if ctx.cloud_enabled:
        try:
            # A lane's seqs in the cloud: its messages plus its later copies of an id another
            # lane got first; copies with other content were rejected (failed on the lane).
            sid = _sql_str(ctx.store_id)
            rows = ctx.cloud.psql(
                "select terminal_id, count(*), count(*) filter (where not coalesce(same, true)) "
                f"from (select terminal_id, null::boolean as same from pos_messages "
                f"where store_id = {sid} union all select terminal_id, same_content "
                f"from pos_message_copies where store_id = {sid}) s group by 1")
            cloud_counts = {}
            for line in rows.splitlines():
                t, n, x = line.split("|")
                cloud_counts[t] = int(n)
                conflicts[t] = int(x)
        except Exception as e:  # noqa: BLE001
            out.append(f"cloud: query failed ({str(e)[:200]})")
    for lid, st in sts.items():
        ob = st["outbox"]
        p = poison.get(lid, 0)
        if ob["pending"]:
            out.append(f"{lid}: {ob['pending']} pending")
        if ctx.cloud_enabled:
            if ob["peer_ack"]:
                out.append(f"{lid}: {ob['peer_ack']} at peer_ack (not yet in the cloud)")
            x = conflicts.get(lid, 0)
            if ob["failed"] != p + x:
                out.append(f"{lid}: {ob['failed']} failed, expected {p + x} (poison {p}, "
                           f"rejected copies {x})")
            want = last[lid] - p
            if ob["cloud_ack"] != want - x:
                out.append(f"{lid}: {ob['cloud_ack']} cloud_ack, expected {want - x}")
            if cloud_counts is not None and cloud_counts.get(lid, 0) != want:
                out.append(f"cloud: {cloud_counts.get(lid, 0)} seqs of {lid} (messages and "
                           f"copies), expected {want}")
        else:
            if ob["failed"]:
                out.append(f"{lid}: {ob['failed']} failed")
        for other, n in last.items():
            if other == lid:
                continue
            have = st.get("replicas", {}).get(other, 0)
            if have != n:
                out.append(f"{lid}: holds {have} replicas of {other}, expected {n}")
    return out, sts


def wait_converged(ctx, deadline_s):
    """Waits until nothing is missing; returns (seconds or None, last missing list)."""
    t0 = time.monotonic()
    end = t0 + deadline_s
    last_report = t0
    while True:
        miss, _ = missing(ctx)
        now = time.monotonic()
        if not miss:
            return now - t0, []
        if now >= end:
            return None, miss
        if now - last_report > 10:
            last_report = now
            log(f"  waiting for convergence ({now - t0:.0f}s): {miss[0]}"
                + (f" (+{len(miss) - 1} more)" if len(miss) > 1 else ""))
        time.sleep(0.25)


def _fetch_messages(lane, ids, results, errors):
    h = Http(lane.api_port, timeout=10)
    try:
        for mid in ids:
            for attempt in range(3):
                try:
                    st, body = h.request("GET", f"/v1/messages/{mid}")
                    results[mid] = (st, body)
                    break
                except Exception as e:  # noqa: BLE001
                    if attempt == 2:
                        errors.append(f"GET /v1/messages/{mid} on {lane.id}: {e!r}")
    finally:
        h.close()


def fetch_all(pairs):
    """pairs: [(lane, [ids])] -> {(lane id, msg id): (status, body)}; one thread per lane."""
    out = {}
    errors = []
    threads = []
    per = []
    for lane, ids in pairs:
        res = {}
        per.append((lane, res))
        t = threading.Thread(target=_fetch_messages, args=(lane, ids, res, errors), daemon=True)
        threads.append(t)
        t.start()
    for t in threads:
        t.join()
    for lane, res in per:
        for mid, v in res.items():
            out[(lane.id, mid)] = v
    return out, errors


def account_losses(ctx):
    """Loss accounting for lanes whose outbox was destroyed or replaced (disk-loss,
    backup-restore), after convergence. A message such a lane accepted before its disk event
    and no longer holds is lost unless the cloud has it. Lost while only `pending` (it never
    reached a peer): an expected loss, counted apart and removed from the ledger so the other
    checks hold the lane to what survived. Lost after the AckWatcher saw it at `peer_ack`: a
    violation (guarantee 2: a peer_ack'd message survives the loss of its lane)."""
    ledger = ctx.ledger
    lanes_by_id = {lane.id: lane for lane in ctx.lanes}
    cand = {}
    for lid, epoch in ledger.epochs.items():
        if epoch and lid in lanes_by_id:
            cand[lid] = [m for m in ledger.by_lane.get(lid, []) if m.epoch < epoch]
    if not cand:
        return
    got, errs = fetch_all([(lanes_by_id[lid], [m.id for m in ms]) for lid, ms in cand.items()])
    ctx.violations.extend(errs[:10])
    gone = [m for lid, ms in cand.items() for m in ms if got.get((lid, m.id), (None,))[0] == 404]
    in_cloud = set()
    if gone and ctx.cloud_enabled:
        ids = ", ".join(_sql_str(m.id) for m in gone)
        in_cloud = {r[0] for r in ctx.cloud.sql(
            f"select message_id::text from pos_messages where store_id = {_sql_str(ctx.store_id)}"
            f" and message_id::text in ({ids})")}
    after_ack = []
    kept_in_cloud = 0
    with ledger.lock:
        for m in gone:
            if m.id in in_cloud:
                kept_in_cloud += 1
                continue
            if m.peer_ack_seen:
                after_ack.append(m)
            del ledger.msgs[m.id]
            ledger.by_lane[m.lane].remove(m)
            ledger.lost.append(m)
    if after_ack:
        ctx.violations.append(
            f"lost after peer_ack: {len(after_ack)} messages were seen at peer_ack on their lane "
            f"and are on no lane and not in the cloud after its disk was lost or replaced, e.g. "
            + ", ".join(f"{m.lane}/seq {m.seq} ({m.id})" for m in after_ack[:5]))
    if kept_in_cloud:
        ctx.notes.append(f"{kept_in_cloud} messages of a lost disk are not back on their lane "
                         "but in the cloud")


def accounting(ctx):
    """The loss accounting every scenario reports: accepted, seen at peer_ack, in the cloud
    exactly once, lost while only pending (expected), lost after peer_ack (violation)."""
    ledger = ctx.ledger
    lost = ledger.lost
    return {
        "accepted": ledger.count() + len(lost),
        "peer_ack_seen": ledger.seen_at_peer_ack(),
        "in_cloud_once": ctx.metrics.get("in_cloud_once"),
        # (a message lost and then stored again by a re-post of the POS counts as lost too)
        "lost_pending": sum(1 for m in lost if not m.peer_ack_seen) +
        sum(1 for seen in ledger.lost_reposted if not seen),
        "lost_after_peer_ack": sum(1 for m in lost if m.peer_ack_seen) +
        sum(1 for seen in ledger.lost_reposted if seen),
        "reposted_after_loss": len(ledger.lost_reposted),
    }


def check(ctx, sts):
    """Every end-of-scenario check; appends to ctx.violations, fills ctx.metrics."""
    V = ctx.violations
    ledger = ctx.ledger
    msgs = list(ledger.msgs.values())
    last = {lid: st["outbox"]["last_seq"] for lid, st in sts.items()}
    copies.resolve_suspects(ctx, fetch_all)
    copy_rows, winners = copies.fetch(ctx) if ctx.cloud_enabled else ([], {})
    states = copies.expected_states(ctx, winners)

    # ---- lane processes ------------------------------------------------------------------
    for lane in ctx.lanes:
        for (_, rc) in lane.unexpected_exits:
            # a signal the harness did not send (another program on the machine) shows here
            stops = lane.log_lines("agent.stopping", limit=3)
            V.append(f"lane {lane.id} exited on its own with code {rc}; its last stop requests: "
                     f"{stops}; log tail:\n" + lane.log_tail(15))
        crash = lane.log_lines(*CRASH_SIGNS, limit=5)
        if crash:
            V.append(f"lane {lane.id}: crash signature in its log: {crash}")

    # ---- accepted vs. outbox seqs ----------------------------------------------------------
    for lane in ctx.lanes:
        n = ledger.count(lane.id) + len(ledger.copies_on(lane.id))
        amb = ledger.ambiguous.get(lane.id, 0)
        if not (n <= last[lane.id] <= n + amb):
            V.append(f"{lane.id}: last_seq {last[lane.id]} but the harness got {n} accepts "
                     f"(+{amb} ambiguous attempts): messages lost or invented")
        seqs = sorted([m.seq for m in ledger.by_lane.get(lane.id, [])] +
                      [c.seq for c in ledger.copies_on(lane.id)])
        dup = [s for s, c in Counter(seqs).items() if c > 1]
        if dup:
            V.append(f"{lane.id}: seq handed out twice to different ids: {dup[:10]}")
        if seqs and seqs[-1] > last[lane.id]:
            V.append(f"{lane.id}: accepted seq {seqs[-1]} above last_seq {last[lane.id]}")

    # ---- every own message on its origin: state, content, timestamps ------------------------
    by_lane = defaultdict(list)
    for m in msgs:
        by_lane[m.lane].append(m.id)
    lanes_by_id = {lane.id: lane for lane in ctx.lanes}
    got, errs = fetch_all([(lanes_by_id[lid], ids) for lid, ids in by_lane.items()])
    V.extend(errs[:20])
    # the other own copies of an id, on their lanes: GET answers the own copy
    cgot, errs = fetch_all([(lanes_by_id[lane.id], [c.id for c in ledger.copies_on(lane.id)])
                            for lane in ctx.lanes])
    V.extend(errs[:20])
    for (lid, mid), (st, body) in cgot.items():
        c = next(c for c in ledger.copies[mid] if c.lane == lid)
        want = states.get((lid, mid))
        if st != 200 or body.get("origin") != lid or body.get("seq") != c.seq:
            V.append(f"{lid}: its own copy of {mid} (seq {c.seq}) answered {st} "
                     f"{body.get('origin') if isinstance(body, dict) else ''}")
        elif body.get("state") != want:
            V.append(f"{lid}: its copy of {mid} is {body.get('state')}, expected {want}")
    peer_lat, cloud_lat = [], []
    bad_state = Counter()
    examples = defaultdict(list)
    for m in msgs:
        r = got.get((m.lane, m.id))
        if r is None:
            continue
        st, body = r
        if st != 200:
            key = f"{m.lane}: GET /v1/messages/{{id}} answered {st}: accepted messages gone"
            bad_state[key] += 1
            if len(examples[key]) < 3:
                examples[key].append(f"seq {m.seq} id {m.id}")
            continue
        want = ("failed" if m.poison else "cloud_ack") if ctx.cloud_enabled else "peer_ack"
        want = states.get((m.lane, m.id), want)
        if body.get("state") != want:
            key = f"{m.lane}: {body.get('state')} instead of {want}"
            bad_state[key] += 1
            if len(examples[key]) < 3:
                examples[key].append(f"seq {m.seq} id {m.id}")
        if body.get("seq") != m.seq or body.get("origin") != m.lane:
            V.append(f"{m.lane}: message {m.id} has origin/seq {body.get('origin')}/"
                     f"{body.get('seq')}, the 201 said {m.lane}/{m.seq}")
        if not json_equal(body.get("data"), m.data):
            V.append(f"{m.lane}: message {m.id} data differs from what was published")
        if want == "failed" and ctx.cloud_enabled and not body.get("last_error"):
            V.append(f"{m.lane}: failed message {m.id} has no last_error")
        c = parse_iso_ms(body.get("created_at"))
        pa = parse_iso_ms(body.get("peer_acked_at"))
        ca = parse_iso_ms(body.get("cloud_acked_at"))
        restored = m.epoch < ledger.epochs.get(m.lane, 0)
        if ca is not None and (pa is None or pa > ca) and not restored:
            # (a message restored from the peers after a disk loss may learn cloud_ack from
            # their news before a peer acks it again: its first peer_acked_at was on the disk)
            key = f"{m.lane}: cloud_acked_at without an earlier peer_acked_at"
            bad_state[key] += 1
            if len(examples[key]) < 3:
                examples[key].append(f"seq {m.seq} id {m.id}")
        if c is not None and pa is not None:
            peer_lat.append(pa - c)
        if c is not None and ca is not None:
            cloud_lat.append(ca - c)
    for key, n in bad_state.items():
        V.append(f"{key}: {n} messages (e.g. {', '.join(examples[key])})")

    # failed set == poison set
    if ctx.cloud_enabled:
        for lane in ctx.lanes:
            try:
                st, body = lane.client(10).request("GET", "/v1/messages?state=failed&limit=10000")
                failed_ids = {x["id"] for x in body.get("messages", [])}
            except Exception as e:  # noqa: BLE001
                V.append(f"{lane.id}: GET /v1/messages?state=failed: {e!r}")
                continue
            poison_ids = {m.id for m in ledger.by_lane.get(lane.id, []) if m.poison}
            poison_ids |= {mid for (lid, mid), s in states.items()
                           if lid == lane.id and s == "failed"}
            if failed_ids != poison_ids:
                extra = failed_ids - poison_ids
                lost = poison_ids - failed_ids
                V.append(f"{lane.id}: failed messages differ from the injected poison: "
                         f"{len(extra)} failed that are not poison, {len(lost)} poison not failed"
                         + (f"; e.g. {sorted(extra)[:3]}" if extra else "")
                         + (_failed_reasons(body, extra)))

    # ---- replicas: a seeded sample of every other lane's messages on each lane -----------
    rng = random.Random(f"{ctx.seed}:{ctx.name}:replicas")
    pairs = []
    sample = {}
    for lane in ctx.lanes:
        ids = []
        for other in ctx.lanes:
            if other is lane:
                continue
            # (an id with copies answers the asking lane's own copy where it has one)
            pool = [m for m in ledger.by_lane.get(other.id, []) if m.id not in ledger.copies]
            pick = pool if len(pool) <= ctx.replica_sample else rng.sample(pool, ctx.replica_sample)
            ids.extend(m.id for m in pick)
        sample[lane.id] = ids
        pairs.append((lane, ids))
    got, errs = fetch_all(pairs)
    V.extend(errs[:20])
    missing_rep = Counter()
    for lane in ctx.lanes:
        for mid in sample[lane.id]:
            m = ledger.msgs[mid]
            st, body = got.get((lane.id, mid), (None, None))
            if st != 200:
                missing_rep[(lane.id, m.lane)] += 1
                continue
            if body.get("own") is not False and "own" in body:
                V.append(f"{lane.id}: replica {mid} of {m.lane} reported as own")
            if body.get("origin") != m.lane or body.get("seq") != m.seq or \
                    not json_equal(body.get("data"), m.data):
                V.append(f"{lane.id}: replica {mid} of {m.lane} differs from the original")
    for (lid, origin), n in missing_rep.items():
        V.append(f"{lid}: {n} sampled messages of {origin} have no replica (GET -> not 200)")

    # ---- the cloud -----------------------------------------------------------------------------
    if ctx.cloud_enabled:
        check_cloud(ctx, last, copy_rows)
        copies.check_cloud(ctx, copy_rows, winners)

    ctx.metrics.update(
        peer_p50=percentile(peer_lat, 50), peer_p99=percentile(peer_lat, 99),
        cloud_p50=percentile(cloud_lat, 50), cloud_p99=percentile(cloud_lat, 99))


def _failed_reasons(body, ids):
    reasons = [x.get("last_error") for x in body.get("messages", []) if x["id"] in ids][:3]
    return f"; reasons: {reasons}" if reasons else ""


def check_held_by_peers(ctx, lane, ids, down=()):
    """Guarantee 2: a peer_ack message of `lane` is stored on at least one other lane.
    `ids` were peer_ack on `lane`; lanes in `down` are not asked. Returns the number checked."""
    others = [l for l in ctx.lanes if l is not lane and l not in down and l.running()]
    if not ids or not others:
        return 0
    got, errs = fetch_all([(o, ids) for o in others])
    ctx.violations.extend(errs[:5])
    need = min(ctx.opts.quorum, len(others))
    orphans = [mid for mid in ids
               if sum(got.get((o.id, mid), (None,))[0] == 200 for o in others) < need]
    if orphans:
        ctx.violations.append(
            f"{lane.id}: {len(orphans)} of {len(ids)} peer_ack messages are on fewer than "
            f"{need} other running lanes ({', '.join(o.id for o in others)}), e.g. "
            f"{orphans[:3]}: peer_ack without PEER_ACK_QUORUM replicas")
    return len(ids)


def own_ids_in_state(lane, state, limit=10000):
    st, body = lane.client(10).request("GET", f"/v1/messages?state={state}&limit={limit}")
    if st != 200:
        raise RuntimeError(f"GET /v1/messages?state={state} on {lane.id} answered {st}")
    return [m["id"] for m in body.get("messages", [])]


def check_cloud(ctx, last, copy_rows):
    V = ctx.violations
    ledger = ctx.ledger
    sid = _sql_str(ctx.store_id)
    try:
        rows = ctx.cloud.psql_json(
            "select coalesce(json_agg(json_build_object('id', message_id, 't', terminal_id, "
            "'seq', seq, 'topic', topic, 'priority', priority, 'data', data, "
            "'peer_acked', peer_acked_at is not null)), '[]') "
            f"from pos_messages where store_id = {sid}")
    except Exception as e:  # noqa: BLE001
        V.append(f"cloud: cannot read pos_messages: {e}")
        return
    counts = Counter(r["id"] for r in rows)
    twice = [i for i, c in counts.items() if c > 1]
    # duplicates in the cloud (the soak's table): extra rows of one id, a seq both stored and a
    # copy, events applied twice in the domain tables (added below)
    ctx.metrics["cloud_duplicates"] = sum(c - 1 for c in counts.values() if c > 1)
    if twice:
        V.append(f"cloud: {len(twice)} ids stored more than once, e.g. {twice[:3]}")
    by_id = {r["id"]: r for r in rows}
    lost, wrong, poison_in = [], [], []
    for m in ledger.msgs.values():
        r = by_id.get(m.id)
        if m.id in ledger.copies and not m.poison:
            continue  # the winner among its copies: copies.check_cloud
        if m.poison:
            if r is not None:
                poison_in.append(m.id)
            continue
        if r is None:
            lost.append(f"{m.lane}/seq {m.seq} ({m.id})")
            continue
        prio = m.priority or "normal"
        if r["t"] != m.lane or r["seq"] != m.seq or r["topic"] != m.topic or r["priority"] != prio:
            wrong.append(f"{m.id}: cloud has {r['t']}/{r['seq']}/{r['topic']}/{r['priority']}, "
                         f"published {m.lane}/{m.seq}/{m.topic}/{prio}")
        elif not json_equal(r["data"], m.data):
            wrong.append(f"{m.id}: data differs")
    ctx.metrics["in_cloud_once"] = sum(1 for m in ledger.msgs.values()
                                       if not m.poison and counts.get(m.id) == 1)
    if lost:
        V.append(f"cloud: {len(lost)} accepted messages missing from pos_messages, e.g. {lost[:5]}")
    if wrong:
        V.append(f"cloud: {len(wrong)} rows differ from what was published, e.g. {wrong[:3]}")
    # Covered uploads (a lane uploading a dead lane's replicas) carry the time the covering
    # lane stored the copy: with peers configured every row has a peerAckedAt.
    no_peer_ack = [r["id"] for r in rows if not r["peer_acked"]]
    if no_peer_ack:
        V.append(f"cloud: {len(no_peer_ack)} rows without peerAckedAt (with peers configured "
                 f"only peer_ack messages may be uploaded), e.g. {no_peer_ack[:3]}")
    if poison_in:
        V.append(f"cloud: {len(poison_in)} poison messages were stored, e.g. {poison_in[:3]}")
    unknown = Counter(r["t"] for r in rows if r["id"] not in ledger.msgs)
    for t, n in unknown.items():
        allow = ledger.ambiguous.get(t, 0)
        if n > allow:
            V.append(f"cloud: {n} rows of {t} the harness never got a 201 for "
                     f"(only {allow} ambiguous attempts could explain them)")
        else:
            ctx.notes.append(f"{n} cloud rows of {t} come from publishes whose answer was lost "
                             f"(id-less, {allow} ambiguous attempts)")
    # seq contiguous from 1 (rejected poison seqs are the only allowed holes)
    seqs = defaultdict(set)
    for r in rows + copy_rows:
        seqs[r["t"]].add(r["seq"])
    both = {(r["t"], r["seq"]) for r in rows} & {(r["t"], r["seq"]) for r in copy_rows}
    ctx.metrics["cloud_duplicates"] += len(both)
    if both:
        V.append(f"cloud: {len(both)} seqs both in pos_messages and pos_message_copies, "
                 f"e.g. {sorted(both)[:3]}")
    for lane in ctx.lanes:
        have = seqs.get(lane.id, set())
        pseq = {m.seq for m in ledger.by_lane.get(lane.id, []) if m.poison}
        want = set(range(1, last[lane.id] + 1))
        holes = sorted(want - have - pseq)
        extra = sorted(have - want)
        if holes:
            V.append(f"cloud: seq of {lane.id} not contiguous: {len(holes)} missing, "
                     f"first {holes[:10]}")
        if extra:
            V.append(f"cloud: seq of {lane.id} beyond its last_seq {last[lane.id]}: {extra[:10]}")
    for t in seqs:
        if t not in {lane.id for lane in ctx.lanes}:
            V.append(f"cloud: rows of terminal {t}, which is not a lane of this store")

    # ---- domain tables: applied exactly once -----------------------------------------------------
    try:
        dom = ctx.cloud.psql_json(
            "select json_build_object("
            f"'sales', (select count(*) from sales where store_id = {sid}),"
            f"'moves', (select count(*) from inventory_movements where store_id = {sid}),"
            "'stock', (select coalesce(json_object_agg(sku, quantity), '{}') from stock_levels "
            f"where store_id = {sid}),"
            "'customers', (select coalesce(json_object_agg(customer_id, version), '{}') "
            f"from customers where store_id = {sid}))")
    except Exception as e:  # noqa: BLE001
        V.append(f"cloud: cannot read the domain tables: {e}")
        return
    tx = sum(1 for r in rows if r["topic"] == "transaction")
    inv = [r for r in rows if r["topic"] == "inventory"]
    ctx.metrics["cloud_duplicates"] += max(0, dom["sales"] - tx) + max(0, dom["moves"] - len(inv))
    if dom["sales"] != tx:
        V.append(f"cloud: {dom['sales']} sales rows for {tx} transaction messages")
    if dom["moves"] != len(inv):
        V.append(f"cloud: {dom['moves']} inventory_movements for {len(inv)} inventory messages")
    stock = defaultdict(int)
    for r in inv:
        stock[r["data"]["sku"]] += r["data"]["delta"]
    bad = {k: (dom["stock"].get(k), v) for k, v in stock.items()
           if int(float(dom["stock"].get(k, 0))) != v}
    if bad:
        V.append(f"cloud: stock_levels differ from the sum of deltas (got, want): "
                 f"{dict(list(bad.items())[:5])}")
    cust = defaultdict(int)
    for r in rows:
        if r["topic"] == "customer":
            cust[r["data"]["customer_id"]] = max(cust[r["data"]["customer_id"]],
                                                 r["data"]["version"])
    badc = {k: (dom["customers"].get(k), v) for k, v in cust.items()
            if dom["customers"].get(k) != v}
    if badc:
        V.append(f"cloud: customers do not hold the newest version (got, want): "
                 f"{dict(list(badc.items())[:5])}")
