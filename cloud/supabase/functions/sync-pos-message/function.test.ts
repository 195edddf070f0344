// Integration tests: the function as served by the local cloud (real Deno server, real
// PostgreSQL with the migrations). Run by tests/cloud/run-deno-tests.sh.

import assert from "node:assert/strict";
import { cloud, message, newStore, post, sync, withDb } from "./testing.ts";

const statuses = (results: Array<{ status: string }>) => results.map((r) => r.status);

Deno.test("a new message is stored, the same one again is a duplicate", async () => {
  const store = newStore();
  const m = message(store, 1);
  const first = await sync([m]);
  assert.deepEqual(first, [{ messageId: m.messageId, status: "stored" }]);
  // Key order inside data does not matter: content is compared as jsonb.
  const again = await sync([{ ...m, data: { ...m.data }, peerAckedAt: null }]);
  assert.deepEqual(again, [{ messageId: m.messageId, status: "duplicate" }]);
  const rows = await withDb((sql) =>
    sql`select seq, topic, priority, data, created_at, peer_acked_at
    from pos_messages where message_id = ${m.messageId}`
  );
  assert.equal(rows.length, 1);
  assert.equal(Number(rows[0].seq), 1);
  assert.deepEqual(rows[0].data, m.data);
  assert.equal(rows[0].created_at.toISOString(), m.timestamp);
  assert.equal(rows[0].peer_acked_at.toISOString(), m.peerAckedAt);
});

Deno.test("the same message id with other content is rejected as a conflict", async () => {
  const store = newStore();
  const m = message(store, 1);
  await sync([m]);
  const [r] = await sync([{ ...m, data: { text: "changed" } }]);
  assert.equal(r.status, "rejected");
  assert.match(r.error!, /^conflict: .*data/);
  // Priority and timestamps are not content: the same message.
  const [r2] = await sync([{ ...m, priority: "low", timestamp: "2026-11-23T00:00:00Z" }]);
  assert.equal(r2.status, "duplicate");
  const rows = await withDb((sql) => sql`select data from pos_messages where store_id = ${store}`);
  assert.deepEqual(rows.map((r) => r.data), [m.data]);
});

/** Every (terminal, seq) the cloud accounts for: messages and later copies together. */
async function slots(store: string): Promise<string[]> {
  const rows = await withDb((sql) =>
    sql`select terminal_id || ':' || seq as slot, 'm' as kind from pos_messages where store_id = ${store}
    union all
    select terminal_id || ':' || seq, case when same_content then 'c' else 'x' end
    from pos_message_copies where store_id = ${store}
    order by 1`
  );
  return rows.map((r) => `${r.slot}${r.kind}`);
}

Deno.test("one id from two lanes takes effect once: the same content is a duplicate copy", async () => {
  const store = newStore();
  const m = message(store, 1, { topic: "transaction", data: { total: 10, transaction_id: "T-1" } });
  assert.deepEqual(statuses(await sync([m])), ["stored"]);
  // The POS retried on L2, which accepted it as its own at its seq 5 (other priority and time).
  const copy = { ...m, terminalId: "L2", seq: 5, priority: "high", timestamp: "2026-11-22T04:00:00Z" };
  const next = message(store, 6, { terminalId: "L2" });
  assert.deepEqual(await sync([copy, next]), [
    { messageId: m.messageId, status: "duplicate" },
    { messageId: next.messageId, status: "stored" },
  ]);
  // Redelivered, the copy gets the same answer and is recorded once; the first lane's
  // redelivery is still the stored message.
  assert.deepEqual(statuses(await sync([copy, m])), ["duplicate", "duplicate"]);
  assert.deepEqual(await slots(store), ["L1:1m", "L2:5c", "L2:6m"]);
  await withDb(async (sql) => {
    const [{ n }] = await sql`select count(*)::int as n from sales where store_id = ${store}`;
    assert.equal(n, 1, "applied once");
    const log = await sql`select terminal_id, stored, duplicate, rejected, min_seq, max_seq
      from sync_log where store_id = ${store} and terminal_id = 'L2' order by id limit 1`;
    assert.deepEqual(
      log.map((r) => [r.stored, r.duplicate, r.rejected, Number(r.min_seq), Number(r.max_seq)]),
      [[1, 1, 0, 5, 6]],
    );
  });
  // The copy's seq is taken: another id there is a seq conflict, on either table's side.
  const [taken] = await sync([message(store, 5, { terminalId: "L2" })]);
  assert.equal(taken.status, "rejected");
  assert.match(taken.error!, /^seq conflict: seq 5 of .*\/L2 is already used by message /);
  const [takenToo] = await sync([{ ...m, terminalId: "L2", seq: 6 }]);
  assert.equal(takenToo.status, "rejected");
  assert.match(takenToo.error!, /^seq conflict: seq 6 of /);
  assert.deepEqual(await slots(store), ["L1:1m", "L2:5c", "L2:6m"]);
});

