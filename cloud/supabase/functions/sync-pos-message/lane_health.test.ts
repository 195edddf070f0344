// Integration tests of head office's view of the lanes: the `lane` object of an upload and the
// heartbeat (messages [] with lane), recorded in lane_status in the batch's transaction; the
// views lane_health, sync_daily and sync_daily_uploads; scripts/store-report.sh. Run by
// tests/cloud/run-deno-tests.sh against the served function and PostgreSQL.

import assert from "node:assert/strict";
import { message, newStore, post, sync, withDb } from "./testing.ts";

/** A lane object of the contract, for `storeId` (lane L1 unless overridden). */
function lane(storeId: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    storeId,
    terminalId: "L1",
    agentVersion: "0.1.0",
    at: 1764633600000,
    pending: 3,
    peerAck: 10,
    cloudAck: 1000,
    failed: 0,
    oldestPendingAgeMs: 1234,
    oldestPeerAckAgeMs: 5678,
    lastSeq: 1013,
    peersUp: 2,
    peersConfigured: 2,
    retryDepth: 0,
    ...over,
  };
}

/** POSTs messages with a lane object; expects 200 and returns the results. */
async function upload(messages: unknown[], l: Record<string, unknown>) {
  const r = await post({ messages, lane: l });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.results as Array<{ status: string; error?: string }>;
}

/** The lane_status rows of a store, by terminal, numbers as numbers. */
async function statusRows(store: string): Promise<Array<Record<string, unknown>>> {
  const rows = await withDb((sql) =>
    sql`select *, received_at = first_seen_at as first_request,
      extract(epoch from (last_request_at - received_at))::float8 as request_after_summary_s
    from lane_status where store_id = ${store} order by terminal_id`
  );
  return rows.map((r) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r)) out[k] = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
    return out;
  });
}

/** What the store holds besides lane_status: [pos_messages, sync_log rows]. */
async function stored(store: string): Promise<[number, number]> {
  return await withDb(async (sql) => {
    const [{ m }] = await sql`select count(*)::int as m from pos_messages where store_id = ${store}`;
    const [{ l }] = await sql`select count(*)::int as l from sync_log where store_id = ${store}`;
    return [m, l];
  });
}

Deno.test("a batch with lane: the messages as always, and the lane's row with every field", async () => {
  const store = newStore();
  const results = await upload([message(store, 1), message(store, 2)], lane(store));
  assert.deepEqual(results.map((r) => r.status), ["stored", "stored"]);
  assert.deepEqual(await stored(store), [2, 1]);
  const [row] = await statusRows(store);
  assert.equal(typeof row.received_at, "object");
  const { received_at: _r, last_request_at: _l, first_seen_at: _f, ...rest } = row;
  assert.deepEqual(rest, {
    store_id: store,
    terminal_id: "L1",
    agent_version: "0.1.0",
    lane_at_ms: 1764633600000,
    pending: 3,
    peer_ack: 10,
    cloud_ack: 1000,
    failed: 0,
    oldest_pending_age_ms: 1234,
    oldest_peer_ack_age_ms: 5678,
    last_seq: 1013,
    peers_up: 2,
    peers_configured: 2,
    retry_depth: 0,
    requests: 1,
    heartbeats: 0,
    first_request: true,
    request_after_summary_s: 0,
  });
  // The same transaction: received_at is the batch's commit time, as pos_messages.received_at.
  const [same] = await withDb((sql) =>
    sql`select bool_and(m.received_at = s.received_at) as same from pos_messages m
      join lane_status s using (store_id) where m.store_id = ${store}`
  );
  assert.equal(same.same, true);
});

Deno.test("a heartbeat (messages [] with lane): 200 {results: []}, the row recorded, nothing else", async () => {
  const store = newStore();
  const r = await post({ messages: [], lane: lane(store, { pending: 0, oldestPendingAgeMs: null }) });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { results: [] });
  assert.deepEqual(await stored(store), [0, 0]);
  const rows = await statusRows(store);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].requests, 1);
  assert.equal(rows[0].heartbeats, 1);
  assert.equal(rows[0].pending, 0);
  assert.equal(rows[0].oldest_pending_age_ms, null);
});

