// Unit tests of the request validation (pure functions).

import assert from "node:assert/strict";
import {
  checkEnvelope,
  checkLane,
  checkLaneQuery,
  checkMessage,
  isIsoTimestamp,
  jsonbProblem,
  laneStoreProblem,
  MAX_DATA_DEPTH,
  STORE_RE,
  TERMINAL_RE,
} from "./validate.ts";

const base = {
  messageId: "6F1C1D2E-1111-4A4A-8B8B-000000000001",
  storeId: "store-1",
  terminalId: "L1",
  seq: 1,
  topic: "transaction",
  priority: "critical",
  data: { total: 9.99, currency: "EUR", items: [], transaction_id: "T1" },
  timestamp: "2026-11-22T03:57:20.123Z",
  peerAckedAt: "2026-11-22T03:57:20.456+01:00",
};

function rejects(over: Record<string, unknown>, pattern: RegExp) {
  const r = checkMessage({ ...base, ...over });
  assert.equal(r.ok, false, JSON.stringify(over));
  if (!r.ok) assert.match(r.error, pattern, JSON.stringify(over));
}

Deno.test("a complete valid message is accepted and normalized", () => {
  const r = checkMessage(base);
  assert.ok(r.ok);
  assert.deepEqual(r.message, {
    message_id: base.messageId,
    store_id: "store-1",
    terminal_id: "L1",
    seq: 1,
    topic: "transaction",
    priority: "critical",
    data: base.data,
    timestamp: base.timestamp,
    peer_acked_at: base.peerAckedAt,
    uploaded_by: null,
  });
  const noPeer = checkMessage({ ...base, peerAckedAt: undefined });
  assert.ok(noPeer.ok && noPeer.message.peer_acked_at === null);
  const nullPeer = checkMessage({ ...base, peerAckedAt: null });
  assert.ok(nullPeer.ok && nullPeer.message.peer_acked_at === null);
});

Deno.test("envelope fields are checked strictly", () => {
  rejects({ messageId: "6f1c1d2e11114a4a8b8b000000000001" }, /messageId/);
  rejects({ messageId: 42 }, /messageId/);
  rejects({ storeId: "" }, /storeId/);
  rejects({ storeId: "s".repeat(65) }, /storeId/);
  rejects({ storeId: "store 1" }, /storeId/);
  rejects({ terminalId: "L".repeat(33) }, /terminalId/);
  rejects({ terminalId: "L/1" }, /terminalId/);
  rejects({ seq: 0 }, /seq/);
  rejects({ seq: 1.5 }, /seq/);
  rejects({ seq: "1" }, /seq/);
  rejects({ seq: 2 ** 53 }, /seq/);
  rejects({ topic: "Transaction" }, /topic/);
  rejects({ topic: "t".repeat(65) }, /topic/);
  rejects({ priority: "NORMAL" }, /priority/);
  rejects({ priority: undefined }, /priority/);
  rejects({ data: [] }, /data must be a JSON object/);
  rejects({ data: null }, /data must be a JSON object/);
  rejects({ timestamp: "2026-11-22 03:57:20Z" }, /timestamp/);
  rejects({ timestamp: "2026-11-22T03:57:20" }, /timestamp/);
  rejects({ timestamp: 1763783840 }, /timestamp/);
  rejects({ peerAckedAt: "yesterday" }, /peerAckedAt/);
  assert.ok(
    checkMessage({ ...base, storeId: "s".repeat(64), terminalId: "T".repeat(32), topic: "a.b-c_9" }).ok,
  );
});

Deno.test("failures keep the ids they could read, for the result and the sync log", () => {
  const r = checkMessage({ ...base, seq: -1 });
  assert.ok(!r.ok);
  assert.deepEqual([r.messageId, r.storeId, r.terminalId], [base.messageId, "store-1", "L1"]);
  const bad = checkMessage({ messageId: 7, storeId: "bad store", terminalId: "L1" });
  assert.ok(!bad.ok);
  assert.deepEqual([bad.messageId, bad.storeId, bad.terminalId], [null, null, "L1"]);
  const notObject = checkMessage([1]);
  assert.ok(!notObject.ok && notObject.messageId === null);
});