Deno.test("one id from two lanes with other content: the later copy is a rejected conflict", async () => {
  const store = newStore();
  const m = message(store, 3);
  await sync([m]);
  const other = { ...m, terminalId: "L2", seq: 1, data: { text: "another sale" } };
  const [r] = await sync([other]);
  assert.equal(r.status, "rejected");
  assert.match(r.error!, /^conflict: message .* is already stored from L1 seq 3 with different data/);
  const [again] = await sync([other]);
  assert.deepEqual(again, r, "the same answer when redelivered");
  const [topic] = await sync([{ ...m, terminalId: "L3", seq: 1, topic: "pos.note" }]);
  assert.match(topic.error!, /different topic$/);
  // Another store never shares an event, whatever the content.
  const elsewhere = newStore();
  const [foreign] = await sync([{ ...m, storeId: elsewhere, seq: 1 }]);
  assert.equal(foreign.status, "rejected");
  assert.match(foreign.error!, /by another store/);
  assert.deepEqual(await slots(store), ["L1:3m", "L2:1x", "L3:1x"]);
  assert.deepEqual(await slots(elsewhere), ["L1:1x"]);
  const rows = await withDb((sql) => sql`select data from pos_messages where message_id = ${m.messageId}`);
  assert.deepEqual(rows.map((x) => x.data), [m.data]);
});

Deno.test("two lanes uploading the same ids concurrently: once each, every seq accounted", async () => {
  const store = newStore();
  const base = Array.from({ length: 30 }, (_, i) => message(store, i + 1, { data: { n: i } }));
  // L2 accepted the same 30 ids in the opposite order, at its own seqs.
  const l2 = [...base].reverse().map((m, i) => ({ ...m, terminalId: "L2", seq: i + 1 }));
  const [a, b] = await Promise.all([sync(base), sync(l2)]);
  b.reverse();
  for (let i = 0; i < base.length; i++) {
    assert.deepEqual([a[i].status, b[i].status].sort(), ["duplicate", "stored"], `message ${i + 1}`);
  }
  const all = await slots(store);
  assert.equal(all.length, 60);
  assert.equal(all.filter((x) => x.endsWith("m")).length, 30);
  assert.equal(all.filter((x) => x.endsWith("x")).length, 0);
  for (const lane of ["L1", "L2"]) {
    const seqs = all.filter((x) => x.startsWith(`${lane}:`)).map((x) => Number(x.slice(3, -1)));
    assert.deepEqual(seqs.sort((p, q) => p - q), Array.from({ length: 30 }, (_, i) => i + 1), lane);
  }
});

Deno.test("another message id at a used (store, terminal, seq) is a seq conflict", async () => {
  const store = newStore();
  await sync([message(store, 7)]);
  const [r] = await sync([message(store, 7)]);
  assert.equal(r.status, "rejected");
  assert.match(r.error!, /^seq conflict/);
  // The same seq on another terminal is a different lane: fine.
  const [other] = await sync([message(store, 7, { terminalId: "L2" })]);
  assert.equal(other.status, "stored");
});

Deno.test("a bad message in the middle of a batch is rejected alone, in order", async () => {
  const store = newStore();
  const batch: unknown[] = [
    message(store, 1),
    message(store, 2, { messageId: "not-a-uuid" }),
    message(store, 3, { seq: 0 }),
    "not an object",
    message(store, 4, { topic: "transaction", data: { currency: "EUR" } }), // no total
    message(store, 5, { timestamp: "2026-02-30T00:00:00Z" }),
    message(store, 6, { priority: "urgent" }),
    message(store, 7, { data: { text: "nul \u0000 inside" } }),
    message(store, 8),
  ];
  const results = await sync(batch);
  assert.deepEqual(statuses(results), [
    "stored",
    "rejected",
    "rejected",
    "rejected",
    "rejected",
    "rejected",
    "rejected",
    "rejected",
    "stored",
  ]);
  assert.deepEqual(
    results.map((r) => r.messageId),
    batch.map((m) => (m as { messageId?: string }).messageId ?? null),
  );
  for (const r of results.filter((r) => r.status === "rejected")) {
    assert.ok(r.error, "a rejection has a reason");
  }
  assert.equal(results[0].error, undefined);
  assert.match(results[4].error!, /total/);
  const seqs = await withDb((sql) =>
    sql`select seq from pos_messages where store_id = ${store} order by seq`
  );
  assert.deepEqual(seqs.map((r) => Number(r.seq)), [1, 8], "rejected messages are not stored");
});

