//! dbsandbox conformance: sqlx (runtime queries only) through the proxy. Numbers follow
//! conformance/README.md.
//!
//! sqlx protocol notes (what the proxy sees):
//! * `begin()` sends BEGIN over the simple protocol; `begin()` on a transaction sends
//!   `SAVEPOINT _sqlx_savepoint_N`, commit `RELEASE SAVEPOINT ..`, rollback `ROLLBACK TO SAVEPOINT ..`.
//!   `is_in_transaction()` is sqlx's own depth counter, not the server's status byte.
//! * `sqlx::query(..)` is prepared under a per-connection name (`sqlx_s_1`, `sqlx_s_2`, ...), cached,
//!   so two connections of one key use the same statement names for different SQL.
//! * `Executor::execute(&str)` / `raw_sql` use the simple protocol.
//! * It asks for SSL first (SSLRequest) with the default `sslmode=prefer`.
//! * No cancel API and no pipelining: those are covered by tokio_postgres.rs.

mod common;

use std::time::Duration;

use common::{key_for, sqlx_options, RESET};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnection, PgListener, PgPoolOptions};
use sqlx::{Connection, Executor, Row};

fn key(name: &str) -> String {
    key_for("sx", name)
}

async fn conn(key: &str) -> PgConnection {
    PgConnection::connect_with(&sqlx_options(key)).await.expect("connect through the proxy")
}

/// Start of every test: the lenient in-band reset (42883 means no rollback engine: a fresh
/// database per key anyway).
async fn start(key: &str) {
    let mut c = conn(key).await;
    if let Err(e) = c.execute(RESET).await {
        let code = e.as_database_error().and_then(|d| d.code().map(|c| c.into_owned()));
        assert_eq!(code.as_deref(), Some("42883"), "reset failed: {e}");
    }
}

async fn reset_strict(c: &mut PgConnection) {
    let rows = sqlx::raw_sql(RESET).fetch_all(&mut *c).await.expect("SELECT dbsandbox_reset()");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].try_get::<String, _>("dbsandbox_reset").unwrap(), "ok");
}

async fn names(c: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar("select name from items order by id").fetch_all(c).await.unwrap()
}

async fn count(c: &mut PgConnection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(c).await.unwrap()
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error().and_then(|d| d.code().map(|c| c.into_owned()))
}

// (1) code that commits mid-test, then reset -> nothing left
#[tokio::test]
async fn s01_commit_then_reset_leaves_nothing() {
    let k = key("01_commit_then_reset");
    start(&k).await;
    let mut app = conn(&k).await;
    sqlx::query("insert into items(name) values ($1)").bind("autocommitted").execute(&mut app).await.unwrap();
    let mut tx = app.begin().await.unwrap();
    sqlx::query("insert into items(name) values ($1)").bind("committed-in-tx").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    let mut other = conn(&k).await;
    assert_eq!(names(&mut other).await, ["autocommitted", "committed-in-tx"]);
    reset_strict(&mut other).await;
    assert_eq!(count(&mut other, "items").await, 0);
    assert_eq!(count(&mut app, "items").await, 0);
}

// (2) a second connection of the same key sees the first one's writes
#[tokio::test]
async fn s02_second_connection_sees_writes() {
    let k = key("02_second_connection");
    start(&k).await;
    let mut a = conn(&k).await;
    let mut b = conn(&k).await;
    sqlx::query("insert into items(name) values ($1)").bind("from-a").execute(&mut a).await.unwrap();
    assert_eq!(names(&mut b).await, ["from-a"]);
}

// (3) a caught unique violation followed by more statements
#[tokio::test]
async fn s03_caught_unique_violation_then_more_statements() {
    let k = key("03_unique_violation");
    start(&k).await;
    let mut c = conn(&k).await;
    let ins = "insert into items(name) values ($1)";
    sqlx::query(ins).bind("dup").execute(&mut c).await.unwrap();
    let e = sqlx::query(ins).bind("dup").execute(&mut c).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("23505"));
    assert!(e.as_database_error().unwrap().is_unique_violation());
    sqlx::query(ins).bind("after").execute(&mut c).await.unwrap();
    assert_eq!(names(&mut c).await, ["dup", "after"]);
}

