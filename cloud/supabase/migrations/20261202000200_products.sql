-- Downstream (issue 13): head office's product table. Every insert, update and delete is
-- published to the lanes by triggers, chain-wide (store_id null), in the same transaction:
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

create or replace function lanesync.products_publish() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' then
    perform lanesync.publish_change(null, 'products', old.sku, null);
    perform lanesync.publish_change(null, 'prices', old.sku, null);
    return null;
  end if;
  if tg_op = 'UPDATE' and old.sku <> new.sku then
    perform lanesync.publish_change(null, 'products', old.sku, null);
    perform lanesync.publish_change(null, 'prices', old.sku, null);
  end if;
  if tg_op = 'INSERT' or old.sku <> new.sku
     or lanesync.product_data(old) <> lanesync.product_data(new) then
    perform lanesync.publish_change(null, 'products', new.sku, lanesync.product_data(new));
  end if;
  if tg_op = 'INSERT' or old.sku <> new.sku
     or lanesync.price_data(old) <> lanesync.price_data(new) then
    perform lanesync.publish_change(null, 'prices', new.sku, lanesync.price_data(new));
  end if;
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
create trigger products_publish after insert or update or delete on lanesync.products
  for each row execute function lanesync.products_publish();
create trigger products_no_truncate before truncate on lanesync.products
  for each statement execute function lanesync.products_no_truncate();

alter table lanesync.products enable row level security;
revoke all on table lanesync.products from public, anon, authenticated;
grant select on table lanesync.products to authenticated;
-- Products are chain-wide: any signed-in user of a store may read them.
create policy products_select_with_store on lanesync.products for select to authenticated
  using ((select lanesync.jwt_store_id()) is not null);

revoke all on function lanesync.products_publish() from public, anon, authenticated;
revoke all on function lanesync.products_touch() from public, anon, authenticated;
revoke all on function lanesync.products_no_truncate() from public, anon, authenticated;
