// Unit tests of the shared database helpers (no database).

import assert from "node:assert/strict";
import { DEFAULT_POOL_MAX, poolMaxFrom, seqFromText } from "./db.ts";

Deno.test("seqFromText: bigint text to an exact number, or an error", () => {
  assert.equal(seqFromText("0"), 0);
  assert.equal(seqFromText("42"), 42);
  assert.equal(seqFromText("9007199254740991"), Number.MAX_SAFE_INTEGER);
  assert.throws(() => seqFromText("9007199254740992"), /beyond 2\^53 - 1/);
  assert.throws(() => seqFromText("99999999999999999999"), /beyond 2\^53 - 1/);
  for (const bad of ["", "-1", "01", "1.5", "1e3", " 1", null, undefined, 5]) {
    assert.throws(() => seqFromText(bad), /expected a non-negative integer/, String(bad));
  }
});

Deno.test("poolMaxFrom: LANESYNC_DB_POOL_MAX as a pool size, the default when unset, or an error", () => {
  assert.equal(poolMaxFrom(undefined), DEFAULT_POOL_MAX);
  assert.equal(poolMaxFrom("1"), 1);
  assert.equal(poolMaxFrom("20"), 20);
  assert.equal(poolMaxFrom("1000"), 1000);
  for (const bad of ["0", "1001", "-1", "2.5", "1e2", " 5", "five", ""]) {
    assert.throws(() => poolMaxFrom(bad), /LANESYNC_DB_POOL_MAX must be an integer from 1 to 1000/, bad);
  }
});
