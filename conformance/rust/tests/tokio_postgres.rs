//! dbsandbox conformance: tokio-postgres through the proxy. Numbers follow conformance/README.md.
//!
//! tokio-postgres protocol notes (what the proxy sees):
//! * `simple_query`/`batch_execute` (and `transaction()`'s BEGIN/COMMIT/SAVEPOINT): simple Query.
//! * `query(&str, ..)`: Parse "sN" + Describe + Sync, then Bind/Execute/Sync, then Close "sN";
//!   `query_typed`: unnamed Parse/Bind/Describe/Execute/Sync in one write. Never Flush.
//! * Statement names ("s0", "s1", ...) and portal names come from a process-wide counter, so two
//!   clients of one process never pick the same name; the same-name case is in sqlx.rs (its names
//!   are per connection) and here with SQL PREPARE.
//! * Futures polled together are pipelined: each request is written before earlier answers arrive.
//! * Cancel: `CancelToken::cancel_query` opens a new connection and sends a CancelRequest.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, TryStreamExt};
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

fn key(name: &str) -> String {
    key_for("tp", name)
}

async fn first_id(c: &tokio_postgres::Client, sql: &str) -> i64 {
    let row = c.query_one(&format!("with t as ({sql}) select id::bigint from t"), &[]).await;
    row.unwrap().get(0)
}

// (1) code that commits mid-test, then reset -> nothing left
#[tokio::test]
async fn t01_commit_then_reset_leaves_nothing() {
    let sb = Sandbox::start(key("01_commit_then_reset")).await;
    let mut app = sb.client().await;
    app.execute("insert into items(name) values ('autocommitted')", &[]).await.unwrap();
    let tx = app.transaction().await.unwrap();
    tx.execute("insert into items(name) values ('committed-in-tx')", &[]).await.unwrap();
    tx.commit().await.unwrap();
    let other = sb.client().await;
    assert_eq!(names(&other).await, ["autocommitted", "committed-in-tx"]);

    reset_strict(&other).await;

    assert_eq!(count(&other, "items").await, 0);
    assert_eq!(count(&app, "items").await, 0);
    assert_eq!(count(&sb.client().await, "items").await, 0);
    sb.finish().await;
}

// (2) a second connection of the same key sees the first one's writes
#[tokio::test]
async fn t02_second_connection_sees_committed_writes() {
    let sb = Sandbox::start(key("02_second_connection")).await;
    let a = sb.client().await;
    let b = sb.client().await;
    a.execute("insert into items(name) values ($1)", &[&"from-a"]).await.unwrap();
    assert_eq!(names(&b).await, ["from-a"]);
    b.execute("update items set qty = 7 where name = 'from-a'", &[]).await.unwrap();
    let qty: i32 = a.query_one("select qty from items where name = 'from-a'", &[]).await.unwrap().get(0);
    assert_eq!(qty, 7);
    sb.finish().await;
}

#[tokio::test]
async fn t02b_second_connection_sees_uncommitted_writes() {
    let sb = Sandbox::start(key("02b_uncommitted_visible")).await;
    let mut a = sb.client().await;
    let b = sb.client().await;
    let tx = a.transaction().await.unwrap();
    tx.execute("insert into items(name) values ('uncommitted')", &[]).await.unwrap();
    assert_eq!(names(&b).await, ["uncommitted"]);
    tx.rollback().await.unwrap();
    assert_eq!(names(&b).await, Vec::<String>::new());
    sb.finish().await;
}

// (3) a caught unique violation followed by more statements
#[tokio::test]
async fn t03_caught_unique_violation_then_more_statements() {
    let sb = Sandbox::start(key("03_unique_violation")).await;
    let c = sb.client().await;
    c.execute("insert into items(name) values ($1)", &[&"dup"]).await.unwrap();
    let e = c.execute("insert into items(name) values ($1)", &[&"dup"]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("23505"));
    c.execute("insert into items(name) values ('after')", &[]).await.unwrap();
    assert_eq!(names(&c).await, ["dup", "after"]);
    let id: i32 = c.query_one("select id from items where name = 'after'", &[]).await.unwrap().get(0);
    assert_eq!(id, 3);
    sb.finish().await;
}

