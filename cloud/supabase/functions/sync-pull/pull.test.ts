// Integration tests of sync-pull as served by the local cloud (real Deno server, real
// PostgreSQL with the migrations). Run by tests/cloud/run-deno-tests.sh.

import assert from "node:assert/strict";
import {
  cloud,
  cloudLive,
  fresh,
  LaneModel,
  publish,
  pull,
  pullRaw,
  pullUntilDone,
  scopeOf,
  withDb,
} from "./testing.ts";

Deno.test("a store sees its own rows and the chain-wide ones, never another store's", async () => {
  const scope = fresh("vis");
  const [s1, s2] = [fresh("S"), fresh("S")];
  await withDb(async (sql) => {
    await publish(sql, null, scope, "chain", { p: 1 });
    await publish(sql, s1, scope, "mine", { p: 2 });
    await publish(sql, s2, scope, "theirs", { p: 3 });
    await publish(sql, s2, scope, "chain", { p: 4 }); // s2's own value of a chain-wide key
  });
  const snap = scopeOf(await pull(s1, {}), scope);
  assert.equal(snap.reset, true);
  assert.deepEqual(snap.changes.map((c) => [c.key, c.data]), [["chain", { p: 1 }], ["mine", { p: 2 }]]);
  const catchUp = scopeOf(await pull(s1, { [scope]: { through: 1 } }), scope);
  assert.deepEqual(catchUp.changes.map((c) => c.key), ["chain", "mine"]);
  const s2snap = scopeOf(await pull(s2, {}), scope);
  assert.deepEqual(s2snap.changes.map((c) => [c.key, c.data]), [["chain", { p: 4 }], ["theirs", { p: 3 }]]);
  // A store with nothing of its own still sees the chain-wide scope.
  const s3 = scopeOf(await pull(fresh("S"), {}), scope);
  assert.deepEqual(s3.changes.map((c) => c.key), ["chain"]);
  // A scope only another store has is not answered at all.
  const only2 = fresh("only");
  await withDb((sql) => publish(sql, s2, only2, "k", 1));
  assert.ok(!(await pull(s1, {})).scopes.some((s) => s.scope === only2));
});

