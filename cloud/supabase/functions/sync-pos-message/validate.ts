// Pure validation of the sync-pos-message requests: the POST's envelope and each message,
// including the per-topic data schemas, and the GET's query (one lane). No I/O, so it is unit-tested without a database.

/** Most messages one request may carry. */
export const MAX_BATCH = 1000;

/** Deepest nesting accepted inside `data` (PostgreSQL's jsonb parser has a stack limit). */
export const MAX_DATA_DEPTH = 64;

/** Largest inventory delta (int32): keeps every stock sum far from bigint overflow. */
export const MAX_DELTA = 2 ** 31 - 1;

export const PRIORITIES = ["critical", "high", "normal", "low"] as const;
export type Priority = (typeof PRIORITIES)[number];

/** A message that passed validation, in the shape lanesync.apply_batch() reads. */
export interface ValidMessage {
  message_id: string;
  store_id: string;
  terminal_id: string;
  seq: number;
  topic: string;
  priority: Priority;
  data: Record<string, unknown>;
  timestamp: string;
  peer_acked_at: string | null;
  /** The lane that uploaded it on behalf of terminal_id (replica takeover); null = terminal_id itself. */
  uploaded_by: string | null;
}

export type Checked =
  | { ok: true; message: ValidMessage }
  | {
    ok: false;
    messageId: string | null;
    storeId: string | null;
    terminalId: string | null;
    /** A valid uploadedBy, kept for the sync log row; null when absent or invalid. */
    uploadedBy: string | null;
    error: string;
  };

export type Envelope =
  | { ok: true; messages: unknown[]; lane: ValidLane | null }
  | { ok: false; error: string };

/**
 * The `lane` object of a request, checked, in the shape lanesync.record_lane() reads (db.ts adds
 * `heartbeat`): the sending lane's summary of itself.
 */
export interface ValidLane {
  store_id: string;
  terminal_id: string;
  agent_version: string;
  at_ms: number;
  pending: number;
  peer_ack: number;
  cloud_ack: number;
  failed: number;
  oldest_pending_age_ms: number | null;
  oldest_peer_ack_age_ms: number | null;
  last_seq: number;
  peers_up: number;
  peers_configured: number;
  retry_depth: number;
}

/** Longest `lane.agentVersion`, in characters (code points). */
export const MAX_AGENT_VERSION = 64;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Syntax of a store id and of a terminal (lane) id, as the database's check constraints. */
export const STORE_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const TERMINAL_RE = /^[A-Za-z0-9_-]{1,32}$/;
const TOPIC_RE = /^[a-z0-9_.-]{1,64}$/;
// Calendar date and time with a zone, e.g. 2026-11-22T03:57:20.123Z or ...+01:00.
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-](\d{2}):(\d{2}))$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** True for an ISO-8601 date-time with seconds and a zone that names a real instant. */
export function isIsoTimestamp(v: unknown): v is string {
  if (typeof v !== "string") return false;
  const m = ISO_RE.exec(v);
  if (!m) return false;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  if (year < 1 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return false;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (day < 1 || day > daysInMonth) return false;
  if (m[8] !== "Z" && (Number(m[9]) > 23 || Number(m[10]) > 59)) return false;
  return true;
}

/**
 * Checks that a parsed JSON value can be stored as jsonb: no NUL characters and no lone
 * UTF-16 surrogates in any string or key (PostgreSQL refuses both), nesting at most
 * MAX_DATA_DEPTH. Returns the problem, or null. Iterative, so hostile nesting cannot
 * overflow the stack.
 */
export function jsonbProblem(value: unknown): string | null {
  const stack: Array<[unknown, number]> = [[value, 1]];
  const badString = (s: string) => s.includes("\u0000") || !s.isWellFormed();
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v === "string") {
      if (badString(v)) return "contains a NUL character or an unpaired surrogate";
    } else if (typeof v === "number") {
      if (!Number.isFinite(v)) return "contains a number out of range";
    } else if (typeof v === "object" && v !== null) {
      if (depth > MAX_DATA_DEPTH) return `is nested deeper than ${MAX_DATA_DEPTH} levels`;
      if (Array.isArray(v)) {
        for (const item of v) stack.push([item, depth + 1]);
      } else {
        for (const [k, item] of Object.entries(v)) {
          if (badString(k)) return "has a key with a NUL character or an unpaired surrogate";
          stack.push([item, depth + 1]);
        }
      }
    }
  }
  return null;
}

