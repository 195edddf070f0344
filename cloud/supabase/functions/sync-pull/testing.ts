// Helpers for the *.test.ts files of this folder (never imported by index.ts, so never
// deployed or packaged): an in-memory change log for the handler's unit tests, and the
// client side of the integration tests, which talk to a running local cloud
// (tests/cloud/run-deno-tests.sh starts one and exports SUPABASE_URL, SUPABASE_SERVICE_KEY and
// SUPABASE_DB_URL).

import { localCloud } from "../_shared/testing.ts";
import postgres from "postgres";
import type { Change, PullReader, ScopeInfo } from "./pull.ts";

/**
 * An in-memory change log with the semantics of the migrations. Versions are handed out in
 * order; `compact` drops log rows and tombstones at or below a version and raises the
 * horizons, like lanesync.compact_change_log.
 */
interface Row {
  version: number;
  store: string | null;
  scope: string;
  key: string;
  data: unknown; // null: delete
}

export class FakeLog {
  rows: Row[] = [];
  current = new Map<string, Row>(); // scope \0 store \0 key -> latest row
  horizons = new Map<string, number>(); // scope \0 store -> horizon
  compactedThrough = 0;
  private next = 1;

  publish(store: string | null, scope: string, key: string, data: unknown): number {
    const row = { version: this.next++, store, scope, key, data };
    this.rows.push(row);
    this.current.set(`${scope}\0${store ?? ""}\0${key}`, row);
    const sk = `${scope}\0${store ?? ""}`;
    if (!this.horizons.has(sk)) this.horizons.set(sk, 0);
    return row.version;
  }

  compact(through: number): void {
    const raise = (r: Row) => {
      const sk = `${r.scope}\0${r.store ?? ""}`;
      this.horizons.set(sk, Math.max(this.horizons.get(sk) ?? 0, r.version));
    };
    this.rows.filter((r) => r.version <= through).forEach(raise);
    this.rows = this.rows.filter((r) => r.version > through);
    for (const [k, r] of this.current) {
      if (r.data === null && r.version <= through) {
        raise(r);
        this.current.delete(k);
      }
    }
    this.compactedThrough = Math.max(this.compactedThrough, through);
  }

  reader(): PullReader {
    const visible = (r: Row, store: string) => r.store === null || r.store === store;
    const change = (r: Row): Change => ({
      key: r.key,
      version: r.version,
      deleted: r.data === null,
      data: JSON.stringify(r.data),
      changed_at_ms: 1000 * r.version,
    });
    return {
      logHead: () => Promise.resolve(Math.max(this.compactedThrough, ...this.rows.map((r) => r.version), 0)),
      scopes: (store) => {
        const out = new Map<string, ScopeInfo>();
        for (const [sk, horizon] of this.horizons) {
          const [scope, s] = sk.split("\0");
          if (s !== "" && s !== store) continue;
          const info = out.get(scope) ?? { scope, head: 0, horizon: 0 };
          info.horizon = Math.max(info.horizon, horizon);
          out.set(scope, info);
        }
        for (const r of this.current.values()) {
          const info = out.get(r.scope);
          if (info && visible(r, store)) info.head = Math.max(info.head, r.version);
        }
        for (const info of out.values()) info.head = Math.max(info.head, info.horizon);
        return Promise.resolve([...out.values()].sort((a, b) => (a.scope < b.scope ? -1 : 1)));
      },
      changesAfter: (store, scope, after, limit) =>
        Promise.resolve(
          this.rows.filter((r) => r.scope === scope && visible(r, store) && r.version > after).slice(0, limit)
            .map(change),
        ),
      liveAfterKey: (store, scope, afterKey, limit) => {
        const best = new Map<string, Row>();
        for (const r of this.current.values()) {
          if (r.scope !== scope || !visible(r, store) || !(r.key > afterKey)) continue;
          const b = best.get(r.key);
          if (!b || b.version < r.version) best.set(r.key, r);
        }
        const live = [...best.values()].filter((r) => r.data !== null).sort((
          a,
          b,
        ) => (a.key < b.key ? -1 : 1));
        return Promise.resolve(live.slice(0, limit).map(change));
      },
    };
  }
}

// ---- against the local cloud -----------------------------------------------------------------

export const cloud = localCloud("sync-pull");

/** A fresh id (store or scope), so tests never see each other's rows. */
export function fresh(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

export interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** POSTs to sync-pull (the key as apikey and Bearer unless `key: null`). */
export async function pullRaw(
  body: unknown,
  opts: { key?: string | null; raw?: string } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  const key = opts.key === undefined ? cloud.key : opts.key;
  if (key !== null) {
    headers.apikey = key;
    headers.authorization = `Bearer ${key}`;
  }
  const res = await fetch(cloud.url, { method: "POST", headers, body: opts.raw ?? JSON.stringify(body) });
  const text = await res.text();
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed };
}

