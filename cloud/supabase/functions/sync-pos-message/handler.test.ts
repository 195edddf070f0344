// Unit tests of the HTTP layer with a fake database: no server, no PostgreSQL.

import assert from "node:assert/strict";
import type { Result } from "./db.ts";
import { createHandler, type HandlerOptions } from "./handler.ts";
import type { Checked, ValidLane } from "./validate.ts";

const KEY = "test-secret-key";

function handler(over: Partial<HandlerOptions> = {}) {
  const calls: Checked[][] = [];
  const lanes: Array<ValidLane | null> = [];
  const lookups: Array<[string, string]> = [];
  const logs: Array<Record<string, unknown>> = [];
  const h = createHandler({
    serviceKeys: [KEY],
    maxBodyBytes: 1000,
    apply: (_id, checked, lane) => {
      calls.push(checked);
      lanes.push(lane);
      return Promise.resolve(
        checked.map((c): Result =>
          c.ok
            ? { messageId: c.message.message_id, status: "stored" }
            : { messageId: c.messageId, status: "rejected", error: c.error }
        ),
      );
    },
    highestSeq: (storeId, terminalId) => {
      lookups.push([storeId, terminalId]);
      return Promise.resolve(terminalId === "L1" ? 42 : 0);
    },
    isUnavailable: (err) => (err as { code?: string }).code === "ECONNREFUSED",
    log: (entry) => logs.push(entry),
    ...over,
  });
  return { h, calls, lanes, lookups, logs };
}

function request(path: string, init: RequestInit & { key?: string | null } = {}): Request {
  const headers = new Headers(init.headers);
  if (init.key !== null) headers.set("apikey", init.key ?? KEY);
  return new Request(`http://127.0.0.1${path}`, { method: "POST", ...init, headers });
}

const valid = {
  messageId: "6f1c1d2e-1111-4a4a-8b8b-000000000001",
  storeId: "store-1",
  terminalId: "L1",
  seq: 1,
  topic: "note",
  priority: "normal",
  data: {},
  timestamp: "2026-11-22T03:57:20.123Z",
};

Deno.test("routes: /functions/v1/sync-pos-message and the hosted /sync-pos-message", async () => {
  const { h } = handler();
  for (const path of ["/functions/v1/sync-pos-message", "/sync-pos-message", "/sync-pos-message/"]) {
    const res = await h(request(path, { body: '{"messages":[]}' }));
    assert.equal(res.status, 200, path);
    assert.deepEqual(await res.json(), { results: [] });
    assert.ok(res.headers.get("x-request-id"));
  }
  for (const path of ["/", "/functions/v1/other", "/sync-pos-message/x"]) {
    const res = await h(request(path, { body: "{}" }));
    assert.equal(res.status, 404, path);
    await res.body?.cancel();
  }
});

Deno.test("405 before authentication, 401 before reading the body", async () => {
  const { h, calls } = handler();
  for (const method of ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]) {
    const res = await h(request("/sync-pos-message", { method, key: null }));
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.get("allow"), "GET, POST", method);
    if (method === "HEAD") await res.body?.cancel();
    else assert.equal((await res.json()).error, "method not allowed; use GET or POST");
  }
  for (const key of [null, "", "wrong", KEY.slice(0, -1), `${KEY} `.repeat(2)]) {
    const res = await h(request("/sync-pos-message", { key, body: "{" }));
    assert.equal(res.status, 401, `key ${JSON.stringify(key)}`);
    const body = await res.json();
    assert.ok(!JSON.stringify(body).includes(KEY));
  }
  const bearer = await h(request("/sync-pos-message", {
    key: null,
    headers: { authorization: `Bearer ${KEY}` },
    body: '{"messages":[]}',
  }));
  assert.equal(bearer.status, 200);
  await bearer.body?.cancel();
  // A wrong apikey next to the right bearer (or the reverse) still authenticates.
  const mixed = await h(request("/sync-pos-message", {
    key: "anon-key",
    headers: { authorization: `Bearer ${KEY}` },
    body: '{"messages":[]}',
  }));
  assert.equal(mixed.status, 200);
  await mixed.body?.cancel();
  assert.equal(calls.length, 2);
});

Deno.test("every accepted key authenticates (legacy service_role JWT and sb_secret_ keys)", async () => {
  const legacy = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl";
  const secret = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz";
  const { h, calls } = handler({ serviceKeys: [legacy, secret] });
  for (const key of [legacy, secret]) {
    const res = await h(request("/sync-pos-message", { key, body: '{"messages":[]}' }));
    assert.equal(res.status, 200, key);
    await res.body?.cancel();
  }
  const wrong = await h(request("/sync-pos-message", { key: KEY, body: '{"messages":[]}' }));
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  assert.equal(calls.length, 2);
});

