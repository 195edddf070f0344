-- Customer tombstones and reorders.
--
-- Tombstones: a customer deleted at the POS arrives as topic "customer" with data
-- {customer_id, version, deleted: true}. It follows the same version rule as an update: it
-- applies when its version is higher than the stored one, and then sets deleted_at (when the
-- cloud applied it) and keeps the row, with the tombstone message's data; nothing in the sync
-- path deletes a customer. An update with a lower (or equal) version never resurrects it; one
-- with a higher version does (deleted_at back to null). lanesync.purge_tombstones(older_than)
-- removes tombstones applied longer ago than that, scheduled daily with pg_cron where the
-- extension can be used, else by head office (docs/cloud.md, "Customers").
--
-- Reorders: a lane may upload its messages out of seq order (by priority), so an older
-- version from the same lane (terminal_id) at a lower seq than the stored winning write is
-- its own past, not a conflict: it is skipped and not recorded in customer_conflicts. A
-- stale version from another lane, or from the same lane at a higher seq, is a conflict as
-- before. customers therefore remembers the origin lane and seq of the winning write.

alter table public.customers
  add column terminal_id text,
  add column seq         bigint,
  add column deleted_at  timestamptz;

-- The winning write of every existing row is its message_id (always in pos_messages).
update public.customers c set terminal_id = m.terminal_id, seq = m.seq
  from public.pos_messages m
  where m.message_id = c.message_id;

alter table public.customers
  alter column terminal_id set not null,
  alter column seq set not null,
  add constraint customers_seq_check check (seq >= 1);

-- purge_tombstones reads the tombstones by age.
create index customers_deleted_at_idx on public.customers (deleted_at) where deleted_at is not null;

comment on column public.customers.deleted_at is
  'Set when the winning write is a tombstone (data.deleted = true): when the cloud applied it; null for a live customer.';
comment on column public.customers.terminal_id is 'The origin lane of the winning write (message_id).';
comment on column public.customers.seq is 'The seq of the winning write in its origin lane.';

-- Applies one message (a jsonb object with the keys message_id, store_id, terminal_id, seq,
-- topic, priority, data, timestamp, peer_acked_at) and returns
-- {"status": "stored" | "duplicate" | "rejected", "error"?: text}. As in
-- ..._pos_message_copies.sql but for topic "customer" (tombstones, reorders).
create or replace function lanesync.apply_message(m jsonb) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_id        uuid        := (m ->> 'message_id')::uuid;
  v_store     text        := m ->> 'store_id';
  v_terminal  text        := m ->> 'terminal_id';
  v_seq       bigint      := (m ->> 'seq')::bigint;
  v_topic     text        := m ->> 'topic';
  v_priority  text        := m ->> 'priority';
  v_data      jsonb       := m -> 'data';
  v_created   timestamptz := (m ->> 'timestamp')::timestamptz;
  v_peer      timestamptz := (m ->> 'peer_acked_at')::timestamptz;
  v_existing  public.pos_messages;
  v_copy      public.pos_message_copies;
  v_other_id  uuid;
  v_result    jsonb;
  v_customer  text;
  v_version   bigint;
  v_deleted   boolean;
  v_customer_row public.customers;
