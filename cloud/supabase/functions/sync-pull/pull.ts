// What sync-pull answers for one scope: a catch-up page from the log, or a page of a snapshot
// of the current state (docs/cloud.md, "sync-pull"). Pure: the reads are injected
// (`PullReader`, all in one database snapshot), so the rules are unit-tested without a database.

import { decodeResume, encodeResume } from "./token.ts";
import type { Cursor } from "./validate.ts";

export interface Change {
  key: string;
  version: number;
  deleted: boolean;
  /**
   * The JSON value as the database wrote it (jsonb's text), "null" for a delete: spliced into
   * the answer as is, so numbers keep every digit (no round trip through JavaScript numbers).
   */
  data: string;
  changed_at_ms: number;
}

export interface ScopeInfo {
  scope: string;
  /** The scope's highest version visible to the store (horizon included). */
  head: number;
  /** Log rows and tombstones of this scope (for this store) at or below it may be gone. */
  horizon: number;
}

/** The reads of one request, all in one snapshot of the database. */
export interface PullReader {
  /** The log's head: every version <= it is committed or rolled back. */
  logHead(): Promise<number>;
  /** Every scope with a row visible to the store (store_id = S or null), by name. */
  scopes(storeId: string): Promise<ScopeInfo[]>;
  /** Log rows of the scope visible to the store with version > after, version order, at most limit. */
  changesAfter(storeId: string, scope: string, after: number, limit: number): Promise<Change[]>;
  /**
   * Live current rows of the scope visible to the store with key > afterKey, key order, at
   * most limit; of a key held chain-wide and for the store, the higher version.
   */
  liveAfterKey(storeId: string, scope: string, afterKey: string, limit: number): Promise<Change[]>;
}

export interface ScopePage {
  scope: string;
  reset: boolean;
  continues_snapshot: boolean;
  resume: string;
  through: number;
  head: number;
  horizon: number;
  more: boolean;
  changes: Change[];
}

/** A resume token this function cannot use: the request is answered 400. */
export class BadResume extends Error {}

/**
 * One scope's page. `cursor` null: the scope is new to the lane. `logHead` is the log's head
 * in the same snapshot as every read.
 */
export async function pullScope(
  r: PullReader,
  storeId: string,
  info: ScopeInfo,
  cursor: Cursor | null,
  limit: number,
  logHead: number,
): Promise<ScopePage> {
  const through = cursor?.through ?? 0;
  // The wire's field order (docs/cloud.md).
  const page = (p: Omit<ScopePage, "scope" | "head" | "horizon">): ScopePage => ({
    scope: info.scope,
    reset: p.reset,
    continues_snapshot: p.continues_snapshot,
    resume: p.resume,
    through: p.through,
    head: info.head,
    horizon: info.horizon,
    more: p.more,
    changes: p.changes,
  });

  const snapshot = async (asOf: number, afterKey: string, first: boolean): Promise<ScopePage> => {
    const rows = await r.liveAfterKey(storeId, info.scope, afterKey, limit + 1);
    const more = rows.length > limit;
    const changes = more ? rows.slice(0, limit) : rows;
    return page({
      reset: first,
      continues_snapshot: !first,
      resume: more
        ? encodeResume({ scope: info.scope, store: storeId, asOf, key: changes[changes.length - 1].key })
        : "",
      // A snapshot under way completes nothing: the lane's cursor stays until the last page.
      through: more ? through : asOf,
      more,
      changes,
    });
  };

  if (cursor !== null && cursor.resume !== "") {
    const t = decodeResume(cursor.resume);
    if (t === null) throw new BadResume(`cursors.${info.scope}.resume is not a resume token of sync-pull`);
    if (t.scope !== info.scope || t.store !== storeId) {
      throw new BadResume(`cursors.${info.scope}.resume belongs to another scope or store`);
    }
    // Expired (compaction passed its as_of: the log after it is no longer complete), or
    // from a log that was reset: start the snapshot again.
    if (t.asOf < info.horizon || t.asOf > logHead) return await snapshot(logHead, "", true);
    return await snapshot(t.asOf, t.key, false);
  }
  // No cursor, one below the horizon (changes it has not seen may be gone), or one above the
  // log's head (the cloud's log was reset): the current state, paged.
  if (through === 0 || through < info.horizon || through > logHead) return await snapshot(logHead, "", true);

  const rows = await r.changesAfter(storeId, info.scope, through, limit + 1);
  const more = rows.length > limit;
  const changes = more ? rows.slice(0, limit) : rows;
  return page({
    reset: false,
    continues_snapshot: false,
    resume: "",
    through: more ? changes[changes.length - 1].version : logHead,
    more,
    changes,
  });
}
