// The HTTP pieces every lanesync edge function shares: JSON answers, a body reader with a
// limit, the route check, and the per-request envelope (request id, one log line, 5xx
// answers for database errors).

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** Bodies over the limit are still read (and discarded) up to this size before the 413, so
 * the client reliably gets the answer instead of a reset connection while it is still
 * sending. Beyond it the connection is dropped after the answer. */
const DRAIN_LIMIT_BYTES = 64 * 1024 * 1024;

export type Body = { ok: true; bytes: Uint8Array } | { ok: false; status: 400 | 413; error: string };

/** Reads the body, counting bytes; over `limit` it keeps draining (discarding) up to DRAIN_LIMIT_BYTES. */
export async function readBody(req: Request, limit: number): Promise<Body> {
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

/** The body as JSON: the value, or the 400 error text (not UTF-8, not JSON). */
export function parseJson(bytes: Uint8Array): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes)) };
  } catch (err) {
    const error = err instanceof SyntaxError
      ? `body is not valid JSON: ${err.message}`
      : "body is not valid UTF-8";
    return { ok: false, error };
  }
}

/**
 * True when `pathname` names function `name`: hosted Supabase hands the function /<name>; the
 * local cloud serves /functions/v1/<name>. A trailing slash is allowed.
 */
export function routeMatches(name: string, pathname: string): boolean {
  const p = pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
  return p === `/${name}` || p === `/functions/v1/${name}`;
}

export interface Exchange {
  requestId: string;
  /** Finishes the request: sets x-request-id, logs one line (status, ms, `extra`). */
  done: (res: Response, extra?: Record<string, unknown>) => Response;
  /** 503 (database unavailable) or 500 for an error of the database work; the message goes to the log only. */
  failed: (err: unknown, extra?: Record<string, unknown>) => Response;
}

/** The envelope of one request: its id, its log line, its 5xx answers. */
export function exchange(
  req: Request,
  log: (entry: Record<string, unknown>) => void,
  isUnavailable: (err: unknown) => boolean,
): Exchange {
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
  const failed = (err: unknown, extra: Record<string, unknown> = {}) => {
    const unavailable = isUnavailable(err);
    const message = err instanceof Error ? err.message : String(err);
    return done(
      json(unavailable ? 503 : 500, {
        error: unavailable ? "database unavailable, retry later" : "internal error, retry later",
      }),
      { ...extra, error: message },
    );
  };
  return { requestId, done, failed };
}
