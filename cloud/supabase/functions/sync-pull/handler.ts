// HTTP layer of sync-pull: routing, authentication, body limit, validation, and one page per
// scope (pull.ts) from reads in one database snapshot. The database is injected (`read`), so
// this module has no connection of its own. Contract: docs/cloud.md, "sync-pull".

import { exchange, json, parseJson, readBody, routeMatches } from "../_shared/http.ts";
import { createKeyCheck } from "../_shared/service_keys.ts";
import { BadResume, type PullReader, pullScope, type ScopeInfo, type ScopePage } from "./pull.ts";
import { checkPullRequest } from "./validate.ts";

export const FUNCTION_NAME = "sync-pull";
/** A pull request carries cursors only: 256 KiB is far more than 100 scopes need. */
export const MAX_BODY_BYTES = 256 * 1024;

export interface HandlerOptions {
  /** The accepted keys (at least one; ../_shared/service_keys.ts acceptedKeys). */
  serviceKeys: string[];
  /** Runs fn with reads in one read-only snapshot of the database; see db.ts readSnapshot. */
  read: <T>(fn: (r: PullReader) => Promise<T>) => Promise<T>;
  /** True when an error thrown by `read` means the database is unavailable (503). */
  isUnavailable: (err: unknown) => boolean;
  /** One structured line per request. Never receives the key. */
  log?: (entry: Record<string, unknown>) => void;
}

export interface PullAnswer {
  head: number;
  scopes: ScopePage[];
}

const ANSWER_HEADERS = { "content-type": "application/json", "cache-control": "no-store" };

/**
 * The 200 body: JSON.stringify of the answer, except that each change's `data` (already JSON
 * text from the database) is spliced in verbatim.
 */
export function answerText(answer: PullAnswer): string {
  const scopes = answer.scopes.map((s) => {
    const { changes, ...rest } = s;
    const head = JSON.stringify(rest);
    const list = changes.map((c) =>
      `{"key":${JSON.stringify(c.key)},"version":${c.version},"deleted":${c.deleted},"data":${c.data},` +
      `"changed_at_ms":${c.changed_at_ms}}`
    );
    return `${head.slice(0, -1)},"changes":[${list.join(",")}]}`;
  });
  return `{"head":${answer.head},"scopes":[${scopes.join(",")}]}`;
}

/** Builds the request handler for Deno.serve. */
export function createHandler(opts: HandlerOptions): (req: Request) => Promise<Response> {
  const authorized = createKeyCheck(opts.serviceKeys);
  const log = opts.log ?? ((entry) => console.log(JSON.stringify(entry)));

  return async (req) => {
    const { done, failed } = exchange(req, log, opts.isUnavailable);
    const url = new URL(req.url);
    if (!routeMatches(FUNCTION_NAME, url.pathname)) {
      return done(json(404, { error: "not found" }), { path: url.pathname });
    }
    if (req.method !== "POST") {
      return done(json(405, { error: "method not allowed; use POST" }, { allow: "POST" }));
    }
    if (!authorized(req)) {
      return done(json(401, { error: "missing or invalid service key (apikey or Authorization: Bearer)" }));
    }
    const body = await readBody(req, MAX_BODY_BYTES);
    if (!body.ok) return done(json(body.status, { error: body.error }));
    const parsed = parseJson(body.bytes);
    if (!parsed.ok) return done(json(400, { error: parsed.error }));
    const checked = checkPullRequest(parsed.value);
    if (!checked.ok) return done(json(400, { error: checked.error }), { error: checked.error });
    const { storeId, terminalId, limit, cursors } = checked.request;
    const who = { store_id: storeId, terminal_id: terminalId };

    let answer: PullAnswer;
    try {
      answer = await opts.read(async (r) => {
        const logHead = await r.logHead();
        const known = await r.scopes(storeId);
        const infos = new Map<string, ScopeInfo>(known.map((s) => [s.scope, s]));
        // A scope the lane holds that the cloud has nothing of (for this store) is answered too.
        for (const scope of cursors.keys()) {
          if (!infos.has(scope)) infos.set(scope, { scope, head: 0, horizon: 0 });
        }
        const scopes: ScopePage[] = [];
        for (
          const info of [...infos.values()].sort((
            a,
            b,
          ) => (a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : 0))
        ) {
          scopes.push(await pullScope(r, storeId, info, cursors.get(info.scope) ?? null, limit, logHead));
        }
        return { head: known.reduce((m, s) => Math.max(m, s.head), 0), scopes };
      });
    } catch (err) {
      if (err instanceof BadResume) {
        return done(json(400, { error: err.message }), { ...who, error: err.message });
      }
      return failed(err, who);
    }
    return done(new Response(answerText(answer), { status: 200, headers: ANSWER_HEADERS }), {
      ...who,
      head: answer.head,
      scopes: answer.scopes.length,
      changes: answer.scopes.reduce((n, s) => n + s.changes.length, 0),
      resets: answer.scopes.filter((s) => s.reset).length,
      more: answer.scopes.filter((s) => s.more).length,
    });
  };
}
