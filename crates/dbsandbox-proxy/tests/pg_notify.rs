//! `pg_notify()` through a rollback sandbox (issue 10), against a real PostgreSQL whose
//! database carries dbsandbox's `pg_notify` (as every template dbsandbox builds does): from SQL
//! and from a trigger, NOTIFY's semantics hold (at once in autocommit, at the sender's COMMIT,
//! dropped by ROLLBACK, by ROLLBACK TO an earlier savepoint and by a failed statement), the
//! text comes back exact, the errors are PostgreSQL's, and through a `database` key the function
//! is PostgreSQL's own.
//!
//! "Not delivered" is shown without waiting: after the step that must not deliver, another
//! connection sends `NOTIFY jobs, 'sentinel'` in autocommit; the listener's notifications arrive
//! in order, so the sentinel must be the next one.

mod support;

use std::time::Duration;

use bytes::BytesMut;
use dbsandbox_proxy::{Isolation, ProxyConfig};
use postgres_protocol::message::frontend;
use support::{sqlstate, MapRouter, PgServer, RawConnection, Reply, TestProxy};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Notification};

/// One proxy on one database with dbsandbox's `pg_notify`: key `rb` is a rollback sandbox,
/// key `db` passes through (database isolation).
async fn proxy(server: &PgServer) -> TestProxy {
    server.create_database("notifydb").await;
    let admin = server.admin_of("notifydb").await;
    admin
        .batch_execute(&dbsandbox_pool::sandbox_notify_sql())
        .await
        .unwrap();
    admin
        .batch_execute(
            "create table jobs(id serial primary key, name text not null);
             create function jobs_signal() returns trigger language plpgsql as $$
             begin perform pg_notify('jobs', 'job ' || new.name); return new; end $$;
             create trigger jobs_signal after insert on jobs for each row execute function jobs_signal();
             -- Fires after jobs_signal (triggers fire in name order): a job named 'doomed'
             -- fails its INSERT once its notification is sent.
             create function jobs_refuse() returns trigger language plpgsql as $$
             begin if new.name = 'doomed' then raise exception 'doomed job'; end if; return new; end $$;
             create trigger jobs_zrefuse after insert on jobs for each row execute function jobs_refuse();
             -- A deferred constraint trigger fires at COMMIT (the proxy's deferred checks).
             create table batches(id serial primary key, name text not null);
             create function batches_signal() returns trigger language plpgsql as $$
             begin perform pg_notify('jobs', 'batch ' || new.name); return null; end $$;
             create constraint trigger batches_signal after insert on batches
               deferrable initially deferred for each row execute function batches_signal();",
        )
        .await
        .unwrap();
    let mut rollback = server.unix_target("notifydb");
    rollback.isolation = Some(Isolation::Rollback);
    let mut database = server.unix_target("notifydb");
    database.isolation = Some(Isolation::Database);
    let router = MapRouter::with([("rb", rollback), ("db", database)]);
    TestProxy::start(ProxyConfig::default(), router).await
}

/// A connection whose notifications are collected in order.
struct Listener {
    client: Client,
    notes: mpsc::UnboundedReceiver<Notification>,
}

impl Listener {
    async fn open(proxy: &TestProxy, key: &str, channel: &str) -> Listener {
        let (client, mut connection) = proxy
            .config(key)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        let (tx, notes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let AsyncMessage::Notification(n) = message {
                    let _ = tx.send(n);
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\"")))
            .await
            .unwrap();
        Listener { client, notes }
    }

    /// The next notification as (channel, payload); fails after 10 s without one (only a bound
    /// for a broken run: a notification that is due arrives at once).
    async fn next(&mut self) -> (String, String) {
        let n = tokio::time::timeout(Duration::from_secs(10), self.notes.recv())
            .await
            .expect("a notification within 10 s")
            .expect("the listener's connection is open");
        (n.channel().to_string(), n.payload().to_string())
    }

    /// Asserts that nothing was delivered before the sentinel `sender` sends now.
    async fn nothing_before_sentinel(&mut self, sender: &Client, why: &str) {
        sender
            .batch_execute("NOTIFY jobs, 'sentinel'")
            .await
            .unwrap();
        assert_eq!(self.next().await, pair("jobs", "sentinel"), "{why}");
    }
}

fn pair(channel: &str, payload: &str) -> (String, String) {
    (channel.to_string(), payload.to_string())
}

#[tokio::test]
async fn pg_notify_in_autocommit_is_delivered_at_once() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut listener = Listener::open(&proxy, "rb", "jobs").await;
    let notifier = proxy.connect("rb").await.unwrap();
    // A client that hides notices must not hide the function's own.
    notifier
        .batch_execute("SET client_min_messages = error")
        .await
        .unwrap();
    notifier
        .batch_execute("SELECT pg_notify('jobs', 'simple')")
        .await
        .unwrap();
    assert_eq!(listener.next().await, pair("jobs", "simple"));
    notifier
        .execute("SELECT pg_notify($1, $2)", &[&"jobs", &"extended"])
        .await
        .unwrap();
    assert_eq!(listener.next().await, pair("jobs", "extended"));
    notifier
        .execute("SELECT pg_notify('jobs', NULL)", &[])
        .await
        .unwrap();
    assert_eq!(
        listener.next().await,
        pair("jobs", ""),
        "NULL payload is ''"
    );
    // The sender hears its own notification, as in PostgreSQL.
    listener
        .client
        .execute("SELECT pg_notify('jobs', 'self')", &[])
        .await
        .unwrap();
    assert_eq!(listener.next().await, pair("jobs", "self"));
}

