// Unit tests of the HTTP layer and the paging rules with an in-memory change log: no server,
// no PostgreSQL.

import assert from "node:assert/strict";
import { createHandler, type HandlerOptions } from "./handler.ts";
import type { ScopePage } from "./pull.ts";
import { FakeLog } from "./testing.ts";
import { encodeResume } from "./token.ts";

const KEY = "test-secret-key";

function setup(over: Partial<HandlerOptions> = {}) {
  const log = new FakeLog();
  const lines: Array<Record<string, unknown>> = [];
  const h = createHandler({
    serviceKeys: [KEY],
    read: (fn) => fn(log.reader()),
    isUnavailable: (err) => (err as { code?: string }).code === "ECONNREFUSED",
    log: (e) => lines.push(e),
    ...over,
  });
  const post = async (body: unknown, opts: { key?: string | null; raw?: string; path?: string } = {}) => {
    const headers = new Headers({ "content-type": "application/json" });
    if (opts.key !== null) headers.set("apikey", opts.key ?? KEY);
    const res = await h(
      new Request(`http://x${opts.path ?? "/functions/v1/sync-pull"}`, {
        method: "POST",
        headers,
        body: opts.raw ?? JSON.stringify(body),
      }),
    );
    return { status: res.status, body: await res.json(), headers: res.headers };
  };
  const pull = async (cursors: Record<string, unknown>, limit = 500, store = "S1") => {
    const r = await post({ store_id: store, terminal_id: "L1", limit, cursors });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body as { head: number; scopes: ScopePage[] };
  };
  const scope = (a: { scopes: ScopePage[] }, name: string) => a.scopes.find((s) => s.scope === name)!;
  return { log, lines, h, post, pull, scope };
}

Deno.test("catch-up: changes after the cursor in version order, paged, through = last version or the head", async () => {
  const { log, pull, scope } = setup();
  for (let i = 1; i <= 5; i++) log.publish(null, "prices", `k${i}`, { price_cents: i });
  log.publish(null, "other", "x", 1); // version 6: another scope moves the log's head
  const a = await pull({ prices: { through: 1 } }, 2);
  const p = scope(a, "prices");
  assert.deepEqual(p.changes.map((c) => c.version), [2, 3]);
  assert.deepEqual({ reset: p.reset, more: p.more, through: p.through, resume: p.resume }, {
    reset: false,
    more: true,
    through: 3,
    resume: "",
  });
  const b = scope(await pull({ prices: { through: 3 } }, 2), "prices");
  assert.deepEqual([b.changes.map((c) => c.version), b.more, b.through], [[4, 5], false, 6]);
  // Nothing new: answered anyway, through the head.
  const c = scope(await pull({ prices: { through: 6 } }, 2), "prices");
  assert.deepEqual([c.changes, c.more, c.through, c.head], [[], false, 6, 5]);
  assert.equal(a.head, 6);
  // The wire's field order.
  assert.deepEqual(Object.keys(p), [
    "scope",
    "reset",
    "continues_snapshot",
    "resume",
    "through",
    "head",
    "horizon",
    "more",
    "changes",
  ]);
  assert.deepEqual(Object.keys(p.changes[0]), ["key", "version", "deleted", "data", "changed_at_ms"]);
});