Deno.test("messages [] without lane: the same answer as ever, nothing recorded", async () => {
  const before = await withDb(async (sql) => (await sql`select count(*)::int as n from lane_status`)[0].n);
  const r = await post({ messages: [] });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { results: [] });
  assert.deepEqual(await sync([]), []);
  const after = await withDb(async (sql) => (await sql`select count(*)::int as n from lane_status`)[0].n);
  assert.equal(after, before);
  // An upload without lane never touches lane_status either.
  const store = newStore();
  await sync([message(store, 1)]);
  assert.deepEqual(await statusRows(store), []);
});

Deno.test("an older summary (requests reordered) does not replace the newer one, but is counted", async () => {
  const store = newStore();
  const t = 1764633600000;
  await upload([], lane(store, { at: t + 10_000, pending: 1, lastSeq: 20, agentVersion: "0.2.0" }));
  const [first] = await statusRows(store);
  await new Promise((r) => setTimeout(r, 20));
  // Taken earlier by the lane, arrives later: counted, summary kept.
  await upload([message(store, 5)], lane(store, { at: t, pending: 9, lastSeq: 5, agentVersion: "0.1.0" }));
  let [row] = await statusRows(store);
  assert.equal(row.lane_at_ms, t + 10_000);
  assert.equal(row.pending, 1);
  assert.equal(row.last_seq, 20);
  assert.equal(row.agent_version, "0.2.0");
  assert.deepEqual(row.received_at, first.received_at, "received_at stays the stored summary's");
  assert.ok((row.last_request_at as Date) > (first.last_request_at as Date), "last_request_at moves on");
  assert.equal(row.requests, 2);
  assert.equal(row.heartbeats, 1);
  assert.deepEqual(await stored(store), [1, 1], "the batch itself was applied");
  // The same `at` again, then a later one: both replace it.
  await upload([], lane(store, { at: t + 10_000, pending: 2 }));
  [row] = await statusRows(store);
  assert.equal(row.pending, 2);
  assert.ok((row.received_at as Date) > (first.received_at as Date));
  await upload(
    [],
    lane(store, { at: t + 20_000, pending: 0, oldestPendingAgeMs: null, agentVersion: "0.3.0" }),
  );
  [row] = await statusRows(store);
  assert.deepEqual([row.lane_at_ms, row.pending, row.agent_version, row.requests, row.heartbeats], [
    t + 20_000,
    0,
    "0.3.0",
    4,
    3,
  ]);
  assert.deepEqual(row.first_seen_at, first.first_seen_at);
});

Deno.test("requests and heartbeats counted per lane; a covered upload counts for the uploader", async () => {
  const store = newStore();
  const at = (n: number) => 1764633600000 + n;
  await upload([], lane(store, { at: at(1) }));
  await upload([message(store, 1)], lane(store, { at: at(2) }));
  await upload([], lane(store, { at: at(3) }));
  // L2 uploads its own message and L3's replica it covers, with its own summary.
  await upload(
    [message(store, 1, { terminalId: "L2" }), message(store, 7, { terminalId: "L3", uploadedBy: "L2" })],
    lane(store, { terminalId: "L2", at: at(4) }),
  );
  // A batch whose messages are all rejected is not a heartbeat; its lane is still recorded.
  const rejected = await upload([message(store, 0)], lane(store, { at: at(5) }));
  assert.equal(rejected[0].status, "rejected");
  const rows = await statusRows(store);
  assert.deepEqual(rows.map((r) => [r.terminal_id, r.requests, r.heartbeats, r.lane_at_ms]), [
    ["L1", 4, 2, at(5)],
    ["L2", 1, 0, at(4)],
  ]);
});