Deno.test("uploadedBy: a covering lane's id, absent or null for the origin's own upload", () => {
  const covered = checkMessage({ ...base, uploadedBy: "L2" });
  assert.ok(covered.ok && covered.message.uploaded_by === "L2");
  assert.ok(checkMessage({ ...base, uploadedBy: "T".repeat(32) }).ok);
  const own = checkMessage({ ...base, uploadedBy: null });
  assert.ok(own.ok && own.message.uploaded_by === null);
  const absent = checkMessage(base);
  assert.ok(absent.ok && absent.message.uploaded_by === null);

  const syntax = /^uploadedBy must match \[A-Za-z0-9_-\]\{1,32\}, or be absent or null$/;
  for (const bad of ["", "L 2", "L/2", "T".repeat(33), 2, true, ["L2"], { id: "L2" }]) {
    rejects({ uploadedBy: bad }, syntax);
  }
  rejects({ uploadedBy: "L1" }, /^uploadedBy must differ from terminalId/);
  // Case matters, as for terminal ids everywhere: "l1" is another lane.
  assert.ok(checkMessage({ ...base, uploadedBy: "l1" }).ok);
});

Deno.test("a failure keeps a valid uploadedBy for the sync log, never an invalid one", () => {
  const r = checkMessage({ ...base, uploadedBy: "L2", seq: 0 });
  assert.ok(!r.ok);
  assert.deepEqual([r.terminalId, r.uploadedBy], ["L1", "L2"]);
  const bad = checkMessage({ ...base, uploadedBy: "L 2" });
  assert.ok(!bad.ok && bad.uploadedBy === null);
  const same = checkMessage({ ...base, uploadedBy: "L1" });
  assert.ok(!same.ok && same.uploadedBy === null);
});

Deno.test("ISO-8601 timestamps: real instants with a zone", () => {
  for (
    const ok of [
      "2026-11-22T03:57:20Z",
      "2026-11-22T03:57:20.1Z",
      "2024-02-29T23:59:59.999999999+14:00",
      "2026-01-01T00:00:00-05:30",
    ]
  ) {
    assert.ok(isIsoTimestamp(ok), ok);
  }
  for (
    const bad of [
      "2026-02-29T00:00:00Z",
      "2026-13-01T00:00:00Z",
      "2026-11-22T24:00:00Z",
      "2026-11-22T03:60:00Z",
      "2026-11-22T03:57:20+25:00",
      "0000-01-01T00:00:00Z",
      "2026-11-22T03:57:20z",
      "2026-11-22",
    ]
  ) {
    assert.ok(!isIsoTimestamp(bad), bad);
  }
});

Deno.test("topic schemas", () => {
  rejects({ data: {} }, /transaction: data.total must be a number/);
  rejects({ data: { total: "9.99" } }, /data.total/);
  rejects({ data: { total: 1, currency: 978 } }, /data.currency/);
  rejects({ data: { total: 1, items: {} } }, /data.items/);
  rejects({ data: { total: 1, transaction_id: 5 } }, /data.transaction_id/);
  assert.ok(checkMessage({ ...base, data: { total: -3, currency: null } }).ok);

  const inv = { ...base, topic: "inventory" };
  assert.ok(checkMessage({ ...inv, data: { sku: "A", delta: -2, reason: "sale" } }).ok);
  assert.ok(checkMessage({ ...inv, data: { sku: "A", delta: -(2 ** 31 - 1) } }).ok);
  for (
    const data of [
      { delta: 1 },
      { sku: "", delta: 1 },
      { sku: "A", delta: 0 },
      { sku: "A", delta: 1.5 },
      { sku: "A", delta: "1" },
      { sku: "A", delta: 1, reason: 3 },
      { sku: "A", delta: 2 ** 31 },
    ]
  ) {
    const r = checkMessage({ ...inv, data });
    assert.ok(!r.ok && r.error.startsWith("inventory: "), JSON.stringify(data));
  }

  const cust = { ...base, topic: "customer" };
  assert.ok(checkMessage({ ...cust, data: { customer_id: "C1", version: 1, name: "Ann" } }).ok);
  for (
    const data of [{ version: 1 }, { customer_id: 1, version: 1 }, { customer_id: "C1" }, {
      customer_id: "C1",
      version: 0,
    }, { customer_id: "C1", version: 1.5 }]
  ) {
    const r = checkMessage({ ...cust, data });
    assert.ok(!r.ok && r.error.startsWith("customer: "), JSON.stringify(data));
  }

  // Other topics: any object.
  assert.ok(checkMessage({ ...base, topic: "price.update", data: { anything: [1, { x: null }] } }).ok);
  assert.ok(checkMessage({ ...base, topic: "constructor", data: {} }).ok);
});

