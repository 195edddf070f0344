// Integration tests of customer tombstones, their purge and reorders (the served function and
// PostgreSQL with the migrations, ..._customer_tombstones.sql). Run by tests/cloud/run-deno-tests.sh.

import assert from "node:assert/strict";
import { type Message, message, newStore, post, sync, withDb } from "./testing.ts";

const statuses = (results: Array<{ status: string }>) => results.map((r) => r.status);

/** A customer message of lane `terminalId` at `seq`. */
function customer(
  store: string,
  terminalId: string,
  seq: number,
  data: Record<string, unknown>,
  over: Partial<Message> = {},
): Message {
  return message(store, seq, {
    terminalId,
    topic: "customer",
    data: { customer_id: "C-1", ...data },
    ...over,
  });
}

interface CustomerRow {
  version: number;
  // deno-lint-ignore no-explicit-any
  data: Record<string, any>;
  message_id: string;
  terminal_id: string;
  seq: number;
  deleted_at: Date | null;
  updated_at: Date;
  /** deleted_at is set, and within the last 5 minutes of the database's clock. */
  deleted_recently: boolean;
}

/** The customers row of C-1 (or `id`) in `store`; null when absent. */
async function row(store: string, id = "C-1"): Promise<CustomerRow | null> {
  const rows = await withDb((sql) =>
    sql`select version, data, message_id, terminal_id, seq, deleted_at, updated_at,
      deleted_at is not null and deleted_at <= now() and deleted_at > now() - interval '5 minutes' as deleted_recently
      from customers where store_id = ${store} and customer_id = ${id}`
  );
  if (rows.length === 0) return null;
  const r = rows[0];
  return {
    version: Number(r.version),
    data: r.data,
    message_id: r.message_id,
    terminal_id: r.terminal_id,
    seq: Number(r.seq),
    deleted_at: r.deleted_at,
    updated_at: r.updated_at,
    deleted_recently: r.deleted_recently,
  };
}

/** The conflicts of `store` as [message_id, stored_version, incoming_version], in insertion order. */
async function conflicts(store: string) {
  const rows = await withDb((sql) =>
    sql`select message_id, stored_version, incoming_version, incoming_data
      from customer_conflicts where store_id = ${store} order by id`
  );
  return rows.map((r) => [r.message_id, Number(r.stored_version), Number(r.incoming_version)]);
}

Deno.test("a tombstone with a newer version sets deleted_at and keeps the row with its data", async () => {
  const store = newStore();
  const v1 = customer(store, "L1", 1, { version: 1, name: "Ann" });
  const gone = customer(store, "L2", 1, { version: 2, deleted: true, reason: "gdpr" }, {
    timestamp: "2026-11-23T10:00:00.000Z",
  });
  assert.deepEqual(statuses(await sync([v1])), ["stored"]);
  const live = await row(store);
  assert.equal(live?.deleted_at, null);
  assert.deepEqual([live?.terminal_id, live?.seq], ["L1", 1], "the winning write's lane and seq");

  assert.deepEqual(statuses(await sync([gone])), ["stored"]);
  const r = await row(store);
  assert.ok(r, "the row stays: nothing in the sync path deletes a customer");
  assert.equal(r.version, 2);
  assert.equal(r.deleted_recently, true, `deleted_at is when the cloud applied it: ${r.deleted_at}`);
  assert.deepEqual(r.data, gone.data, "data is the tombstone message's");
  assert.equal(r.message_id, gone.messageId);
  assert.deepEqual([r.terminal_id, r.seq], ["L2", 1]);
  assert.equal(r.updated_at.toISOString(), gone.timestamp, "updated_at is the message's timestamp");
  assert.deepEqual(await conflicts(store), []);

  // A tombstone of a customer the cloud never saw is kept as a tombstone too, so an older
  // update arriving later cannot bring it back.
  const unseen = customer(store, "L1", 2, { customer_id: "C-2", version: 4, deleted: true });
  assert.deepEqual(statuses(await sync([unseen])), ["stored"]);
  const r2 = await row(store, "C-2");
  assert.equal(r2?.version, 4);
  assert.equal(r2?.deleted_recently, true);
  const older = customer(store, "L2", 2, { customer_id: "C-2", version: 3, name: "Bob" });
  assert.deepEqual(statuses(await sync([older])), ["stored"]);
  assert.equal((await row(store, "C-2"))?.deleted_recently, true, "an older update does not resurrect it");
});