// (4) nested transactions and savepoints at depth 3
#[tokio::test]
async fn t04_savepoints_depth3_exact_survivors() {
    let sb = Sandbox::start(key("04_savepoints_depth3")).await;
    let c = sb.client().await;
    let observer = sb.client().await;
    for sql in [
        "BEGIN",
        "insert into items(name) values ('top')",
        "SAVEPOINT a",
        "insert into items(name) values ('in-a')",
        "SAVEPOINT b",
        "insert into items(name) values ('in-b-undone')",
    ] {
        c.batch_execute(sql).await.unwrap();
    }
    let e = c.batch_execute("insert into items(name) values ('top')").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("23505"));
    let e = c.batch_execute("select 1").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"));
    for sql in ["ROLLBACK TO b", "insert into items(name) values ('in-b-kept')", "RELEASE a"] {
        c.batch_execute(sql).await.unwrap();
    }
    let e = c.batch_execute("ROLLBACK TO b").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("3B001"));
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(names(&observer).await, Vec::<String>::new());

    c.batch_execute(
        "BEGIN; insert into items(name) values ('top'); SAVEPOINT a; insert into items(name) values ('in-a'); \
         SAVEPOINT b; insert into items(name) values ('in-b-undone'); ROLLBACK TO b; \
         insert into items(name) values ('in-b-kept'); RELEASE a; COMMIT",
    )
    .await
    .unwrap();
    assert_eq!(names(&observer).await, ["top", "in-a", "in-b-kept"]);
    sb.finish().await;
}

#[tokio::test]
async fn t04b_driver_nested_transactions_depth3() {
    let sb = Sandbox::start(key("04b_driver_nested")).await;
    let mut c = sb.client().await;
    {
        let mut t1 = c.transaction().await.unwrap(); // BEGIN
        t1.execute("insert into items(name) values ('l1')", &[]).await.unwrap();
        let mut t2 = t1.savepoint("a").await.unwrap(); // SAVEPOINT a
        t2.execute("insert into items(name) values ('l2')", &[]).await.unwrap();
        let t3 = t2.transaction().await.unwrap(); // SAVEPOINT sp_2
        t3.execute("insert into items(name) values ('l3-undone')", &[]).await.unwrap();
        t3.rollback().await.unwrap(); // ROLLBACK TO SAVEPOINT sp_2
        t2.execute("insert into items(name) values ('l2-after')", &[]).await.unwrap();
        t2.commit().await.unwrap(); // RELEASE a
        t1.commit().await.unwrap(); // COMMIT
    }
    assert_eq!(names(&sb.client().await).await, ["l1", "l2", "l2-after"]);
    sb.finish().await;
}

#[tokio::test]
async fn t04c_committed_savepoints_gone_after_reset() {
    let sb = Sandbox::start(key("04c_reset_after_commit")).await;
    let c = sb.client().await;
    c.batch_execute("BEGIN; SAVEPOINT a; SAVEPOINT b; insert into items(name) values ('deep'); RELEASE a; COMMIT")
        .await
        .unwrap();
    assert_eq!(names(&sb.client().await).await, ["deep"]);
    reset_strict(&c).await;
    assert_eq!(count(&c, "items").await, 0);
    sb.finish().await;
}

// (5) prepared statements on two connections of one key
#[tokio::test]
async fn t05_prepare_on_two_connections() {
    let sb = Sandbox::start(key("05_prepare_two_connections")).await;
    let a = sb.client().await;
    let b = sb.client().await;
    let sa = a.prepare("select $1::int * 2").await.unwrap();
    let sb_ = b.prepare("select 'b:' || $1::text").await.unwrap();
    for i in 0..3 {
        let va: i32 = a.query_one(&sa, &[&(20 + i)]).await.unwrap().get(0);
        let vb: String = b.query_one(&sb_, &[&format!("x{i}")]).await.unwrap().get(0);
        assert_eq!((va, vb), (2 * (20 + i), format!("b:x{i}")));
    }
    sb.finish().await;
}

#[tokio::test]
async fn t05b_same_sql_prepare_name_on_two_connections() {
    let sb = Sandbox::start(key("05b_sql_prepare_same_name")).await;
    let a = sb.client().await;
    let b = sb.client().await;
    a.batch_execute("PREPARE stmt_one(int) AS select $1 + 1").await.unwrap();
    b.batch_execute("PREPARE stmt_one(text) AS select 'b:' || $1").await.unwrap();
    let va: i32 = a.query_one("EXECUTE stmt_one(41)", &[]).await.unwrap().get(0);
    let vb: String = b.query_one("EXECUTE stmt_one('x')", &[]).await.unwrap().get(0);
    assert_eq!((va, vb.as_str()), (42, "b:x"));
    a.batch_execute("DEALLOCATE stmt_one").await.unwrap();
    let e = a.batch_execute("EXECUTE stmt_one(1)").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("26000"));
    let vb: String = b.query_one("EXECUTE stmt_one('y')", &[]).await.unwrap().get(0);
    assert_eq!(vb, "b:y");
    sb.finish().await;
}