#[tokio::test]
async fn pg_notify_in_a_transaction_waits_for_commit_and_is_dropped_by_rollback() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut listener = Listener::open(&proxy, "rb", "jobs").await;
    let notifier = proxy.connect("rb").await.unwrap();
    let other = proxy.connect("rb").await.unwrap();

    notifier.batch_execute("BEGIN").await.unwrap();
    notifier
        .execute("SELECT pg_notify('jobs', 'at commit')", &[])
        .await
        .unwrap();
    notifier
        .batch_execute("SELECT pg_notify('jobs', 'at commit')")
        .await
        .unwrap();
    listener
        .nothing_before_sentinel(&other, "delivered before COMMIT")
        .await;
    notifier.batch_execute("COMMIT").await.unwrap();
    assert_eq!(listener.next().await, pair("jobs", "at commit"));
    listener
        .nothing_before_sentinel(&other, "duplicates in one transaction fold into one")
        .await;

    notifier
        .batch_execute("BEGIN; SELECT pg_notify('jobs', 'rolled back'); ROLLBACK")
        .await
        .unwrap();
    listener
        .nothing_before_sentinel(&other, "ROLLBACK drops it")
        .await;

    notifier
        .batch_execute(
            "BEGIN; SAVEPOINT a; SELECT pg_notify('jobs', 'undone'); ROLLBACK TO a; \
             SELECT pg_notify('jobs', 'kept'); COMMIT",
        )
        .await
        .unwrap();
    assert_eq!(
        listener.next().await,
        pair("jobs", "kept"),
        "ROLLBACK TO a savepoint drops what was notified after it"
    );
}

#[tokio::test]
async fn a_trigger_notifies_at_the_inserting_connections_commit() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut listener = Listener::open(&proxy, "rb", "jobs").await;
    let worker = proxy.connect("rb").await.unwrap();
    let other = proxy.connect("rb").await.unwrap();

    worker.batch_execute("BEGIN").await.unwrap();
    worker
        .execute("INSERT INTO jobs(name) VALUES ($1)", &[&"first"])
        .await
        .unwrap();
    listener
        .nothing_before_sentinel(&other, "the trigger's notification came before COMMIT")
        .await;
    worker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(listener.next().await, pair("jobs", "job first"));

    worker
        .batch_execute("INSERT INTO jobs(name) VALUES ('autocommit')")
        .await
        .unwrap();
    assert_eq!(listener.next().await, pair("jobs", "job autocommit"));

    // A deferred trigger runs at COMMIT, and its notification goes with that COMMIT, after the
    // ones the transaction sent before.
    worker
        .batch_execute("BEGIN; INSERT INTO jobs(name) VALUES ('second'); INSERT INTO batches(name) VALUES ('b1')")
        .await
        .unwrap();
    listener
        .nothing_before_sentinel(
            &other,
            "a deferred trigger's notification came before COMMIT",
        )
        .await;
    worker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(listener.next().await, pair("jobs", "job second"));
    assert_eq!(listener.next().await, pair("jobs", "batch b1"));
    worker
        .batch_execute("INSERT INTO batches(name) VALUES ('b2')")
        .await
        .unwrap();
    assert_eq!(listener.next().await, pair("jobs", "batch b2"));
}

#[tokio::test]
async fn a_failed_statement_drops_what_its_transaction_notified() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut listener = Listener::open(&proxy, "rb", "jobs").await;
    let notifier = proxy.connect("rb").await.unwrap();
    let other = proxy.connect("rb").await.unwrap();

    notifier.batch_execute("BEGIN").await.unwrap();
    notifier
        .batch_execute("SELECT pg_notify('jobs', 'before the error')")
        .await
        .unwrap();
    let error = notifier.batch_execute("SELECT 1/0").await.unwrap_err();
    assert_eq!(sqlstate(&error), "22012");
    notifier.batch_execute("ROLLBACK").await.unwrap();
    listener
        .nothing_before_sentinel(&other, "an aborted transaction notified")
        .await;

    // An autocommit Query whose later statement fails is one aborted implicit transaction.
    let error = notifier
        .batch_execute("SELECT pg_notify('jobs', 'implicit'); SELECT 1/0")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "22012");
    listener
        .nothing_before_sentinel(&other, "an aborted implicit transaction notified")
        .await;

    // A trigger's notification goes with its failed INSERT, in autocommit and extended.
    let error = notifier
        .batch_execute("INSERT INTO jobs(name) VALUES ('doomed')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "P0001");
    let error = notifier
        .execute("INSERT INTO jobs(name) VALUES ($1)", &[&"doomed"])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&error), "P0001");
    listener
        .nothing_before_sentinel(&other, "a failed INSERT's trigger notified")
        .await;

    notifier
        .batch_execute("SELECT pg_notify('jobs', 'still works')")
        .await
        .unwrap();
    assert_eq!(listener.next().await, pair("jobs", "still works"));
}