Deno.test("deleted: false is an ordinary update", async () => {
  const store = newStore();
  await sync([customer(store, "L1", 1, { version: 1, deleted: false, name: "Ann" })]);
  const r = await row(store);
  assert.equal(r?.version, 1);
  assert.equal(r?.deleted_at, null);
  assert.equal(r?.data.deleted, false);
});

Deno.test("a stale or equal-version tombstone does not apply and is recorded as a conflict", async () => {
  const store = newStore();
  const v3 = customer(store, "L1", 1, { version: 3, name: "Ann" });
  const stale = customer(store, "L2", 1, { version: 2, deleted: true });
  const equal = customer(store, "L2", 2, { version: 3, deleted: true });
  assert.deepEqual(statuses(await sync([v3])), ["stored"]);
  assert.deepEqual(statuses(await sync([stale, equal])), ["stored", "stored"], "still stored messages");
  const r = await row(store);
  assert.equal(r?.version, 3);
  assert.equal(r?.deleted_at, null, "the customer stays live");
  assert.equal(r?.message_id, v3.messageId);
  assert.deepEqual(await conflicts(store), [[stale.messageId, 3, 2], [equal.messageId, 3, 3]]);
});

Deno.test("after a tombstone: an older update is skipped, a newer one resurrects the customer", async () => {
  const store = newStore();
  const v1 = customer(store, "L1", 1, { version: 1, name: "Ann" });
  const gone = customer(store, "L1", 2, { version: 5, deleted: true });
  const late = customer(store, "L2", 1, { version: 4, name: "Ann (late)" });
  const equal = customer(store, "L2", 2, { version: 5, name: "Ann (same version)" });
  assert.deepEqual(statuses(await sync([v1, gone])), ["stored", "stored"]);
  assert.deepEqual(statuses(await sync([late, equal])), ["stored", "stored"]);
  let r = await row(store);
  assert.equal(r?.version, 5);
  assert.equal(r?.deleted_recently, true, "lower and equal versions do not resurrect it");
  assert.equal(r?.message_id, gone.messageId);
  assert.deepEqual(await conflicts(store), [[late.messageId, 5, 4], [equal.messageId, 5, 5]]);

  const back = customer(store, "L2", 3, { version: 6, name: "Ann again" });
  assert.deepEqual(statuses(await sync([back])), ["stored"]);
  r = await row(store);
  assert.equal(r?.version, 6);
  assert.equal(r?.deleted_at, null, "a newer version clears deleted_at");
  assert.deepEqual(r?.data, back.data);
  assert.deepEqual([r?.terminal_id, r?.seq], ["L2", 3]);
  assert.equal((await conflicts(store)).length, 2, "no new conflict");

  // And it can be deleted again.
  await sync([customer(store, "L1", 3, { version: 7, deleted: true })]);
  assert.equal((await row(store))?.deleted_recently, true);
});

Deno.test("a customer message with a non-boolean deleted is rejected and not stored", async () => {
  const store = newStore();
  const bad = customer(store, "L1", 1, { version: 1, deleted: "yes" });
  const nul = customer(store, "L1", 2, { version: 1, deleted: null });
  const reply = await post({ messages: [bad, nul] });
  assert.equal(reply.status, 200);
  const error = "customer: data.deleted must be a boolean (true: the customer was deleted) or absent";
  assert.deepEqual(reply.body.results, [
    { messageId: bad.messageId, status: "rejected", error },
    { messageId: nul.messageId, status: "rejected", error },
  ]);
  const [{ n }] = await withDb((sql) =>
    sql`select count(*)::int as n from pos_messages where store_id = ${store}`
  );
  assert.equal(n, 0);
  assert.equal(await row(store), null);
});