/**
 * The request body, parsed: an object with a `messages` array of 0..MAX_BATCH entries and an
 * optional `lane` object (absent or null: none), checked whole (checkLane).
 */
export function checkEnvelope(body: unknown): Envelope {
  if (!isObject(body)) return { ok: false, error: "body must be a JSON object" };
  const messages = body.messages;
  if (!Array.isArray(messages)) return { ok: false, error: "body.messages must be an array" };
  if (messages.length > MAX_BATCH) {
    return { ok: false, error: `too many messages: ${messages.length} (at most ${MAX_BATCH})` };
  }
  if (body.lane === undefined || body.lane === null) return { ok: true, messages, lane: null };
  const lane = checkLane(body.lane);
  if (!lane.ok) return lane;
  return { ok: true, messages, lane: lane.lane };
}

/** The integer fields of `lane` (all required, integers >= 0), and their database names. */
const LANE_COUNTS = {
  at: "at_ms",
  pending: "pending",
  peerAck: "peer_ack",
  cloudAck: "cloud_ack",
  failed: "failed",
  lastSeq: "last_seq",
  peersUp: "peers_up",
  peersConfigured: "peers_configured",
  retryDepth: "retry_depth",
} as const;
/** The fields of `lane` that are an integer >= 0 or null (required too). */
const LANE_AGES = {
  oldestPendingAgeMs: "oldest_pending_age_ms",
  oldestPeerAckAgeMs: "oldest_peer_ack_age_ms",
} as const;
const LANE_FIELDS = [
  "storeId",
  "terminalId",
  "agentVersion",
  ...Object.keys(LANE_COUNTS),
  ...Object.keys(LANE_AGES),
];

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/**
 * The `lane` object: every field required, no other field. Errors name the field (never echo a
 * value). Integers must be exact in JSON numbers (at most 2^53 - 1).
 */
export function checkLane(raw: unknown): { ok: true; lane: ValidLane } | { ok: false; error: string } {
  const fail = (error: string) => ({ ok: false as const, error });
  if (!isObject(raw)) return fail("lane must be a JSON object, or absent");
  const unknown = Object.keys(raw).filter((k) => !LANE_FIELDS.includes(k));
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 5).map((k) => JSON.stringify(k.slice(0, 64))).join(", ");
    return fail(`lane has unknown field(s) ${shown}`);
  }
  const missing = LANE_FIELDS.filter((k) => !Object.hasOwn(raw, k));
  if (missing.length > 0) return fail(`lane.${missing[0]} is missing`);
  if (typeof raw.storeId !== "string" || !STORE_RE.test(raw.storeId)) {
    return fail("lane.storeId must match [A-Za-z0-9_-]{1,64}");
  }
  if (typeof raw.terminalId !== "string" || !TERMINAL_RE.test(raw.terminalId)) {
    return fail("lane.terminalId must match [A-Za-z0-9_-]{1,32}");
  }
  const version = raw.agentVersion;
  if (
    typeof version !== "string" || !version.isWellFormed() || /[\u0000-\u001f\u007f]/.test(version) ||
    [...version].length < 1 || [...version].length > MAX_AGENT_VERSION
  ) {
    return fail(
      `lane.agentVersion must be a string of 1..${MAX_AGENT_VERSION} characters, no control characters`,
    );
  }
  const lane: Record<string, unknown> = {
    store_id: raw.storeId,
    terminal_id: raw.terminalId,
    agent_version: version,
  };
  for (const [field, column] of Object.entries(LANE_COUNTS)) {
    if (!isCount(raw[field])) return fail(`lane.${field} must be an integer >= 0`);
    lane[column] = raw[field];
  }
  for (const [field, column] of Object.entries(LANE_AGES)) {
    const v = raw[field];
    if (v !== null && !isCount(v)) return fail(`lane.${field} must be an integer >= 0, or null`);
    lane[column] = v;
  }
  return { ok: true, lane: lane as unknown as ValidLane };
}