Deno.test("one row per message in pos_messages, whatever the redeliveries", async () => {
  const store = newStore();
  const batch = Array.from({ length: 20 }, (_, i) => message(store, i + 1));
  // The same batch three times concurrently, plus an in-batch repeat of the first message.
  const replies = await Promise.all([sync(batch), sync(batch), sync([...batch, batch[0]])]);
  for (let i = 0; i < batch.length; i++) {
    const seen = replies.map((r) => r[i].status).sort();
    assert.deepEqual(seen, ["duplicate", "duplicate", "stored"], `message ${i + 1}`);
  }
  assert.equal(replies[2][20].status, "duplicate");
  const [{ n, distinct_ids }] = await withDb((sql) =>
    sql`
    select count(*)::int as n, count(distinct message_id)::int as distinct_ids
    from pos_messages where store_id = ${store}`
  );
  assert.equal(n, 20);
  assert.equal(distinct_ids, 20);
});

Deno.test("concurrent redeliveries in opposite orders still store each message once", async () => {
  // Two lanes uploading the same replicated messages in opposite orders wait on each other's
  // uncommitted rows and can deadlock; the function reruns the aborted transaction.
  const store = newStore();
  const batch = Array.from({ length: 30 }, (_, i) => message(store, i + 1));
  const [forward, backward] = await Promise.all([sync(batch), sync([...batch].reverse())]);
  backward.reverse();
  for (let i = 0; i < batch.length; i++) {
    assert.deepEqual(
      [forward[i].status, backward[i].status].sort(),
      ["duplicate", "stored"],
      `message ${i + 1}`,
    );
  }
  const [{ n }] = await withDb((sql) =>
    sql`select count(*)::int as n from pos_messages where store_id = ${store}`
  );
  assert.equal(n, 30);
});

Deno.test("transaction messages become sales rows; a bad transaction is not stored", async () => {
  const store = newStore();
  const ok = message(store, 1, {
    topic: "transaction",
    data: { total: 42.5, currency: "EUR", items: [{ sku: "A", qty: 1 }], transaction_id: "T-1" },
  });
  const bad = message(store, 2, { topic: "transaction", data: { total: "42.50" } });
  const results = await sync([ok, bad]);
  assert.deepEqual(statuses(results), ["stored", "rejected"]);
  const sales = await withDb((sql) =>
    sql`select message_id, terminal_id, transaction_id, total, currency, items
    from sales where store_id = ${store}`
  );
  assert.equal(sales.length, 1);
  assert.equal(sales[0].message_id, ok.messageId);
  assert.equal(sales[0].transaction_id, "T-1");
  assert.equal(Number(sales[0].total), 42.5);
  assert.equal(sales[0].currency, "EUR");
  assert.deepEqual(sales[0].items, [{ sku: "A", qty: 1 }]);
});

