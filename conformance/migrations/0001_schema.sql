-- dbsandbox conformance suites: the small schema the tests write to.
-- items: unique names (for caught unique violations), a serial id (for id = 1 after reset).
create table items (
  id serial primary key,
  name text unique not null,
  qty int not null default 0
);
-- empty_table: never seeded, so the first insert of a test gets id 1.
create table empty_table (
  id serial primary key,
  v int
);