Deno.test("413 from Content-Length and from counted bytes; the limit itself is fine", async () => {
  const { h, calls } = handler();
  const atLimit = JSON.stringify({ messages: [] }).padEnd(1000, " ");
  const ok = await h(request("/sync-pos-message", { body: atLimit }));
  assert.equal(ok.status, 200);
  await ok.body?.cancel();

  const over = await h(request("/sync-pos-message", { body: atLimit + " " }));
  assert.equal(over.status, 413);
  await over.body?.cancel();

  // A declared size over the limit is refused whatever the body.
  const declared = await h(
    request("/sync-pos-message", { headers: { "content-length": "1001" }, body: "{}" }),
  );
  assert.equal(declared.status, 413);
  await declared.body?.cancel();

  // No Content-Length (streamed body): counted while reading.
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(300).fill(0x20));
      c.close();
    },
  });
  const streamed = await h(request("/sync-pos-message", { body: stream }));
  assert.equal(streamed.status, 413);
  await streamed.body?.cancel();
  assert.equal(calls.length, 1);
});

Deno.test("400 for bodies that are not a valid envelope", async () => {
  const { h, calls } = handler({ maxBodyBytes: 1_000_000 });
  for (
    const body of [
      "",
      "{",
      "null",
      "[]",
      '{"messages":1}',
      JSON.stringify({ messages: new Array(1001).fill(0) }),
    ]
  ) {
    const res = await h(request("/sync-pos-message", { body }));
    assert.equal(res.status, 400, body.slice(0, 20));
    assert.equal(typeof (await res.json()).error, "string");
  }
  const badUtf8 = await h(request("/sync-pos-message", { body: new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]) }));
  assert.equal(badUtf8.status, 400);
  assert.equal((await badUtf8.json()).error, "body is not valid UTF-8");
  assert.equal(calls.length, 0);
});

Deno.test("each message is checked on its own and results keep the input order", async () => {
  const { h, calls } = handler();
  const res = await h(request("/sync-pos-message", {
    body: JSON.stringify({ messages: [valid, { ...valid, seq: "1" }, 5] }),
  }));
  assert.equal(res.status, 200);
  const { results } = await res.json();
  assert.deepEqual(results.map((r: Result) => r.status), ["stored", "rejected", "rejected"]);
  assert.equal(results[1].error, "seq must be an integer >= 1");
  assert.equal(results[2].messageId, null);
  assert.equal(calls[0].length, 3);
});

Deno.test("uploadedBy reaches the database; a bad one is rejected with its reason; the log counts covered", async () => {
  const { h, calls, logs } = handler();
  const covered = { ...valid, uploadedBy: "L2" };
  const self = { ...valid, messageId: "6f1c1d2e-1111-4a4a-8b8b-000000000002", seq: 2, uploadedBy: "L1" };
  const res = await h(
    request("/sync-pos-message", { body: JSON.stringify({ messages: [covered, self, valid] }) }),
  );
  assert.equal(res.status, 200);
  const { results } = await res.json();
  assert.deepEqual(results.map((r: Result) => r.status), ["stored", "rejected", "stored"]);
  assert.match(results[1].error, /^uploadedBy must differ from terminalId/);
  const [first, , third] = calls[0];
  assert.ok(first.ok && first.message.uploaded_by === "L2");
  assert.ok(third.ok && third.message.uploaded_by === null);
  assert.equal(logs.at(-1)?.covered, 1);
});

Deno.test("database errors: 503 when unavailable, 500 otherwise; details only in the log", async () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
  for (const [err, status] of [[refused, 503], [new Error("boom"), 500]] as const) {
    const { h, logs } = handler({ apply: () => Promise.reject(err) });
    const res = await h(request("/sync-pos-message", { body: JSON.stringify({ messages: [valid] }) }));
    assert.equal(res.status, status);
    const body = await res.json();
    assert.ok(!JSON.stringify(body).includes(err.message));
    assert.equal(logs.at(-1)?.error, err.message);
    assert.ok(!JSON.stringify(logs).includes(KEY));
  }
});

// GET: the highest seq the cloud holds of one lane.

const lane = "/functions/v1/sync-pos-message";