/**
 * A request's lane and its messages name one store: every message whose storeId is valid must
 * carry lane.storeId. Returns the error (the first message that differs, by index), or null.
 */
export function laneStoreProblem(lane: ValidLane, checked: Checked[]): string | null {
  const i = checked.findIndex((c) => {
    const storeId = c.ok ? c.message.store_id : c.storeId;
    return storeId !== null && storeId !== lane.store_id;
  });
  return i < 0 ? null : `lane.storeId must equal the storeId of every message (messages[${i}] differs)`;
}

export type LaneQuery =
  | { ok: true; storeId: string; terminalId: string }
  | { ok: false; error: string };

/**
 * The query of a GET (highest seq of one lane): exactly `storeId` and `terminalId`, once each,
 * with the syntax of a message's. Errors name parameters, never echo their values.
 */
export function checkLaneQuery(params: URLSearchParams): LaneQuery {
  const names = [...new Set(params.keys())];
  const unknown = names.filter((n) => n !== "storeId" && n !== "terminalId");
  if (unknown.length > 0) {
    const shown = unknown.map((n) => JSON.stringify(n.slice(0, 64))).join(", ");
    return { ok: false, error: `unknown query parameter(s) ${shown}; expected storeId and terminalId` };
  }
  const one = (name: string, re: RegExp, syntax: string): string | { error: string } => {
    const values = params.getAll(name);
    if (values.length === 0) return { error: `query parameter ${name} is missing` };
    if (values.length > 1) return { error: `query parameter ${name} is repeated` };
    return re.test(values[0]) ? values[0] : { error: `${name} must match ${syntax}` };
  };
  const storeId = one("storeId", STORE_RE, "[A-Za-z0-9_-]{1,64}");
  if (typeof storeId !== "string") return { ok: false, ...storeId };
  const terminalId = one("terminalId", TERMINAL_RE, "[A-Za-z0-9_-]{1,32}");
  if (typeof terminalId !== "string") return { ok: false, ...terminalId };
  return { ok: true, storeId, terminalId };
}

type DataCheck = (data: Record<string, unknown>) => string | null;

function optionalString(data: Record<string, unknown>, key: string): string | null {
  const v = data[key];
  return v === undefined || v === null || typeof v === "string" ? null : `data.${key} must be a string`;
}

/** Data schema per topic; topics not listed have no schema beyond "a JSON object". */
export const TOPIC_SCHEMAS: Record<string, DataCheck> = {
  transaction(data) {
    if (typeof data.total !== "number") return "data.total must be a number";
    if (data.items !== undefined && data.items !== null && !Array.isArray(data.items)) {
      return "data.items must be an array";
    }
    return optionalString(data, "currency") ?? optionalString(data, "transaction_id");
  },
  inventory(data) {
    if (typeof data.sku !== "string" || data.sku === "") return "data.sku must be a non-empty string";
    const delta = data.delta;
    if (typeof delta !== "number" || !Number.isInteger(delta) || delta === 0 || Math.abs(delta) > MAX_DELTA) {
      return `data.delta must be a non-zero integer within ±${MAX_DELTA}`;
    }
    return optionalString(data, "reason");
  },
  customer(data) {
    if (typeof data.customer_id !== "string" || data.customer_id === "") {
      return "data.customer_id must be a non-empty string";
    }
    const version = data.version;
    if (typeof version !== "number" || !Number.isSafeInteger(version) || version < 1) {
      return "data.version must be an integer >= 1";
    }
    // A tombstone: {customer_id, version, deleted: true}. Absent or false: an update. Null is
    // refused rather than read as either.
    if (data.deleted !== undefined && typeof data.deleted !== "boolean") {
      return "data.deleted must be a boolean (true: the customer was deleted) or absent";
    }
    return null;
  },
};

