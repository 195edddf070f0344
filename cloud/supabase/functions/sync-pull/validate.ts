// Strict validation of a sync-pull request body (docs/cloud.md, "sync-pull"). Pure.

export const DEFAULT_LIMIT = 500;
export const MAX_LIMIT = 1000;
/** Scopes one request may carry cursors for. */
export const MAX_CURSORS = 100;
/** Longest resume token accepted (the lane keeps up to 4096 bytes). */
export const MAX_RESUME_CHARS = 4096;

const STORE_RE = /^[A-Za-z0-9_-]{1,64}$/;
const TERMINAL_RE = /^[A-Za-z0-9_-]{1,32}$/;
export const SCOPE_RE = /^[a-z0-9_.-]{1,64}$/;

export interface Cursor {
  /** Complete through this version (0: nothing held). */
  through: number;
  /** A snapshot's resume token ("" none). */
  resume: string;
}

export interface PullRequest {
  storeId: string;
  terminalId: string;
  limit: number;
  cursors: Map<string, Cursor>;
}

export type Checked = { ok: true; request: PullRequest } | { ok: false; error: string };

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Checks the parsed body; the first problem found is the error. Unknown fields are ignored. */
export function checkPullRequest(body: unknown): Checked {
  const bad = (error: string): Checked => ({ ok: false, error });
  if (!isObject(body)) return bad("body must be a JSON object");
  if (typeof body.store_id !== "string" || !STORE_RE.test(body.store_id)) {
    return bad("store_id must be a string matching [A-Za-z0-9_-]{1,64}");
  }
  if (typeof body.terminal_id !== "string" || !TERMINAL_RE.test(body.terminal_id)) {
    return bad("terminal_id must be a string matching [A-Za-z0-9_-]{1,32}");
  }
  let limit = DEFAULT_LIMIT;
  if (body.limit !== undefined && body.limit !== null) {
    if (
      typeof body.limit !== "number" || !Number.isInteger(body.limit) || body.limit < 1 ||
      body.limit > MAX_LIMIT
    ) {
      return bad(`limit must be an integer from 1 to ${MAX_LIMIT}`);
    }
    limit = body.limit;
  }
  const cursors = new Map<string, Cursor>();
  if (body.cursors !== undefined && body.cursors !== null) {
    if (!isObject(body.cursors)) return bad("cursors must be an object of scope -> {through, resume}");
    const entries = Object.entries(body.cursors);
    if (entries.length > MAX_CURSORS) return bad(`cursors: at most ${MAX_CURSORS} scopes`);
    for (const [scope, c] of entries) {
      if (!SCOPE_RE.test(scope)) return bad("cursors: every scope must match [a-z0-9_.-]{1,64}");
      if (!isObject(c)) return bad(`cursors.${scope} must be an object {through, resume}`);
      let through = 0;
      if (c.through !== undefined && c.through !== null) {
        if (typeof c.through !== "number" || !Number.isSafeInteger(c.through) || c.through < 0) {
          return bad(`cursors.${scope}.through must be an integer >= 0`);
        }
        through = c.through;
      }
      let resume = "";
      if (c.resume !== undefined && c.resume !== null) {
        if (typeof c.resume !== "string") return bad(`cursors.${scope}.resume must be a string`);
        if (c.resume.length > MAX_RESUME_CHARS) {
          return bad(`cursors.${scope}.resume is longer than ${MAX_RESUME_CHARS} characters`);
        }
        resume = c.resume;
      }
      cursors.set(scope, { through, resume });
    }
  }
  return { ok: true, request: { storeId: body.store_id, terminalId: body.terminal_id, limit, cursors } };
}