Deno.test("concurrent requests of new lanes: every request counted once, the latest summary kept", async () => {
  const store = newStore();
  const t = 1764633600000;
  const requests = [];
  for (let i = 0; i < 24; i++) {
    const terminalId = `L${i % 2}`;
    const messages = i % 3 === 0 ? [] : [message(store, i + 1, { terminalId })];
    requests.push(upload(messages, lane(store, { terminalId, at: t + i, lastSeq: i })));
  }
  await Promise.all(requests);
  const rows = await statusRows(store);
  assert.deepEqual(rows.map((r) => [r.terminal_id, r.requests, r.heartbeats, r.lane_at_ms, r.last_seq]), [
    ["L0", 12, 4, t + 22, 22],
    ["L1", 12, 4, t + 23, 23],
  ]);
  assert.deepEqual(await stored(store), [16, 16]);
});

Deno.test("a malformed lane: 400 naming the field, nothing of the request stored", async () => {
  const cases: Array<[(store: string) => unknown, RegExp]> = [
    [(s) => lane(s, { pending: -1 }), /^lane\.pending must be an integer >= 0$/],
    [(s) => lane(s, { peerAck: "10" }), /^lane\.peerAck must be an integer >= 0$/],
    [(s) => lane(s, { cloudAck: 1.5 }), /^lane\.cloudAck must be an integer >= 0$/],
    [(s) => lane(s, { failed: null }), /^lane\.failed must be an integer >= 0$/],
    [(s) => lane(s, { at: -5 }), /^lane\.at must be an integer >= 0$/],
    [(s) => lane(s, { lastSeq: 2 ** 53 }), /^lane\.lastSeq must be an integer >= 0$/],
    [(s) => lane(s, { peersUp: true }), /^lane\.peersUp must be an integer >= 0$/],
    [(s) => lane(s, { peersConfigured: [] }), /^lane\.peersConfigured must be an integer >= 0$/],
    [(s) => lane(s, { retryDepth: -1 }), /^lane\.retryDepth must be an integer >= 0$/],
    [
      (s) => lane(s, { oldestPendingAgeMs: -1 }),
      /^lane\.oldestPendingAgeMs must be an integer >= 0, or null$/,
    ],
    [
      (s) => lane(s, { oldestPeerAckAgeMs: "x" }),
      /^lane\.oldestPeerAckAgeMs must be an integer >= 0, or null$/,
    ],
    [(s) => lane(s, { agentVersion: "" }), /^lane\.agentVersion must be a string of 1\.\.64/],
    [(s) => lane(s, { agentVersion: "v".repeat(65) }), /^lane\.agentVersion must be a string of 1\.\.64/],
    [(s) => lane(s, { terminalId: "L/1" }), /^lane\.terminalId must match/],
    [(s) => lane(s, { storeId: "no store" }), /^lane\.storeId must match/],
    [(s) => lane(s, { colour: "red" }), /^lane has unknown field\(s\) "colour"$/],
    [(s) => {
      const l = lane(s);
      delete l.retryDepth;
      return l;
    }, /^lane\.retryDepth is missing$/],
    [() => "L1", /^lane must be a JSON object, or absent$/],
    [() => [], /^lane must be a JSON object, or absent$/],
  ];
  for (const [make, error] of cases) {
    for (const messages of [(s: string) => [message(s, 1)], () => []]) {
      const store = newStore();
      const r = await post({ messages: messages(store), lane: make(store) });
      assert.equal(r.status, 400, `${error}: ${JSON.stringify(r.body)}`);
      assert.match(String(r.body.error), error);
      assert.deepEqual(await stored(store), [0, 0], `${error}: nothing stored`);
      assert.deepEqual(await statusRows(store), [], `${error}: no lane row`);
    }
  }
  // A lane of another store than its messages (a heartbeat has no message to differ from).
  const store = newStore();
  const r = await post({ messages: [message(store, 1), message(store, 2)], lane: lane(`${store}-b`) });
  assert.equal(r.status, 400);
  assert.equal(r.body.error, "lane.storeId must equal the storeId of every message (messages[0] differs)");
  assert.deepEqual(await stored(store), [0, 0]);
  assert.deepEqual(await statusRows(`${store}-b`), []);
});