Deno.test("customer tombstones: deleted is a boolean or absent", () => {
  const cust = { ...base, topic: "customer" };
  for (
    const data of [{ customer_id: "C1", version: 2, deleted: true }, {
      customer_id: "C1",
      version: 2,
      deleted: false,
    }]
  ) {
    const r = checkMessage({ ...cust, data });
    assert.ok(r.ok, JSON.stringify(data));
    if (r.ok) assert.deepEqual(r.message.data, data, "data is kept as sent");
  }
  // A tombstone may carry the customer's other fields too.
  assert.ok(
    checkMessage({ ...cust, data: { customer_id: "C1", version: 3, deleted: true, name: "Ann" } }).ok,
  );
  for (const deleted of [null, "true", 1, 0, "yes", [], {}, [true]]) {
    const r = checkMessage({ ...cust, data: { customer_id: "C1", version: 2, deleted } });
    assert.ok(!r.ok, JSON.stringify(deleted));
    if (!r.ok) {
      assert.equal(
        r.error,
        "customer: data.deleted must be a boolean (true: the customer was deleted) or absent",
      );
    }
  }
  // The other checks come first: a tombstone still needs its id and version.
  const noVersion = checkMessage({ ...cust, data: { customer_id: "C1", deleted: true } });
  assert.ok(!noVersion.ok && noVersion.error === "customer: data.version must be an integer >= 1");
  const noId = checkMessage({ ...cust, data: { version: 1, deleted: true } });
  assert.ok(!noId.ok && noId.error === "customer: data.customer_id must be a non-empty string");
  // Other topics may use a field named deleted freely.
  assert.ok(checkMessage({ ...base, topic: "note", data: { deleted: "yes" } }).ok);
});

Deno.test("data that PostgreSQL jsonb cannot hold is refused up front", () => {
  assert.equal(jsonbProblem({ a: ["fine", 1, null, { b: true }] }), null);
  assert.match(jsonbProblem({ a: "x\u0000y" })!, /NUL/);
  assert.match(jsonbProblem({ ["k\u0000"]: 1 })!, /key/);
  assert.match(jsonbProblem({ a: ["\ud800"] })!, /surrogate/);
  assert.equal(jsonbProblem({ a: "\ud83d\ude00" }), null);
  assert.match(jsonbProblem({ a: Infinity })!, /out of range/);
  let deep: unknown = {};
  for (let i = 0; i < MAX_DATA_DEPTH; i++) deep = [deep];
  assert.match(jsonbProblem(deep)!, /nested deeper/);
  let ok: unknown = {};
  for (let i = 1; i < MAX_DATA_DEPTH; i++) ok = [ok];
  assert.equal(jsonbProblem(ok), null);
  // Nesting far beyond any stack does not throw.
  let hostile: unknown = 1;
  for (let i = 0; i < 200_000; i++) hostile = [hostile];
  assert.match(jsonbProblem(hostile)!, /nested deeper/);
});

Deno.test("envelope: an object with a messages array of at most 1000", () => {
  assert.deepEqual(checkEnvelope({ messages: [] }), { ok: true, messages: [], lane: null });
  assert.ok(checkEnvelope({ messages: new Array(1000).fill({}) }).ok);
  for (const body of [null, [], "x", {}, { messages: {} }, { messages: new Array(1001).fill({}) }]) {
    assert.equal(checkEnvelope(body).ok, false, JSON.stringify(body)?.slice(0, 30));
  }
});

