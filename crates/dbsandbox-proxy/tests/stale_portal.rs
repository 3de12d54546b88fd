//! A client that executes the unnamed portal after a simple Query failed in a transaction block
//! crashed PostgreSQL 15 through a `database` key (the protocol fuzzer's seed 484277155): the
//! server's failed portal points at freed memory. These tests send that sequence byte by byte,
//! as the fuzzer did, and check that the server survives, the client gets an error, and what
//! drivers do with the unnamed portal still passes through untouched.

mod support;

use bytes::BytesMut;
use dbsandbox_proxy::{Isolation, ProxyConfig};
use postgres_protocol::message::frontend;
use support::{MapRouter, PgServer, RawConnection, Reply, TestProxy};

fn query(sql: &str) -> BytesMut {
    let mut out = BytesMut::new();
    frontend::query(sql, &mut out).unwrap();
    out
}

fn parse(sql: &str) -> BytesMut {
    let mut out = BytesMut::new();
    frontend::parse("", sql, [], &mut out).unwrap();
    out
}

fn bind_unnamed() -> BytesMut {
    // Portal "", statement "", no parameter formats, no parameters, no result formats.
    BytesMut::from(&b"B\0\0\0\x0c\0\0\0\0\0\0\0\0"[..])
}

fn describe_statement() -> BytesMut {
    let mut out = BytesMut::new();
    frontend::describe(b'S', "", &mut out).unwrap();
    out
}

fn execute_unnamed(max_rows: i32) -> BytesMut {
    let mut out = BytesMut::new();
    frontend::execute("", max_rows, &mut out).unwrap();
    out
}

fn sync() -> BytesMut {
    let mut out = BytesMut::new();
    frontend::sync(&mut out);
    out
}

async fn connect(proxy: &TestProxy) -> RawConnection {
    let mut raw = RawConnection::open(proxy.addr).await;
    raw.send_startup("stale").await;
    raw.until_ready().await;
    raw
}

/// Sends `messages` and collects the replies up to the `readies`-th ReadyForQuery; None when
/// the connection closed first.
async fn exchange(
    raw: &mut RawConnection,
    messages: &[BytesMut],
    readies: usize,
) -> Option<Vec<Reply>> {
    raw.send(&messages.concat()).await;
    let mut replies = Vec::new();
    let mut left = readies;
    while left > 0 {
        let reply = raw.recv().await?;
        if matches!(reply, Reply::ReadyForQuery(_)) {
            left -= 1;
        }
        replies.push(reply);
    }
    Some(replies)
}

fn first_error(replies: &[Reply]) -> Option<(String, String)> {
    replies.iter().find_map(|r| match r {
        Reply::Error(_, code, message) => Some((code.clone(), message.clone())),
        _ => None,
    })
}

fn tags(replies: &[Reply]) -> String {
    replies
        .iter()
        .map(|r| match r {
            Reply::Error(..) => 'E',
            Reply::ReadyForQuery(_) => 'Z',
            Reply::Other(tag) => *tag as char,
        })
        .collect()
}

async fn proxy_for(pg: &PgServer, isolation: Isolation) -> TestProxy {
    pg.create_database("sandbox_stale").await;
    let config = ProxyConfig {
        default_isolation: isolation,
        ..ProxyConfig::default()
    };
    TestProxy::start(
        config,
        MapRouter::with([("stale", pg.tcp_target("sandbox_stale"))]),
    )
    .await
}

/// The fuzzer's sequence, cut down: a savepoint error leaves the failed unnamed portal, a
/// second Query reuses the freed memory, and a Parse/Describe/Execute without a Bind runs it.
async fn execute_after_a_failed_query(isolation: Isolation) {
    let pg = PgServer::start().await;
    let proxy = proxy_for(&pg, isolation).await;
    let mut raw = connect(&proxy).await;
    for sql in [
        "create table items(id serial primary key, name text unique, n int)",
        "BEGIN; SAVEPOINT x; SAVEPOINT y; RELEASE x; ROLLBACK TO y",
        "insert into items(name) values (md5(random()::text)) returning id",
    ] {
        exchange(&mut raw, &[query(sql)], 1).await.unwrap();
    }
    let replies = exchange(
        &mut raw,
        &[
            parse("COMMIT"),
            describe_statement(),
            execute_unnamed(0),
            sync(),
        ],
        1,
    )
    .await;
    let crash = pg.crash_report();
    assert!(crash.is_empty(), "the server crashed:\n{crash}");
    let replies = replies.expect("the connection stays open");
    let (code, message) = first_error(&replies).expect("the Execute fails");
    match isolation {
        // The proxy sends the Execute to a portal that does not exist.
        Isolation::Database => assert_eq!(code, "34000", "{message}"),
        // The sandbox's own transaction control answers the failed block, as PostgreSQL does
        // when it does not crash.
        Isolation::Rollback => assert_eq!(code, "25P02", "{message}"),
    }

    // The session goes on: the block is still failed, and ROLLBACK ends it.
    let replies = exchange(&mut raw, &[query("ROLLBACK"), query("select 1")], 2)
        .await
        .unwrap();
    assert_eq!(first_error(&replies), None, "{replies:?}");
}

#[tokio::test]
async fn executing_a_stale_unnamed_portal_through_a_database_key_does_not_crash_the_server() {
    execute_after_a_failed_query(Isolation::Database).await;
}

#[tokio::test]
async fn executing_a_stale_unnamed_portal_through_a_rollback_key_does_not_crash_the_server() {
    execute_after_a_failed_query(Isolation::Rollback).await;
}

/// Bind and Execute of the unnamed portal in one batch, and its Execute in a later batch of a
/// healthy transaction (legal: the portal lives until the transaction ends), pass untouched.
#[tokio::test]
async fn the_unnamed_portal_drivers_use_passes_through_a_database_key() {
    let pg = PgServer::start().await;
    let proxy = proxy_for(&pg, Isolation::Database).await;
    let mut raw = connect(&proxy).await;
    let rows = || parse("select generate_series(1, 3)");

    let replies = exchange(
        &mut raw,
        &[rows(), bind_unnamed(), execute_unnamed(0), sync()],
        1,
    )
    .await
    .unwrap();
    assert_eq!(tags(&replies), "12DDDCZ");

    exchange(&mut raw, &[query("BEGIN")], 1).await.unwrap();
    let replies = exchange(
        &mut raw,
        &[rows(), bind_unnamed(), execute_unnamed(2), sync()],
        1,
    )
    .await
    .unwrap();
    assert_eq!(tags(&replies), "12DDsZ", "two rows, then PortalSuspended");
    let replies = exchange(&mut raw, &[execute_unnamed(0), sync()], 1)
        .await
        .unwrap();
    assert_eq!(tags(&replies), "DCZ", "the third row, from the same portal");
}
