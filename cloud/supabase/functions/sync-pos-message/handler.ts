// HTTP layer of sync-pos-message: routing, authentication, body limits, envelope parsing;
// POST uploads a batch, GET tells one lane the highest seq the cloud holds of it.
// The database work is injected (`apply`, `highestSeq`), so this module has no connection of its own.

import { exchange, json, parseJson, readBody, routeMatches } from "../_shared/http.ts";
import { createKeyCheck } from "../_shared/service_keys.ts";
import type { Result } from "./db.ts";
import {
  type Checked,
  checkEnvelope,
  checkLaneQuery,
  checkMessage,
  laneStoreProblem,
  type ValidLane,
} from "./validate.ts";

export const FUNCTION_NAME = "sync-pos-message";
export const DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024;

export interface HandlerOptions {
  /**
   * The accepted keys (at least one; ../_shared/service_keys.ts acceptedKeys): callers must
   * present one of them as `apikey` or `Authorization: Bearer`.
   */
  serviceKeys: string[];
  maxBodyBytes: number;
  /**
   * Applies a checked batch, and records the lane's summary when the request has one, in one
   * transaction; see db.ts applyBatch.
   */
  apply: (requestId: string, checked: Checked[], lane: ValidLane | null) => Promise<Result[]>;
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

/** Builds the request handler for Deno.serve. */
export function createHandler(opts: HandlerOptions): (req: Request) => Promise<Response> {
  const authorized = createKeyCheck(opts.serviceKeys);
  const log = opts.log ?? ((entry) => console.log(JSON.stringify(entry)));

  return async (req) => {
    const { requestId, done, failed } = exchange(req, log, opts.isUnavailable);

    const url = new URL(req.url);
    if (!routeMatches(FUNCTION_NAME, url.pathname)) {
      return done(json(404, { error: "not found" }), { path: url.pathname });
    }
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
    const parsed = parseJson(body.bytes);
    if (!parsed.ok) return done(json(400, { error: parsed.error }));
    const envelope = checkEnvelope(parsed.value);
    if (!envelope.ok) return done(json(400, { error: envelope.error }));

    const checked = envelope.messages.map(checkMessage);
    // The sending lane's summary (optional): checked whole before anything is applied.
    const lane = envelope.lane;
    const laneLog = lane === null ? {} : { lane: lane.terminal_id, heartbeat: checked.length === 0 };
    if (lane !== null) {
      const problem = laneStoreProblem(lane, checked);
      if (problem !== null) return done(json(400, { error: problem }), { ...laneLog, error: problem });
    }
    let results: Result[];
    try {
      results = await opts.apply(requestId, checked, lane);
    } catch (err) {
      return failed(err, { messages: checked.length, ...laneLog });
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
      ...laneLog,
    });
  };
}