// (6) pipelined extended-protocol queries
#[tokio::test]
async fn t06_pipelined_queries() {
    let sb = Sandbox::start(key("06_pipeline")).await;
    let c = sb.client().await;
    let ins = c.prepare("insert into items(name, qty) values ($1, $2) returning id").await.unwrap();
    // All five requests are written before the first answer is read; each ends with Sync.
    let (r1, r2, r3, r4, r5) = tokio::join!(
        c.query_one(&ins, &[&"p1", &0i32]),
        c.query_one(&ins, &[&"p2", &0i32]),
        c.query_one(&ins, &[&"p1", &0i32]),
        c.query_typed("insert into items(name, qty) values ($1, $2) returning id", &[(&"p3", Type::TEXT), (&5i32, Type::INT4)]),
        c.query_typed("select count(*), sum(qty)::int from items where name like $1", &[(&"p%", Type::TEXT)]),
    );
    assert_eq!(r1.unwrap().get::<_, i32>(0), 1);
    assert_eq!(r2.unwrap().get::<_, i32>(0), 2);
    assert_eq!(sqlstate(&r3.unwrap_err()), Some("23505"));
    assert_eq!(r4.unwrap()[0].get::<_, i32>(0), 4); // id 3 went to the failed insert
    let r5 = r5.unwrap();
    assert_eq!((r5[0].get::<_, i64>(0), r5[0].get::<_, i32>(1)), (3, 5));
    sb.finish().await;
}

// (7) COPY in and out
#[tokio::test]
async fn t07_copy_in_and_out() {
    let sb = Sandbox::start(key("07_copy")).await;
    let c = sb.client().await;
    let data: String = (1..=500).map(|i| format!("c{i}\t{i}\n")).collect();
    let sink = c.copy_in("COPY items(name, qty) FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from(data)).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 500);
    let row = c.query_one("select count(*), sum(qty) from items", &[]).await.unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (500, 125250));

    let out = c.copy_out("COPY (select id, name, qty from items where id <= 3 order by id) TO STDOUT").await.unwrap();
    let chunks: Vec<Bytes> = out.try_collect().await.unwrap();
    assert_eq!(chunks.concat(), b"1\tc1\t1\n2\tc2\t2\n3\tc3\t3\n");

    // a failing COPY in leaves the connection usable and nothing of its rows
    let sink = c.copy_in("COPY items(name) FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from_static(b"fresh\nc1\n")).await.unwrap();
    let e = sink.finish().await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("23505"));
    assert_eq!(count(&c, "items").await, 500);
    sb.finish().await;
}

// (8) LISTEN/NOTIFY between two connections of one key
#[tokio::test]
async fn t08_notify_at_commit_not_before_not_on_rollback() {
    let sb = Sandbox::start(key("08_listen_notify")).await;
    let mut listener = sb.connect().await;
    let notifier = sb.client().await;
    listener.client.batch_execute("LISTEN jobs").await.unwrap();
    let quiet = Duration::from_millis(500);

    notifier.batch_execute("BEGIN").await.unwrap();
    notifier.batch_execute("NOTIFY jobs, 'at-commit'").await.unwrap();
    assert!(tokio::time::timeout(quiet, listener.notes.recv()).await.is_err(), "delivered before commit");
    notifier.batch_execute("COMMIT").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), listener.notes.recv()).await.expect("delivered at commit").unwrap();
    assert_eq!((n.channel(), n.payload()), ("jobs", "at-commit"));

    notifier.batch_execute("BEGIN; NOTIFY jobs, 'rolled-back'; ROLLBACK").await.unwrap();
    notifier.batch_execute("NOTIFY jobs, 'outside-tx'").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), listener.notes.recv()).await.expect("delivered").unwrap();
    assert_eq!((n.channel(), n.payload()), ("jobs", "outside-tx"));
    assert!(tokio::time::timeout(quiet, listener.notes.recv()).await.is_err(), "more than expected");

    listener.client.batch_execute("UNLISTEN jobs").await.unwrap();
    notifier.batch_execute("NOTIFY jobs, 'after-unlisten'").await.unwrap();
    assert!(tokio::time::timeout(quiet, listener.notes.recv()).await.is_err(), "delivered after UNLISTEN");
    sb.finish().await;
}