Deno.test("checkLaneQuery: exactly storeId and terminalId, once each, with the message syntax", () => {
  const q = (s: string) => checkLaneQuery(new URLSearchParams(s));
  assert.deepEqual(q("storeId=store-1&terminalId=L1"), { ok: true, storeId: "store-1", terminalId: "L1" });
  assert.deepEqual(q("terminalId=L_1&storeId=S"), { ok: true, storeId: "S", terminalId: "L_1" });
  assert.deepEqual(q("terminalId=L1"), { ok: false, error: "query parameter storeId is missing" });
  assert.deepEqual(q("storeId=S"), { ok: false, error: "query parameter terminalId is missing" });
  assert.deepEqual(q("storeId=S&storeId=T&terminalId=L1"), {
    ok: false,
    error: "query parameter storeId is repeated",
  });
  assert.deepEqual(q("storeId=S&terminalId=L1&terminalId=L1"), {
    ok: false,
    error: "query parameter terminalId is repeated",
  });
  assert.deepEqual(q("storeId=S%2F1&terminalId=L1"), {
    ok: false,
    error: "storeId must match [A-Za-z0-9_-]{1,64}",
  });
  assert.deepEqual(q(`storeId=S&terminalId=${"x".repeat(33)}`), {
    ok: false,
    error: "terminalId must match [A-Za-z0-9_-]{1,32}",
  });
  assert.deepEqual(q("storeId=S&terminalId=L1&b=1&a=2&a=3"), {
    ok: false,
    error: 'unknown query parameter(s) "b", "a"; expected storeId and terminalId',
  });
  // The same syntax as a message's ids.
  for (const id of ["a", "A-b_9", "x".repeat(32)]) assert.ok(STORE_RE.test(id) && TERMINAL_RE.test(id), id);
  assert.ok(STORE_RE.test("x".repeat(64)) && !TERMINAL_RE.test("x".repeat(33)));
  for (const id of ["", "a b", "a.b", "é", "a\n", "x".repeat(65)]) assert.ok(!STORE_RE.test(id), id);
  assert.equal(checkMessage({ ...base, terminalId: "x".repeat(33) }).ok, false);
});

// The lane object of the contract (docs/cloud.md, "The lane object").
const lane = {
  storeId: "store-1",
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
};

function laneRejects(over: Record<string, unknown>, error: string | RegExp) {
  const r = checkLane({ ...lane, ...over });
  assert.equal(r.ok, false, JSON.stringify(over));
  if (!r.ok) {
    if (typeof error === "string") assert.equal(r.error, error, JSON.stringify(over));
    else assert.match(r.error, error, JSON.stringify(over));
  }
}

Deno.test("lane: the contract's object is accepted and normalized", () => {
  assert.deepEqual(checkLane(lane), {
    ok: true,
    lane: {
      store_id: "store-1",
      terminal_id: "L1",
      agent_version: "0.1.0",
      at_ms: 1764633600000,
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
    },
  });
  // Ages null (nothing pending / peer_ack), zeros, the largest exact integer, 64 characters.
  const r = checkLane({
    ...lane,
    oldestPendingAgeMs: null,
    oldestPeerAckAgeMs: null,
    at: 0,
    pending: 0,
    lastSeq: 2 ** 53 - 1,
    agentVersion: "é".repeat(64),
  });
  assert.ok(r.ok);
  if (r.ok) {
    assert.equal(r.lane.oldest_pending_age_ms, null);
    assert.equal(r.lane.oldest_peer_ack_age_ms, null);
    assert.equal(r.lane.last_seq, 2 ** 53 - 1);
  }
  assert.ok(checkLane({ ...lane, agentVersion: "1.2.3-rc.1+g0a1b2c3 (debian)" }).ok);
});