Deno.test("snapshot: no cursor -> live rows by key, paged with resume, continues_snapshot, through = as_of at the end", async () => {
  const { log, pull, scope } = setup();
  for (const k of ["d", "a", "c", "b", "e", "g"]) log.publish(null, "products", k, { k });
  log.publish(null, "products", "c", null); // 7, a tombstone: left out
  const first = scope(await pull({}, 2), "products");
  assert.deepEqual([first.reset, first.continues_snapshot, first.more, first.through], [
    true,
    false,
    true,
    0,
  ]);
  assert.deepEqual(first.changes.map((c) => c.key), ["a", "b"]);
  assert.notEqual(first.resume, "");
  const second = scope(await pull({ products: { through: 0, resume: first.resume } }, 2), "products");
  assert.deepEqual([second.reset, second.continues_snapshot, second.more], [false, true, true]);
  assert.deepEqual(second.changes.map((c) => c.key), ["d", "e"]);
  assert.equal(second.through, 0, "a snapshot under way completes nothing");
  // A change after as_of shows up with its higher version: fine, the lane applies if newer.
  log.publish(null, "products", "f", { k: "f" }); // 8
  const last = scope(await pull({ products: { through: 0, resume: second.resume } }, 2), "products");
  assert.deepEqual([last.reset, last.continues_snapshot, last.more, last.resume], [false, true, false, ""]);
  assert.deepEqual(last.changes.map((c) => [c.key, c.version]), [["f", 8], ["g", 6]]);
  assert.equal(last.through, 7, "as_of: the head when the snapshot started");
  // Then catch-up from as_of brings f again (and any delete after as_of).
  const after = scope(await pull({ products: { through: 7 } }, 10), "products");
  assert.deepEqual([after.reset, after.changes.map((c) => c.key), after.through], [false, ["f"], 8]);
});

Deno.test("snapshot: a key held chain-wide and for the store: the higher version; other stores never", async () => {
  const { log, pull, scope } = setup();
  log.publish(null, "prices", "a", { p: 1 }); // 1
  log.publish("S1", "prices", "a", { p: 2 }); // 2: S1's own price wins
  log.publish("S1", "prices", "b", { p: 3 }); // 3
  log.publish(null, "prices", "b", { p: 4 }); // 4: a newer chain-wide price wins
  log.publish("S1", "prices", "c", { p: 5 }); // 5
  log.publish(null, "prices", "c", { p: 6 }); // 6
  log.publish("S1", "prices", "c", null); // 7: S1 deleted c: hidden although chain-wide has it
  log.publish("S2", "prices", "d", { p: 8 }); // 8: another store
  log.publish("S2", "secret", "x", { p: 9 }); // 9: a scope only S2 has
  const a = await pull({});
  assert.deepEqual(a.scopes.map((s) => s.scope), ["prices"]);
  assert.deepEqual(scope(a, "prices").changes.map((c) => [c.key, c.data]), [["a", { p: 2 }], ["b", {
    p: 4,
  }]]);
  assert.equal(a.head, 7, "the highest version visible to S1");
  const catchUp = scope(await pull({ prices: { through: 1 } }), "prices");
  assert.deepEqual(catchUp.changes.map((c) => c.version), [2, 3, 4, 5, 6, 7]);
  assert.equal(catchUp.through, 9);
  const s2 = await pull({}, 500, "S2");
  assert.deepEqual(s2.scopes.map((s) => s.scope), ["prices", "secret"]);
});

Deno.test("compaction: a cursor below the horizon gets a snapshot; an expired resume restarts it", async () => {
  const { log, pull, scope } = setup();
  for (const k of ["a", "b", "c", "d"]) log.publish(null, "p", k, 1); // 1..4
  log.publish(null, "p", "b", null); // 5
  const first = scope(await pull({}, 2), "p"); // as_of 5
  assert.equal(first.reset, true);
  log.compact(5); // the horizon reaches as_of: the token still works
  const cont = scope(await pull({ p: { through: 0, resume: first.resume } }, 2), "p");
  assert.deepEqual([cont.reset, cont.continues_snapshot, cont.horizon], [false, true, 5]);
  log.publish(null, "p", "e", 1); // 6
  log.publish(null, "p", "a", null); // 7
  log.compact(7); // past as_of: expired
  const restarted = scope(await pull({ p: { through: 0, resume: first.resume } }, 2), "p");
  assert.deepEqual([restarted.reset, restarted.continues_snapshot, restarted.horizon], [true, false, 7]);
  assert.deepEqual(restarted.changes.map((c) => c.key), ["c", "d"]);
  const below = scope(await pull({ p: { through: 3 } }, 10), "p");
  assert.deepEqual([below.reset, below.changes.map((c) => c.key), below.through], [true, ["c", "d", "e"], 7]);
  log.publish(null, "p", "f", 1); // 8
  const at = scope(await pull({ p: { through: 7 } }, 10), "p");
  assert.deepEqual([at.reset, at.changes.map((c) => c.key), at.through], [false, ["f"], 8]);
  // A cursor above the log's head (the cloud's log was reset): a snapshot too.
  const above = scope(await pull({ p: { through: 99 } }, 10), "p");
  assert.equal(above.reset, true);
});