Deno.test("purge_tombstones removes only tombstones older than its argument and returns the count", async () => {
  const store = newStore();
  const msgs = [
    customer(store, "L1", 1, { customer_id: "old-1", version: 1, deleted: true }),
    customer(store, "L1", 2, { customer_id: "old-2", version: 2, deleted: true }),
    customer(store, "L1", 3, { customer_id: "young", version: 1, deleted: true }),
    customer(store, "L1", 4, { customer_id: "live-old", version: 1, name: "kept" }, {
      timestamp: "2020-01-01T00:00:00Z",
    }),
    customer(store, "L1", 5, { customer_id: "live", version: 1 }),
  ];
  assert.deepEqual(statuses(await sync(msgs)), Array(5).fill("stored"));
  await withDb(async (sql) => {
    // Age two tombstones past the cut and one just inside it.
    await sql`update customers set deleted_at = now() - interval '40 days'
      where store_id = ${store} and customer_id in ('old-1', 'old-2')`;
    await sql`update customers set deleted_at = now() - interval '29 days'
      where store_id = ${store} and customer_id = 'young'`;
    const [{ removed }] = await sql`select lanesync.purge_tombstones(interval '30 days') as removed`;
    assert.equal(Number(removed), 2);
    const left = await sql`select customer_id from customers where store_id = ${store} order by customer_id`;
    assert.deepEqual(left.map((r) => r.customer_id), ["live", "live-old", "young"]);
    const [{ again }] = await sql`select lanesync.purge_tombstones(interval '30 days') as again`;
    assert.equal(Number(again), 0, "nothing left that old");
    // The messages stay: only the customers rows go.
    const [{ n }] = await sql`select count(*)::int as n from pos_messages where store_id = ${store}`;
    assert.equal(n, 5);
    await assert.rejects(
      sql`select lanesync.purge_tombstones(interval '-1 day')`,
      /older_than must be an interval >= 0/,
    );
    await assert.rejects(sql`select lanesync.purge_tombstones(null)`, /older_than must be an interval >= 0/);
    // Owner only.
    await assert.rejects(
      sql.begin(async (tx) => {
        await tx.unsafe("set local role authenticated");
        await tx`select lanesync.purge_tombstones(interval '1 day')`;
      }),
      /permission denied/,
    );
  });
  // After the purge a customer id starts afresh (any version applies).
  await sync([customer(store, "L2", 1, { customer_id: "old-1", version: 1, name: "new" })]);
  const r = await row(store, "old-1");
  assert.equal(r?.deleted_at, null);
  assert.equal(r?.data.name, "new");
});

Deno.test("pg_cron: the daily purge job is scheduled where the extension is available", async (t) => {
  const available = await withDb((sql) =>
    sql`select 1 from pg_available_extensions where name = 'pg_cron'`.then((rows) => rows.length > 0)
  );
  await t.step({
    name: "cron.job lanesync-purge-tombstones (pg_cron installed: Debian package postgresql-15-cron)",
    ignore: !available,
    fn: async () => {
      await withDb(async (sql) => {
        const ext = await sql`select extname from pg_extension where extname = 'pg_cron'`;
        assert.equal(
          ext.length,
          1,
          "scripts/cloud-up.sh preloads pg_cron, so the migration created the extension",
        );
        const jobs = await sql`select schedule, command, database, active from cron.job
          where jobname = 'lanesync-purge-tombstones'`;
        assert.equal(jobs.length, 1);
        const [job] = jobs;
        assert.equal(job.schedule, "30 3 * * *");
        assert.equal(job.command, "select lanesync.purge_tombstones(interval '90 days')");
        const [{ db }] = await sql`select current_database() as db`;
        assert.equal(job.database, db);
        assert.equal(job.active, true);
        // The command itself runs (it removes nothing this young).
        await sql.unsafe(job.command);
      });
    },
  });
});

