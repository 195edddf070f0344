// Unit tests of the HTTP layer with a fake database: no server, no PostgreSQL.

import assert from "node:assert/strict";
import type { Result } from "./db.ts";
import { createHandler, type HandlerOptions } from "./handler.ts";
import type { Checked } from "./validate.ts";

const KEY = "test-secret-key";

function handler(over: Partial<HandlerOptions> = {}) {
  const calls: Checked[][] = [];
  const logs: Array<Record<string, unknown>> = [];
  const h = createHandler({
    serviceKey: KEY,
    maxBodyBytes: 1000,
    apply: (_id, checked) => {
      calls.push(checked);
      return Promise.resolve(
        checked.map((c): Result =>
          c.ok
            ? { messageId: c.message.message_id, status: "stored" }
            : { messageId: c.messageId, status: "rejected", error: c.error }
        ),
      );
    },
    isUnavailable: (err) => (err as { code?: string }).code === "ECONNREFUSED",
    log: (entry) => logs.push(entry),
    ...over,
  });
  return { h, calls, logs };
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
  const get = await h(request("/sync-pos-message", { method: "GET", key: null }));
  assert.equal(get.status, 405);
  await get.body?.cancel();
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
