-- lanesync.lock_lane without its `set search_path` clause, so PostgreSQL inlines it into
-- lanesync.apply_message: a SQL function with a SET clause is never inlined and pays a
-- function call with a GUC save and restore per message (21-23 us against 2.4-3.3 us inlined,
-- measured by scripts/bench/fleet_bench.py's lane-lock probe; about a tenth of the database's
-- CPU per message at fleet scale, docs/benchmarks.md "Fleet-scale cloud ingest").
--
-- Safe without the clause: every name in the body is schema-qualified (functions and the
-- operator), so the caller's search_path cannot redirect it; its only caller,
-- lanesync.apply_message, runs with search_path = '' anyway. Same lock, same key.

create or replace function lanesync.lock_lane(p_store text, p_terminal text) returns void
language sql volatile
as $$
  select pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(
    'lanesync.lane/' operator(pg_catalog.||) p_store operator(pg_catalog.||) '/'
      operator(pg_catalog.||) p_terminal, 0))
$$;

revoke all on function lanesync.lock_lane(text, text) from public, anon, authenticated;
