-- One message id on two lanes: a POS that retried a sale on the next lane with its idempotency
-- key makes both lanes accept the same message id as their own, each at a seq of its own.
-- The event takes effect once: the first copy to arrive is the message (pos_messages, domain
-- tables); every later copy from another (store, terminal, seq) is recorded here and answered
--   * `duplicate` when its content (topic and data; never seq, priority or timestamps) equals
--     the stored message's: the lane marks it cloud_ack;
--   * `rejected` ("conflict: ...") otherwise: the lane marks it failed with that reason.
-- So each lane's seqs stay accounted for in the cloud: (store_id, terminal_id, seq) is unique
-- across pos_messages and pos_message_copies together, and the union of both tables holds
-- every seq of every lane (rejected invalid messages aside).
--
-- Uniqueness across two tables cannot be a constraint: lanesync.apply_message takes a
-- transaction-level advisory lock per lane (store, terminal) before it reads or writes any
-- seq of that lane, so two transactions never claim the same seq of a lane in the two tables.

create table public.pos_message_copies (
  message_id   uuid not null references public.pos_messages (message_id),
  store_id     text not null check (store_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  terminal_id  text not null check (terminal_id ~ '^[A-Za-z0-9_-]{1,32}$'),
  seq          bigint not null check (seq >= 1),
  same_content boolean not null,
  received_at  timestamptz not null default now(),
  primary key (store_id, terminal_id, seq)
);
create index pos_message_copies_message_idx on public.pos_message_copies (message_id);
comment on table public.pos_message_copies is
  'Later copies of a message id accepted by another lane (or at another seq): the seq is accounted for, the event applied once (pos_messages).';

alter table public.pos_message_copies enable row level security;
revoke all on table public.pos_message_copies from anon, authenticated;
grant select on table public.pos_message_copies to authenticated;
create policy pos_message_copies_select_own_store on public.pos_message_copies
  for select to authenticated using (store_id = (select lanesync.jwt_store_id()));

-- Serializes, per lane, every read and write of that lane's seqs (see the header).
create or replace function lanesync.lock_lane(p_store text, p_terminal text) returns void
language sql volatile
set search_path = ''
as $$
  select pg_advisory_xact_lock(hashtextextended('lanesync.lane/' || p_store || '/' || p_terminal, 0))
$$;

-- The answer for a later copy of a stored message: duplicate when the content is the same.
create or replace function lanesync.copy_result(
  p_existing public.pos_messages, p_store text, p_terminal text, p_seq bigint, p_topic text,
  p_data jsonb) returns jsonb
language plpgsql stable
set search_path = ''
as $$
declare
  v_diff text[];
begin
  if p_existing.store_id <> p_store then
    return jsonb_build_object('status', 'rejected', 'error',
      format('conflict: message %s is already stored by another store', p_existing.message_id));
  end if;
  v_diff := array_remove(array[
    case when p_existing.topic <> p_topic then 'topic' end,
    case when p_existing.data  <> p_data  then 'data'  end], null);
  if cardinality(v_diff) = 0 then
    return jsonb_build_object('status', 'duplicate');
  end if;
  if p_existing.terminal_id = p_terminal and p_existing.seq = p_seq then
    return jsonb_build_object('status', 'rejected', 'error',
      format('conflict: message %s is already stored with different %s', p_existing.message_id,
             array_to_string(v_diff, ', ')));
  end if;
  return jsonb_build_object('status', 'rejected', 'error',
    format('conflict: message %s is already stored from %s seq %s with different %s',
           p_existing.message_id, p_existing.terminal_id, p_existing.seq,
           array_to_string(v_diff, ', ')));
end
$$;

-- Applies one message (a jsonb object with the keys message_id, store_id, terminal_id, seq,
-- topic, priority, data, timestamp, peer_acked_at) and returns
-- {"status": "stored" | "duplicate" | "rejected", "error"?: text}.
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
  v_stored_version bigint;
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
      -- Newer version wins; the conflicting row stays locked (ON CONFLICT locks it even
      -- when the WHERE clause skips the update), so the version read below is current.
      insert into public.customers as c (store_id, customer_id, version, data, updated_at, message_id)
      values (v_store, v_data ->> 'customer_id', (v_data ->> 'version')::bigint, v_data, v_created, v_id)
      on conflict (store_id, customer_id) do update
        set version = excluded.version, data = excluded.data,
            updated_at = excluded.updated_at, message_id = excluded.message_id
        where c.version < excluded.version;
      if not found then
        select version into v_stored_version from public.customers
          where store_id = v_store and customer_id = v_data ->> 'customer_id';
        insert into public.customer_conflicts
          (message_id, store_id, customer_id, stored_version, incoming_version, incoming_data)
        values
          (v_id, v_store, v_data ->> 'customer_id', v_stored_version,
           (v_data ->> 'version')::bigint, v_data);
      end if;

    else
      null;  -- other topics are kept in pos_messages only
  end case;

  return jsonb_build_object('status', 'stored');
end
$$;

revoke all on function lanesync.apply_message(jsonb) from public, anon, authenticated;
revoke all on function lanesync.lock_lane(text, text) from public, anon, authenticated;
revoke all on function lanesync.copy_result(public.pos_messages, text, text, bigint, text, jsonb)
  from public, anon, authenticated;
