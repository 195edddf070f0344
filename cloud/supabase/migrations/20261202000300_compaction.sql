-- Downstream (issue 13): compaction of the change log. lanesync.compact_change_log(keep)
-- removes the log rows older than `keep` (by changed_at: every row below the oldest row that
-- is younger, so the log stays a suffix) and the tombstones of catalog_current at or below the
-- same version, and raises the horizon of each (scope, store_id) that lost a row to the highest
-- version it lost. Returns the version compacted through (0 when nothing was old enough).
--
-- A lane whose cursor of a scope is below that scope's horizon can no longer catch up from
-- the log (a change or a delete it has not seen may be gone): sync-pull answers it with a
-- snapshot of the current state instead. Live rows of catalog_current are never removed.
-- No log lock: every version at or below the cut is committed (a running publisher holds a
-- version above every committed one), so compaction never waits for head office.

create or replace function lanesync.compact_change_log(keep interval) returns bigint
language plpgsql volatile
set search_path = ''
as $$
declare
  v_cut bigint;
begin
  if keep is null or keep < interval '0' then
    raise exception 'compact_change_log: keep must be an interval >= 0'
      using errcode = 'invalid_parameter_value';
  end if;
  -- The cut: just below the oldest row young enough to keep (found by walking the primary key
  -- from the oldest row, so the cost is the rows to remove), or the whole log.
  select version - 1 into v_cut from public.change_log
    where changed_at >= pg_catalog.clock_timestamp() - keep
    order by version limit 1;
  if not found then
    select max(version) into v_cut from public.change_log;
  end if;
  if v_cut is null or not exists (select 1 from public.change_log where version <= v_cut) then
    return 0;
  end if;

  with gone as (
    delete from public.change_log where version <= v_cut
    returning scope, store_key, version
  ), dead as (
    delete from public.catalog_current where deleted and version <= v_cut
    returning scope, store_key, version
  ), lost as (
    select scope, store_key, max(version) as version
    from (select * from gone union all select * from dead) x
    group by scope, store_key
  )
  update public.catalog_scopes s set horizon = greatest(s.horizon, lost.version)
  from lost
  where s.scope = lost.scope and s.store_key = lost.store_key;

  update lanesync.change_log_state set compacted_through = greatest(compacted_through, v_cut);
  return v_cut;
end
$$;

revoke all on function lanesync.compact_change_log(interval) from public, anon, authenticated;
