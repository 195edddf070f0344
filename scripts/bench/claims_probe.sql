-- scripts/bench/fleet_bench.py (the claims probe): what a partitioned pos_messages with a narrow
-- global message-id table would cost per message on this machine, next to today's table.
-- Scratch tables in schema lanesync_bench (dropped at the end by the driver); never deployed.
--
--   today        public.pos_messages as the migrations make it (like ... including all)
--   claimed      the same, after a claim in message_ids: the extra unique index alone
--   partitioned  pos_messages partitioned by hash(store_id), 8 partitions, primary key
--                (store_id, message_id), unique (store_id, terminal_id, seq), plus
--                message_ids (message_id primary key, store_id) claimed first in the same
--                transaction: the global uniqueness a partitioned table cannot enforce.
-- Both are filled the way lanesync.apply_message does it: one INSERT ... ON CONFLICT DO
-- NOTHING per message from PL/pgSQL, one commit per batch (a request).
drop schema if exists lanesync_bench cascade;
create schema lanesync_bench;
create table lanesync_bench.today (like public.pos_messages including all);
create table lanesync_bench.message_ids (
  message_id uuid primary key,
  store_id   text not null
);
create table lanesync_bench.parted
  (like public.pos_messages including defaults including constraints)
  partition by hash (store_id);
alter table lanesync_bench.parted add primary key (store_id, message_id),
  add unique (store_id, terminal_id, seq);
create index on lanesync_bench.parted (store_id, topic, created_at);
do $$
begin
  for i in 0..7 loop
    execute format('create table lanesync_bench.parted_%s partition of lanesync_bench.parted '
                   'for values with (modulus 8, remainder %s)', i, i);
  end loop;
end
$$;

-- A time-ordered id like the lanes' UUIDv7: 48 bits of unix ms, then random bits.
create function lanesync_bench.v7() returns uuid language sql volatile as $$
  select encode(overlay(uuid_send(gen_random_uuid()) placing
    substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
    from 1 for 6), 'hex')::uuid
$$;

-- p_tx transactions of p_batch messages each: 'today' into today's table, 'claimed' the same
-- after a message_ids claim, 'parted' a claim then the partitioned table.
create procedure lanesync_bench.fill(p_kind text, p_tx int, p_batch int, p_start bigint)
language plpgsql as $$
declare
  v_id    uuid;
  v_store text;
  v_seq   bigint := p_start;
  v_data  jsonb := ('{"transaction_id":"R-00000001","currency":"EUR","total":11.14,"items":['
                    '{"sku":"4006381333931","qty":2,"price":1.99},'
                    '{"sku":"5000112637922","qty":1,"price":4.49},'
                    '{"sku":"8710398512343","qty":3,"price":0.89}],'
                    '"note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}')::jsonb;
begin
  for t in 1..p_tx loop
    v_store := 'st-' || (t % 5);
    for m in 1..p_batch loop
      v_id := lanesync_bench.v7();
      v_seq := v_seq + 1;
      if p_kind = 'claimed' then
        insert into lanesync_bench.message_ids (message_id, store_id) values (v_id, v_store)
        on conflict do nothing;
      end if;
      if p_kind in ('today', 'claimed') then
        insert into lanesync_bench.today
          (message_id, store_id, terminal_id, seq, topic, priority, data, created_at, peer_acked_at)
        values (v_id, v_store, 'T' || (t % 100), v_seq, 'transaction', 'high', v_data, now(), now())
        on conflict do nothing;
      else
        insert into lanesync_bench.message_ids (message_id, store_id) values (v_id, v_store)
        on conflict do nothing;
        if found then
          insert into lanesync_bench.parted (message_id, store_id, terminal_id, seq, topic,
                                             priority, data, created_at, peer_acked_at)
          values (v_id, v_store, 'T' || (t % 100), v_seq, 'transaction', 'high', v_data, now(),
                  now())
          on conflict do nothing;
        end if;
      end if;
    end loop;
    commit;
  end loop;
end
$$;

-- The lane lock as apply_message takes it (lanesync.lock_lane: a SQL function with
-- `set search_path = ''`, which PostgreSQL can neither inline nor keep a plan of across
-- calls) against the same lock in a SQL function without the SET clause (operators and
-- functions schema-qualified instead), which the planner inlines.
create function lanesync_bench.lock_lane_inlined(p_store text, p_terminal text) returns void
language sql volatile as $$
  select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(
    'lanesync.lane/' operator(pg_catalog.||) p_store operator(pg_catalog.||) '/'
    operator(pg_catalog.||) p_terminal, 0))
$$;
create procedure lanesync_bench.locks(p_kind text, p_calls int) language plpgsql
set search_path = '' as $$
begin
  for i in 1..p_calls loop
    if p_kind = 'lock_lane' then
      perform lanesync.lock_lane('st-1', 'T' || (i % 500));
    else
      perform lanesync_bench.lock_lane_inlined('st-1', 'T' || (i % 500));
    end if;
  end loop;
end
$$;
