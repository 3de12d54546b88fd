-- COPY of shared/reference/schema40.sql (the project's reference schema), kept verbatim below
-- so the conformance suites have the seeded table t0 (100 rows: the next id is 101).
-- Reference schema for benchmarks and examples: 40 tables in a foreign-key chain,
-- each with a bigserial key, a unique name, an index, jsonb payload and 100 seed rows.
create table t0 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb
);
create index t0_created_at on t0(created_at);
insert into t0(name) select 'seed' || g from generate_series(1, 100) g;
create table t1 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t0(id)
);
create index t1_created_at on t1(created_at);
insert into t1(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t2 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t1(id)
);
create index t2_created_at on t2(created_at);
insert into t2(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t3 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t2(id)
);
create index t3_created_at on t3(created_at);
insert into t3(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t4 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t3(id)
);
create index t4_created_at on t4(created_at);
insert into t4(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t5 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t4(id)
);
create index t5_created_at on t5(created_at);
insert into t5(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t6 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t5(id)
);
create index t6_created_at on t6(created_at);
insert into t6(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t7 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t6(id)
);
create index t7_created_at on t7(created_at);
insert into t7(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t8 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t7(id)
);
create index t8_created_at on t8(created_at);
insert into t8(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t9 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t8(id)
);
create index t9_created_at on t9(created_at);
insert into t9(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t10 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t9(id)
);
create index t10_created_at on t10(created_at);
insert into t10(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t11 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t10(id)
);
create index t11_created_at on t11(created_at);
insert into t11(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t12 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t11(id)
);
create index t12_created_at on t12(created_at);
insert into t12(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t13 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t12(id)
);
create index t13_created_at on t13(created_at);
insert into t13(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t14 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t13(id)
);
create index t14_created_at on t14(created_at);
insert into t14(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t15 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t14(id)
);
create index t15_created_at on t15(created_at);
insert into t15(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t16 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t15(id)
);
create index t16_created_at on t16(created_at);
insert into t16(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t17 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t16(id)
);
create index t17_created_at on t17(created_at);
insert into t17(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t18 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t17(id)
);
create index t18_created_at on t18(created_at);
insert into t18(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t19 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t18(id)
);
create index t19_created_at on t19(created_at);
insert into t19(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t20 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t19(id)
);
create index t20_created_at on t20(created_at);
insert into t20(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t21 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t20(id)
);
create index t21_created_at on t21(created_at);
insert into t21(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t22 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t21(id)
);
create index t22_created_at on t22(created_at);
insert into t22(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t23 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t22(id)
);
create index t23_created_at on t23(created_at);
insert into t23(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t24 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t23(id)
);
create index t24_created_at on t24(created_at);
insert into t24(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t25 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t24(id)
);
create index t25_created_at on t25(created_at);
insert into t25(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t26 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t25(id)
);
create index t26_created_at on t26(created_at);
insert into t26(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t27 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t26(id)
);
create index t27_created_at on t27(created_at);
insert into t27(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t28 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t27(id)
);
create index t28_created_at on t28(created_at);
insert into t28(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t29 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t28(id)
);
create index t29_created_at on t29(created_at);
insert into t29(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t30 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t29(id)
);
create index t30_created_at on t30(created_at);
insert into t30(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t31 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t30(id)
);
create index t31_created_at on t31(created_at);
insert into t31(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t32 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t31(id)
);
create index t32_created_at on t32(created_at);
insert into t32(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t33 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t32(id)
);
create index t33_created_at on t33(created_at);
insert into t33(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t34 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t33(id)
);
create index t34_created_at on t34(created_at);
insert into t34(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t35 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t34(id)
);
create index t35_created_at on t35(created_at);
insert into t35(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t36 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t35(id)
);
create index t36_created_at on t36(created_at);
insert into t36(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t37 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t36(id)
);
create index t37_created_at on t37(created_at);
insert into t37(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t38 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t37(id)
);
create index t38_created_at on t38(created_at);
insert into t38(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
create table t39 (
  id bigserial primary key,
  name text not null unique,
  created_at timestamptz not null default now(),
  payload jsonb,
  parent_id bigint references t38(id)
);
create index t39_created_at on t39(created_at);
insert into t39(name, parent_id) select 'seed' || g, g from generate_series(1, 100) g;
