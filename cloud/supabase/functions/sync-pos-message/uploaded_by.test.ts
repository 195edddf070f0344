// Integration tests of replica takeover on the cloud side (issue 9 item 4): a lane uploads
// messages of a dead lane with the origin's terminalId and "uploadedBy": itself. The sync log
// records who uploaded; the message is the same message whoever sends it. Run by
// tests/cloud/run-deno-tests.sh against the served function and PostgreSQL.

import assert from "node:assert/strict";
import { type Message, message, newStore, post, sync, withDb } from "./testing.ts";

const statuses = (results: Array<{ status: string }>) => results.map((r) => r.status);

/** The sync_log rows of a store, oldest first: [terminal, uploaded_by, stored, duplicate, rejected, min, max]. */
async function syncLog(store: string): Promise<unknown[][]> {
  const rows = await withDb((sql) =>
    sql`select terminal_id, uploaded_by, stored, duplicate, rejected, min_seq, max_seq
    from sync_log where store_id = ${store} order by id`
  );
  return rows.map((r) => [
    r.terminal_id,
    r.uploaded_by,
    r.stored,
    r.duplicate,
    r.rejected,
    r.min_seq === null ? null : Number(r.min_seq),
    r.max_seq === null ? null : Number(r.max_seq),
  ]);
}

/** How many sales and messages the store holds (the event applied once?). */
async function applied(store: string): Promise<[number, number]> {
  return await withDb(async (sql) => {
    const [{ sales }] = await sql`select count(*)::int as sales from sales where store_id = ${store}`;
    const [{ msgs }] = await sql`select count(*)::int as msgs from pos_messages where store_id = ${store}`;
    return [sales, msgs];
  });
}

const sale = (store: string, seq: number, over: Partial<Message> = {}) =>
  message(store, seq, {
    topic: "transaction",
    data: { total: seq, transaction_id: `T-${seq}` },
    ...over,
  });

Deno.test("uploadedBy is recorded: one sync_log row per (store, terminal, uploaded_by)", async () => {
  const store = newStore();
  // L2 uploads its own messages and, in the same request, L3's replicas it covers.
  const own = [sale(store, 1, { terminalId: "L2" }), sale(store, 2, { terminalId: "L2" })];
  const covered = [4, 5, 6].map((seq) => sale(store, seq, { terminalId: "L3", uploadedBy: "L2" }));
  const byL1 = sale(store, 7, { terminalId: "L3", uploadedBy: "L1" });
  assert.deepEqual(statuses(await sync([covered[0], ...own, covered[1], covered[2], byL1])), [
    "stored",
    "stored",
    "stored",
    "stored",
    "stored",
    "stored",
  ]);
  const log = await syncLog(store);
  log.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  assert.deepEqual(log, [
    ["L2", null, 2, 0, 0, 1, 2],
    ["L3", "L1", 1, 0, 0, 7, 7],
    ["L3", "L2", 3, 0, 0, 4, 6],
  ]);
  // The messages belong to their origin: terminal and seq as the origin gave them.
  const rows = await withDb((sql) =>
    sql`select terminal_id, seq from pos_messages where store_id = ${store} and terminal_id = 'L3' order by seq`
  );
  assert.deepEqual(rows.map((r) => `${r.terminal_id}:${r.seq}`), ["L3:4", "L3:5", "L3:6", "L3:7"]);
});

Deno.test("uploaded by its origin, then by a covering lane: duplicate, applied once", async () => {
  const store = newStore();
  const m = sale(store, 1);
  assert.deepEqual(await sync([m]), [{ messageId: m.messageId, status: "stored" }]);
  // L2 took over while L1 was partitioned from its peers but not from the cloud.
  const again = { ...m, uploadedBy: "L2", peerAckedAt: null };
  assert.deepEqual(await sync([again]), [{ messageId: m.messageId, status: "duplicate" }]);
  assert.deepEqual(await applied(store), [1, 1]);
  assert.deepEqual(await syncLog(store), [
    ["L1", null, 1, 0, 0, 1, 1],
    ["L1", "L2", 0, 1, 0, 1, 1],
  ]);
  // No copy is recorded: it is the same (store, terminal, seq), not another lane's seq.
  const [{ n }] = await withDb((sql) =>
    sql`select count(*)::int as n from pos_message_copies where store_id = ${store}`
  );
  assert.equal(n, 0);
});

