// Unit tests of the request validation and the resume token (no database).

import assert from "node:assert/strict";
import { decodeResume, encodeResume } from "./token.ts";
import { checkPullRequest, DEFAULT_LIMIT } from "./validate.ts";

const base = { store_id: "S1", terminal_id: "L1" };

Deno.test("checkPullRequest: store, terminal, limit (default 500) and cursors", () => {
  const r = checkPullRequest({
    ...base,
    cursors: { prices: { through: 120 }, products: { through: 0, resume: "x" } },
  });
  assert.ok(r.ok);
  assert.equal(r.request.limit, DEFAULT_LIMIT);
  assert.deepEqual([...r.request.cursors], [["prices", { through: 120, resume: "" }], [
    "products",
    { through: 0, resume: "x" },
  ]]);
  const r2 = checkPullRequest({ ...base, limit: 1000, cursors: { p: {} }, unknown: 1 });
  assert.ok(r2.ok);
  assert.equal(r2.request.limit, 1000);
  assert.deepEqual(r2.request.cursors.get("p"), { through: 0, resume: "" });
  const r3 = checkPullRequest({ ...base, limit: null, cursors: null });
  assert.ok(r3.ok && r3.request.cursors.size === 0 && r3.request.limit === DEFAULT_LIMIT);
});

Deno.test("checkPullRequest: every malformed field is refused with its name", () => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /body must be a JSON object/],
    [[], /body must be a JSON object/],
    ["x", /body must be a JSON object/],
    [{ terminal_id: "L1" }, /store_id/],
    [{ store_id: "S 1", terminal_id: "L1" }, /store_id/],
    [{ store_id: "S".repeat(65), terminal_id: "L1" }, /store_id/],
    [{ store_id: "S1" }, /terminal_id/],
    [{ store_id: "S1", terminal_id: "L".repeat(33) }, /terminal_id/],
    [{ ...base, limit: 0 }, /limit must be an integer from 1 to 1000/],
    [{ ...base, limit: 1001 }, /limit/],
    [{ ...base, limit: 2.5 }, /limit/],
    [{ ...base, limit: "10" }, /limit/],
    [{ ...base, cursors: [] }, /cursors must be an object/],
    [{ ...base, cursors: "x" }, /cursors must be an object/],
    [{ ...base, cursors: { Prices: { through: 1 } } }, /every scope must match/],
    [{ ...base, cursors: { "": { through: 1 } } }, /every scope must match/],
    [{ ...base, cursors: { prices: 5 } }, /cursors.prices must be an object/],
    [{ ...base, cursors: { prices: { through: -1 } } }, /cursors.prices.through must be an integer >= 0/],
    [{ ...base, cursors: { prices: { through: 1.5 } } }, /through/],
    [{ ...base, cursors: { prices: { through: "1" } } }, /through/],
    [{ ...base, cursors: { prices: { through: 2 ** 53 } } }, /through/],
    [{ ...base, cursors: { prices: { resume: 5 } } }, /cursors.prices.resume must be a string/],
    [{ ...base, cursors: { prices: { resume: "x".repeat(4097) } } }, /longer than 4096/],
    [
      { ...base, cursors: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`s${i}`, {}])) },
      /at most 100/,
    ],
  ];
  for (const [body, error] of cases) {
    const r = checkPullRequest(body);
    assert.ok(!r.ok, JSON.stringify(body));
    assert.match(r.error, error, JSON.stringify(body));
  }
});

Deno.test("resume token: round trip (also non-ASCII keys); anything else is null", () => {
  for (const key of ["sku-1", "ключ/ü €", "k".repeat(256)]) {
    const r = { scope: "products", store: "S1", asOf: 123456, key };
    const t = encodeResume(r);
    assert.match(t, /^[A-Za-z0-9_-]+$/);
    assert.deepEqual(decodeResume(t), r);
  }
  const json = (o: unknown) => btoa(JSON.stringify(o)).replaceAll("=", "");
  for (
    const bad of [
      "",
      "!!!",
      "not-a-token",
      btoa("[]"),
      json({ v: 2, scope: "p", store: "S", as_of: 1, key: "k" }),
      json({ v: 1, scope: "p", store: "S", as_of: -1, key: "k" }),
      json({ v: 1, scope: "p", store: "S", as_of: 1.5, key: "k" }),
      json({ v: 1, scope: "p", store: "S", as_of: 1, key: "" }),
      json({ v: 1, scope: "p", as_of: 1, key: "k" }),
    ]
  ) {
    assert.equal(decodeResume(bad), null, bad);
  }
});