Deno.test("GET answers the lane's highest seq on both routes, 0 for a lane the cloud lacks", async () => {
  const { h, calls, lookups, logs } = handler();
  for (const path of [lane, "/sync-pos-message", "/sync-pos-message/"]) {
    const res = await h(request(`${path}?storeId=store-1&terminalId=L1`, { method: "GET" }));
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.ok(res.headers.get("x-request-id"));
    assert.deepEqual(await res.json(), { storeId: "store-1", terminalId: "L1", highestSeq: 42 });
  }
  // Parameter order does not matter; the values are passed through as given.
  const other = await h(request(`${lane}?terminalId=L_2-x&storeId=S-9`, { method: "GET" }));
  assert.equal(other.status, 200);
  assert.deepEqual(await other.json(), { storeId: "S-9", terminalId: "L_2-x", highestSeq: 0 });
  assert.deepEqual(lookups.at(-1), ["S-9", "L_2-x"]);
  assert.equal(lookups.length, 4);
  assert.equal(calls.length, 0, "a GET never applies anything");
  const entry = logs.at(-1)!;
  assert.equal(entry.method, "GET");
  assert.equal(entry.status, 200);
  assert.equal(entry.storeId, "S-9");
  assert.equal(entry.terminalId, "L_2-x");
  assert.equal(entry.highestSeq, 0);
  assert.equal(entry.request_id, other.headers.get("x-request-id"));
  assert.equal(logs.length, 4, "one log line per request");
  assert.ok(!JSON.stringify(logs).includes(KEY));
});

Deno.test("GET: 401 before the query is parsed or the database asked; bearer works too", async () => {
  const { h, lookups, logs } = handler();
  for (const query of ["?storeId=store-1&terminalId=L1", "", "?bogus=1", "?storeId=bad%20id"]) {
    for (const key of [null, "", "wrong"]) {
      const res = await h(request(`${lane}${query}`, { method: "GET", key }));
      assert.equal(res.status, 401, `${query} key ${JSON.stringify(key)}`);
      assert.match((await res.json()).error, /service key/);
    }
  }
  assert.equal(lookups.length, 0);
  const bearer = await h(request(`${lane}?storeId=store-1&terminalId=L1`, {
    method: "GET",
    key: null,
    headers: { authorization: `Bearer ${KEY}` },
  }));
  assert.equal(bearer.status, 200);
  assert.equal((await bearer.json()).highestSeq, 42);
  assert.ok(!JSON.stringify(logs).includes(KEY));
});

Deno.test("GET: 400 for a missing, repeated, invalid or unknown query parameter", async () => {
  const { h, lookups, logs } = handler();
  const long = (n: number) => "a".repeat(n);
  const cases: Array<[string, RegExp]> = [
    ["", /storeId is missing/],
    ["?terminalId=L1", /storeId is missing/],
    ["?storeId=store-1", /terminalId is missing/],
    ["?storeId=store-1&storeId=store-1&terminalId=L1", /storeId is repeated/],
    ["?storeId=store-1&terminalId=L1&terminalId=L2", /terminalId is repeated/],
    ["?storeId=&terminalId=L1", /^storeId must match/],
    ["?storeId=store-1&terminalId=", /^terminalId must match/],
    ["?storeId=store%201&terminalId=L1", /^storeId must match/],
    ["?storeId=store+1&terminalId=L1", /^storeId must match/],
    ["?storeId=store.1&terminalId=L1", /^storeId must match/],
    ["?storeId=store-1&terminalId=L%0A1", /^terminalId must match/],
    ["?storeId=store-1&terminalId=L1%0A", /^terminalId must match/],
    [`?storeId=${long(65)}&terminalId=L1`, /^storeId must match/],
    [`?storeId=store-1&terminalId=${long(33)}`, /^terminalId must match/],
    ["?storeId=store-1&terminalId=L1&seq=3", /unknown query parameter.*"seq"/],
    ["?storeId=store-1&terminalId=L1&apikey=secret-value", /unknown query parameter.*"apikey"/],
    ["?storeid=store-1&terminalId=L1", /unknown query parameter.*"storeid"/],
    ["?storeId=store-1&terminalId=L1&=x", /unknown query parameter.*""/],
  ];
  for (const [query, error] of cases) {
    const res = await h(request(`${lane}${query}`, { method: "GET" }));
    assert.equal(res.status, 400, query);
    const body = await res.json();
    assert.deepEqual(Object.keys(body), ["error"], query);
    assert.match(body.error, error, query);
    assert.ok(!body.error.includes("secret-value"), "values are never echoed");
  }
  // The longest valid ids are fine.
  const edge = await h(request(`${lane}?storeId=${long(64)}&terminalId=${long(32)}`, { method: "GET" }));
  assert.equal(edge.status, 200);
  await edge.body?.cancel();
  assert.equal(lookups.length, 1, "the database is asked only for a valid query");
  assert.equal(logs.length, cases.length + 1);
  assert.ok(logs.slice(0, -1).every((l) => l.status === 400 && typeof l.error === "string"));
});