Deno.test("uploaded by a covering lane, then by its origin: duplicate, applied once", async () => {
  const store = newStore();
  const ms = [1, 2, 3].map((seq) => sale(store, seq));
  const covered = ms.map((m) => ({ ...m, uploadedBy: "L2" }));
  assert.deepEqual(statuses(await sync(covered)), ["stored", "stored", "stored"]);
  // L1 comes back and uploads what it still has as peer_ack, plus a new sale.
  const next = sale(store, 4);
  assert.deepEqual(statuses(await sync([...ms, next])), ["duplicate", "duplicate", "duplicate", "stored"]);
  // A third lane covering too (it had not heard L1 was back) changes nothing.
  assert.deepEqual(statuses(await sync([{ ...ms[1], uploadedBy: "L3" }])), ["duplicate"]);
  assert.deepEqual(await applied(store), [4, 4]);
  assert.deepEqual(await syncLog(store), [
    ["L1", "L2", 3, 0, 0, 1, 3],
    ["L1", null, 1, 3, 0, 1, 4],
    ["L1", "L3", 0, 1, 0, 2, 2],
  ]);
  // The same seq with another id stays a seq conflict, whoever uploads it.
  const [r] = await sync([sale(store, 2, { uploadedBy: "L2" })]);
  assert.equal(r.status, "rejected");
  assert.match(r.error!, /^seq conflict: seq 2 of /);
});

Deno.test("a bad uploadedBy rejects that message only, with a clear reason", async () => {
  const store = newStore();
  const good = sale(store, 1, { uploadedBy: "L2" });
  const self = sale(store, 2, { uploadedBy: "L1" });
  const syntax = sale(store, 3, { uploadedBy: "lane 2" });
  const long = sale(store, 4, { uploadedBy: "L".repeat(33) });
  const number = { ...sale(store, 5), uploadedBy: 2 };
  const reply = await post({ messages: [good, self, syntax, long, number] });
  assert.equal(reply.status, 200);
  const results = reply.body.results as Array<{ messageId: string; status: string; error?: string }>;
  assert.deepEqual(statuses(results), ["stored", "rejected", "rejected", "rejected", "rejected"]);
  assert.equal(
    results[1].error,
    "uploadedBy must differ from terminalId (leave it out when a lane uploads its own messages)",
  );
  for (const r of results.slice(2)) {
    assert.equal(r.error, "uploadedBy must match [A-Za-z0-9_-]{1,32}, or be absent or null");
  }
  assert.deepEqual(await applied(store), [1, 1]);
  const log = await syncLog(store);
  log.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  assert.deepEqual(log, [
    ["L1", "L2", 1, 0, 0, 1, 1],
    ["L1", null, 0, 0, 4, null, null],
  ]);
});

Deno.test("the schema: sync_log.uploaded_by is a lane id other than terminal_id, or null", async () => {
  await withDb(async (sql) => {
    const [col] = await sql`select data_type, is_nullable from information_schema.columns
      where table_schema = 'public' and table_name = 'sync_log' and column_name = 'uploaded_by'`;
    assert.deepEqual([col?.data_type, col?.is_nullable], ["text", "YES"]);
    const [mig] =
      await sql`select name from lanesync_local.applied_migrations where version = '20261201000200'`;
    assert.equal(mig?.name, "20261201000200_sync_log_uploaded_by");
    const insert = (uploadedBy: string) =>
      sql`insert into sync_log (request_id, store_id, terminal_id, uploaded_by)
        values (${crypto.randomUUID()}, ${newStore()}, 'L1', ${uploadedBy})`;
    await assert.rejects(insert("L1"), /check constraint/);
    await assert.rejects(insert("bad lane"), /check constraint/);
  });
});
