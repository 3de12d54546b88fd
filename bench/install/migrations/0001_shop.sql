-- A small shop: customers with unique emails (3 seeded), orders (empty), stock per product.
create table customers (
  id bigserial primary key,
  email text not null unique,
  name text not null
);
insert into customers(email, name) values
  ('ada@example.com', 'Ada'), ('grace@example.com', 'Grace'), ('linus@example.com', 'Linus');

create table orders (
  id bigserial primary key,
  customer_id bigint not null references customers(id),
  total_cents integer not null check (total_cents >= 0),
  created_at timestamptz not null default now()
);

create table stock (
  sku text primary key,
  quantity integer not null check (quantity >= 0)
);
insert into stock(sku, quantity) values ('book', 10), ('pen', 100);
