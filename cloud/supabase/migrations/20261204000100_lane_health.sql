-- Head office's view of every lane.
--
-- A lane may add a summary of itself, the `lane` object, to any upload of sync-pos-message,
-- and when it has nothing to upload it sends one alone (a heartbeat: `"messages": []` and
-- `lane`). The function validates it and passes it to lanesync.apply_batch(messages, lane),
-- which records it here in the same transaction as the batch: one current row per lane
-- (store_id, terminal_id). A summary taken earlier (`at`, the lane's clock) than the stored
-- one (two requests of a lane arriving out of order) does not replace it; the request is
-- still counted.
--
-- The views lane_health and sync_daily (security_invoker, so the caller's RLS applies)
-- answer head office's questions; scripts/store-report.sh prints them (docs/cloud.md).

create table public.lane_status (
  store_id               text not null check (store_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  terminal_id            text not null check (terminal_id ~ '^[A-Za-z0-9_-]{1,32}$'),
  agent_version          text not null check (char_length(agent_version) between 1 and 64),
  lane_at_ms             bigint not null check (lane_at_ms >= 0),
  pending                bigint not null check (pending >= 0),
  peer_ack               bigint not null check (peer_ack >= 0),
  cloud_ack              bigint not null check (cloud_ack >= 0),
  failed                 bigint not null check (failed >= 0),
  oldest_pending_age_ms  bigint check (oldest_pending_age_ms >= 0),
  oldest_peer_ack_age_ms bigint check (oldest_peer_ack_age_ms >= 0),
  last_seq               bigint not null check (last_seq >= 0),
  peers_up               bigint not null check (peers_up >= 0),
  peers_configured       bigint not null check (peers_configured >= 0),
  retry_depth            bigint not null check (retry_depth >= 0),
  received_at            timestamptz not null default now(),
  last_request_at        timestamptz not null default now(),
  first_seen_at          timestamptz not null default now(),
  requests               bigint not null default 1 check (requests >= 1),
  heartbeats             bigint not null default 0 check (heartbeats >= 0),
  primary key (store_id, terminal_id)
);
comment on table public.lane_status is
  'The latest summary of each lane (the lane object of sync-pos-message), and its requests counted.';
comment on column public.lane_status.lane_at_ms is
  'When the lane took the summary: the lane''s clock, unix ms. An older one never replaces a newer one.';
comment on column public.lane_status.received_at is
  'When the cloud received the stored summary (transaction time).';
comment on column public.lane_status.last_request_at is
  'When the cloud last received a request with a lane object from this lane, whether its summary was kept or not.';
comment on column public.lane_status.requests is 'Requests with a lane object, heartbeats included.';
comment on column public.lane_status.heartbeats is 'Requests with a lane object and no message.';

alter table public.lane_status enable row level security;
revoke all on table public.lane_status from anon, authenticated;
grant select on table public.lane_status to authenticated;
create policy lane_status_select_own_store on public.lane_status
  for select to authenticated using (store_id = (select lanesync.jwt_store_id()));

-- Records one lane summary: a jsonb object with the keys store_id, terminal_id, agent_version,
-- at_ms, pending, peer_ack, cloud_ack, failed, oldest_pending_age_ms, oldest_peer_ack_age_ms
-- (numbers or null), last_seq, peers_up, peers_configured, retry_depth, and heartbeat (true
-- for a request without messages). The function validated it; the casts and checks here are
-- the database's own.
create or replace function lanesync.record_lane(p_lane jsonb) returns void
language plpgsql
set search_path = ''
as $$
declare
  v_store     text    := p_lane ->> 'store_id';
  v_terminal  text    := p_lane ->> 'terminal_id';
  v_at        bigint  := (p_lane ->> 'at_ms')::bigint;
  v_heartbeat bigint  := case when (p_lane -> 'heartbeat') = 'true'::jsonb then 1 else 0 end;
  v_stored_at bigint;
begin
  -- A lane new to the cloud (or two first requests at once: one inserts, the other counts).
  insert into public.lane_status
    (store_id, terminal_id, agent_version, lane_at_ms, pending, peer_ack, cloud_ack, failed,
     oldest_pending_age_ms, oldest_peer_ack_age_ms, last_seq, peers_up, peers_configured,
     retry_depth, received_at, last_request_at, first_seen_at, requests, heartbeats)
  values
    (v_store, v_terminal, p_lane ->> 'agent_version', v_at, (p_lane ->> 'pending')::bigint,
     (p_lane ->> 'peer_ack')::bigint, (p_lane ->> 'cloud_ack')::bigint,
     (p_lane ->> 'failed')::bigint, (p_lane ->> 'oldest_pending_age_ms')::bigint,
     (p_lane ->> 'oldest_peer_ack_age_ms')::bigint, (p_lane ->> 'last_seq')::bigint,
     (p_lane ->> 'peers_up')::bigint, (p_lane ->> 'peers_configured')::bigint,
     (p_lane ->> 'retry_depth')::bigint, pg_catalog.now(), pg_catalog.now(), pg_catalog.now(),
     1, v_heartbeat)
  on conflict (store_id, terminal_id) do nothing;
  if found then
    return;
  end if;

  -- Known lane: count the request (this locks the row until the commit, so concurrent
  -- requests of one lane record one after the other), then keep the summary unless the
  -- stored one was taken later by the lane's clock.
  update public.lane_status
    set requests = requests + 1, heartbeats = heartbeats + v_heartbeat,
        last_request_at = pg_catalog.now()
    where store_id = v_store and terminal_id = v_terminal
    returning lane_at_ms into v_stored_at;
  if v_at < v_stored_at then
    return;
  end if;
  update public.lane_status
    set agent_version = p_lane ->> 'agent_version',
        lane_at_ms = v_at,
        pending = (p_lane ->> 'pending')::bigint,
        peer_ack = (p_lane ->> 'peer_ack')::bigint,
        cloud_ack = (p_lane ->> 'cloud_ack')::bigint,
        failed = (p_lane ->> 'failed')::bigint,
        oldest_pending_age_ms = (p_lane ->> 'oldest_pending_age_ms')::bigint,
        oldest_peer_ack_age_ms = (p_lane ->> 'oldest_peer_ack_age_ms')::bigint,
        last_seq = (p_lane ->> 'last_seq')::bigint,
        peers_up = (p_lane ->> 'peers_up')::bigint,
        peers_configured = (p_lane ->> 'peers_configured')::bigint,
        retry_depth = (p_lane ->> 'retry_depth')::bigint,
        received_at = pg_catalog.now()
    where store_id = v_store and terminal_id = v_terminal;
end
$$;

-- The batch and the lane summary in one call (so in the caller's one transaction). The lane's
-- row is written first: every request of a lane then takes its row lock before any other
-- lock (lane locks, stock rows), so it adds no lock-order cycle. p_lane null: exactly
-- apply_batch(p_messages), which older callers still use.
create or replace function lanesync.apply_batch(p_messages jsonb, p_lane jsonb) returns jsonb
language plpgsql
set search_path = ''
as $$
begin
  if p_lane is not null then
    perform lanesync.record_lane(p_lane);
  end if;
  return lanesync.apply_batch(p_messages);
end
$$;

revoke all on function lanesync.record_lane(jsonb) from public, anon, authenticated;
revoke all on function lanesync.apply_batch(jsonb, jsonb) from public, anon, authenticated;

-- Every lane's health, with the thresholds as parameters; the view lane_health below uses the
-- defaults (silent after 15 minutes without a request: three missed heartbeats of 5 minutes;
-- behind when the oldest message not yet in the cloud has waited more than 5 minutes).
-- state, first match wins:
--   'silent'  no request with a lane object for more than p_silent_after (last_request_at);
--   'behind'  backlog (pending + peer_ack) > 0 and its oldest message waiting longer than
--             p_behind_after when the summary was taken;
--   'failing' retry_depth > 0 (uploads failing right now) or failed > 0 (messages the cloud
--             rejected, still on the lane);
--   'ok'      otherwise.
-- The ages are the lane's as of the summary (received_at); behind_since is when the oldest
-- message not yet in the cloud started waiting, by the cloud's clock.
-- Invoker's rights (not security definer), so lane_status's RLS applies to the caller; a
-- fixed search_path like lanesync's functions (one row per lane: inlining is not needed).
create or replace function public.lane_health_with(p_silent_after interval, p_behind_after interval)
returns table (
  store_id text, terminal_id text, state text, agent_version text,
  received_at timestamptz, last_request_at timestamptz, silent_for interval,
  pending bigint, peer_ack bigint, cloud_ack bigint, failed bigint, backlog bigint,
  oldest_pending_age interval, oldest_peer_ack_age interval, behind_since timestamptz,
  retry_depth bigint, peers_up bigint, peers_configured bigint, last_seq bigint,
  lane_at timestamptz, first_seen_at timestamptz, requests bigint, heartbeats bigint)
language sql stable
set search_path = ''
as $$
  select s.store_id, s.terminal_id,
         case
           when pg_catalog.now() - s.last_request_at > p_silent_after then 'silent'
           when s.pending + s.peer_ack > 0
                and greatest(s.oldest_pending_age_ms, s.oldest_peer_ack_age_ms)
                    * interval '1 millisecond' > p_behind_after then 'behind'
           when s.retry_depth > 0 or s.failed > 0 then 'failing'
           else 'ok'
         end,
         s.agent_version, s.received_at, s.last_request_at,
         pg_catalog.now() - s.last_request_at,
         s.pending, s.peer_ack, s.cloud_ack, s.failed, s.pending + s.peer_ack,
         s.oldest_pending_age_ms * interval '1 millisecond',
         s.oldest_peer_ack_age_ms * interval '1 millisecond',
         s.received_at - greatest(s.oldest_pending_age_ms, s.oldest_peer_ack_age_ms)
                         * interval '1 millisecond',
         s.retry_depth, s.peers_up, s.peers_configured, s.last_seq,
         pg_catalog.to_timestamp(s.lane_at_ms / 1000.0),
         s.first_seen_at, s.requests, s.heartbeats
  from public.lane_status s
$$;
revoke all on function public.lane_health_with(interval, interval) from public, anon;
grant execute on function public.lane_health_with(interval, interval) to authenticated;

create view public.lane_health with (security_invoker = true) as
  select * from public.lane_health_with(interval '15 minutes', interval '5 minutes');
comment on view public.lane_health is
  'Every lane: silent after 15 min without a request, behind when its oldest message not in the cloud waited > 5 min, failing when retry_depth > 0 or failed > 0, else ok (lane_health_with for other thresholds).';

-- Per store and day (of the session's TimeZone, UTC unless set): what the uploads did. From
-- sync_log (one row per request and origin lane and uploader) and customer_conflicts.
create view public.sync_daily with (security_invoker = true) as
  with uploads as (
    select l.store_id, l.received_at::date as day,
           count(distinct l.request_id) as requests,
           sum(l.stored) as stored, sum(l.duplicate) as duplicate, sum(l.rejected) as rejected,
           coalesce(sum(l.stored) filter (where l.uploaded_by is not null), 0) as covered_stored
    from public.sync_log l
    where l.store_id is not null
    group by 1, 2
  ), conflicts as (
    select c.store_id, c.detected_at::date as day, count(*) as customer_conflicts
    from public.customer_conflicts c
    group by 1, 2
  )
  select store_id, day,
         coalesce(u.requests, 0) as requests,
         coalesce(u.stored, 0)::bigint as stored,
         coalesce(u.duplicate, 0)::bigint as duplicate,
         coalesce(u.rejected, 0)::bigint as rejected,
         coalesce(c.customer_conflicts, 0) as customer_conflicts,
         coalesce(u.covered_stored, 0)::bigint as covered_stored
  from uploads u full join conflicts c using (store_id, day);
comment on view public.sync_daily is
  'Per store and day: requests with messages, messages stored / duplicate / rejected, customer conflicts, messages stored through covered uploads.';

-- Per store, day and uploader (the lane that sent the request: uploaded_by for a covered
-- upload, else the origin terminal_id): requests and messages, its own and covered.
create view public.sync_daily_uploads with (security_invoker = true) as
  select l.store_id, l.received_at::date as day,
         coalesce(l.uploaded_by, l.terminal_id) as uploader,
         count(distinct l.request_id) as requests,
         coalesce(sum(l.stored + l.duplicate + l.rejected) filter (where l.uploaded_by is null), 0)
           as own_messages,
         coalesce(sum(l.stored + l.duplicate + l.rejected) filter (where l.uploaded_by is not null), 0)
           as covered_messages,
         sum(l.stored)::bigint as stored, sum(l.duplicate)::bigint as duplicate,
         sum(l.rejected)::bigint as rejected
  from public.sync_log l
  where l.store_id is not null and l.terminal_id is not null
  group by 1, 2, 3;
comment on view public.sync_daily_uploads is
  'Per store, day and uploading lane (covered uploads counted under the lane that sent them): requests and messages.';

revoke all on table public.lane_health, public.sync_daily, public.sync_daily_uploads from anon, authenticated;
grant select on table public.lane_health, public.sync_daily, public.sync_daily_uploads to authenticated;