/** The lane_health rows of a store: terminal -> row. */
async function health(store: string, view = "lane_health"): Promise<Record<string, Record<string, unknown>>> {
  const rows = await withDb((sql) =>
    sql`select terminal_id, state, backlog::int, retry_depth::int, failed::int,
      extract(epoch from oldest_pending_age)::float8 as pending_age_s,
      extract(epoch from oldest_peer_ack_age)::float8 as peer_ack_age_s,
      extract(epoch from (received_at - behind_since))::float8 as behind_for_s,
      extract(epoch from silent_for)::float8 as silent_s,
      peers_up::int, peers_configured::int, agent_version, requests::int, heartbeats::int,
      extract(epoch from lane_at)::float8 * 1000 as lane_at_ms
    from ${sql(view)} where store_id = ${store}`
  );
  return Object.fromEntries(rows.map((r) => [r.terminal_id, r]));
}

Deno.test("lane_health: silent, behind, failing, ok; backlog, ages, behind_since", async () => {
  const store = newStore();
  const quiet = { pending: 0, peerAck: 0, oldestPendingAgeMs: null, oldestPeerAckAgeMs: null };
  await upload([], lane(store, { terminalId: "OK", ...quiet }));
  // A small backlog, younger than 5 minutes: still ok.
  await upload([], lane(store, { terminalId: "FRESH", pending: 2, oldestPendingAgeMs: 60_000 }));
  // Its oldest message (at peer_ack) has waited 6 minutes.
  await upload(
    [],
    lane(store, {
      terminalId: "BEHIND",
      pending: 1,
      peerAck: 4,
      oldestPendingAgeMs: 1000,
      oldestPeerAckAgeMs: 360_000,
    }),
  );
  await upload([], lane(store, { terminalId: "RETRY", ...quiet, retryDepth: 3 }));
  await upload([], lane(store, { terminalId: "FAILED", ...quiet, failed: 1 }));
  // Behind and failing: behind is shown.
  await upload([], lane(store, { terminalId: "BOTH", retryDepth: 2, oldestPendingAgeMs: 600_000 }));
  await upload([], lane(store, { terminalId: "SILENT", ...quiet }));
  // Not heard of for 20 minutes (and its last summary behind: silent is shown).
  await upload([], lane(store, { terminalId: "GONE", oldestPendingAgeMs: 600_000 }));
  await withDb((sql) =>
    sql`update lane_status set received_at = received_at - interval '20 minutes',
      last_request_at = last_request_at - interval '20 minutes'
    where store_id = ${store} and terminal_id in ('SILENT', 'GONE')`
  );

  const h = await health(store);
  const states = Object.fromEntries(Object.entries(h).map(([t, r]) => [t, r.state]));
  assert.deepEqual(states, {
    OK: "ok",
    FRESH: "ok",
    BEHIND: "behind",
    RETRY: "failing",
    FAILED: "failing",
    BOTH: "behind",
    SILENT: "silent",
    GONE: "silent",
  });
  assert.equal(h.BEHIND.backlog, 5);
  assert.equal(h.BEHIND.pending_age_s, 1);
  assert.equal(h.BEHIND.peer_ack_age_s, 360);
  assert.equal(h.BEHIND.behind_for_s, 360, "behind_since: received_at minus the oldest age");
  assert.equal(h.OK.backlog, 0);
  assert.equal(h.OK.pending_age_s, null);
  assert.equal(h.OK.behind_for_s, null, "nothing waiting: no behind_since");
  assert.ok((h.OK.silent_s as number) < 60);
  assert.ok((h.SILENT.silent_s as number) >= 20 * 60);
  assert.equal(h.RETRY.retry_depth, 3);
  assert.deepEqual([h.OK.peers_up, h.OK.peers_configured, h.OK.agent_version], [2, 2, "0.1.0"]);
  assert.deepEqual([h.OK.requests, h.OK.heartbeats, h.OK.lane_at_ms], [1, 1, 1764633600000]);

  // Other thresholds through lane_health_with: silent after an hour, behind after 10 minutes.
  const rows = await withDb((sql) =>
    sql`select terminal_id, state from lane_health_with(interval '1 hour', interval '10 minutes')
    where store_id = ${store} order by terminal_id`
  );
  assert.deepEqual(Object.fromEntries(rows.map((r) => [r.terminal_id, r.state])), {
    BEHIND: "ok",
    BOTH: "failing",
    FAILED: "failing",
    FRESH: "ok",
    GONE: "ok",
    OK: "ok",
    RETRY: "failing",
    SILENT: "ok",
  });
});