#[tokio::test]
async fn channel_and_payload_come_back_exact_and_errors_are_postgresqls() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let channel = "Jöbs \"quoted\"; 'x'";
    let payload = "it's \"done\" \\ ; ü € 日本 \u{1F600}\t\nend";
    let mut listener = Listener::open(&proxy, "rb", channel).await;
    let notifier = proxy.connect("rb").await.unwrap();
    notifier
        .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .unwrap();
    assert_eq!(listener.next().await, pair(channel, payload));

    // The same checks and texts as PostgreSQL's own function (called here directly).
    let direct = server.admin_of("notifydb").await;
    let long_channel = "c".repeat(64);
    let long_payload = "p".repeat(8000);
    for (channel, payload) in [
        (Some(""), Some("x")),
        (None, Some("x")),
        (Some(long_channel.as_str()), Some("x")),
        (Some("jobs"), Some(long_payload.as_str())),
    ] {
        let ours = notifier
            .execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
            .await
            .unwrap_err();
        let real = direct
            .execute(
                &format!("SELECT {}($1, $2)", dbsandbox_pool::REAL_PG_NOTIFY),
                &[&channel, &payload],
            )
            .await
            .unwrap_err();
        let (ours, real) = (ours.as_db_error().unwrap(), real.as_db_error().unwrap());
        assert_eq!(
            (ours.code(), ours.message()),
            (real.code(), real.message()),
            "{channel:?}"
        );
        assert_eq!(ours.code().code(), "22023");
    }
    // The longest valid channel and payload are accepted.
    let channel = "c".repeat(63);
    let mut listener = Listener::open(&proxy, "rb", &channel).await;
    notifier
        .execute("SELECT pg_notify($1, $2)", &[&channel, &"p".repeat(7999)])
        .await
        .unwrap();
    assert_eq!(listener.next().await.1.len(), 7999);
}

#[tokio::test]
async fn through_a_database_key_pg_notify_is_postgresqls_own() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut listener = Listener::open(&proxy, "db", "jobs").await;
    let notifier = proxy.connect("db").await.unwrap();
    notifier
        .batch_execute("BEGIN; SELECT pg_notify('jobs', 'real'); COMMIT")
        .await
        .unwrap();
    assert_eq!(listener.next().await, pair("jobs", "real"));
    let error = notifier
        .execute("SELECT pg_notify($1, 'x')", &[&""])
        .await
        .unwrap_err();
    let error = error.as_db_error().unwrap();
    assert_eq!(
        (error.code().code(), error.message(), error.where_()),
        ("22023", "channel name cannot be empty", None),
        "PostgreSQL's own error"
    );
    // The server queues it itself: the sentinel (a real NOTIFY here) follows a committed
    // notification, and nothing of a rolled-back one.
    notifier
        .batch_execute("BEGIN; SELECT pg_notify('jobs', 'rolled back'); ROLLBACK")
        .await
        .unwrap();
    listener
        .nothing_before_sentinel(&notifier, "a rolled-back transaction notified")
        .await;
}

#[tokio::test]
async fn a_sequence_the_client_abandons_notifies_nothing() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut listener = Listener::open(&proxy, "rb", "jobs").await;
    let other = proxy.connect("rb").await.unwrap();
    let mut raw = RawConnection::open(proxy.addr).await;
    raw.send_startup("rb").await;
    raw.until_ready().await;
    // Parse, Bind, Execute and Flush: the call runs and answers, but the implicit transaction
    // is still open; the client then leaves without a Sync, which aborts it in PostgreSQL.
    let mut batch = BytesMut::new();
    frontend::parse("", "SELECT pg_notify('jobs', 'abandoned')", [], &mut batch).unwrap();
    batch.extend_from_slice(&[b'B', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]);
    frontend::execute("", 0, &mut batch).unwrap();
    frontend::flush(&mut batch);
    raw.send(&batch).await;
    let mut tags = Vec::new();
    while tags.last() != Some(&b'C') {
        match raw.recv().await {
            Some(Reply::Other(tag)) => tags.push(tag),
            other => panic!("unexpected reply {other:?} after {tags:?}"),
        }
    }
    assert_eq!(tags, [b'1', b'2', b'D', b'C']);
    let mut terminate = BytesMut::new();
    frontend::terminate(&mut terminate);
    raw.send(&terminate).await;
    assert!(
        raw.recv().await.is_none(),
        "the proxy closes the connection"
    );
    listener
        .nothing_before_sentinel(&other, "an abandoned sequence notified")
        .await;
}
