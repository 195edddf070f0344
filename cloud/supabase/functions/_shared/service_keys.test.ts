// Unit tests of the shared key check: which keys are accepted from the environment, and the
// check of a request's apikey / Authorization: Bearer against them.

import assert from "node:assert/strict";
import { acceptedKeys, createKeyCheck, parseSecretKeys, presentedKeys } from "./service_keys.ts";

const LEGACY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl";
const SECRET = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz";
const SECRET2 = "sb_secret_second_key_for_rotation_0123";

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

function req(headers: Record<string, string>): Request {
  return new Request("http://127.0.0.1/sync-pos-message", { method: "POST", headers });
}

Deno.test("acceptedKeys: the legacy service_role key and every SUPABASE_SECRET_KEYS value", () => {
  const got = acceptedKeys(envOf({
    SUPABASE_SERVICE_ROLE_KEY: LEGACY,
    SUPABASE_SECRET_KEYS: JSON.stringify({ default: SECRET, rotation: SECRET2 }),
  }));
  assert.deepEqual(got.keys, [LEGACY, SECRET, SECRET2]);
  assert.deepEqual(got.sources, [
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_SECRET_KEYS.default",
    "SUPABASE_SECRET_KEYS.rotation",
  ]);
  assert.deepEqual(got.warnings, []);
});

Deno.test("acceptedKeys: SUPABASE_SECRET_KEYS alone is enough (no custom secret needed)", () => {
  const got = acceptedKeys(envOf({ SUPABASE_SECRET_KEYS: `{"default":"${SECRET}"}` }));
  assert.deepEqual(got.keys, [SECRET]);
});

Deno.test("acceptedKeys: LANESYNC_SERVICE_KEY, when set, is the only key", () => {
  const got = acceptedKeys(envOf({
    LANESYNC_SERVICE_KEY: "dedicated-lane-key-0123456789",
    SUPABASE_SERVICE_ROLE_KEY: LEGACY,
    SUPABASE_SECRET_KEYS: `{"default":"${SECRET}"}`,
  }));
  assert.deepEqual(got.keys, ["dedicated-lane-key-0123456789"]);
  assert.deepEqual(got.sources, ["LANESYNC_SERVICE_KEY"]);
});

Deno.test("acceptedKeys: empty variables count as unset; nothing set gives no key", () => {
  assert.deepEqual(acceptedKeys(envOf({})).keys, []);
  const got = acceptedKeys(envOf({ LANESYNC_SERVICE_KEY: " ", SUPABASE_SERVICE_ROLE_KEY: LEGACY }));
  assert.deepEqual(got.keys, [LEGACY]);
});

Deno.test("parseSecretKeys: bad JSON, not an object, bad values: warnings that never hold a value", () => {
  for (const text of ["{", "[]", '"sb_secret_x"', "null", "42"]) {
    const got = parseSecretKeys(text);
    assert.deepEqual(got.keys, [], text);
    assert.equal(got.warnings.length, 1, text);
    assert.ok(!got.warnings[0].includes("sb_secret_x"), text);
  }
  const mixed = parseSecretKeys(JSON.stringify({ default: SECRET, empty: "", num: 5, obj: {} }));
  assert.deepEqual(mixed.keys, [["default", SECRET]]);
  assert.equal(mixed.warnings.length, 3);
  for (const w of mixed.warnings) assert.ok(!w.includes(SECRET));
  // A broken SUPABASE_SECRET_KEYS does not take the legacy key away.
  const got = acceptedKeys(envOf({ SUPABASE_SERVICE_ROLE_KEY: LEGACY, SUPABASE_SECRET_KEYS: "{" }));
  assert.deepEqual(got.keys, [LEGACY]);
  assert.equal(got.warnings.length, 1);
});

Deno.test("presentedKeys: apikey and the Bearer token", () => {
  assert.deepEqual(presentedKeys(req({ apikey: ` ${SECRET} ` })), [SECRET]);
  assert.deepEqual(presentedKeys(req({ authorization: `bearer ${LEGACY}` })), [LEGACY]);
  assert.deepEqual(presentedKeys(req({ authorization: `Basic ${LEGACY}` })), []);
  assert.deepEqual(presentedKeys(req({})), []);
});

Deno.test("createKeyCheck: any accepted key in apikey or Bearer passes; anything else fails", () => {
  const check = createKeyCheck([LEGACY, SECRET]);
  assert.equal(check(req({ apikey: SECRET })), true); // sb_secret_: apikey only, as the lanes send it
  assert.equal(check(req({ apikey: LEGACY, authorization: `Bearer ${LEGACY}` })), true);
  assert.equal(check(req({ authorization: `Bearer ${SECRET}` })), true);
  assert.equal(check(req({ apikey: "sb_publishable_abc", authorization: `Bearer ${LEGACY}` })), true);
  for (const bad of ["", SECRET.slice(0, -1), `${SECRET}x`, SECRET2, "sb_publishable_abc"]) {
    assert.equal(check(req({ apikey: bad })), false, bad);
  }
  assert.equal(check(req({})), false);
  assert.throws(() => createKeyCheck([]));
});