Deno.test("sync_daily and sync_daily_uploads: per store and day, per uploader", async () => {
  const store = newStore();
  // L1: two stored, one rejected; a customer conflict (equal version from L2); L2 covers L3.
  await upload([
    message(store, 1, { topic: "customer", data: { customer_id: "C1", version: 2 } }),
    message(store, 2),
    message(store, 0),
  ], lane(store));
  await sync([
    message(store, 1, { terminalId: "L2", topic: "customer", data: { customer_id: "C1", version: 2 } }),
  ]);
  await upload(
    [message(store, 2, { terminalId: "L2" }), message(store, 4, { terminalId: "L3", uploadedBy: "L2" })],
    lane(store, { terminalId: "L2" }),
  );
  const m = message(store, 3);
  await sync([m]);
  await sync([m]); // duplicate
  await upload([], lane(store)); // a heartbeat: not an upload of messages

  const daily = await withDb((sql) =>
    sql`select day = current_date as today, requests::int, stored::int, duplicate::int, rejected::int,
      customer_conflicts::int, covered_stored::int from sync_daily where store_id = ${store}`
  );
  assert.deepEqual(daily.map((r) => ({ ...r })), [{
    today: true,
    requests: 5,
    stored: 6,
    duplicate: 1,
    rejected: 1,
    customer_conflicts: 1,
    covered_stored: 1,
  }]);
  const uploads = await withDb((sql) =>
    sql`select uploader, requests::int, own_messages::int, covered_messages::int, stored::int,
      duplicate::int, rejected::int from sync_daily_uploads where store_id = ${store} order by uploader`
  );
  assert.deepEqual(uploads.map((r) => ({ ...r })), [
    {
      uploader: "L1",
      requests: 3,
      own_messages: 5,
      covered_messages: 0,
      stored: 3,
      duplicate: 1,
      rejected: 1,
    },
    {
      uploader: "L2",
      requests: 2,
      own_messages: 2,
      covered_messages: 1,
      stored: 3,
      duplicate: 0,
      rejected: 0,
    },
  ]);
});

