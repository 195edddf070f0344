"""One message id accepted as own by two lanes (a POS that retried on another lane with its
idempotency key; `--failover` and the `failover` scenario).

The ledger knows each accepted message once (the lane that gave the harness its 201) plus its
copies: other lanes that accepted the same id as their own (`ledger.copies`, filled by the
explicit retries of the `failover` scenario and, after convergence, by resolve_suspects()).
In the cloud the event takes effect once: the copy that arrived first is the row of
`pos_messages`; every other copy is a row of `pos_message_copies` at its own (terminal, seq),
`same_content` when its topic and data equal the stored message's (its lane ends `cloud_ack`)
and not otherwise (its lane ends `failed`, a conflict). Which copy arrives first is a race, so
the checks read the winner from the cloud.
"""
from measure import json_equal


def _sql_str(s):
    return "'" + s.replace("'", "''") + "'"


def resolve_suspects(ctx, fetch_all):
    """An unanswered attempt on lane X may have been stored there as X's own message: look."""
    ledger = ctx.ledger
    by_lane = {}
    for mid, lid in set(ledger.suspects):
        m = ledger.msgs.get(mid)
        if m is not None and lid != m.lane:
            by_lane.setdefault(lid, []).append(mid)
    lanes = {lane.id: lane for lane in ctx.lanes}
    got, errs = fetch_all([(lanes[lid], ids) for lid, ids in by_lane.items() if lid in lanes])
    ctx.violations.extend(errs[:5])
    found = 0
    for (lid, mid), (st, body) in got.items():
        if st == 200 and body.get("origin") == lid and body.get("own") is not False:
            ledger.add_copy(mid, lid, body["seq"], body.get("topic"), body.get("data"))
            found += 1
    if ledger.suspects:
        ctx.notes.append(f"failover: {len(set(ledger.suspects))} unanswered attempts on another "
                         f"lane, {found} of them stored there as that lane's own")


def instances(ledger, mid):
    """(lane, seq, topic, data) of every own copy of an id: the accepted one first."""
    m = ledger.msgs[mid]
    return [(m.lane, m.seq, m.topic, m.data)] + \
        [(c.lane, c.seq, c.topic, c.data) for c in ledger.copies.get(mid, [])]


def fetch(ctx):
    """(copy rows of the store, {id: pos_messages row} for the ids with copies)."""
    sid = _sql_str(ctx.store_id)
    rows = ctx.cloud.psql_json(
        "select coalesce(json_agg(json_build_object('id', message_id, 't', terminal_id, "
        "'seq', seq, 'same', same_content)), '[]') "
        f"from pos_message_copies where store_id = {sid}")
    ids = [i for i in ctx.ledger.copies if i in ctx.ledger.msgs]
    winners = {}
    if ids:
        in_list = ", ".join(_sql_str(i) for i in ids)
        for r in ctx.cloud.psql_json(
                "select coalesce(json_agg(json_build_object('id', message_id, 't', terminal_id, "
                "'seq', seq, 'topic', topic, 'data', data)), '[]') from pos_messages "
                f"where store_id = {sid} and message_id::text in ({in_list})"):
            winners[r["id"]] = r
    return rows, winners


def expected_states(ctx, winners):
    """{(lane, id): state} for every copy of an id with copies; the rest use the default."""
    out = {}
    for mid in ctx.ledger.copies:
        if mid not in ctx.ledger.msgs:
            continue
        w = winners.get(mid)
        for lane, _seq, topic, data in instances(ctx.ledger, mid):
            if not ctx.cloud_enabled:
                out[(lane, mid)] = "peer_ack"
            elif w is not None and topic == w["topic"] and json_equal(data, w["data"]):
                out[(lane, mid)] = "cloud_ack"
            else:
                out[(lane, mid)] = "failed"
    return out


def check_cloud(ctx, rows, winners):
    """The event once in pos_messages, every other copy in pos_message_copies."""
    V = ctx.violations
    ledger = ctx.ledger
    expect = {}
    for mid in ledger.copies:
        if mid not in ledger.msgs or ledger.msgs[mid].poison:
            continue
        inst = instances(ledger, mid)
        w = winners.get(mid)
        if w is None:
            V.append(f"cloud: id {mid}, accepted on {[i[0] for i in inst]}, is not in pos_messages")
            continue
        first = [i for i in inst if (i[0], i[1]) == (w["t"], w["seq"])]
        if not first:
            V.append(f"cloud: id {mid} is stored as {w['t']}/{w['seq']}, none of its copies "
                     f"{[(i[0], i[1]) for i in inst]}")
            continue
        if not json_equal(first[0][3], w["data"]):
            V.append(f"cloud: id {mid} stored with data other than its copy on {w['t']}")
        for lane, seq, topic, data in inst:
            if (lane, seq) != (w["t"], w["seq"]):
                expect[(lane, seq)] = (mid, topic == w["topic"] and json_equal(data, w["data"]))
    have = {(r["t"], r["seq"]): (r["id"], r["same"]) for r in rows}
    for slot, want in expect.items():
        got = have.get(slot)
        if got is None:
            V.append(f"cloud: copy {want[0]} of {slot[0]}/seq {slot[1]} not in pos_message_copies")
        elif got != want:
            V.append(f"cloud: copy at {slot[0]}/seq {slot[1]} is {got}, expected {want} "
                     "(id, same_content)")
    extra = [slot for slot in have if slot not in expect]
    if extra:
        V.append(f"cloud: {len(extra)} rows of pos_message_copies the harness cannot account "
                 f"for, e.g. {extra[:3]}")
    same = sum(1 for v in expect.values() if v[1])
    if expect:
        ctx.notes.append(f"one id on two lanes: {len(expect)} later copies in the cloud "
                         f"({same} duplicate, {len(expect) - same} conflict)")
