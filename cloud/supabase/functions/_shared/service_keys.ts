// Which keys a caller of a lanesync edge function may present, and the constant-time check
// of a request against them. Shared by every function of this folder's parent (the
// Supabase CLI deploys `_shared/` with each function that imports it; it is no function of
// its own). docs/cloud.md, "Authentication and configuration".
//
// Hosted Supabase hands every function the project's keys:
//   SUPABASE_SERVICE_ROLE_KEY  the legacy service_role key (a JWT)
//   SUPABASE_SECRET_KEYS       the new secret keys as a JSON object, {"default": "sb_secret_..."}
// Accepted: LANESYNC_SERVICE_KEY alone when it is set (a key dedicated to the lanes);
// otherwise the service_role key and every value of SUPABASE_SECRET_KEYS.

import { createHash, timingSafeEqual } from "node:crypto";

export type EnvLookup = (name: string) => string | undefined;

export interface AcceptedKeys {
  /** The keys a caller may present; empty when none is configured. */
  keys: string[];
  /** Where they came from (variable names and JSON key names, never a value), for the log. */
  sources: string[];
  /** Problems with a variable that was set but unusable; never contain a value. */
  warnings: string[];
}

/**
 * The values of SUPABASE_SECRET_KEYS: a JSON object whose values are the keys. Values that
 * are not non-empty strings are skipped with a warning naming their JSON key.
 */
export function parseSecretKeys(text: string): { keys: Array<[string, string]>; warnings: string[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { keys: [], warnings: ["SUPABASE_SECRET_KEYS is not valid JSON (ignored)"] };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { keys: [], warnings: ["SUPABASE_SECRET_KEYS is not a JSON object (ignored)"] };
  }
  const keys: Array<[string, string]> = [];
  const warnings: string[] = [];
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof value === "string" && value.trim() !== "") keys.push([name, value.trim()]);
    else warnings.push(`SUPABASE_SECRET_KEYS.${name} is not a non-empty string (ignored)`);
  }
  return { keys, warnings };
}

/** The accepted keys from the environment (see the top of this file). */
export function acceptedKeys(env: EnvLookup): AcceptedKeys {
  const get = (name: string) => {
    const v = env(name)?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const dedicated = get("LANESYNC_SERVICE_KEY");
  if (dedicated !== undefined) return { keys: [dedicated], sources: ["LANESYNC_SERVICE_KEY"], warnings: [] };

  const out: AcceptedKeys = { keys: [], sources: [], warnings: [] };
  const legacy = get("SUPABASE_SERVICE_ROLE_KEY");
  if (legacy !== undefined) {
    out.keys.push(legacy);
    out.sources.push("SUPABASE_SERVICE_ROLE_KEY");
  }
  const secretKeys = get("SUPABASE_SECRET_KEYS");
  if (secretKeys !== undefined) {
    const { keys, warnings } = parseSecretKeys(secretKeys);
    for (const [name, value] of keys) {
      if (!out.keys.includes(value)) out.keys.push(value);
      out.sources.push(`SUPABASE_SECRET_KEYS.${name}`);
    }
    out.warnings.push(...warnings);
  }
  return out;
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** The keys a request presents: `apikey`, and the token of `Authorization: Bearer`. */
export function presentedKeys(req: Request): string[] {
  const presented: string[] = [];
  const apikey = req.headers.get("apikey");
  if (apikey) presented.push(apikey.trim());
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
  if (bearer) presented.push(bearer[1]);
  return presented;
}

/**
 * A check of a request against `keys` (at least one): true when any presented key equals any
 * accepted key. Compared as SHA-256 digests with timingSafeEqual, every pair, no early exit.
 */
export function createKeyCheck(keys: string[]): (req: Request) => boolean {
  if (keys.length === 0) throw new Error("createKeyCheck: no accepted key");
  const digests = keys.map(sha256);
  return (req) => {
    let ok = false;
    for (const key of presentedKeys(req)) {
      const presented = sha256(key);
      for (const d of digests) ok = timingSafeEqual(presented, d) || ok;
    }
    return ok;
  };
}