Deno.test("RLS: lane_status and the views show a signed-in user their own store only", async () => {
  const mine = newStore();
  const theirs = newStore();
  await upload([message(mine, 1)], lane(mine));
  await upload([message(theirs, 1)], lane(theirs));
  await withDb(async (sql) => {
    const [{ rls }] =
      await sql`select relrowsecurity as rls from pg_class where oid = 'public.lane_status'::regclass`;
    assert.equal(rls, true);
    const views = await sql`select c.relname, c.reloptions from pg_class c
      where c.oid in ('public.lane_health'::regclass, 'public.sync_daily'::regclass,
                      'public.sync_daily_uploads'::regclass) order by 1`;
    for (const v of views) assert.deepEqual(v.reloptions, ["security_invoker=true"], v.relname);

    const visible = (claims: unknown, relation: string, role = "authenticated") =>
      sql.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
        await tx.unsafe(`set local role ${role}`);
        const rows = await tx`select distinct store_id from ${tx(relation)}
          where store_id in (${mine}, ${theirs}) order by 1`;
        return rows.map((r) => r.store_id);
      });
    for (const relation of ["lane_status", "lane_health", "sync_daily", "sync_daily_uploads"]) {
      assert.deepEqual(await visible({ role: "authenticated", store_id: mine }, relation), [mine], relation);
      assert.deepEqual(
        await visible({ role: "authenticated", app_metadata: { store_id: theirs } }, relation),
        [theirs],
        relation,
      );
      assert.deepEqual(
        await visible({ role: "authenticated", store_id: newStore() }, relation),
        [],
        relation,
      );
      assert.deepEqual(
        await visible({ role: "authenticated" }, relation),
        [],
        `${relation}: no claim, no rows`,
      );
      await assert.rejects(visible({ role: "anon", store_id: mine }, relation, "anon"), /permission denied/);
    }
    // The writers are the owner's only.
    await assert.rejects(
      sql.begin(async (tx) => {
        await tx.unsafe("set local role authenticated");
        await tx`select lanesync.record_lane('{}'::jsonb)`;
      }),
      /permission denied/,
    );
  });
});

// scripts/store-report.sh against this cloud (run-deno-tests.sh allows running it).
const REPORT = new URL("../../../../scripts/store-report.sh", import.meta.url).pathname;
const canRun = (await Deno.permissions.query({ name: "run", command: REPORT })).state === "granted";

async function report(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(REPORT, {
    args,
    env: { SUPABASE_DB_URL: Deno.env.get("SUPABASE_DB_URL") ?? "", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test({
  name: "store-report.sh prints the lanes (needing a look first) and the days of a store",
  ignore: !canRun,
  fn: async () => {
    const store = newStore();
    const other = newStore();
    await upload([message(store, 1)], lane(store, { terminalId: "A-ok", pending: 0, peerAck: 0 }));
    await upload([], lane(store, { terminalId: "B-failing", pending: 0, peerAck: 0, retryDepth: 1 }));
    await upload([], lane(store, { terminalId: "C-behind", oldestPendingAgeMs: 3_600_000 }));
    await upload([], lane(store, { terminalId: "D-silent" }));
    await upload([], lane(other, { terminalId: "X1" }));
    await withDb((sql) =>
      sql`update lane_status set last_request_at = now() - interval '1 hour'
      where store_id = ${store} and terminal_id = 'D-silent'`
    );

    const r = await report(["--store", store]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    const lanes = lines.filter((l) => l.includes(store) && / \| (ok|behind|silent|failing) +\|/.test(l));
    assert.deepEqual(lanes.map((l) => l.split("|").slice(1, 3).map((c) => c.trim())), [
      ["C-behind", "behind"],
      ["D-silent", "silent"],
      ["B-failing", "failing"],
      ["A-ok", "ok"],
    ]);
    // Aligned: the columns of every row of the lane table start where the header's do.
    const header = lines.find((l) => l.includes(" state ") && l.includes(" lane "))!;
    const bars = (l: string) => [...l].flatMap((c, i) => (c === "|" ? [i] : []));
    assert.equal(bars(header).length, 15);
    for (const l of lanes) assert.deepEqual(bars(l), bars(header), l);
    assert.ok(!r.stdout.includes(other), "--store filters");
    assert.match(r.stdout, /Sync per day/);
    const day = lines.find((l) => l.includes(store) && l.includes(new Date().toISOString().slice(0, 10)));
    assert.ok(day, "today's sync_daily row");

    const all = await report([]);
    assert.equal(all.code, 0, all.stderr);
    assert.ok(all.stdout.includes(store) && all.stdout.includes(other));

    const unset = await report([], { SUPABASE_DB_URL: "" });
    assert.equal(unset.code, 2);
    assert.match(unset.stderr, /SUPABASE_DB_URL is not set/);
    const help = await report(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: scripts\/store-report\.sh/);
    assert.equal((await report(["--store"])).code, 2);
    assert.equal((await report(["--bogus"])).code, 2);
  },
});