Deno.test("RLS: authenticated users read their store's and chain-wide rows; no store claim, nothing", async () => {
  const scope = fresh("rls");
  const [s1, s2] = [fresh("S"), fresh("S")];
  await withDb(async (sql) => {
    await publish(sql, null, scope, "chain", 1);
    await publish(sql, s1, scope, "mine", 1);
    await publish(sql, s2, scope, "theirs", 1);
    const as = async (claims: unknown, table: string) =>
      await sql.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)`;
        await tx`set local role authenticated`;
        const rows = await tx.unsafe(`select key from public.${table} where scope = $1 order by key`, [
          scope,
        ]);
        return rows.map((r) => r.key);
      });
    for (const table of ["change_log", "catalog_current"]) {
      assert.deepEqual(await as({ store_id: s1 }, table), ["chain", "mine"], table);
      assert.deepEqual(await as({ app_metadata: { store_id: s2 } }, table), ["chain", "theirs"], table);
      assert.deepEqual(await as({ sub: "x" }, table), [], table);
    }
    const [{ n }] = await sql.begin(async (tx) => {
      await tx`select set_config('request.jwt.claims', ${JSON.stringify({ store_id: s1 })}, true)`;
      await tx`set local role authenticated`;
      return await tx`select count(*)::int as n from public.catalog_scopes where scope = ${scope}`;
    });
    assert.equal(n, 2);
    const rls = await sql`select relname from pg_class
      where relname in ('change_log', 'catalog_current', 'catalog_scopes', 'products', 'change_log_state')
        and relrowsecurity order by relname`;
    assert.deepEqual(rls.map((r) => r.relname), [
      "catalog_current",
      "catalog_scopes",
      "change_log",
      "change_log_state",
      "products",
    ]);
    // anon and authenticated cannot publish.
    await assert.rejects(
      sql.begin(async (tx) => {
        await tx`set local role authenticated`;
        await tx`select lanesync.publish_change(null, 'x', 'k', '1')`;
      }),
      /permission denied/,
    );
  });
});

Deno.test("products table: triggers publish products and prices; deletes are tombstones", async () => {
  const sku = fresh("sku");
  const store = fresh("S");
  const lane = new LaneModel();
  const prices = new LaneModel();
  await withDb(async (sql) => {
    await sql`insert into lanesync.products (sku, name, price_cents) values (${sku}, 'Tea', 250)`;
    const head = Number((await sql`select lanesync.change_log_head()::text as h`)[0].h);
    await sql`update lanesync.products set price_cents = 199 where sku = ${sku}`;
    await sql`update lanesync.products set name = 'Green tea' where sku = ${sku}`;
    await sql`update lanesync.products set updated_at = now() where sku = ${sku}`; // publishes nothing
    const log =
      await sql`select scope, op, data from public.change_log where key = ${sku} and version > ${head}
      order by version`;
    assert.deepEqual(log.map((r) => [r.scope, r.op, r.data?.price_cents, r.data?.name]), [
      ["products", "upsert", 199, "Tea"],
      ["prices", "upsert", 199, undefined],
      ["products", "upsert", 199, "Green tea"],
    ]);
    assert.deepEqual(log[1].data, { price_cents: 199, currency: "EUR" });
    lane.through = prices.through = head;
    await pullUntilDone(store, "products", lane, 1000);
    await pullUntilDone(store, "prices", prices, 1000);
    assert.deepEqual(lane.keys.get(sku)?.data, {
      sku,
      name: "Green tea",
      price_cents: 199,
      currency: "EUR",
      barcode: null,
      active: true,
      attributes: {},
    });
    assert.deepEqual(prices.keys.get(sku)?.data, { price_cents: 199, currency: "EUR" });
    await sql`delete from lanesync.products where sku = ${sku}`;
    await pullUntilDone(store, "products", lane, 1000);
    await pullUntilDone(store, "prices", prices, 1000);
    assert.equal(lane.keys.get(sku)?.deleted, true);
    assert.equal(prices.keys.get(sku)?.deleted, true);
    await assert.rejects(sql`truncate lanesync.products`, /TRUNCATE would bypass publishing/);
  });
});

Deno.test("products table: one statement over many rows publishes set-based; a renamed sku is a tombstone and a new key", async () => {
  const p = fresh("bulk");
  const sku = (i: number) => `${p}-${i}`;
  await withDb(async (sql) => {
    const head = async () => Number((await sql`select lanesync.change_log_head()::text as h`)[0].h);
    const since = async (from: number) =>
      (await sql`select scope, key, op, data->>'price_cents' as price from public.change_log
        where key like ${p + "-%"} and version > ${from} order by version`).map((r) =>
        `${r.scope}:${r.key.slice(p.length + 1)}:${r.op}${r.price === null ? "" : ":" + r.price}`
      );
    let h = await head();
    await sql`insert into lanesync.products (sku, name, price_cents)
      values (${sku(1)}, 'One', 100), (${sku(2)}, 'Two', 200), (${sku(3)}, 'Three', 300)`;
    assert.deepEqual(await since(h), [
      "products:1:upsert:100",
      "products:2:upsert:200",
      "products:3:upsert:300",
      "prices:1:upsert:100",
      "prices:2:upsert:200",
      "prices:3:upsert:300",
    ]);
    h = await head();
    await sql`update lanesync.products set price_cents = price_cents + 1 where sku in (${sku(1)}, ${sku(2)})`;
    await sql`update lanesync.products set sku = ${sku(4)} where sku = ${sku(3)}`;
    await sql`update lanesync.products set updated_at = now() where sku like ${p + "-%"}`;
    assert.deepEqual(await since(h), [
      "products:1:upsert:101",
      "products:2:upsert:201",
      "prices:1:upsert:101",
      "prices:2:upsert:201",
      "products:3:delete",
      "products:4:upsert:300",
      "prices:3:delete",
      "prices:4:upsert:300",
    ]);
    h = await head();
    await sql`delete from lanesync.products where sku like ${p + "-%"}`;
    assert.deepEqual(await since(h), [
      "products:1:delete",
      "products:2:delete",
      "products:4:delete",
      "prices:1:delete",
      "prices:2:delete",
      "prices:4:delete",
    ]);
  });
});

Deno.test("snapshot paging under concurrent changes, then catch-up: the lane ends with exactly the cloud's state", async () => {
  const scope = fresh("snap");
  const store = fresh("S");
  const key = (i: number) => `k${String(i).padStart(3, "0")}`;
  await withDb(async (sql) => {
    for (let i = 0; i < 25; i++) await publish(sql, i % 5 === 0 ? store : null, scope, key(i), { i });
    await publish(sql, null, scope, key(3), null); // a tombstone before the snapshot
    const lane = new LaneModel();
    const [{ h }] = await sql`select lanesync.change_log_head()::text as h`; // nothing else publishes now
    const first = scopeOf(await pull(store, { [scope]: lane.cursor() }, 10), scope);
    assert.deepEqual([first.reset, first.more, first.changes.length, first.through], [true, true, 10, 0]);
    assert.ok(!first.changes.some((c) => c.key === key(3)), "tombstones are not in a snapshot");
    lane.apply(first);
    // Between pages: change a key already sent and one not yet sent, delete one of each, add one.
    await publish(sql, null, scope, key(1), { i: 1, v: 2 });
    await publish(sql, null, scope, key(20), { i: 20, v: 2 });
    await publish(sql, null, scope, key(2), null);
    await publish(sql, null, scope, key(21), null);
    await publish(sql, store, scope, "k999", { i: 999 });
    let pages = 1;
    for (;;) {
      const p = scopeOf(await pull(store, { [scope]: lane.cursor() }, 10), scope);
      assert.equal(p.continues_snapshot || !p.more, true);
      lane.apply(p);
      pages++;
      if (!p.more) {
        assert.deepEqual([p.resume, p.through], ["", Number(h)], "the last page: through = as_of");
        break;
      }
      assert.equal(p.through, 0, "a snapshot under way completes nothing");
    }
    assert.equal(pages, 3);
    // The snapshot's end: through = as_of; catch-up from there brings what changed during it.
    await pullUntilDone(store, scope, lane, 10);
    assert.deepEqual(lane.live(), await cloudLive(sql, store, scope));
    assert.equal(lane.live().length, 25 - 3 + 1);
  });
});

Deno.test("a transaction's changes are served only once it commits; a rolled back one never; writers wait on the log lock", async () => {
  const scope = fresh("tx");
  const store = fresh("S");
  await withDb(async (sql) => {
    const seed = await publish(sql, null, scope, "seed", 1);
    let release!: () => void;
    const hold = new Promise<void>((r) => release = r);
    let published = 0;
    const open = sql.begin(async (tx) => {
      published = await publish(tx, null, scope, "late", 1);
      await hold;
    });
    // Wait (with a deadline) until the open transaction holds its version.
    for (const deadline = Date.now() + 10_000; published === 0;) {
      assert.ok(Date.now() < deadline, "the publish did not happen");
      await new Promise((r) => setTimeout(r, 10));
    }
    const before = scopeOf(await pull(store, { [scope]: { through: seed } }), scope);
    assert.deepEqual(before.changes, []);
    assert.ok(before.through < published, "through stays below the uncommitted version");
    // Another publisher waits for the log lock: with lock_timeout it gives up.
    await assert.rejects(
      sql.begin(async (tx) => {
        await tx`set local lock_timeout = '200ms'`;
        await publish(tx, null, scope, "blocked", 1);
      }),
      /lock timeout/,
    );
    release();
    await open;
    const after = scopeOf(await pull(store, { [scope]: { through: before.through } }), scope);
    assert.deepEqual(after.changes.map((c) => [c.key, c.version]), [["late", published]]);
    // Rolled back: never served, and the version is never reused.
    await assert.rejects(
      sql.begin(async (tx) => {
        await publish(tx, null, scope, "undone", 1);
        throw new Error("roll back");
      }),
      /roll back/,
    );
    const next = await publish(sql, null, scope, "next", 1);
    const last = scopeOf(await pull(store, { [scope]: { through: after.through } }), scope);
    assert.deepEqual(last.changes.map((c) => [c.key, c.version]), [["next", next]]);
    assert.ok(next > published + 1, "the rolled back version is a gap that never fills");
  });
});

Deno.test("compaction raises the horizon: a cursor below it gets a snapshot, an expired resume restarts it", async () => {
  const scope = fresh("cmp");
  const store = fresh("S");
  await withDb(async (sql) => {
    for (const k of ["a", "b", "c", "d"]) await publish(sql, null, scope, k, { k });
    const deletedAt = await publish(sql, null, scope, "b", null);
    const lane = new LaneModel();
    const first = scopeOf(await pull(store, { [scope]: lane.cursor() }, 1), scope);
    lane.apply(first);
    const oldCursor = deletedAt - 1; // a lane that had not seen the delete
    const changed = await publish(sql, null, scope, "e", { k: "e" }); // after the snapshot's as_of
    const [{ cut }] = await sql`select lanesync.compact_change_log('0 seconds')::text as cut`;
    assert.ok(Number(cut) >= changed);
    const [{ n }] = await sql`select count(*)::int as n from public.change_log where scope = ${scope}`;
    assert.equal(n, 0, "the log is compacted");
    const [{ t }] =
      await sql`select count(*)::int as t from public.catalog_current where scope = ${scope} and deleted`;
    assert.equal(t, 0, "tombstones are purged");

    const below = scopeOf(await pull(store, { [scope]: { through: oldCursor } }), scope);
    assert.deepEqual([below.reset, below.horizon], [true, changed]);
    assert.deepEqual(below.changes.map((c) => c.key), ["a", "c", "d", "e"]);
    const expired = scopeOf(await pull(store, { [scope]: lane.cursor() }, 1), scope);
    assert.deepEqual([expired.reset, expired.continues_snapshot], [true, false], "restarted");
    lane.apply(expired);
    await pullUntilDone(store, scope, lane, 1);
    assert.deepEqual(lane.live(), await cloudLive(sql, store, scope));
    // At the horizon: catch-up again.
    const at = scopeOf(await pull(store, { [scope]: { through: lane.through } }), scope);
    assert.equal(at.reset, false);
    // Nothing old enough: 0, nothing removed.
    const [{ none }] = await sql`select lanesync.compact_change_log('1 hour')::text as none`;
    assert.equal(none, "0");
    await assert.rejects(sql`select lanesync.compact_change_log('-1 hour')`, /keep must be an interval >= 0/);
  });
});

Deno.test("compaction keeps the young suffix of the log: older rows go, the horizon is the highest removed", async () => {
  const scope = fresh("keep");
  const store = fresh("S");
  await withDb(async (sql) => {
    const v1 = await publish(sql, null, scope, "a", 1);
    const v2 = await publish(sql, null, scope, "b", null);
    const v3 = await publish(sql, null, scope, "c", 3);
    // Make everything up to v2 (and anything older of other tests) two days old.
    await sql`update public.change_log set changed_at = now() - interval '2 days' where version <= ${v2}`;
    const [{ cut }] = await sql`select lanesync.compact_change_log('1 day')::text as cut`;
    assert.ok(Number(cut) >= v2 && Number(cut) < v3, `cut ${cut} between ${v2} and ${v3}`);
    const left = await sql`select key from public.change_log where scope = ${scope} order by version`;
    assert.deepEqual(left.map((r) => r.key), ["c"]);
    const p = scopeOf(await pull(store, { [scope]: { through: v1 } }), scope);
    assert.deepEqual([p.reset, p.horizon, p.changes.map((c) => c.key)], [true, v2, ["a", "c"]]);
    const q = scopeOf(await pull(store, { [scope]: { through: v2 } }), scope);
    assert.deepEqual([q.reset, q.changes.map((c) => c.key)], [false, ["c"]]);
  });
});

Deno.test("data reaches the lane exactly as head office wrote it: big integers keep every digit", async () => {
  const scope = fresh("exact");
  const store = fresh("S");
  const text = '{"big": 1152921504606846977, "dec": 0.1000000000000000055511151231257827, "s": "é\\u0001"}';
  await withDb((sql) => sql`select lanesync.publish_change(null, ${scope}, 'k', ${text}::text::jsonb)`);
  const res = await fetch(cloud.url, {
    method: "POST",
    headers: { apikey: cloud.key, "content-type": "application/json" },
    body: JSON.stringify({ store_id: store, terminal_id: "L1", cursors: {} }),
  });
  const body = await res.text();
  assert.equal(res.status, 200);
  assert.match(body, /"big": 1152921504606846977/);
  assert.match(body, /"dec": 0\.1000000000000000055511151231257827/);
  const p = scopeOf(JSON.parse(body), scope);
  assert.deepEqual(p.changes.map((c) => c.key), ["k"]);
});

Deno.test("over HTTP: 401, 405, 400 for malformed bodies and bad resume tokens", async () => {
  const scope = fresh("http");
  await withDb((sql) => publish(sql, null, scope, "k", 1));
  const ok = { store_id: "S1", terminal_id: "L1" };
  assert.equal((await pullRaw(ok, { key: null })).status, 401);
  assert.equal((await pullRaw(ok, { key: "wrong" })).status, 401);
  for (
    const [raw, error] of [
      ["{", /not valid JSON/],
      ['{"terminal_id": "L1"}', /store_id/],
      ['{"store_id": "S1", "terminal_id": "L1", "limit": 5000}', /limit/],
      ['{"store_id": "S1", "terminal_id": "L1", "cursors": {"x": {"through": -1}}}', /through/],
    ] as const
  ) {
    const r = await pullRaw(null, { raw });
    assert.equal(r.status, 400, raw);
    assert.match(String(r.body.error), error);
  }
  const bad = await pullRaw({ ...ok, cursors: { [scope]: { through: 0, resume: "not-ours" } } });
  assert.equal(bad.status, 400);
  assert.match(String(bad.body.error), new RegExp(`cursors\\.${scope}\\.resume is not a resume token`));
  const res = await fetch((await import("./testing.ts")).cloud.url, { method: "GET" });
  await res.body?.cancel();
  assert.equal(res.status, 405);
  // sync-pos-message still answers on the same port.
  const pos = await fetch(`${Deno.env.get("SUPABASE_URL")}/functions/v1/sync-pos-message`, {
    method: "POST",
    headers: { apikey: (await import("./testing.ts")).cloud.key },
    body: '{"messages": []}',
  });
  assert.deepEqual([pos.status, await pos.json()], [200, { results: [] }]);
});
