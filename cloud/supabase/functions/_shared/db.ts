// The database pieces every lanesync edge function shares: the postgres.js pool, the pool size
// setting, which errors mean "database unavailable" (503), and exact bigints from the database.
// Each function's own queries live in its db.ts.

import postgres from "postgres";

export type Sql = postgres.Sql;

/** Connections per function instance unless LANESYNC_DB_POOL_MAX says otherwise. */
export const DEFAULT_POOL_MAX = 5;

/** The pool size from LANESYNC_DB_POOL_MAX (undefined: the default); throws when it is not 1..1000. */
export function poolMaxFrom(text: string | undefined): number {
  if (text === undefined) return DEFAULT_POOL_MAX;
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 1000) {
    throw new Error(`LANESYNC_DB_POOL_MAX must be an integer from 1 to 1000, got "${text}"`);
  }
  return n;
}

/**
 * Opens the connection pool of at most `max` connections. The functions connect as the
 * database owner, so RLS does not apply.
 */
export function connect(url: string, max: number = DEFAULT_POOL_MAX): Sql {
  return postgres(url, {
    max,
    idle_timeout: 30,
    connect_timeout: 10,
    // Named prepared statements do not survive a transaction-mode pooler (Supavisor).
    prepare: false,
    onnotice: () => {},
  });
}

/** postgres.js connection-level error codes (no SQLSTATE; the server was not reached). */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EPIPE",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
]);

/**
 * True when the database is unreachable or refusing work for now (answer 503), as opposed
 * to an unexpected error (500). Both are retried by the lane.
 */
export function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  // SQLSTATE 08xxx connection exception, 53xxx insufficient resources, 57P0x shutdown/startup.
  return CONNECTION_CODES.has(code) || code.startsWith("08") || code.startsWith("53") ||
    /^57P0[1-4]$/.test(code);
}

/**
 * A bigint the database sent as decimal text, as a JavaScript number; throws when it is not a
 * non-negative integer or lies beyond 2^53 - 1 (a number there could not be exact).
 */
export function seqFromText(text: unknown): number {
  if (typeof text !== "string" || !/^(0|[1-9][0-9]*)$/.test(text)) {
    throw new Error(`expected a non-negative integer from the database, got ${JSON.stringify(text)}`);
  }
  if (BigInt(text) > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`seq ${text} is beyond 2^53 - 1`);
  }
  return Number(text);
}
