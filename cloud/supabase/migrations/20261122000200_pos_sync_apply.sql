-- lanesync.apply_batch(): the write path of the edge function sync-pos-message.
--
-- The function validates every message strictly (types, formats, topic schemas) before
-- calling this, so the checks here are the database's own: uniqueness, conflicts, casts and
-- CHECK constraints. One call applies a whole batch inside the caller's transaction, in one
-- round trip. Each message runs in its own subtransaction (the BEGIN ... EXCEPTION block is
-- a savepoint), so a message the database refuses is rolled back alone and reported as
-- rejected while the rest of the batch proceeds.
--
-- Only errors that belong to the message itself (bad data, constraint violations, limits)
-- turn into "rejected". Anything else (deadlock, serialization failure, lost connection,
-- a broken schema) aborts the whole call so the edge function answers 5xx and the lane
-- retries later: a transient failure must never mark a message as permanently failed.

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
  v_other_id  uuid;
  v_diff      text[];
  v_stored_version bigint;
begin
  -- ON CONFLICT DO NOTHING covers both the primary key and (store, terminal, seq). If a
  -- concurrent transaction is inserting the same row, this waits for it to finish, so the
  -- lookups below see its outcome.
  insert into public.pos_messages
    (message_id, store_id, terminal_id, seq, topic, priority, data, created_at, peer_acked_at)
  values
    (v_id, v_store, v_terminal, v_seq, v_topic, v_priority, v_data, v_created, v_peer)
  on conflict do nothing;

  if not found then
    select * into v_existing from public.pos_messages where message_id = v_id;
    if found then
      v_diff := array_remove(array[
        case when v_existing.store_id    <> v_store    then 'storeId'    end,
        case when v_existing.terminal_id <> v_terminal then 'terminalId' end,
        case when v_existing.seq         <> v_seq      then 'seq'        end,
        case when v_existing.topic       <> v_topic    then 'topic'      end,
        case when v_existing.priority    <> v_priority then 'priority'   end,
        case when v_existing.data        <> v_data     then 'data'       end], null);
      if cardinality(v_diff) = 0 then
        return jsonb_build_object('status', 'duplicate');
      end if;
      return jsonb_build_object('status', 'rejected', 'error',
        format('conflict: message %s is already stored with different %s', v_id,
               array_to_string(v_diff, ', ')));
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

-- Applies a batch, in order. p_messages is a jsonb array of JSON texts, one per message (not
-- of objects): each text is parsed inside its own subtransaction, so a message the database
-- cannot even parse (e.g. a \u0000 in a string) is rejected alone instead of failing the
-- batch. Returns a jsonb array with one result object per input, same order.
--
-- Stock levels: the inventory deltas stored by this batch are added to stock_levels at the
-- end, summed per (store, sku), in one INSERT ... ON CONFLICT DO UPDATE SET quantity =
-- quantity + delta whose rows come in (store, sku) order. Every batch so locks stock rows in
-- the same order: concurrent batches wait for each other instead of deadlocking, and the
-- additions commute, so no update is lost.
create or replace function lanesync.apply_batch(p_messages jsonb) returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_text      text;
  v_message   jsonb;
  v_result    jsonb;
  v_results   jsonb[] := '{}';
  v_inventory uuid[] := '{}';
begin
  for v_text in
    select e.value from jsonb_array_elements_text(p_messages) with ordinality as e(value, n)
    order by e.n
  loop
    v_message := null;
    begin
      v_message := v_text::jsonb;
      v_result := lanesync.apply_message(v_message);
    exception
      when data_exception or integrity_constraint_violation or program_limit_exceeded then
        v_result := jsonb_build_object('status', 'rejected', 'error',
                                       'refused by the database: ' || sqlerrm);
    end;
    if v_result ->> 'status' = 'stored' and v_message ->> 'topic' = 'inventory' then
      v_inventory := v_inventory || (v_message ->> 'message_id')::uuid;
    end if;
    v_results := v_results || v_result;
  end loop;

  if cardinality(v_inventory) > 0 then
    insert into public.stock_levels as s (store_id, sku, quantity)
    select m.store_id, m.sku, sum(m.delta)
    from public.inventory_movements m
    where m.message_id = any (v_inventory)
    group by m.store_id, m.sku
    order by m.store_id, m.sku
    on conflict (store_id, sku) do update
      set quantity = s.quantity + excluded.quantity, updated_at = now();
  end if;
  return to_jsonb(v_results);
end
$$;

-- Only the owner (the edge function's connection) may call these.
revoke all on function lanesync.apply_message(jsonb) from public, anon, authenticated;
revoke all on function lanesync.apply_batch(jsonb) from public, anon, authenticated;