Deno.test("a scope the lane holds but the cloud has nothing of is answered (through the head)", async () => {
  const { log, pull, scope } = setup();
  log.publish(null, "prices", "a", 1);
  const a = await pull({ gone: { through: 1 } });
  assert.deepEqual(a.scopes.map((s) => s.scope), ["gone", "prices"]);
  assert.deepEqual(scope(a, "gone"), {
    scope: "gone",
    reset: false,
    continues_snapshot: false,
    resume: "",
    through: 1,
    head: 0,
    horizon: 0,
    more: false,
    changes: [],
  });
});

Deno.test("a bad resume token is a 400 naming the scope; a token of another store or scope too", async () => {
  const { log, post } = setup();
  log.publish(null, "p", "a", 1);
  log.publish(null, "q", "a", 1);
  const tokenFor = (scope: string, store: string) => encodeResume({ scope, store, asOf: 2, key: "a" });
  for (
    const [resume, error] of [
      ["garbage!", /cursors\.p\.resume is not a resume token of sync-pull/],
      ["eyJ2IjoxfQ", /not a resume token/],
      [tokenFor("q", "S1"), /belongs to another scope or store/],
      [tokenFor("p", "S2"), /belongs to another scope or store/],
    ] as const
  ) {
    const r = await post({ store_id: "S1", terminal_id: "L1", cursors: { p: { through: 0, resume } } });
    assert.equal(r.status, 400);
    assert.match(r.body.error, error);
  }
});

Deno.test("HTTP: 401 without the right key, 404, 405, 400 bodies, 413, 503/500 for database errors", async () => {
  const { post, h, lines } = setup();
  const ok = { store_id: "S1", terminal_id: "L1" };
  assert.equal((await post(ok, { key: null })).status, 401);
  assert.equal((await post(ok, { key: "wrong" })).status, 401);
  assert.equal((await post(ok, { path: "/functions/v1/other" })).status, 404);
  assert.equal((await post(ok, { path: "/sync-pull" })).status, 200, "the hosted path");
  assert.equal((await post(ok, { path: "/functions/v1/sync-pull/" })).status, 200);
  const get = await h(new Request("http://x/functions/v1/sync-pull", { headers: { apikey: KEY } }));
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST");
  for (
    const [raw, error] of [
      ["{", /body is not valid JSON/],
      ["[]", /body must be a JSON object/],
      ['{"store_id": 5, "terminal_id": "L1"}', /store_id/],
      ['{"store_id": "S1", "terminal_id": "L1", "limit": 0}', /limit/],
    ] as const
  ) {
    const r = await post(null, { raw });
    assert.equal(r.status, 400, raw);
    assert.match(r.body.error, error);
  }
  assert.equal((await post(null, { raw: " ".repeat(300 * 1024) })).status, 413);
  // 401 comes before the body is looked at.
  assert.equal((await post(null, { raw: "{", key: null })).status, 401);
  const down = setup({
    read: () => Promise.reject(Object.assign(new Error("refused"), { code: "ECONNREFUSED" })),
  });
  const r503 = await down.post(ok);
  assert.deepEqual([r503.status, r503.body], [503, { error: "database unavailable, retry later" }]);
  const broken = setup({ read: () => Promise.reject(new Error("boom")) });
  assert.equal((await broken.post(ok)).status, 500);
  assert.equal(broken.lines.at(-1)?.error, "boom");
  assert.ok(lines.every((l) => !JSON.stringify(l).includes(KEY)), "the key is never logged");
  assert.ok(lines.some((l) => l.status === 200 && l.store_id === "S1" && l.terminal_id === "L1"));
});
