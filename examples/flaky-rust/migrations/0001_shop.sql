-- The shop every planted flaky suite tests (the same file in examples/flaky-*): users, products,
-- coupons with a unique code, orders, settings, and a few tables only the stable tests write to.
create table users (
  id serial primary key,
  email text not null unique,
  name text not null
);

create table products (
  id serial primary key,
  sku text not null unique,
  name text not null,
  price_cents integer not null check (price_cents > 0),
  stock integer not null default 0 check (stock >= 0)
);

create table coupons (
  id serial primary key,
  code text not null constraint coupons_code_key unique,
  percent_off integer not null check (percent_off between 1 and 100)
);

create table orders (
  id serial primary key,
  user_id integer not null references users(id),
  product_id integer not null references products(id),
  quantity integer not null check (quantity > 0),
  total_cents integer not null check (total_cents >= 0),
  coupon_code text references coupons(code)
);

create table settings (
  key text primary key,
  value text not null
);

create table reviews (
  id serial primary key,
  product_id integer not null references products(id),
  user_id integer not null references users(id),
  rating integer not null check (rating between 1 and 5),
  body text not null,
  constraint reviews_one_per_user unique (product_id, user_id)
);

create table newsletter (
  email text primary key,
  topic text not null
);

create table audit_log (
  id bigserial primary key,
  actor text not null,
  action text not null
);