Deno.test("GET database errors: 503 when unavailable, 500 otherwise and for a bad count", async () => {
  const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
  const cases: Array<[HandlerOptions["highestSeq"], number, string]> = [
    [() => Promise.reject(refused), 503, refused.message],
    [() => Promise.reject(new Error("boom")), 500, "boom"],
    [() => Promise.resolve(-1), 500, "highestSeq gave -1, not an integer >= 0"],
    [() => Promise.resolve(1.5), 500, "highestSeq gave 1.5, not an integer >= 0"],
    [() => Promise.resolve(2 ** 53), 500, `highestSeq gave ${2 ** 53}, not an integer >= 0`],
  ];
  for (const [highestSeq, status, message] of cases) {
    const { h, logs } = handler({ highestSeq });
    const res = await h(request(`${lane}?storeId=store-1&terminalId=L1`, { method: "GET" }));
    assert.equal(res.status, status, message);
    const body = await res.json();
    assert.deepEqual(Object.keys(body), ["error"]);
    assert.equal(
      body.error,
      status === 503 ? "database unavailable, retry later" : "internal error, retry later",
    );
    assert.ok(!JSON.stringify(body).includes(message));
    assert.equal(logs.length, 1);
    assert.equal(logs[0].status, status);
    assert.equal(logs[0].error, message);
    assert.equal(logs[0].storeId, "store-1");
    assert.equal(logs[0].terminalId, "L1");
    assert.equal(logs[0].highestSeq, undefined);
  }
});

Deno.test("a POST with or without a query string is an upload, never a lookup", async () => {
  const { h, calls, lookups } = handler();
  for (const query of ["", "?storeId=store-1&terminalId=L1", "?bogus"]) {
    const res = await h(request(`${lane}${query}`, { body: JSON.stringify({ messages: [valid] }) }));
    assert.equal(res.status, 200, query);
    assert.deepEqual(await res.json(), { results: [{ messageId: valid.messageId, status: "stored" }] });
  }
  assert.equal(calls.length, 3);
  assert.equal(lookups.length, 0);
});

const summary = {
  storeId: "store-1",
  terminalId: "L1",
  agentVersion: "0.1.0",
  at: 1764633600000,
  pending: 0,
  peerAck: 0,
  cloudAck: 5,
  failed: 0,
  oldestPendingAgeMs: null,
  oldestPeerAckAgeMs: null,
  lastSeq: 5,
  peersUp: 1,
  peersConfigured: 1,
  retryDepth: 0,
};

Deno.test("lane: a heartbeat (no messages) and a batch hand the lane to the database; the log names it", async () => {
  const { h, calls, lanes, logs } = handler();
  const beat = await h(
    request("/sync-pos-message", { body: JSON.stringify({ messages: [], lane: summary }) }),
  );
  assert.equal(beat.status, 200);
  assert.deepEqual(await beat.json(), { results: [] });
  assert.deepEqual(calls[0], []);
  assert.equal(lanes[0]?.terminal_id, "L1");
  assert.equal(lanes[0]?.oldest_pending_age_ms, null);
  assert.equal(logs.at(-1)?.lane, "L1");
  assert.equal(logs.at(-1)?.heartbeat, true);

  const batch = await h(
    request("/sync-pos-message", { body: JSON.stringify({ messages: [valid], lane: summary }) }),
  );
  assert.equal(batch.status, 200);
  assert.equal((await batch.json()).results[0].status, "stored");
  assert.equal(lanes[1]?.cloud_ack, 5);
  assert.equal(logs.at(-1)?.heartbeat, false);

  // Without lane: as before (the database call gets null, answers nothing to apply).
  const empty = await h(request("/sync-pos-message", { body: '{"messages":[]}' }));
  assert.deepEqual(await empty.json(), { results: [] });
  assert.equal(lanes[2], null);
  assert.equal(logs.at(-1)?.lane, undefined);
});

Deno.test("lane: malformed, or of another store than a message: 400 naming the field, nothing applied", async () => {
  const { h, calls, logs } = handler();
  const cases: Array<[unknown, unknown[], string]> = [
    [{ ...summary, retryDepth: -1 }, [], "lane.retryDepth must be an integer >= 0"],
    [{ ...summary, retryDepth: -1 }, [valid], "lane.retryDepth must be an integer >= 0"],
    [{ ...summary, colour: "red" }, [valid], 'lane has unknown field(s) "colour"'],
    [{ ...summary, terminalId: "L 1" }, [valid], "lane.terminalId must match [A-Za-z0-9_-]{1,32}"],
    ["L1", [valid], "lane must be a JSON object, or absent"],
    [
      { ...summary, storeId: "store-2" },
      [valid],
      "lane.storeId must equal the storeId of every message (messages[0] differs)",
    ],
  ];
  for (const [l, messages, error] of cases) {
    const res = await h(request("/sync-pos-message", { body: JSON.stringify({ messages, lane: l }) }));
    assert.equal(res.status, 400, error);
    assert.deepEqual(await res.json(), { error });
  }
  assert.equal(calls.length, 0, "nothing reached the database");
  assert.ok(!JSON.stringify(logs).includes(KEY));
});
