-- Local cloud only, never deployed: the few pieces of a Supabase database that the
-- migrations in cloud/supabase/migrations rely on, recreated on a bare PostgreSQL so those
-- migrations apply unchanged. scripts/cloud-up.sh runs this before the migrations, on every
-- start; it is idempotent.
--
-- What hosted Supabase provides and this mimics:
--   * roles anon, authenticated, service_role (service_role bypasses RLS);
--   * auth.jwt(), auth.uid(), auth.role(), reading the claims PostgREST puts in the
--     `request.jwt.claims` setting (tests set it with set_config(..., true)).
-- Plus the local bookkeeping of applied migrations (lanesync_local.applied_migrations).

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end
$$;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

create or replace function auth.uid() returns uuid
language sql stable
as $$
  select nullif(auth.jwt() ->> 'sub', '')::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select auth.jwt() ->> 'role'
$$;

grant execute on function auth.jwt(), auth.uid(), auth.role() to anon, authenticated, service_role;

create schema if not exists lanesync_local;
create table if not exists lanesync_local.applied_migrations (
  version    text primary key,
  name       text not null,
  applied_at timestamptz not null default now()
);
