// Helpers for the *.test.ts files of this folder (never imported by index.ts, so never
// deployed). The integration tests talk to a running local cloud: tests/cloud/run-deno-tests.sh
// starts one and exports SUPABASE_URL, SUPABASE_SERVICE_KEY and SUPABASE_DB_URL.

import { localCloud } from "../_shared/testing.ts";
import postgres from "postgres";

export const cloud = localCloud("sync-pos-message");

/** A fresh store id, so tests never see each other's rows (even against a long-lived cloud). */
export function newStore(): string {
  return `test-${crypto.randomUUID().slice(0, 8)}`;
}

export interface Message {
  messageId: string;
  storeId: string;
  terminalId: string;
  seq: number;
  topic: string;
  priority: string;
  data: Record<string, unknown>;
  timestamp: string;
  peerAckedAt: string | null;
  /** The covering lane (replica takeover); absent for a lane's own upload. */
  uploadedBy?: string | null;
}

/** A valid message of topic "note" (no domain table) unless overridden. */
export function message(storeId: string, seq: number, over: Partial<Message> = {}): Message {
  return {
    messageId: crypto.randomUUID(),
    storeId,
    terminalId: "L1",
    seq,
    topic: "note",
    priority: "normal",
    data: { text: `message ${seq}` },
    timestamp: "2026-11-22T03:57:20.123Z",
    peerAckedAt: "2026-11-22T03:57:20.456Z",
    ...over,
  };
}

export interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

/** POSTs to the function. `auth` picks how the key travels (default: both headers, like the lane). */
export async function post(
  body: unknown,
  opts: {
    auth?: "both" | "apikey" | "bearer" | "none";
    key?: string;
    raw?: BodyInit;
    client?: Deno.HttpClient;
    url?: string;
  } = {},
): Promise<Reply> {
  const key = opts.key ?? cloud.key;
  const headers: Record<string, string> = { "content-type": "application/json" };
  const auth = opts.auth ?? "both";
  if (auth === "both" || auth === "apikey") headers.apikey = key;
  if (auth === "both" || auth === "bearer") headers.authorization = `Bearer ${key}`;
  const res = await fetch(opts.url ?? cloud.url, {
    method: "POST",
    headers,
    body: opts.raw ?? JSON.stringify(body),
    client: opts.client,
  });
  return await reply(res);
}

async function reply(res: Response): Promise<Reply> {
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

/** GETs the function with a query (a raw string after `?`, or parameters), with the key unless `key: null`. */
export async function get(
  query: string | Record<string, string>,
  opts: { key?: string | null; method?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  const key = opts.key === undefined ? cloud.key : opts.key;
  if (key !== null) {
    headers.apikey = key;
    headers.authorization = `Bearer ${key}`;
  }
  const search = typeof query === "string" ? query : new URLSearchParams(query).toString();
  const res = await fetch(`${cloud.url}?${search}`, { method: opts.method ?? "GET", headers });
  return await reply(res);
}

/** The highest seq the cloud holds of a lane (GET), expecting 200 with the documented shape. */
export async function highestSeq(storeId: string, terminalId: string): Promise<number> {
  const r = await get({ storeId, terminalId });
  if (r.status !== 200) throw new Error(`expected 200, got ${r.status}: ${JSON.stringify(r.body)}`);
  const keys = Object.keys(r.body).sort().join(",");
  if (
    keys !== "highestSeq,storeId,terminalId" || r.body.storeId !== storeId || r.body.terminalId !== terminalId
  ) {
    throw new Error(`unexpected body ${JSON.stringify(r.body)}`);
  }
  if (typeof r.body.highestSeq !== "number") {
    throw new Error(`highestSeq is not a number: ${r.body.highestSeq}`);
  }
  return r.body.highestSeq;
}

export interface Result {
  messageId: string | null;
  status: string;
  error?: string;
}

/** POSTs a batch, expects 200 and returns the results. */
export async function sync(messages: unknown[]): Promise<Result[]> {
  const reply = await post({ messages });
  if (reply.status !== 200) {
    throw new Error(`expected 200, got ${reply.status}: ${JSON.stringify(reply.body)}`);
  }
  return reply.body.results as Result[];
}

/** Runs fn with a database connection (the owner, like the function) and closes it. */
export async function withDb<T>(fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(cloud.dbUrl, { max: 2, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}