Deno.test("lane: every field is required, no other field, each error names the field", () => {
  laneRejects({ extra: 1 }, 'lane has unknown field(s) "extra"');
  laneRejects({ store_id: "store-1" }, 'lane has unknown field(s) "store_id"');
  for (const field of Object.keys(lane)) {
    const copy: Record<string, unknown> = { ...lane };
    delete copy[field];
    const r = checkLane(copy);
    assert.deepEqual(r, { ok: false, error: `lane.${field} is missing` });
  }
  for (const bad of [null, [], "lane", 1, true]) {
    assert.deepEqual(checkLane(bad), { ok: false, error: "lane must be a JSON object, or absent" });
  }
});

Deno.test("lane: ids of the message syntax, agentVersion 1..64 characters", () => {
  for (const storeId of ["", "a b", "s/1", "x".repeat(65), 1, null]) {
    laneRejects({ storeId }, "lane.storeId must match [A-Za-z0-9_-]{1,64}");
  }
  for (const terminalId of ["", "L 1", "x".repeat(33), 7, null]) {
    laneRejects({ terminalId }, "lane.terminalId must match [A-Za-z0-9_-]{1,32}");
  }
  for (const agentVersion of ["", "x".repeat(65), 1, null, "a\u0000", "a\nb", "\ud800", ["0.1.0"]]) {
    laneRejects({ agentVersion }, /^lane\.agentVersion must be a string of 1\.\.64 characters/);
  }
});

Deno.test("lane: counts are integers >= 0 (exact), the ages too or null", () => {
  const counts = [
    "at",
    "pending",
    "peerAck",
    "cloudAck",
    "failed",
    "lastSeq",
    "peersUp",
    "peersConfigured",
    "retryDepth",
  ];
  for (const field of counts) {
    for (const v of [-1, 1.5, "3", null, 2 ** 53, Infinity, true, {}]) {
      laneRejects({ [field]: v }, `lane.${field} must be an integer >= 0`);
    }
  }
  for (const field of ["oldestPendingAgeMs", "oldestPeerAckAgeMs"]) {
    for (const v of [-1, 0.5, "10", 2 ** 53, false, []]) {
      laneRejects({ [field]: v }, `lane.${field} must be an integer >= 0, or null`);
    }
  }
});

Deno.test("envelope: lane absent or null is none; a malformed lane fails the envelope", () => {
  assert.deepEqual(checkEnvelope({ messages: [], lane: null }), { ok: true, messages: [], lane: null });
  const r = checkEnvelope({ messages: [], lane });
  assert.ok(r.ok && r.lane?.terminal_id === "L1");
  assert.deepEqual(checkEnvelope({ messages: [], lane: { ...lane, pending: -1 } }), {
    ok: false,
    error: "lane.pending must be an integer >= 0",
  });
  assert.deepEqual(checkEnvelope({ messages: [], lane: "L1" }), {
    ok: false,
    error: "lane must be a JSON object, or absent",
  });
  // The messages array is checked first, as before.
  assert.deepEqual(checkEnvelope({ lane }), { ok: false, error: "body.messages must be an array" });
});

Deno.test("laneStoreProblem: every message with a valid storeId must be of the lane's store", () => {
  const l = checkLane(lane);
  assert.ok(l.ok);
  if (!l.ok) return;
  const own = checkMessage(base);
  const covered = checkMessage({ ...base, terminalId: "L3", uploadedBy: "L1" });
  const bad = checkMessage({ ...base, seq: 0 });
  const unnamed = checkMessage({ ...base, storeId: "no/store" });
  assert.equal(laneStoreProblem(l.lane, []), null);
  assert.equal(laneStoreProblem(l.lane, [own, covered, bad, unnamed]), null);
  const other = checkMessage({ ...base, storeId: "store-2" });
  const otherBad = checkMessage({ ...base, storeId: "store-2", seq: 0 });
  assert.equal(
    laneStoreProblem(l.lane, [own, other]),
    "lane.storeId must equal the storeId of every message (messages[1] differs)",
  );
  assert.equal(
    laneStoreProblem(l.lane, [otherBad]),
    "lane.storeId must equal the storeId of every message (messages[0] differs)",
  );
});