Deno.test("inventory deltas from concurrent requests add up exactly", async () => {
  const store = newStore();
  const skus = ["SKU-A", "SKU-B", "SKU-C"];
  const expected: Record<string, number> = { "SKU-A": 0, "SKU-B": 0, "SKU-C": 0 };
  // 4 lanes x 8 requests x 6 messages, every request touching every sku, in lane-specific
  // orders (so concurrent transactions lock the stock rows in different orders).
  const requests: unknown[][] = [];
  for (let lane = 1; lane <= 4; lane++) {
    let seq = 0;
    for (let r = 0; r < 8; r++) {
      const batch = [];
      for (let k = 0; k < 6; k++) {
        const sku = skus[(lane + k) % skus.length];
        const delta = ((lane * 7 + r * 3 + k) % 11) - 5 || 1;
        expected[sku] += delta;
        batch.push(
          message(store, ++seq, {
            terminalId: `L${lane}`,
            topic: "inventory",
            data: { sku, delta, reason: "sale" },
          }),
        );
      }
      requests.push(batch);
    }
  }
  const replies = await Promise.all(requests.map((b) => sync(b)));
  assert.ok(replies.flat().every((r) => r.status === "stored"));
  // Redelivering everything changes nothing.
  const again = await Promise.all(requests.map((b) => sync(b)));
  assert.ok(again.flat().every((r) => r.status === "duplicate"));

  await withDb(async (sql) => {
    const levels = await sql`select sku, quantity from stock_levels where store_id = ${store} order by sku`;
    assert.deepEqual(levels.map((l) => [l.sku, Number(l.quantity)]), skus.map((s) => [s, expected[s]]));
    const [{ n }] = await sql`select count(*)::int as n from inventory_movements where store_id = ${store}`;
    assert.equal(n, 4 * 8 * 6);
  });
});

Deno.test("a stale customer version is recorded as a conflict and does not overwrite", async () => {
  const store = newStore();
  const v2 = message(store, 1, { topic: "customer", data: { customer_id: "C-1", version: 2, name: "Ann" } });
  const stale = message(store, 2, {
    topic: "customer",
    data: { customer_id: "C-1", version: 1, name: "Old" },
  });
  const same = message(store, 3, {
    topic: "customer",
    data: { customer_id: "C-1", version: 2, name: "Other" },
  });
  assert.deepEqual(statuses(await sync([v2])), ["stored"]);
  assert.deepEqual(
    statuses(await sync([stale, same])),
    ["stored", "stored"],
    "conflicts are still stored messages",
  );

  await withDb(async (sql) => {
    const [c] =
      await sql`select version, data, message_id from customers where store_id = ${store} and customer_id = 'C-1'`;
    assert.equal(Number(c.version), 2);
    assert.equal(c.data.name, "Ann");
    assert.equal(c.message_id, v2.messageId);
    const conflicts = await sql`select message_id, stored_version, incoming_version, incoming_data
      from customer_conflicts where store_id = ${store} order by incoming_version, id`;
    assert.deepEqual(
      conflicts.map((r) => [r.message_id, Number(r.stored_version), Number(r.incoming_version)]),
      [
        [stale.messageId, 2, 1],
        [same.messageId, 2, 2],
      ],
    );
    assert.equal(conflicts[0].incoming_data.name, "Old");
  });

  const v3 = message(store, 4, {
    topic: "customer",
    data: { customer_id: "C-1", version: 3, name: "Ann B." },
  });
  assert.deepEqual(statuses(await sync([v3])), ["stored"]);
  const [c] = await withDb((sql) => sql`select version, data from customers where store_id = ${store}`);
  assert.equal(Number(c.version), 3);
  assert.equal(c.data.name, "Ann B.");
});

Deno.test("sync_log gets one row per request and origin lane with the counts", async () => {
  const store = newStore();
  const a = message(store, 1);
  await sync([a]);
  const reply = await post({
    messages: [a, message(store, 2), message(store, 1, { terminalId: "L2" }), message(store, 3, { seq: -1 })],
  });
  assert.equal(reply.status, 200);
  const requestId = reply.headers.get("x-request-id");
  assert.ok(requestId);
  const rows = await withDb((sql) =>
    sql`select terminal_id, stored, duplicate, rejected, min_seq, max_seq
    from sync_log where request_id = ${requestId} order by terminal_id`
  );
  assert.deepEqual(rows.map((r) => ({ ...r, min_seq: Number(r.min_seq), max_seq: Number(r.max_seq) })), [
    { terminal_id: "L1", stored: 1, duplicate: 1, rejected: 1, min_seq: 1, max_seq: 2 },
    { terminal_id: "L2", stored: 1, duplicate: 0, rejected: 0, min_seq: 1, max_seq: 1 },
  ]);
});