/** Validates one message of the batch. A failure names the first problem found. */
export function checkMessage(raw: unknown): Checked {
  if (!isObject(raw)) {
    return {
      ok: false,
      messageId: null,
      storeId: null,
      terminalId: null,
      uploadedBy: null,
      error: "message must be a JSON object",
    };
  }
  const messageId = typeof raw.messageId === "string" ? raw.messageId : null;
  const storeId = typeof raw.storeId === "string" && STORE_RE.test(raw.storeId) ? raw.storeId : null;
  const terminalId = typeof raw.terminalId === "string" && TERMINAL_RE.test(raw.terminalId)
    ? raw.terminalId
    : null;
  const rawUploadedBy = raw.uploadedBy ?? null;
  const uploadedBy = typeof rawUploadedBy === "string" && TERMINAL_RE.test(rawUploadedBy) &&
      rawUploadedBy !== terminalId
    ? rawUploadedBy
    : null;
  const fail = (error: string): Checked => ({ ok: false, messageId, storeId, terminalId, uploadedBy, error });

  if (messageId === null || !UUID_RE.test(messageId)) return fail("messageId must be a UUID");
  if (storeId === null) return fail("storeId must match [A-Za-z0-9_-]{1,64}");
  if (terminalId === null) return fail("terminalId must match [A-Za-z0-9_-]{1,32}");
  if (rawUploadedBy !== null && (typeof rawUploadedBy !== "string" || !TERMINAL_RE.test(rawUploadedBy))) {
    return fail("uploadedBy must match [A-Za-z0-9_-]{1,32}, or be absent or null");
  }
  if (rawUploadedBy === terminalId) {
    return fail("uploadedBy must differ from terminalId (leave it out when a lane uploads its own messages)");
  }
  const seq = raw.seq;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
    return fail("seq must be an integer >= 1");
  }
  const topic = raw.topic;
  if (typeof topic !== "string" || !TOPIC_RE.test(topic)) return fail("topic must match [a-z0-9_.-]{1,64}");
  const priority = raw.priority;
  if (typeof priority !== "string" || !(PRIORITIES as readonly string[]).includes(priority)) {
    return fail(`priority must be one of ${PRIORITIES.join(", ")}`);
  }
  const data = raw.data;
  if (!isObject(data)) return fail("data must be a JSON object");
  const problem = jsonbProblem(data);
  if (problem !== null) return fail(`data ${problem}`);
  if (!isIsoTimestamp(raw.timestamp)) return fail("timestamp must be an ISO-8601 date-time with a zone");
  const peerAckedAt = raw.peerAckedAt ?? null;
  if (peerAckedAt !== null && !isIsoTimestamp(peerAckedAt)) {
    return fail("peerAckedAt must be an ISO-8601 date-time with a zone, or null");
  }
  const schemaError = Object.hasOwn(TOPIC_SCHEMAS, topic) ? TOPIC_SCHEMAS[topic](data) : null;
  if (schemaError !== null) return fail(`${topic}: ${schemaError}`);

  return {
    ok: true,
    message: {
      message_id: messageId,
      store_id: storeId,
      terminal_id: terminalId,
      seq,
      topic,
      priority: priority as Priority,
      data,
      timestamp: raw.timestamp,
      peer_acked_at: peerAckedAt,
      uploaded_by: uploadedBy,
    },
  };
}
