// Unit tests of the pure parts of db.ts (no database).

import assert from "node:assert/strict";
import { seqFromText } from "./db.ts";

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