Deno.test("authentication: key via apikey, via Bearer; wrong or missing key is 401", async () => {
  const store = newStore();
  assert.equal((await post({ messages: [message(store, 1)] }, { auth: "apikey" })).status, 200);
  assert.equal((await post({ messages: [message(store, 2)] }, { auth: "bearer" })).status, 200);
  for (const auth of ["both", "apikey", "bearer"] as const) {
    const reply = await post({ messages: [message(store, 3)] }, { auth, key: `${cloud.key}x` });
    assert.equal(reply.status, 401, auth);
    assert.equal(typeof reply.body.error, "string");
  }
  const none = await post({ messages: [message(store, 3)] }, { auth: "none" });
  assert.equal(none.status, 401);
  assert.ok(!JSON.stringify(none.body).includes(cloud.key));
  const rows = await withDb((sql) =>
    sql`select seq from pos_messages where store_id = ${store} order by seq`
  );
  assert.deepEqual(rows.map((r) => Number(r.seq)), [1, 2]);
});

Deno.test("a body over the limit is 413, with or without Content-Length", async () => {
  const big = "x".repeat(6 * 1024 * 1024 + 1);
  const declared = await post(null, { raw: big });
  assert.equal(declared.status, 413);
  const chunks = 7;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const chunk = new Uint8Array(1024 * 1024).fill(0x20);
      for (let i = 0; i < chunks; i++) controller.enqueue(chunk);
      controller.close();
    },
  });
  const chunked = await post(null, { raw: stream });
  assert.equal(chunked.status, 413);
  // Just under the limit is parsed as usual (and here is valid JSON with spaces).
  const padded = JSON.stringify({ messages: [] }) + " ".repeat(1024 * 1024);
  assert.equal((await post(null, { raw: padded })).status, 200);
});

Deno.test("a malformed envelope is 400", async () => {
  const cases: Array<[string, string]> = [
    ["not json", "{"],
    ["not an object", "[]"],
    ["no messages", "{}"],
    ["messages not an array", '{"messages": {}}'],
    ["too many messages", JSON.stringify({ messages: Array.from({ length: 1001 }, () => ({})) })],
    ["invalid UTF-8", "\uFFFD"],
  ];
  for (const [name, raw] of cases) {
    const body: BodyInit = name === "invalid UTF-8" ? new Uint8Array([0x7b, 0xff, 0x7d]) : raw;
    const reply = await post(null, { raw: body });
    assert.equal(reply.status, 400, name);
    assert.equal(typeof reply.body.error, "string", name);
  }
  // The maximum batch is fine; an empty one too.
  const store = newStore();
  const max = Array.from({ length: 1000 }, (_, i) => message(store, i + 1));
  assert.equal((await sync(max)).filter((r) => r.status === "stored").length, 1000);
  assert.deepEqual(await sync([]), []);
});

Deno.test("wrong method is 405, wrong path is 404", async () => {
  const put = await fetch(cloud.url, { method: "PUT", headers: { apikey: cloud.key } });
  assert.equal(put.status, 405);
  assert.equal(put.headers.get("allow"), "GET, POST");
  await put.body?.cancel();
  const wrong = await post({ messages: [] }, {
    url: cloud.url.replace("sync-pos-message", "other-function"),
  });
  assert.equal(wrong.status, 404);
});

Deno.test("RLS is enabled on every public table, with store-scoped reads", async () => {
  await withDb(async (sql) => {
    const tables = await sql`select c.relname, c.relrowsecurity from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relkind in ('r', 'p') order by c.relname`;
    const names = tables.map((t) => t.relname);
    for (
      const t of [
        "customer_conflicts",
        "customers",
        "inventory_movements",
        "lane_status",
        "pos_message_copies",
        "pos_messages",
        "sales",
        "stock_levels",
        "sync_log",
      ]
    ) {
      assert.ok(names.includes(t), `table ${t} exists`);
    }
    assert.deepEqual(tables.filter((t) => !t.relrowsecurity).map((t) => t.relname), [], "tables without RLS");
  });

  const mine = newStore();
  const theirs = newStore();
  await sync([message(mine, 1), message(theirs, 1)]);
  await withDb(async (sql) => {
    const visible = (claims: unknown, role = "authenticated") =>
      sql.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
        await tx.unsafe(`set local role ${role}`);
        const rows = await tx`select store_id from pos_messages where store_id in (${mine}, ${theirs})`;
        return rows.map((r) => r.store_id);
      });
    assert.deepEqual(await visible({ role: "authenticated", store_id: mine }), [mine]);
    assert.deepEqual(await visible({ role: "authenticated", app_metadata: { store_id: theirs } }), [theirs]);
    assert.deepEqual(await visible({ role: "authenticated" }), [], "no store claim, no rows");
    await assert.rejects(visible({ role: "anon", store_id: mine }, "anon"), /permission denied/);
  });
});
