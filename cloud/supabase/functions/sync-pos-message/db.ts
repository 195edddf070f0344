// The database side of a sync request: one transaction per request that applies every valid
// message (lanesync.apply_batch, see the migrations) and writes the sync_log rows; and the
// read of one lane's highest seq (GET).

import { seqFromText, type Sql } from "../_shared/db.ts";
import type { Checked, ValidLane, ValidMessage } from "./validate.ts";

export type { Sql };

export type Status = "stored" | "duplicate" | "rejected";
export interface Result {
  messageId: string | null;
  status: Status;
  error?: string;
}

/** Retried SQLSTATEs: the whole transaction is safe to run again. */
const RETRY_CODES = new Set(["40001", "40P01"]); // serialization_failure, deadlock_detected
const ATTEMPTS = 5;

interface LogRow {
  request_id: string;
  store_id: string | null;
  terminal_id: string | null;
  uploaded_by: string | null;
  stored: number;
  duplicate: number;
  rejected: number;
  min_seq: number | null;
  max_seq: number | null;
}

/**
 * One sync_log row per (store, origin lane, uploading lane) in the request: null store/terminal
 * for unnamed ones, null uploaded_by for a lane's own messages.
 */
function logRows(requestId: string, checked: Checked[], results: Result[]): LogRow[] {
  const rows = new Map<string, LogRow>();
  checked.forEach((c, i) => {
    const storeId = c.ok ? c.message.store_id : c.storeId;
    const terminalId = c.ok ? c.message.terminal_id : c.terminalId;
    const uploadedBy = c.ok ? c.message.uploaded_by : c.uploadedBy;
    const key = JSON.stringify([storeId, terminalId, uploadedBy]);
    let row = rows.get(key);
    if (row === undefined) {
      row = {
        request_id: requestId,
        store_id: storeId,
        terminal_id: terminalId,
        uploaded_by: uploadedBy,
        stored: 0,
        duplicate: 0,
        rejected: 0,
        min_seq: null,
        max_seq: null,
      };
      rows.set(key, row);
    }
    row[results[i].status] += 1;
    if (c.ok) {
      row.min_seq = row.min_seq === null ? c.message.seq : Math.min(row.min_seq, c.message.seq);
      row.max_seq = row.max_seq === null ? c.message.seq : Math.max(row.max_seq, c.message.seq);
    }
  });
  return [...rows.values()];
}

async function applyOnce(
  sql: Sql,
  requestId: string,
  checked: Checked[],
  lane: ValidLane | null,
): Promise<Result[]> {
  const valid: ValidMessage[] = checked.flatMap((c) => (c.ok ? [c.message] : []));
  return await sql.begin(async (tx) => {
    let applied: Array<{ status: Status; error?: string }> = [];
    if (valid.length > 0 || lane !== null) {
      // An array of JSON texts: the database parses each message in its own subtransaction.
      const texts = JSON.stringify(valid.map((m) => JSON.stringify(m)));
      // The lane's summary goes in the same call: recorded in this transaction, before the
      // messages (lanesync.apply_batch(jsonb, jsonb), migration ..._lane_health.sql).
      const [row] = lane === null
        ? await tx`select lanesync.apply_batch(${texts}::text::jsonb) as results`
        : await tx`select lanesync.apply_batch(${texts}::text::jsonb, ${
          JSON.stringify({ ...lane, heartbeat: checked.length === 0 })
        }::text::jsonb) as results`;
      applied = row.results;
      if (!Array.isArray(applied) || applied.length !== valid.length) {
        throw new Error(`apply_batch returned ${applied?.length} results for ${valid.length} messages`);
      }
    }
    let next = 0;
    const results: Result[] = checked.map((c) => {
      if (!c.ok) return { messageId: c.messageId, status: "rejected", error: c.error };
      const r = applied[next++];
      return r.status === "rejected"
        ? { messageId: c.message.message_id, status: "rejected", error: r.error ?? "rejected" }
        : { messageId: c.message.message_id, status: r.status };
    });
    const rows = logRows(requestId, checked, results);
    if (rows.length > 0) await tx`insert into public.sync_log ${tx(rows)}`;
    return results;
  }) as Result[];
}

/**
 * Applies a validated batch in one transaction and returns one result per entry, in order;
 * with `lane`, records the sending lane's summary in that transaction (a heartbeat when the
 * batch is empty).
 * Deadlocks and serialization failures (concurrent batches touching the same stock rows)
 * roll the whole transaction back and run it again, a bounded number of times. Any error
 * that escapes means nothing was committed.
 */
export async function applyBatch(
  sql: Sql,
  requestId: string,
  checked: Checked[],
  lane: ValidLane | null = null,
): Promise<Result[]> {
  // Nothing to commit (cloud-up.sh probes with this); a heartbeat has its lane to record.
  if (checked.length === 0 && lane === null) return [];
  for (let attempt = 1;; attempt++) {
    try {
      return await applyOnce(sql, requestId, checked, lane);
    } catch (err) {
      const code = (err as { code?: unknown })?.code;
      // No pause needed: the surviving transaction holds the locks, so the rerun waits on them.
      if (attempt >= ATTEMPTS || typeof code !== "string" || !RETRY_CODES.has(code)) throw err;
    }
  }
}

/**
 * The greatest seq the cloud holds of one lane (store, terminal): over its messages
 * (pos_messages) and the later copies recorded at its seqs (pos_message_copies); 0 when none.
 * One statement; each side is an index lookup (the unique key / primary key lead with
 * store_id, terminal_id, seq). No lane lock: a plain read of committed rows.
 */
export async function highestSeq(sql: Sql, storeId: string, terminalId: string): Promise<number> {
  const [row] = await sql`
    select greatest(
      (select max(seq) from public.pos_messages
        where store_id = ${storeId} and terminal_id = ${terminalId}),
      (select max(seq) from public.pos_message_copies
        where store_id = ${storeId} and terminal_id = ${terminalId}),
      0
    )::text as highest`;
  return seqFromText(row?.highest);
}
