// The database side of sync-pull: the reads of one request, in one read-only REPEATABLE READ
// transaction, so every read sees the same snapshot (the log's head and the pages agree).
// Tables and functions: migrations ..._change_log.sql, ..._compaction.sql.

import { seqFromText, type Sql } from "../_shared/db.ts";
import type { Change, PullReader, ScopeInfo } from "./pull.ts";

type Row = Record<string, unknown>;

function change(row: Row): Change {
  return {
    key: row.key as string,
    version: seqFromText(row.version),
    deleted: row.deleted as boolean,
    data: row.deleted || row.data === null ? "null" : (row.data as string),
    changed_at_ms: Number(row.at_ms),
  };
}

/** A reader bound to one transaction. */
export function reader(tx: Sql): PullReader {
  return {
    async logHead() {
      const [row] = await tx`select lanesync.change_log_head()::text as head`;
      return seqFromText(row.head);
    },

    async scopes(storeId) {
      // head: the scope's highest version for the store (current rows keep each key's latest
      // version; purged tombstones are at or below the horizon).
      const rows = await tx`
        select s.scope, max(s.horizon)::text as horizon,
          greatest(max(s.horizon),
            (select max(c.version) from public.catalog_current c
              where c.scope = s.scope and c.store_key = ${storeId}),
            (select max(c.version) from public.catalog_current c
              where c.scope = s.scope and c.store_key = ''), 0)::text as head
        from public.catalog_scopes s
        where s.store_key in (${storeId}, '')
        group by s.scope
        order by s.scope`;
      return rows.map((r): ScopeInfo => ({
        scope: r.scope as string,
        head: seqFromText(r.head),
        horizon: seqFromText(r.horizon),
      }));
    },

    async changesAfter(storeId, scope, after, limit) {
      // Two index range scans (the store's rows, the chain-wide rows) merged in version order.
      const rows = await tx`
        select u.version::text as version, u.key, u.op = 'delete' as deleted, u.data::text as data,
          (extract(epoch from u.changed_at) * 1000)::bigint::text as at_ms
        from (
          (select * from public.change_log
            where scope = ${scope} and store_key = ${storeId} and version > ${after}
            order by version limit ${limit})
          union all
          (select * from public.change_log
            where scope = ${scope} and store_key = '' and version > ${after}
            order by version limit ${limit})
        ) u
        order by u.version
        limit ${limit}`;
      return rows.map(change);
    },

    async liveAfterKey(storeId, scope, afterKey, limit) {
      // Two ordered index range scans (the store's rows, the chain-wide rows; store_key ''),
      // merged in key order; a row is left out when the same key has a higher version on the
      // other side, and tombstones are left out. The other side's version is a scalar
      // subquery (one index probe per row), which the planner keeps as such: a NOT EXISTS would
      // be turned into a hash anti join that loses the index order and sorts the whole scope.
      const rows = await tx`
        select u.version::text as version, u.key, false as deleted, u.data::text as data,
          (extract(epoch from u.changed_at) * 1000)::bigint::text as at_ms
        from (
          (select c.version, c.key, c.data, c.changed_at from public.catalog_current c
            where c.scope = ${scope} and c.store_key = ${storeId} and c.key > ${afterKey}
              and not c.deleted
              and coalesce((select o.version from public.catalog_current o
                where o.scope = ${scope} and o.store_key = '' and o.key = c.key), 0) < c.version
            order by c.key
            limit ${limit})
          union all
          (select c.version, c.key, c.data, c.changed_at from public.catalog_current c
            where c.scope = ${scope} and c.store_key = '' and c.key > ${afterKey}
              and not c.deleted
              and coalesce((select o.version from public.catalog_current o
                where o.scope = ${scope} and o.store_key = ${storeId} and o.key = c.key), 0) < c.version
            order by c.key
            limit ${limit})
        ) u
        order by u.key
        limit ${limit}`;
      return rows.map(change);
    },
  };
}

/** Runs fn with a reader on one read-only REPEATABLE READ transaction. */
export async function readSnapshot<T>(sql: Sql, fn: (r: PullReader) => Promise<T>): Promise<T> {
  return await sql.begin(
    "isolation level repeatable read read only",
    (tx) => fn(reader(tx as unknown as Sql)),
  ) as T;
}
