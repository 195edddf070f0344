// Integration tests of the GET (highest seq of one lane): the function as served by the local
// cloud, real PostgreSQL with the migrations. Run by tests/cloud/run-deno-tests.sh.

import assert from "node:assert/strict";
import { get, highestSeq, message, newStore, sync, withDb } from "./testing.ts";

const statuses = (results: Array<{ status: string }>) => results.map((r) => r.status);

Deno.test("GET highest seq: 0 for a lane the cloud holds nothing of", async () => {
  const store = newStore();
  assert.equal(await highestSeq(store, "L1"), 0);
  // Messages of other lanes and of the same terminal id in another store do not count.
  const other = newStore();
  assert.deepEqual(
    statuses(await sync([message(store, 7, { terminalId: "L2" }), message(other, 9, { terminalId: "L1" })])),
    ["stored", "stored"],
  );
  assert.equal(await highestSeq(store, "L1"), 0);
  assert.equal(await highestSeq(store, "L2"), 7);
  assert.equal(await highestSeq(other, "L1"), 9);
  // Terminal ids are case-sensitive, as everywhere in the cloud.
  assert.equal(await highestSeq(store, "l2"), 0);
});

Deno.test("GET highest seq: the greatest seq of the lane's messages, whatever the upload order", async () => {
  const store = newStore();
  assert.deepEqual(
    statuses(await sync([message(store, 5), message(store, 2), message(store, 1)])),
    ["stored", "stored", "stored"],
  );
  assert.equal(await highestSeq(store, "L1"), 5);
  // A rejected (invalid) message holds no seq.
  const [invalid] = await sync([message(store, 50, { topic: "transaction", data: { total: "x" } })]);
  assert.equal(invalid.status, "rejected");
  assert.equal(await highestSeq(store, "L1"), 5);
  // A later upload above it moves it up.
  assert.deepEqual(statuses(await sync([message(store, 12)])), ["stored"]);
  assert.equal(await highestSeq(store, "L1"), 12);
  const [{ max }] = await withDb((sql) =>
    sql`select max(seq)::int as max from pos_messages where store_id = ${store} and terminal_id = 'L1'`
  );
  assert.equal(max, 12);
});

Deno.test("GET highest seq: a seq held only in pos_message_copies counts", async () => {
  const store = newStore();
  const m = message(store, 1, { topic: "transaction", data: { total: 10, transaction_id: "T-1" } });
  // L2 accepted the same sale as its own at seq 8 (a later copy, same content) and has its own seq 3.
  const copy = { ...m, terminalId: "L2", seq: 8 };
  // L3 accepted the same id at seq 4 with other content: rejected, but its seq is taken.
  const conflict = { ...m, terminalId: "L3", seq: 4, data: { total: 11, transaction_id: "T-1" } };
  const results = await sync([m, message(store, 3, { terminalId: "L2" }), copy, conflict]);
  assert.deepEqual(statuses(results), ["stored", "stored", "duplicate", "rejected"]);
  const where = await withDb((sql) =>
    sql`select terminal_id, seq::int as seq, 'm' as kind from pos_messages where store_id = ${store}
    union all
    select terminal_id, seq::int, 'c' from pos_message_copies where store_id = ${store}
    order by 1, 2`
  );
  assert.deepEqual(where.map((r) => `${r.terminal_id}:${r.seq}${r.kind}`), [
    "L1:1m",
    "L2:3m",
    "L2:8c",
    "L3:4c",
  ]);
  assert.equal(await highestSeq(store, "L1"), 1);
  assert.equal(await highestSeq(store, "L2"), 8, "the copy is above the lane's own messages");
  assert.equal(await highestSeq(store, "L3"), 4, "only a copy, and a rejected one");
});

Deno.test("GET highest seq: bigint seqs up to 2^53 - 1 are exact, beyond is a 500", async () => {
  const store = newStore();
  const insert = (terminal: string, seq: string) =>
    withDb((sql) =>
      sql`insert into pos_messages (message_id, store_id, terminal_id, seq, topic, priority, data, created_at)
      values (${crypto.randomUUID()}, ${store}, ${terminal}, ${seq}::bigint, 'note', 'normal', '{}', now())`
    );
  await insert("L1", "9007199254740991");
  assert.equal(await highestSeq(store, "L1"), Number.MAX_SAFE_INTEGER);
  await insert("L2", "9007199254740992");
  const beyond = await get({ storeId: store, terminalId: "L2" });
  assert.equal(beyond.status, 500);
  assert.deepEqual(beyond.body, { error: "internal error, retry later" });
});

Deno.test("GET over HTTP: 401 without the key, 400 for a bad query, 405 for other methods", async () => {
  const store = newStore();
  await sync([message(store, 3)]);
  for (const key of [null, "wrong"]) {
    const r = await get({ storeId: store, terminalId: "L1" }, { key });
    assert.equal(r.status, 401);
    assert.ok(!("highestSeq" in r.body));
  }
  for (
    const query of [
      "",
      `storeId=${store}`,
      `storeId=${store}&terminalId=L1&terminalId=L1`,
      `storeId=a.b&terminalId=L1`,
      `storeId=${store}&terminalId=L1&x=1`,
    ]
  ) {
    const r = await get(query);
    assert.equal(r.status, 400, query);
    assert.equal(typeof r.body.error, "string", query);
  }
  for (const method of ["PUT", "DELETE"]) {
    const r = await get({ storeId: store, terminalId: "L1" }, { method });
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.get("allow"), "GET, POST");
  }
  const ok = await get({ storeId: store, terminalId: "L1" });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("content-type"), "application/json");
  assert.deepEqual(ok.body, { storeId: store, terminalId: "L1", highestSeq: 3 });
});
