-- lanesync cloud schema: every POS message lands in public.pos_messages exactly once
-- (keyed by message_id), and is applied by topic to the domain tables in the same
-- transaction by lanesync.apply_batch() (next migration), called by the edge function
-- sync-pos-message.
--
-- Access model:
--   * The edge function connects as the database owner (SUPABASE_DB_URL), which owns these
--     tables and so is not subject to RLS. It is the only writer.
--   * RLS is enabled on every table. Signed-in users (role `authenticated`) may only read
--     rows of their own store: the `store_id` claim of their JWT, either top level (set by
--     a custom access token hook) or in `app_metadata` (set with the service key). Neither
--     can be changed by the user.
--   * `anon` gets nothing.

-- Private schema for lanesync's functions (not exposed by the Data API).
create schema if not exists lanesync;
revoke all on schema lanesync from public;
grant usage on schema lanesync to authenticated;

-- The store claim of the caller's JWT, or null. Used by every policy.
create or replace function lanesync.jwt_store_id() returns text
language sql stable
set search_path = ''
as $$
  select coalesce(auth.jwt() ->> 'store_id', auth.jwt() -> 'app_metadata' ->> 'store_id')
$$;
revoke all on function lanesync.jwt_store_id() from public, anon;
grant execute on function lanesync.jwt_store_id() to authenticated;

-- Every message, as the lane sent it. created_at is the lane's timestamp; received_at is
-- when the cloud committed it.
create table public.pos_messages (
  message_id    uuid primary key,
  store_id      text not null check (store_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  terminal_id   text not null check (terminal_id ~ '^[A-Za-z0-9_-]{1,32}$'),
  seq           bigint not null check (seq >= 1),
  topic         text not null check (topic ~ '^[a-z0-9_.-]{1,64}$'),
  priority      text not null check (priority in ('critical', 'high', 'normal', 'low')),
  data          jsonb not null check (jsonb_typeof(data) = 'object'),
  created_at    timestamptz not null,
  peer_acked_at timestamptz,
  received_at   timestamptz not null default now(),
  constraint pos_messages_origin_seq_key unique (store_id, terminal_id, seq)
);
create index pos_messages_store_topic_created_idx on public.pos_messages (store_id, topic, created_at);
comment on table public.pos_messages is
  'Every POS message once (message_id); (store_id, terminal_id, seq) is the lane''s gap-free sequence.';

-- topic "transaction": one row per message.
create table public.sales (
  message_id     uuid primary key references public.pos_messages (message_id),
  store_id       text not null,
  terminal_id    text not null,
  transaction_id text,
  total          numeric not null,
  currency       text,
  items          jsonb check (items is null or jsonb_typeof(items) = 'array'),
  sold_at        timestamptz not null,
  received_at    timestamptz not null default now()
);
create index sales_store_sold_at_idx on public.sales (store_id, sold_at);
create index sales_store_transaction_idx on public.sales (store_id, transaction_id);

-- topic "inventory": one movement per message, and the running quantity per (store, sku),
-- kept as quantity = quantity + delta so concurrent lanes never lose an update.
create table public.inventory_movements (
  message_id  uuid primary key references public.pos_messages (message_id),
  store_id    text not null,
  terminal_id text not null,
  sku         text not null check (sku <> ''),
  delta       bigint not null check (delta <> 0),
  reason      text,
  moved_at    timestamptz not null,
  received_at timestamptz not null default now()
);
create index inventory_movements_store_sku_idx on public.inventory_movements (store_id, sku);

create table public.stock_levels (
  store_id   text not null,
  sku        text not null,
  quantity   bigint not null,
  updated_at timestamptz not null default now(),
  primary key (store_id, sku)
);

-- topic "customer": versioned records. A message whose version is not newer than the stored
-- one does not overwrite it; it is recorded in customer_conflicts instead.
create table public.customers (
  store_id    text not null,
  customer_id text not null check (customer_id <> ''),
  version     bigint not null check (version >= 1),
  data        jsonb not null,
  updated_at  timestamptz not null,
  message_id  uuid not null references public.pos_messages (message_id),
  primary key (store_id, customer_id)
);

create table public.customer_conflicts (
  id               bigint generated always as identity primary key,
  message_id       uuid not null unique references public.pos_messages (message_id),
  store_id         text not null,
  customer_id      text not null,
  stored_version   bigint not null,
  incoming_version bigint not null,
  incoming_data    jsonb not null,
  detected_at      timestamptz not null default now()
);
create index customer_conflicts_store_customer_idx on public.customer_conflicts (store_id, customer_id);

-- One row per request and origin lane (store_id, terminal_id): how many of that lane's
-- messages the request stored, found duplicate or rejected. Messages too malformed to name
-- a valid store/terminal are counted in a row with null store_id/terminal_id.
create table public.sync_log (
  id           bigint generated always as identity primary key,
  request_id   uuid not null,
  store_id     text,
  terminal_id  text,
  stored       integer not null default 0,
  duplicate    integer not null default 0,
  rejected     integer not null default 0,
  min_seq      bigint,
  max_seq      bigint,
  received_at  timestamptz not null default now()
);
create index sync_log_store_terminal_idx on public.sync_log (store_id, terminal_id, received_at);
create index sync_log_request_idx on public.sync_log (request_id);

-- Row level security on every table; store-scoped read access for signed-in users.
do $$
declare
  t text;
begin
  foreach t in array array['pos_messages', 'sales', 'inventory_movements', 'stock_levels',
                           'customers', 'customer_conflicts', 'sync_log']
  loop
    execute format('alter table public.%I enable row level security', t);
    execute format('revoke all on table public.%I from anon, authenticated', t);
    execute format('grant select on table public.%I to authenticated', t);
    execute format(
      'create policy %I on public.%I for select to authenticated using (store_id = (select lanesync.jwt_store_id()))',
      t || '_select_own_store', t);
  end loop;
end
$$;
