//! What the fuzzer's sessions say: SQL for simple queries (hostile to a rollback sandbox),
//! statements for Parse, Bind parameters, and which of them trigger issue 11's known bugs.

/// SQL for simple queries in either isolation: transaction control and savepoint nests,
/// prepared-statement and session-state resets, LISTEN/NOTIFY, timeouts, self-termination,
/// errors, big results and COPY.
pub const SIMPLE_SQL: &[&str] = &[
    "select 1",
    "select 1; select 2",
    "select 1/0",
    "selec 1",
    "",
    ";",
    "select * from nosuch",
    "insert into items(name) values ('dup')",
    "insert into items(name) values (md5(random()::text)) returning id",
    "update items set n = coalesce(n, 0) + 1 where id % 3 = 0",
    "delete from items where id % 7 = 0",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "END",
    "BEGIN; SAVEPOINT a; insert into items(name) values (md5(random()::text)); ROLLBACK TO a; COMMIT",
    "SAVEPOINT s1",
    "RELEASE SAVEPOINT s1",
    "ROLLBACK TO SAVEPOINT s1",
    "BEGIN; select 1/0; COMMIT",
    "BEGIN; BEGIN; COMMIT; COMMIT",
    "BEGIN; SAVEPOINT x; SAVEPOINT y; RELEASE x; ROLLBACK TO y",
    "COMMIT AND CHAIN",
    "ROLLBACK AND CHAIN",
    "START TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY",
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "PREPARE TRANSACTION 'fuzz'",
    "DISCARD ALL",
    "DISCARD PLANS",
    "DISCARD TEMP",
    "DEALLOCATE ALL",
    "DEALLOCATE nosuch",
    "PREPARE q1 AS select $1::int",
    "EXECUTE q1(1)",
    "PREPARE broken AS select * from nosuch",
    "EXECUTE broken",
    "LISTEN fuzz",
    "NOTIFY fuzz, 'hello'",
    "select pg_notify('fuzz', 'x')",
    "UNLISTEN *",
    "SET idle_in_transaction_session_timeout = '1s'",
    "select set_config('idle_in_transaction_session_timeout', '500ms', false)",
    "SET idle_in_transaction_session_timeout = 0",
    "SET statement_timeout = '50ms'",
    "RESET statement_timeout",
    "RESET ALL",
    "SET search_path TO nowhere",
    "SET client_encoding = 'LATIN1'",
    "SET application_name = 'fuzz'",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "select pg_sleep(0.05)",
    "select pg_terminate_backend(pid) from pg_stat_activity where pid = pg_backend_pid()",
    "select pg_cancel_backend(pg_backend_pid())",
    "select dbsandbox_reset()",
    "DECLARE c CURSOR WITH HOLD FOR select generate_series(1, 100)",
    "FETCH 10 FROM c",
    "CLOSE ALL",
    "LOCK TABLE items IN SHARE MODE",
    "select pg_try_advisory_lock(1)",
    "select pg_advisory_unlock_all()",
    "select repeat('x', 1000000)",
    "select generate_series(1, 5000)",
    "create temp table if not exists tmp(x int)",
    "create table if not exists extra(x int)",
    "drop table if exists extra",
    "VACUUM items",
    "SHOW ALL",
    "select txid_current()",
    "COPY items(name) FROM STDIN",
    "COPY (select generate_series(1, 1000)) TO STDOUT",
    "COPY items TO STDOUT (FORMAT binary)",
];

/// Only where they are refused (a rollback sandbox): in database isolation they would change
/// the server for the other keys.
pub const ROLLBACK_ONLY_SQL: &[&str] = &[
    "CREATE DATABASE fuzz_never",
    "ALTER SYSTEM SET work_mem = '4MB'",
    "CREATE INDEX CONCURRENTLY ON items(n)",
];

/// Statements for Parse, with their parameter types.
pub const EXTENDED_SQL: &[(&str, &[u32])] = &[
    ("select $1::int + 1", &[23]),
    ("select $1::text", &[]),
    ("select 1", &[]),
    ("select * from nosuch", &[]),
    ("selec", &[]),
    ("insert into items(name) values ($1)", &[25]),
    ("select generate_series(1, 50)", &[]),
    ("select pg_sleep(0.05)", &[]),
    ("BEGIN", &[]),
    ("COMMIT", &[]),
    ("ROLLBACK", &[]),
    ("SAVEPOINT x", &[]),
    ("DISCARD ALL", &[]),
    ("DEALLOCATE ALL", &[]),
    ("select 1; select 2", &[]),
    ("COPY items(name) FROM STDIN", &[]),
    ("SET idle_in_transaction_session_timeout = '1s'", &[]),
    (
        "select pg_terminate_backend(pid) from pg_stat_activity where pid = pg_backend_pid()",
        &[],
    ),
    ("LISTEN fuzz", &[]),
];

pub const PARAMS: &[Option<&[u8]>] = &[
    Some(b"1"),
    Some(b"41"),
    Some(b"abc"),
    Some(b"\xff\xfe"),
    None,
];

/// SQL that triggers a known issue-11 bug (3 and 8).
pub fn known_trigger(sql: &str) -> bool {
    sql.contains("idle_in_transaction") || sql.contains("pg_terminate_backend")
}

/// SQL that ends the server session it runs in. In a rollback sandbox that session is the key's
/// shared one: the key's state is gone and the key says so to every connection until it is reset
/// (the README's "Broken keys"), by design. The random rollback sessions leave it out so that
/// "every key still answers" keeps its meaning; the corpus checks the designed outcome.
pub fn ends_the_session(sql: &str) -> bool {
    sql.contains("pg_terminate_backend")
}

/// Statements whose Parse fails: named, they trigger issue 11's bugs 1 and 4.
pub fn parse_fails(sql: &str) -> bool {
    matches!(sql, "select * from nosuch" | "selec" | "select 1; select 2")
}