begin
  perform lanesync.lock_lane(v_store, v_terminal);

  -- This seq of this lane already recorded as a copy: the same copy again gets the same
  -- answer; another id there is a seq conflict.
  select * into v_copy from public.pos_message_copies
    where store_id = v_store and terminal_id = v_terminal and seq = v_seq;
  if found then
    if v_copy.message_id <> v_id then
      return jsonb_build_object('status', 'rejected', 'error',
        format('seq conflict: seq %s of %s/%s is already used by message %s',
               v_seq, v_store, v_terminal, v_copy.message_id));
    end if;
    select * into v_existing from public.pos_messages where message_id = v_id;
    return lanesync.copy_result(v_existing, v_store, v_terminal, v_seq, v_topic, v_data);
  end if;

  -- ON CONFLICT DO NOTHING covers both the primary key and (store, terminal, seq). If a
  -- concurrent transaction is inserting the same id, this waits for it to finish, so the
  -- lookups below see its outcome.
  insert into public.pos_messages
    (message_id, store_id, terminal_id, seq, topic, priority, data, created_at, peer_acked_at)
  values
    (v_id, v_store, v_terminal, v_seq, v_topic, v_priority, v_data, v_created, v_peer)
  on conflict do nothing;

  if not found then
    select * into v_existing from public.pos_messages where message_id = v_id;
    if found then
      v_result := lanesync.copy_result(v_existing, v_store, v_terminal, v_seq, v_topic, v_data);
      if v_existing.store_id = v_store and v_existing.terminal_id = v_terminal
         and v_existing.seq = v_seq then
        return v_result;  -- the stored message itself, redelivered
      end if;
      -- A later copy (another lane accepted the same id): account for its seq, unless that
      -- seq of its lane already holds another message.
      select message_id into v_other_id from public.pos_messages
        where store_id = v_store and terminal_id = v_terminal and seq = v_seq;
      if found then
        return jsonb_build_object('status', 'rejected', 'error',
          format('seq conflict: seq %s of %s/%s is already used by message %s',
                 v_seq, v_store, v_terminal, v_other_id));
      end if;
      insert into public.pos_message_copies (message_id, store_id, terminal_id, seq, same_content)
      values (v_id, v_store, v_terminal, v_seq, v_result ->> 'status' = 'duplicate');
      return v_result;
    end if;

    select message_id into v_other_id from public.pos_messages
      where store_id = v_store and terminal_id = v_terminal and seq = v_seq;
    if found then
      return jsonb_build_object('status', 'rejected', 'error',
        format('seq conflict: seq %s of %s/%s is already used by message %s',
               v_seq, v_store, v_terminal, v_other_id));
    end if;
    -- Not reachable while nothing deletes from pos_messages; fail the batch (retryable).
    raise exception 'pos_messages: insert of % skipped but no conflicting row found', v_id;
  end if;

  case v_topic
    when 'transaction' then
      insert into public.sales
        (message_id, store_id, terminal_id, transaction_id, total, currency, items, sold_at)
      values
        (v_id, v_store, v_terminal, v_data ->> 'transaction_id', (v_data ->> 'total')::numeric,
         v_data ->> 'currency', nullif(v_data -> 'items', 'null'::jsonb), v_created);

    when 'inventory' then
      -- stock_levels is updated once per batch by apply_batch, from these rows.
      insert into public.inventory_movements
        (message_id, store_id, terminal_id, sku, delta, reason, moved_at)
      values
        (v_id, v_store, v_terminal, v_data ->> 'sku', (v_data ->> 'delta')::bigint,
         v_data ->> 'reason', v_created);

    when 'customer' then
      -- A newer version wins, a tombstone (data.deleted = true) like any update: it sets
      -- deleted_at and keeps the row; a newer update after it clears deleted_at. The
      -- conflicting row stays locked (ON CONFLICT locks it even when the WHERE clause skips
      -- the update), so the winner read below is current.
      v_customer := v_data ->> 'customer_id';
      v_version := (v_data ->> 'version')::bigint;
      v_deleted := coalesce(v_data -> 'deleted' = 'true'::jsonb, false);
      insert into public.customers as c
        (store_id, customer_id, version, data, updated_at, message_id, terminal_id, seq, deleted_at)
      values
        (v_store, v_customer, v_version, v_data, v_created, v_id, v_terminal, v_seq,
         case when v_deleted then pg_catalog.now() end)
      on conflict (store_id, customer_id) do update
        set version = excluded.version, data = excluded.data,
            updated_at = excluded.updated_at, message_id = excluded.message_id,
            terminal_id = excluded.terminal_id, seq = excluded.seq,
            deleted_at = excluded.deleted_at
        where c.version < excluded.version;
      if not found then
        select * into v_customer_row from public.customers
          where store_id = v_store and customer_id = v_customer;
        -- A reorder, not a conflict: an older version from the lane of the winning write, at a
        -- lower seq than it (the lane uploaded its newer write first). Skipped silently.
        if not (v_version < v_customer_row.version and v_customer_row.terminal_id = v_terminal
                and v_seq < v_customer_row.seq) then
          insert into public.customer_conflicts
            (message_id, store_id, customer_id, stored_version, incoming_version, incoming_data)
          values
            (v_id, v_store, v_customer, v_customer_row.version, v_version, v_data);
        end if;
      end if;

    else
      null;  -- other topics are kept in pos_messages only
  end case;

  return jsonb_build_object('status', 'stored');
end
$$;

revoke all on function lanesync.apply_message(jsonb) from public, anon, authenticated;

-- Removes the customer tombstones applied more than `older_than` ago (deleted_at) and returns
-- how many it removed. Live customers are never touched. Once a tombstone is gone, a stale
-- update of that customer arriving later is applied as a new customer, so keep tombstones
-- longer than a lane is expected to stay offline.
create or replace function lanesync.purge_tombstones(older_than interval) returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_removed bigint;
begin
  if older_than is null or older_than < interval '0' then
    raise exception 'purge_tombstones: older_than must be an interval >= 0'
      using errcode = 'invalid_parameter_value';
  end if;
  delete from public.customers
    where deleted_at is not null and deleted_at < pg_catalog.clock_timestamp() - older_than;
  get diagnostics v_removed = row_count;
  return v_removed;
end
$$;

revoke all on function lanesync.purge_tombstones(interval) from public, anon, authenticated;

-- The daily purge, where pg_cron can be used: the extension is available and its library
-- loaded with this database as cron.database_name (Supabase: database postgres), or it is
-- already installed. Elsewhere (no pg_cron) the migration only says so; head office then
-- schedules `select lanesync.purge_tombstones(interval '90 days')` itself (docs/cloud.md).
-- cron.schedule with a job name replaces a job of that name, so this is safe to run again.
do $$
declare
  v_installed boolean := exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron');
begin
  if not v_installed and not (
       exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_cron')
       and coalesce(pg_catalog.current_setting('cron.database_name', true) = pg_catalog.current_database(),
                    false)) then
    raise notice 'pg_cron is not usable in this database: lanesync.purge_tombstones is not scheduled (docs/cloud.md)';
    return;
  end if;
  begin
    create extension if not exists pg_cron with schema pg_catalog;
    perform cron.schedule('lanesync-purge-tombstones', '30 3 * * *',
                          $job$select lanesync.purge_tombstones(interval '90 days')$job$);
  exception when others then
    -- pg_cron present but unusable here (e.g. its library not preloaded): no schedule, no
    -- failed migration.
    raise warning 'pg_cron: lanesync.purge_tombstones is not scheduled: %', sqlerrm;
  end;
end
$$;
