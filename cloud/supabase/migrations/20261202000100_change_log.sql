-- Downstream (issue 13): head office's changes to the lanes. Head office publishes with
-- lanesync.publish_change(store_id, scope, key, data); the edge function sync-pull serves them
-- to the lanes after per-scope cursors (docs/downstream.md, "Cloud").
--
--   public.change_log       every change, append-only: version (one number space for every
--                           scope and store, only grows), scope, key, op upsert | delete (a
--                           tombstone, data null), data, store_id (null = every store), time
--   public.catalog_current  the current state: one row per (scope, store_id, key), the latest
--                           change of that key, tombstones included (snapshots read it)
--   public.catalog_scopes   one row per (scope, store_id) that ever had a change, with the
--                           compaction horizon of that pair (see ..._compaction.sql)
--
-- The cursor scheme: writes to the log are serialized. publish_change takes one transaction
-- level advisory lock (the "log lock") before it takes the next version and holds it to the
-- commit, so versions are handed out in commit order: a reader that sees version v committed
-- also sees every lower version that will ever commit (or it was rolled back and never
-- will). A reader of `version > cursor order by version` in one snapshot therefore never
-- skips a change that commits later with a lower version. The cost: a long head-office
-- transaction that published holds back every other publisher (they wait on the lock), and
-- so every lane's view of later changes, until it commits or rolls back.
--
-- Access: the edge function and head office connect as the database owner (not subject to
-- RLS); only publish_change writes these tables. Signed-in users (authenticated) with a
-- store claim may read the rows of their store and the chain-wide rows (store_id null).

-- Versions: taken only under the log lock, so in commit order. A rolled-back publish leaves
-- a gap that never fills (no reader ever saw that version).
create sequence lanesync.change_version as bigint minvalue 1 no cycle;

-- One row: the highest version compaction removed (the log's head survives compaction).
create table lanesync.change_log_state (
  singleton         boolean primary key default true check (singleton),
  compacted_through bigint not null default 0 check (compacted_through >= 0)
);
insert into lanesync.change_log_state default values;

create table public.change_log (
  version    bigint primary key check (version >= 1),
  store_id   text check (store_id is null or store_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  scope      text not null check (scope ~ '^[a-z0-9_.-]{1,64}$'),
  key        text not null check (octet_length(key) between 1 and 256),
  op         text not null check (op in ('upsert', 'delete')),
  data       jsonb,
  changed_at timestamptz not null default clock_timestamp(),
  -- store_id as an index key: '' for chain-wide rows (never a store id), so that an index on
  -- it serves `= ''` in order (the planner cannot use `is null` for an ordered index scan).
  store_key  text not null generated always as (coalesce(store_id, '')) stored,
  constraint change_log_data_iff_upsert check ((op = 'upsert') = (data is not null))
);
-- Catch-up reads: (scope, store S) and (scope, chain-wide), each in version order.
create index change_log_scope_store_version_idx on public.change_log (scope, store_key, version);
comment on table public.change_log is
  'Head office''s changes, one version space, in commit order (lanesync.publish_change); store_id null = every store.';

create table public.catalog_current (
  scope      text not null,
  store_id   text,
  key        text not null,
  version    bigint not null,
  deleted    boolean not null,
  data       jsonb,
  changed_at timestamptz not null,
  store_key  text not null generated always as (coalesce(store_id, '')) stored,
  constraint catalog_current_key unique (scope, store_key, key)
);
-- Snapshots read (scope, store) in key order (the unique index); heads read the top version.
create index catalog_current_scope_store_version_idx on public.catalog_current (scope, store_key, version);
comment on table public.catalog_current is
  'The latest change of each (scope, store_id, key), tombstones (deleted) included until compaction.';

create table public.catalog_scopes (
  scope      text not null,
  store_id   text,
  horizon    bigint not null default 0 check (horizon >= 0),
  created_at timestamptz not null default now(),
  store_key  text not null generated always as (coalesce(store_id, '')) stored,
  constraint catalog_scopes_key unique (scope, store_key)
);
comment on table public.catalog_scopes is
  'Every (scope, store_id) with changes; horizon: log rows and tombstones at or below it may be gone.';

-- The log lock's key (a 64-bit advisory lock key of its own).
create or replace function lanesync.lock_change_log() returns void
language sql volatile
as $$
  select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('lanesync.change_log', 0))
$$;

-- Publishes changes of one (store, scope) in the caller's transaction, in array order (a key
-- given twice: the later one wins), and returns the last version (null for empty arrays).
-- store_id null: every store; a data element null (SQL or JSON null): a delete, kept as a
-- tombstone. Set-based (one statement per table), for bulk loads and the statement triggers
-- of ..._products.sql; lanesync.publish_change is the one-change form. The changes are
-- visible to sync-pull when the caller's transaction commits; the log lock is held until then.
create or replace function lanesync.publish_set(p_store text, p_scope text, p_keys text[], p_data jsonb[])
returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_last bigint;
  v_at   timestamptz;