Deno.test("reorder: an older version from the winning write's lane at a lower seq is skipped, not a conflict", async () => {
  const store = newStore();
  // L1 wrote v1 at seq 1 and v2 at seq 2, and uploaded seq 2 first (priority order).
  const v1 = customer(store, "L1", 1, { version: 1, name: "first" });
  const v2 = customer(store, "L1", 2, { version: 2, name: "second" });
  assert.deepEqual(statuses(await sync([v2])), ["stored"]);
  assert.deepEqual(statuses(await sync([v1])), ["stored"], "the message is still stored");
  let r = await row(store);
  assert.equal(r?.version, 2);
  assert.equal(r?.message_id, v2.messageId);
  assert.deepEqual(await conflicts(store), [], "a reorder is not a conflict");

  // Within one batch, and for a tombstone overtaking the lane's own older update.
  const a = customer(store, "L1", 3, { customer_id: "C-2", version: 3, name: "a" });
  const gone = customer(store, "L1", 4, { customer_id: "C-2", version: 4, deleted: true });
  assert.deepEqual(statuses(await sync([gone, a])), ["stored", "stored"]);
  r = await row(store, "C-2");
  assert.equal(r?.version, 4);
  assert.equal(r?.deleted_recently, true, "the older update does not resurrect it");
  assert.deepEqual(await conflicts(store), []);

  // A covered upload is its origin's message: the origin's lane and seq count.
  const c2 = customer(store, "L1", 6, { customer_id: "C-3", version: 2 });
  const c1 = customer(store, "L1", 5, { customer_id: "C-3", version: 1 }, { uploadedBy: "L3" });
  assert.deepEqual(statuses(await sync([c2])), ["stored"]);
  assert.deepEqual(statuses(await sync([c1])), ["stored"]);
  assert.equal((await row(store, "C-3"))?.version, 2);
  assert.deepEqual(await conflicts(store), []);
});

Deno.test("reorder rule: another lane, a higher seq of the same lane, or an equal version stay conflicts", async () => {
  const store = newStore();
  const v5 = customer(store, "L1", 5, { version: 5, name: "winner" });
  const otherLane = customer(store, "L2", 1, { version: 4 });
  const higherSeq = customer(store, "L1", 6, { version: 4 });
  const equalLowerSeq = customer(store, "L1", 4, { version: 5, name: "same version" });
  assert.deepEqual(statuses(await sync([v5])), ["stored"]);
  assert.deepEqual(
    statuses(await sync([otherLane, higherSeq, equalLowerSeq])),
    Array(3).fill("stored"),
  );
  const r = await row(store);
  assert.equal(r?.version, 5);
  assert.equal(r?.message_id, v5.messageId);
  assert.deepEqual(await conflicts(store), [
    [otherLane.messageId, 5, 4],
    [higherSeq.messageId, 5, 4],
    [equalLowerSeq.messageId, 5, 5],
  ]);

  // The lane of the winning write is the one that counts: after L2 wins with v6, an older
  // version from L1 at a lower seq than L1's earlier win is a conflict.
  const l2wins = customer(store, "L2", 2, { version: 6 });
  const l1old = customer(store, "L1", 3, { version: 3 });
  assert.deepEqual(statuses(await sync([l2wins, l1old])), ["stored", "stored"]);
  const after = await row(store);
  assert.deepEqual([after?.version, after?.terminal_id, after?.seq], [6, "L2", 2]);
  assert.deepEqual((await conflicts(store)).at(-1), [l1old.messageId, 6, 3]);
});

Deno.test("customers columns: terminal_id and seq not null, deleted_at nullable", async () => {
  const cols = await withDb((sql) =>
    sql`select column_name, is_nullable, data_type from information_schema.columns
      where table_schema = 'public' and table_name = 'customers'
        and column_name in ('terminal_id', 'seq', 'deleted_at') order by column_name`
  );
  assert.deepEqual(cols.map((c) => [c.column_name, c.is_nullable, c.data_type]), [
    ["deleted_at", "YES", "timestamp with time zone"],
    ["seq", "NO", "bigint"],
    ["terminal_id", "NO", "text"],
  ]);
});
