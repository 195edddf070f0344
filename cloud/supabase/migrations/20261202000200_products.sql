-- Downstream (issue 13): head office's product table. Every insert, update and delete is
-- published to the lanes by (statement-level) triggers, chain-wide (store_id null), in the
-- same transaction:
--   scope "products", key = sku, data = the product (lanesync.product_data below)
--   scope "prices",   key = sku, data = {"price_cents": ..., "currency": "..."}
-- An update publishes only the scopes whose data changed (a price change: "prices" and
-- "products"; a new name: "products" only; touching nothing that is published: nothing). A
-- delete, or a change of sku, publishes tombstones for the old sku in both scopes. TRUNCATE
-- is refused: it would bypass the row triggers and the lanes would never learn. Store-specific
-- values go through lanesync.publish_change with a store id (docs/downstream.md, "Cloud").

create table lanesync.products (
  sku         text primary key check (octet_length(sku) between 1 and 256),
  name        text not null,
  price_cents bigint not null check (price_cents >= 0),
  currency    text not null default 'EUR' check (currency ~ '^[A-Z]{3}$'),
  barcode     text,
  active      boolean not null default true,
  attributes  jsonb not null default '{}'::jsonb check (jsonb_typeof(attributes) = 'object'),
  updated_at  timestamptz not null default now()
);
comment on table lanesync.products is
  'Head office''s catalog; triggers publish scopes products and prices to the lanes (lanesync.publish_change).';

-- What the lanes get in scope "products" (updated_at is not published).
create or replace function lanesync.product_data(p lanesync.products) returns jsonb
language sql immutable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object(
    'sku', p.sku, 'name', p.name, 'price_cents', p.price_cents, 'currency', p.currency,
    'barcode', p.barcode, 'active', p.active, 'attributes', p.attributes)
$$;

create or replace function lanesync.price_data(p lanesync.products) returns jsonb
language sql immutable
set search_path = ''
as $$
  select pg_catalog.jsonb_build_object('price_cents', p.price_cents, 'currency', p.currency)
$$;

-- Publishes what one statement changed, set-based (from the statement's transition tables),
-- so a bulk load of the catalog is a few statements, not two function calls per row. Old and
-- new rows are paired by sku (the primary key): an sku only in the old rows was deleted (or
-- renamed away), one only in the new rows is new, one in both changed if its published data
-- differs. Tombstones come first, then the upserts, each scope in sku order.
create or replace function lanesync.products_publish_rows(p_old lanesync.products[], p_new lanesync.products[])
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_scope text;
  v_keys  text[];
  v_data  jsonb[];
begin
  foreach v_scope in array array['products', 'prices']
  loop
    select coalesce(array_agg(x.sku order by x.gone desc, x.sku), '{}'),
           coalesce(array_agg(x.data order by x.gone desc, x.sku), '{}')
      into v_keys, v_data
    from (
      select coalesce(n.sku, o.sku) as sku, n.sku is null as gone,
             case when n.sku is null then null
                  when v_scope = 'products' then lanesync.product_data(n)
                  else lanesync.price_data(n) end as data
      from unnest(p_old) o full join unnest(p_new) n on n.sku = o.sku
      where n.sku is null or o.sku is null
         or case when v_scope = 'products' then lanesync.product_data(o) <> lanesync.product_data(n)
                 else lanesync.price_data(o) <> lanesync.price_data(n) end
    ) x;
    perform lanesync.publish_set(null, v_scope, v_keys, v_data);
  end loop;
end
$$;

create or replace function lanesync.products_published_insert() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform lanesync.products_publish_rows('{}'::lanesync.products[], (select coalesce(array_agg(n::lanesync.products), '{}') from new_rows n));
  return null;
end
$$;

create or replace function lanesync.products_published_update() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform lanesync.products_publish_rows((select coalesce(array_agg(o::lanesync.products), '{}') from old_rows o),
                                         (select coalesce(array_agg(n::lanesync.products), '{}') from new_rows n));
  return null;
end
$$;

create or replace function lanesync.products_published_delete() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  perform lanesync.products_publish_rows((select coalesce(array_agg(o::lanesync.products), '{}') from old_rows o), '{}'::lanesync.products[]);
  return null;
end
$$;

create or replace function lanesync.products_touch() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end
$$;

create or replace function lanesync.products_no_truncate() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception 'lanesync.products: TRUNCATE would bypass publishing to the lanes; use DELETE'
    using errcode = 'feature_not_supported';
end
$$;

create trigger products_touch before update on lanesync.products
  for each row execute function lanesync.products_touch();
-- A trigger with transition tables serves one event: one per event.
create trigger products_publish_insert after insert on lanesync.products
  referencing new table as new_rows
  for each statement execute function lanesync.products_published_insert();
create trigger products_publish_update after update on lanesync.products
  referencing old table as old_rows new table as new_rows
  for each statement execute function lanesync.products_published_update();
create trigger products_publish_delete after delete on lanesync.products
  referencing old table as old_rows
  for each statement execute function lanesync.products_published_delete();
create trigger products_no_truncate before truncate on lanesync.products
  for each statement execute function lanesync.products_no_truncate();

alter table lanesync.products enable row level security;
revoke all on table lanesync.products from public, anon, authenticated;
grant select on table lanesync.products to authenticated;
-- Products are chain-wide: any signed-in user of a store may read them.
create policy products_select_with_store on lanesync.products for select to authenticated
  using ((select lanesync.jwt_store_id()) is not null);

revoke all on function lanesync.products_publish_rows(lanesync.products[], lanesync.products[])
  from public, anon, authenticated;
revoke all on function lanesync.products_published_insert() from public, anon, authenticated;
revoke all on function lanesync.products_published_update() from public, anon, authenticated;
revoke all on function lanesync.products_published_delete() from public, anon, authenticated;
revoke all on function lanesync.products_touch() from public, anon, authenticated;
revoke all on function lanesync.product_data(lanesync.products) from public, anon, authenticated;
revoke all on function lanesync.price_data(lanesync.products) from public, anon, authenticated;
revoke all on function lanesync.products_no_truncate() from public, anon, authenticated;
