// HTTP layer of sync-pos-message: routing, authentication, body limits, envelope parsing;
// POST uploads a batch, GET tells one lane the highest seq the cloud holds of it.
// The database work is injected (`apply`, `highestSeq`), so this module has no connection of its own.

import { createKeyCheck } from "../_shared/service_keys.ts";
import type { Result } from "./db.ts";
import { type Checked, checkEnvelope, checkLaneQuery, checkMessage } from "./validate.ts";

export const FUNCTION_NAME = "sync-pos-message";
export const DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024;

/** Bodies over the limit are still read (and discarded) up to this size before the 413, so
 * the client reliably gets the answer instead of a reset connection while it is still
 * sending. Beyond it the connection is dropped after the answer. */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;

export interface HandlerOptions {
  /**
   * The accepted keys (at least one; ../_shared/service_keys.ts acceptedKeys): callers must
   * present one of them as `apikey` or `Authorization: Bearer`.
   */
  serviceKeys: string[];
  maxBodyBytes: number;
  /** Applies a checked batch in one transaction; see db.ts applyBatch. */
  apply: (requestId: string, checked: Checked[]) => Promise<Result[]>;
  /**
   * The greatest seq of (store, terminal) over pos_messages and pos_message_copies, 0 when
   * none; see db.ts highestSeq. Answers GET.
   */
  highestSeq: (storeId: string, terminalId: string) => Promise<number>;
  /** True when an error thrown by `apply` or `highestSeq` means the database is unavailable (503). */
  isUnavailable: (err: unknown) => boolean;
  /** One structured line per request. Never receives the key. */
  log?: (entry: Record<string, unknown>) => void;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

type Body = { ok: true; bytes: Uint8Array } | { ok: false; status: 400 | 413; error: string };

/** Reads the body, counting bytes; over `limit` it keeps draining (discarding) up to DRAIN_LIMIT_BYTES. */
async function readBody(req: Request, limit: number): Promise<Body> {
  const tooLarge: Body = { ok: false, status: 413, error: `body larger than ${limit} bytes` };
  const declared = req.headers.get("content-length");
  if (declared !== null && !/^\d+$/.test(declared.trim())) {
    return { ok: false, status: 400, error: "bad Content-Length" };
  }
  // A declared size over the limit is answered with 413 whatever arrives; nothing is kept.
  const keep = declared === null || Number(declared) <= limit;
  if (!keep && Number(declared) > DRAIN_LIMIT_BYTES) return tooLarge;
  if (req.body === null) return { ok: true, bytes: new Uint8Array() };
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > DRAIN_LIMIT_BYTES) {
        await reader.cancel();
        return tooLarge;
      }
      if (keep && total <= limit) chunks.push(value);
    }
  } catch {
    return { ok: false, status: 400, error: "could not read the request body" };
  }
  if (!keep || total > limit) return tooLarge;
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return { ok: true, bytes };
}

function routeMatches(pathname: string): boolean {
  const p = pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
  // Hosted Supabase hands the function /<name>; the local cloud serves /functions/v1/<name>.
  return p === `/${FUNCTION_NAME}` || p === `/functions/v1/${FUNCTION_NAME}`;
}

/** Builds the request handler for Deno.serve. */
export function createHandler(opts: HandlerOptions): (req: Request) => Promise<Response> {
  const authorized = createKeyCheck(opts.serviceKeys);
  const log = opts.log ?? ((entry) => console.log(JSON.stringify(entry)));

  return async (req) => {
    const started = performance.now();
    const requestId = crypto.randomUUID();
    const done = (res: Response, extra: Record<string, unknown> = {}) => {
      res.headers.set("x-request-id", requestId);
      log({
        at: new Date().toISOString(),
        request_id: requestId,
        method: req.method,
        status: res.status,
        ms: Math.round(performance.now() - started),
        ...extra,
      });
      return res;
    };

    /** 503 or 500 for an error of the database work; its message goes to the log only. */
    const failed = (err: unknown, extra: Record<string, unknown>) => {
      const unavailable = opts.isUnavailable(err);
      const message = err instanceof Error ? err.message : String(err);
      return done(
        json(unavailable ? 503 : 500, {
          error: unavailable ? "database unavailable, retry later" : "internal error, retry later",
        }),
        { ...extra, error: message },
      );
    };

    const url = new URL(req.url);
    if (!routeMatches(url.pathname)) return done(json(404, { error: "not found" }), { path: url.pathname });
    if (req.method !== "POST" && req.method !== "GET") {
      return done(json(405, { error: "method not allowed; use GET or POST" }, { allow: "GET, POST" }));
    }
    if (!authorized(req)) {
      return done(json(401, { error: "missing or invalid service key (apikey or Authorization: Bearer)" }));
    }

    if (req.method === "GET") {
      // The highest seq of one lane: a lane starting with an empty outbox and no peers asks
      // before it hands out seq 1. Never cached: the answer only grows.
      const noStore = { "cache-control": "no-store" };
      const query = checkLaneQuery(url.searchParams);
      if (!query.ok) return done(json(400, { error: query.error }, noStore), { error: query.error });
      const { storeId, terminalId } = query;
      let highestSeq: number;
      try {
        highestSeq = await opts.highestSeq(storeId, terminalId);
        if (!Number.isSafeInteger(highestSeq) || highestSeq < 0) {
          throw new Error(`highestSeq gave ${highestSeq}, not an integer >= 0`);
        }
      } catch (err) {
        return failed(err, { storeId, terminalId });
      }
      return done(json(200, { storeId, terminalId, highestSeq }, noStore), {
        storeId,
        terminalId,
        highestSeq,
      });
    }

    const body = await readBody(req, opts.maxBodyBytes);
    if (!body.ok) return done(json(body.status, { error: body.error }));
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body.bytes));
    } catch (err) {
      const error = err instanceof SyntaxError
        ? `body is not valid JSON: ${err.message}`
        : "body is not valid UTF-8";
      return done(json(400, { error }));
    }
    const envelope = checkEnvelope(parsed);
    if (!envelope.ok) return done(json(400, { error: envelope.error }));

    const checked = envelope.messages.map(checkMessage);
    let results: Result[];
    try {
      results = await opts.apply(requestId, checked);
    } catch (err) {
      return failed(err, { messages: checked.length });
    }
    const count = (s: string) => results.filter((r) => r.status === s).length;
    // Messages a lane uploaded on behalf of another (replica takeover): one count, no ids.
    const covered = checked.filter((c) => (c.ok ? c.message.uploaded_by : c.uploadedBy) !== null).length;
    return done(json(200, { results }), {
      messages: results.length,
      covered,
      stored: count("stored"),
      duplicate: count("duplicate"),
      rejected: count("rejected"),
    });
  };
}