#[tokio::test]
async fn s03b_caught_unique_violation_in_nested_transaction() {
    let k = key("03b_violation_in_savepoint");
    start(&k).await;
    let mut c = conn(&k).await;
    let mut tx = c.begin().await.unwrap();
    sqlx::query("insert into items(name) values ('dup')").execute(&mut *tx).await.unwrap();
    {
        let mut sp = tx.begin().await.unwrap(); // SAVEPOINT _sqlx_savepoint_1
        let e = sqlx::query("insert into items(name) values ('dup')").execute(&mut *sp).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("23505"));
        sp.rollback().await.unwrap(); // ROLLBACK TO SAVEPOINT _sqlx_savepoint_1
    }
    sqlx::query("insert into items(name) values ('after')").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(names(&mut conn(&k).await).await, ["dup", "after"]);
}

// (4) nested transactions at depth 3, sqlx mapping nested begin() to savepoints
#[tokio::test]
async fn s04_nested_begin_depth3() {
    let k = key("04_nested_begin_depth3");
    start(&k).await;
    let mut c = conn(&k).await;
    assert!(!c.is_in_transaction());
    let mut t1 = c.begin().await.unwrap(); // BEGIN
    sqlx::query("insert into items(name) values ('l1')").execute(&mut *t1).await.unwrap();
    let mut t2 = t1.begin().await.unwrap(); // SAVEPOINT _sqlx_savepoint_1
    sqlx::query("insert into items(name) values ('l2')").execute(&mut *t2).await.unwrap();
    let mut t3 = t2.begin().await.unwrap(); // SAVEPOINT _sqlx_savepoint_2
    sqlx::query("insert into items(name) values ('l3-undone')").execute(&mut *t3).await.unwrap();
    assert!(t3.is_in_transaction());
    t3.rollback().await.unwrap(); // ROLLBACK TO SAVEPOINT _sqlx_savepoint_2
    sqlx::query("insert into items(name) values ('l2-after')").execute(&mut *t2).await.unwrap();
    t2.commit().await.unwrap(); // RELEASE SAVEPOINT _sqlx_savepoint_1
    // a third level that is dropped without commit rolls back too
    {
        let mut t2b = t1.begin().await.unwrap();
        sqlx::query("insert into items(name) values ('dropped')").execute(&mut *t2b).await.unwrap();
    }
    sqlx::query("insert into items(name) values ('l1-after')").execute(&mut *t1).await.unwrap();
    t1.commit().await.unwrap(); // COMMIT
    assert!(!c.is_in_transaction());
    assert_eq!(names(&mut conn(&k).await).await, ["l1", "l2", "l2-after", "l1-after"]);
    reset_strict(&mut c).await;
    assert_eq!(count(&mut c, "items").await, 0);
}

// (5) prepared statements with the same names on two connections
#[tokio::test]
async fn s05_same_statement_names_on_two_connections() {
    let k = key("05_same_statement_names");
    start(&k).await;
    let mut a = conn(&k).await;
    let mut b = conn(&k).await;
    for i in 0..3i32 {
        // a's first statement and b's first statement are both "sqlx_s_1"
        let va: i32 = sqlx::query_scalar("select $1::int * 2").bind(20 + i).fetch_one(&mut a).await.unwrap();
        let vb: String = sqlx::query_scalar("select 'b:' || $1::text").bind(format!("x{i}")).fetch_one(&mut b).await.unwrap();
        assert_eq!((va, vb), (2 * (20 + i), format!("b:x{i}")));
    }
    // the cache really holds one statement each (so the names above are reused, not re-parsed)
    assert_eq!(a.cached_statements_size(), 1);
    assert_eq!(b.cached_statements_size(), 1);
}

// (7) COPY in and out
#[tokio::test]
async fn s07_copy_in_and_out() {
    let k = key("07_copy");
    start(&k).await;
    let mut c = conn(&k).await;
    let mut copy = c.copy_in_raw("COPY items(name, qty) FROM STDIN").await.unwrap();
    let data: String = (1..=500).map(|i| format!("c{i}\t{i}\n")).collect();
    copy.send(data.as_bytes()).await.unwrap();
    assert_eq!(copy.finish().await.unwrap(), 500);
    let out: Vec<_> = c
        .copy_out_raw("COPY (select id, name from items where id <= 2 order by id) TO STDOUT")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(out.concat(), b"1\tc1\n2\tc2\n");
    assert_eq!(count(&mut c, "items").await, 500);
}