begin
  if p_store is not null and p_store !~ '^[A-Za-z0-9_-]{1,64}$' then
    raise exception 'lanesync publish: store_id must match [A-Za-z0-9_-]{1,64} or be null'
      using errcode = 'invalid_parameter_value';
  end if;
  if p_scope is null or p_scope !~ '^[a-z0-9_.-]{1,64}$' then
    raise exception 'lanesync publish: scope must match [a-z0-9_.-]{1,64}'
      using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(cardinality(p_keys), 0) <> coalesce(cardinality(p_data), 0) then
    raise exception 'lanesync publish: % keys but % data values', cardinality(p_keys), cardinality(p_data)
      using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(cardinality(p_keys), 0) = 0 then
    return null;
  end if;
  if exists (select 1 from unnest(p_keys) k where k is null or octet_length(k) not between 1 and 256) then
    raise exception 'lanesync publish: every key must be 1 to 256 bytes'
      using errcode = 'invalid_parameter_value';
  end if;

  -- The log lock, then the versions: held to the commit, so versions follow commit order.
  perform lanesync.lock_change_log();
  v_at := clock_timestamp();
  with numbered as (
    -- nextval in array order (the subquery is sorted), so a later element gets a higher version.
    select s.k, s.del, s.d, nextval('lanesync.change_version') as v
    from (select u.k, (u.d is null or jsonb_typeof(u.d) = 'null') as del, u.d, u.n
          from unnest(p_keys, p_data) with ordinality as u(k, d, n)
          order by u.n) s
  ), logged as (
    insert into public.change_log (version, store_id, scope, key, op, data, changed_at)
    select n.v, p_store, p_scope, n.k, case when n.del then 'delete' else 'upsert' end,
           case when n.del then null else n.d end, v_at
    from numbered n
    returning change_log.version, change_log.key, change_log.op, change_log.data
  ), latest as (
    select distinct on (l.key) l.key, l.version, l.op = 'delete' as del, l.data
    from logged l
    order by l.key, l.version desc
  ), cur as (
    insert into public.catalog_current (scope, store_id, key, version, deleted, data, changed_at)
    select p_scope, p_store, x.key, x.version, x.del, x.data, v_at from latest x
    on conflict on constraint catalog_current_key do update
      set version = excluded.version, deleted = excluded.deleted, data = excluded.data,
          changed_at = excluded.changed_at
  )
  select max(l.version) into v_last from logged l;

  if not exists (select 1 from public.catalog_scopes c
                 where c.scope = p_scope and c.store_key = coalesce(p_store, '')) then
    insert into public.catalog_scopes (scope, store_id) values (p_scope, p_store)
    on conflict on constraint catalog_scopes_key do nothing;
  end if;
  return v_last;
end
$$;

-- Publishes one change and returns its version. store_id null: every store; data null (SQL
-- or JSON null): a delete, kept as a tombstone. Runs in the caller's transaction: the change
-- is visible to sync-pull when that transaction commits, and the log lock is held until then.
create or replace function lanesync.publish_change(store_id text, scope text, key text, data jsonb)
returns bigint
language sql volatile
set search_path = ''
as $$
  select lanesync.publish_set(store_id, scope, array[key], array[data])
$$;

-- The log's head: its highest committed version as seen by the caller's snapshot (every
-- version at or below it is committed or was rolled back), compaction included.
create or replace function lanesync.change_log_head() returns bigint
language sql stable
set search_path = ''
as $$
  select greatest((select max(version) from public.change_log),
                  (select compacted_through from lanesync.change_log_state), 0)
$$;

revoke all on function lanesync.lock_change_log() from public, anon, authenticated;
revoke all on function lanesync.publish_change(text, text, text, jsonb) from public, anon, authenticated;
revoke all on function lanesync.publish_set(text, text, text[], jsonb[]) from public, anon, authenticated;
revoke all on function lanesync.change_log_head() from public, anon, authenticated;
revoke all on sequence lanesync.change_version from public, anon, authenticated;
revoke all on table lanesync.change_log_state from public, anon, authenticated;
alter table lanesync.change_log_state enable row level security;

-- RLS: a signed-in user with a store claim reads its store's rows and the chain-wide ones.
do $$
declare
  t text;
begin
  foreach t in array array['change_log', 'catalog_current', 'catalog_scopes']
  loop
    execute format('alter table public.%I enable row level security', t);
    execute format('revoke all on table public.%I from anon, authenticated', t);
    execute format('grant select on table public.%I to authenticated', t);
    execute format(
      'create policy %I on public.%I for select to authenticated using ('
      '(select lanesync.jwt_store_id()) is not null and '
      '(store_id = (select lanesync.jwt_store_id()) or store_id is null))',
      t || '_select_own_store_and_chain', t);
  end loop;
end
$$;