// (9) a statement that cannot run in a transaction
#[tokio::test]
async fn t09_vacuum_refused_naming_database_isolation() {
    let sb = Sandbox::start(key("09_vacuum")).await;
    let c = sb.client().await;
    let e = c.batch_execute("VACUUM items").await.expect_err("VACUUM must be refused in a rollback sandbox");
    assert_eq!(sqlstate(&e), Some("25001"));
    assert!(e.as_db_error().unwrap().message().contains("database"), "{e}");
    assert_eq!(c.query_one("select 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    sb.finish().await;
}

#[tokio::test]
async fn t09b_prepare_transaction_refused() {
    let sb = Sandbox::start(key("09b_prepare_transaction")).await;
    let c = sb.client().await;
    c.batch_execute("BEGIN").await.unwrap();
    let e = c.batch_execute("PREPARE TRANSACTION 'x'").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("0A000"), "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(c.query_one("select 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    sb.finish().await;
}

// (10) id = 1 after reset
#[tokio::test]
async fn t10_ids_restart_after_reset() {
    let sb = Sandbox::start(key("10_ids_after_reset")).await;
    let c = sb.client().await;
    assert_eq!(first_id(&c, "insert into empty_table(v) values (1) returning id").await, 1);
    assert_eq!(first_id(&c, "insert into empty_table(v) values (2) returning id").await, 2);
    let t0: i64 = c.query_one("insert into t0(name) values ('new') returning id", &[]).await.unwrap().get(0);
    assert_eq!(t0, 101);
    reset_strict(&c).await;
    assert_eq!(first_id(&c, "insert into empty_table(v) values (1) returning id").await, 1);
    let t0: i64 = c.query_one("insert into t0(name) values ('new') returning id", &[]).await.unwrap().get(0);
    assert_eq!(t0, 101);
    assert_eq!(count(&c, "t0").await, 101);
    sb.finish().await;
}

#[tokio::test]
async fn t10d_last_connection_close_resets() {
    let sb = Sandbox::start(key("10d_close_resets")).await;
    let first = sb.connect().await;
    first.client.batch_execute("insert into items(name) values ('left-behind'); insert into empty_table(v) values (1)").await.unwrap();
    drop(first.client); // the connection task sends Terminate and closes the socket ...
    tokio::time::timeout(Duration::from_secs(5), first.task).await.unwrap().unwrap(); // ... and ends
    let c = sb.client().await;
    assert_eq!(count(&c, "items").await, 0);
    assert_eq!(first_id(&c, "insert into empty_table(v) values (1) returning id").await, 1);
    sb.finish().await;
}

// (11) cancel of a long query
#[tokio::test]
async fn t11_cancel_long_query() {
    let sb = Sandbox::start(key("11_cancel")).await;
    let c = sb.client().await;
    c.execute("insert into items(name) values ('before-cancel')", &[]).await.unwrap();
    let token = c.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        token.cancel_query(NoTls).await
    });
    let started = Instant::now();
    let e = c.query("select pg_sleep(30)", &[]).await.expect_err("pg_sleep(30) was not cancelled");
    canceller.await.unwrap().expect("CancelRequest sent");
    assert_eq!(sqlstate(&e), Some("57014"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "cancel took {:?}", started.elapsed());
    assert_eq!(c.query_one("select 1", &[]).await.unwrap().get::<_, i32>(0), 1);
    assert_eq!(names(&c).await, ["before-cancel"]);
    sb.finish().await;
}

// (12) a failed transaction answers 25P02 until ROLLBACK
#[tokio::test]
async fn t12_failed_transaction_25p02_until_rollback() {
    let sb = Sandbox::start(key("12_in_failed_transaction")).await;
    let c = sb.client().await;
    c.batch_execute("BEGIN; insert into items(name) values ('x')").await.unwrap();
    let e = c.execute("insert into items(name) values ('x')", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("23505"));
    let e = c.batch_execute("select 1").await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"));
    let e = c.query("select $1::int", &[&1i32]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"));
    let e = c.query_typed("select 2", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e), Some("25P02"));
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(count(&c, "items").await, 0);
    sb.finish().await;
}

// (13) the in-band reset over simple and extended protocol
#[tokio::test]
async fn t13_reset_simple_and_extended() {
    let sb = Sandbox::start(key("13_reset_protocols")).await;
    let c = sb.client().await;
    c.batch_execute("insert into items(name) values ('gone')").await.unwrap();
    reset_strict(&c).await; // simple Query
    assert_eq!(count(&c, "items").await, 0);

    c.batch_execute("insert into items(name) values ('gone')").await.unwrap();
    let rows = c.query(RESET, &[]).await.unwrap(); // named Parse "sN" + Describe, Bind/Execute, Close
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].columns()[0].name(), "dbsandbox_reset");
    assert_eq!(rows[0].get::<_, String>(0), "ok");
    assert_eq!(count(&c, "items").await, 0);

    c.batch_execute("insert into items(name) values ('gone')").await.unwrap();
    let rows = c.query_typed(RESET, &[]).await.unwrap(); // unnamed Parse/Bind/Describe/Execute/Sync
    assert_eq!(rows[0].get::<_, String>(0), "ok");
    assert_eq!(count(&c, "items").await, 0);

    c.batch_execute("insert into items(name) values ('gone')").await.unwrap();
    let stmt = c.prepare(RESET).await.unwrap(); // prepared once, executed twice
    for _ in 0..2 {
        assert_eq!(c.query_one(&stmt, &[]).await.unwrap().get::<_, String>(0), "ok");
        assert_eq!(count(&c, "items").await, 0);
        c.batch_execute("insert into items(name) values ('gone')").await.unwrap();
    }
    sb.finish().await;
}
