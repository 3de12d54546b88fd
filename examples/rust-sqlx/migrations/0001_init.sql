-- The example's schema: users with a unique email, their orders, and one seed row (id = 1).
create table users (
  id bigserial primary key,
  email text not null unique,
  name text not null,
  created_at timestamptz not null default now()
);
create table orders (
  id bigserial primary key,
  user_id bigint not null references users(id),
  total_cents bigint not null check (total_cents >= 0)
);
insert into users(email, name) values ('admin@example.com', 'Admin');