// (8) LISTEN/NOTIFY through sqlx's PgListener
#[tokio::test]
async fn s08_listener_gets_notify_at_commit() {
    let k = key("08_listener");
    start(&k).await;
    let pool = PgPoolOptions::new().max_connections(2).connect_with(sqlx_options(&k)).await.unwrap();
    let mut listener = PgListener::connect_with(&pool).await.unwrap();
    listener.listen("jobs").await.unwrap();
    let mut n = conn(&k).await;
    let mut tx = n.begin().await.unwrap();
    tx.execute("NOTIFY jobs, 'rolled-back'").await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = n.begin().await.unwrap();
    tx.execute("NOTIFY jobs, 'at-commit'").await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(500), listener.recv()).await.is_err(), "delivered before commit");
    tx.commit().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.expect("delivered at commit").unwrap();
    assert_eq!((got.channel(), got.payload()), ("jobs", "at-commit"));
    assert!(tokio::time::timeout(Duration::from_millis(500), listener.recv()).await.is_err(), "a rolled-back NOTIFY arrived");
}

// (9) a statement that cannot run in a transaction
#[tokio::test]
async fn s09_vacuum_refused_naming_database_isolation() {
    let k = key("09_vacuum");
    start(&k).await;
    let mut c = conn(&k).await;
    let e = c.execute("VACUUM items").await.expect_err("VACUUM must be refused in a rollback sandbox");
    assert_eq!(sqlstate(&e).as_deref(), Some("25001"));
    assert!(e.as_database_error().unwrap().message().contains("database"), "{e}");
    let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut c).await.unwrap();
    assert_eq!(one, 1);
}

// (10) id = 1 after reset
#[tokio::test]
async fn s10_ids_restart_after_reset() {
    let k = key("10_ids_after_reset");
    start(&k).await;
    let mut c = conn(&k).await;
    let ins = "insert into empty_table(v) values (1) returning id";
    assert_eq!(sqlx::query_scalar::<_, i32>(ins).fetch_one(&mut c).await.unwrap(), 1);
    assert_eq!(sqlx::query_scalar::<_, i32>(ins).fetch_one(&mut c).await.unwrap(), 2);
    let t0 = "insert into t0(name) values ('new') returning id";
    assert_eq!(sqlx::query_scalar::<_, i64>(t0).fetch_one(&mut c).await.unwrap(), 101);
    reset_strict(&mut c).await;
    // the cached prepared statements still work after the reset
    assert_eq!(sqlx::query_scalar::<_, i32>(ins).fetch_one(&mut c).await.unwrap(), 1);
    assert_eq!(sqlx::query_scalar::<_, i64>(t0).fetch_one(&mut c).await.unwrap(), 101);
}

// (12) a failed transaction answers 25P02 until ROLLBACK
#[tokio::test]
async fn s12_failed_transaction_25p02_until_rollback() {
    let k = key("12_in_failed_transaction");
    start(&k).await;
    let mut c = conn(&k).await;
    let mut tx = c.begin().await.unwrap();
    sqlx::query("insert into items(name) values ('x')").execute(&mut *tx).await.unwrap();
    let e = sqlx::query("insert into items(name) values ('x')").execute(&mut *tx).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("23505"));
    let e = sqlx::query("select 1").execute(&mut *tx).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"));
    let e = tx.execute("select 2").await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("25P02"));
    tx.rollback().await.unwrap();
    assert_eq!(count(&mut c, "items").await, 0);
}

// (13) the in-band reset over simple and extended protocol
#[tokio::test]
async fn s13_reset_simple_and_extended() {
    let k = key("13_reset_protocols");
    start(&k).await;
    let mut c = conn(&k).await;
    for extended in [false, true, true] {
        sqlx::query("insert into items(name) values ('gone')").execute(&mut c).await.unwrap();
        let rows = if extended {
            sqlx::query(RESET).fetch_all(&mut c).await.unwrap() // prepared "sqlx_s_N", cached
        } else {
            sqlx::raw_sql(RESET).fetch_all(&mut c).await.unwrap() // simple Query
        };
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].try_get::<String, _>("dbsandbox_reset").unwrap(), "ok");
        assert_eq!(count(&mut c, "items").await, 0);
    }
}