export interface WireChange {
  key: string;
  version: number;
  deleted: boolean;
  data: unknown;
  changed_at_ms: number;
}

export interface WireScope {
  scope: string;
  reset: boolean;
  continues_snapshot: boolean;
  resume: string;
  through: number;
  head: number;
  horizon: number;
  more: boolean;
  changes: WireChange[];
}

/** One pull expecting 200; returns the whole answer. */
export async function pull(
  store: string,
  cursors: Record<string, { through: number; resume?: string }>,
  limit = 500,
): Promise<{ head: number; scopes: WireScope[] }> {
  const r = await pullRaw({ store_id: store, terminal_id: "L1", limit, cursors });
  if (r.status !== 200) throw new Error(`expected 200, got ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body as unknown as { head: number; scopes: WireScope[] };
}

/** The page of one scope in an answer (throws when it is missing). */
export function scopeOf(answer: { scopes: WireScope[] }, scope: string): WireScope {
  const s = answer.scopes.find((x) => x.scope === scope);
  if (!s) throw new Error(`scope ${scope} missing from ${JSON.stringify(answer.scopes.map((x) => x.scope))}`);
  return s;
}

/** Runs fn with a database connection (the owner, like the function) and closes it. */
export async function withDb<T>(fn: (sql: postgres.Sql) => Promise<T>, max = 2): Promise<T> {
  const sql = postgres(cloud.dbUrl, { max, onnotice: () => {} });
  try {
    return await fn(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** publish_change on `sql`; returns the version. */
export async function publish(
  sql: postgres.Sql | postgres.TransactionSql,
  store: string | null,
  scope: string,
  key: string,
  data: unknown,
): Promise<number> {
  const [row] = await sql`select lanesync.publish_change(${store}, ${scope}, ${key},
    ${data === null ? null : JSON.stringify(data)}::text::jsonb)::text as v`;
  return Number(row.v);
}

/**
 * What a lane does with the pages (docs/downstream.md, "Lane"), small enough to check the
 * cloud against: apply a change only when its version is above the key's; a reset starts a
 * snapshot, whose last page deletes the keys it did not carry; through advances per page.
 */
export class LaneModel {
  keys = new Map<string, { version: number; deleted: boolean; data: unknown; gen: number }>();
  through = 0;
  resume = "";
  private gen = 0;

  cursor(): { through: number; resume: string } {
    return { through: this.through, resume: this.resume };
  }

  apply(p: WireScope): void {
    if (p.reset) this.gen++;
    const snap = p.reset || p.continues_snapshot;
    for (const c of p.changes) {
      const held = this.keys.get(c.key);
      if (!held || held.version < c.version) {
        this.keys.set(c.key, {
          version: c.version,
          deleted: c.deleted,
          data: c.data,
          gen: snap ? this.gen : 0,
        });
      } else if (snap) {
        held.gen = this.gen;
      }
    }
    if (snap && !p.more) {
      for (const held of this.keys.values()) {
        if (held.gen !== this.gen && !held.deleted) {
          held.deleted = true;
          held.data = null;
          held.version = Math.max(held.version, p.through);
        }
      }
      this.through = p.through;
      this.resume = "";
    } else if (snap) {
      this.resume = p.resume;
    } else {
      this.through = Math.max(this.through, p.through);
    }
  }

  /** key -> data of the live keys, sorted by key. */
  live(): Array<[string, unknown]> {
    return [...this.keys].filter(([, v]) => !v.deleted).map(([k, v]): [string, unknown] => [k, v.data])
      .sort((a, b) => (a[0] < b[0] ? -1 : 1));
  }
}

/** The cloud's current live state of a scope as a store sees it (the higher version of a key wins). */
export async function cloudLive(
  sql: postgres.Sql,
  store: string,
  scope: string,
): Promise<Array<[string, unknown]>> {
  const rows = await sql`
    select key, deleted, data from (
      select distinct on (key) key, deleted, data from public.catalog_current
      where scope = ${scope} and (store_id = ${store} or store_id is null)
      order by key, version desc) x
    where not deleted order by key collate "C"`;
  return rows.map((r): [string, unknown] => [r.key as string, r.data]);
}

/** Pulls one scope until it has nothing more; returns the number of pulls. */
export async function pullUntilDone(
  store: string,
  scope: string,
  lane: LaneModel,
  limit: number,
): Promise<number> {
  for (let n = 1;; n++) {
    const p = scopeOf(await pull(store, { [scope]: lane.cursor() }, limit), scope);
    lane.apply(p);
    if (!p.more) return n;
  }
}
