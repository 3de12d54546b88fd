//! A client that executes the unnamed portal after a simple Query failed in a transaction block
//! crashed PostgreSQL 15 through a `database` key (the protocol fuzzer's seed 484277155): the
//! server's failed portal points at freed memory. These tests send that sequence byte by byte,
//! as the fuzzer did, and check that the server survives, the client gets an error, and what
//! drivers do with the unnamed portal still passes through untouched.

mod support;

use dbsandbox_proxy::{Isolation, ProxyConfig};
use std::net::SocketAddr;
use std::time::Duration;
use support::{MapRouter, PgServer, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(0);
    out
}

fn query(sql: &str) -> Vec<u8> {
    frame(b'Q', &cstr(sql))
}

fn parse(sql: &str) -> Vec<u8> {
    let mut body = cstr("");
    body.extend(cstr(sql));
    body.extend_from_slice(&0u16.to_be_bytes());
    frame(b'P', &body)
}

fn bind_unnamed() -> Vec<u8> {
    let mut body = cstr("");
    body.extend(cstr(""));
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    frame(b'B', &body)
}

fn describe_statement() -> Vec<u8> {
    frame(b'D', b"S\0")
}

fn execute_unnamed() -> Vec<u8> {
    frame(b'E', b"\0\0\0\0\0")
}

fn sync() -> Vec<u8> {
    frame(b'S', b"")
}

/// What the server answered, a message per entry: its tag, and for an ErrorResponse its
/// SQLSTATE and message.
#[derive(Debug)]
struct Reply {
    tag: char,
    error: Option<(String, String)>,
}

struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(addr: SocketAddr, key: &str) -> RawClient {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let mut params = Vec::new();
        for (name, value) in [("user", "tester"), ("database", key)] {
            params.extend(cstr(name));
            params.extend(cstr(value));
        }
        params.push(0);
        let mut startup = ((params.len() + 8) as u32).to_be_bytes().to_vec();
        startup.extend_from_slice(&196608u32.to_be_bytes());
        startup.extend(params);
        client.stream.write_all(&startup).await.unwrap();
        let replies = client.until_ready(1).await.expect("startup answered");
        assert!(
            replies.iter().all(|r| r.error.is_none()),
            "startup: {replies:?}"
        );
        client
    }

    /// Sends `messages` and reads replies up to the `readies`-th ReadyForQuery; None when the
    /// connection closed first.
    async fn send(&mut self, messages: &[Vec<u8>], readies: usize) -> Option<Vec<Reply>> {
        self.stream.write_all(&messages.concat()).await.ok()?;
        self.until_ready(readies).await
    }

    async fn until_ready(&mut self, mut readies: usize) -> Option<Vec<Reply>> {
        let mut replies = Vec::new();
        loop {
            while self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() < len + 1 {
                    break;
                }
                let message: Vec<u8> = self.buf.drain(..len + 1).collect();
                let tag = message[0] as char;
                let error = (tag == 'E').then(|| error_fields(&message[5..]));
                replies.push(Reply { tag, error });
                if tag == 'Z' {
                    readies -= 1;
                    if readies == 0 {
                        return Some(replies);
                    }
                }
            }
            let mut chunk = [0u8; 8192];
            let read = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk))
                .await
                .expect("an answer within 10 s");
            match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut message) = (String::new(), String::new());
    for field in body.split(|&b| b == 0) {
        match field.first() {
            Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into_owned(),
            Some(b'M') => message = String::from_utf8_lossy(&field[1..]).into_owned(),
            _ => {}
        }
    }
    (code, message)
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
    let mut client = RawClient::connect(proxy.addr, "stale").await;
    client
        .send(
            &[query(
                "create table items(id serial primary key, name text unique, n int)",
            )],
            1,
        )
        .await
        .unwrap();
    client
        .send(
            &[query(
                "BEGIN; SAVEPOINT x; SAVEPOINT y; RELEASE x; ROLLBACK TO y",
            )],
            1,
        )
        .await
        .unwrap();
    client
        .send(
            &[query(
                "insert into items(name) values (md5(random()::text)) returning id",
            )],
            1,
        )
        .await
        .unwrap();
    let replies = client
        .send(
            &[
                parse("COMMIT"),
                describe_statement(),
                execute_unnamed(),
                sync(),
            ],
            1,
        )
        .await;
    let crash = pg.crash_report();
    assert!(crash.is_empty(), "the server crashed:\n{crash}");
    let replies = replies.expect("the connection stays open");
    let error = replies.iter().find_map(|r| r.error.clone());
    let (code, message) = error.expect("the Execute fails");
    match isolation {
        // The proxy sends the Execute to a portal that does not exist.
        Isolation::Database => assert_eq!(code, "34000", "{message}"),
        // The sandbox's own transaction control answers the failed block, as PostgreSQL does
        // when it does not crash.
        Isolation::Rollback => assert_eq!(code, "25P02", "{message}"),
    }

    // The session goes on: the block is still failed, and ROLLBACK ends it.
    let replies = client
        .send(&[query("ROLLBACK"), query("select 1")], 2)
        .await
        .unwrap();
    assert!(replies.iter().all(|r| r.error.is_none()), "{replies:?}");
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
    let mut client = RawClient::connect(proxy.addr, "stale").await;
    let tags = |replies: &[Reply]| replies.iter().map(|r| r.tag).collect::<String>();

    let replies = client
        .send(
            &[
                parse("select generate_series(1, 3)"),
                bind_unnamed(),
                execute_unnamed(),
                sync(),
            ],
            1,
        )
        .await
        .unwrap();
    assert_eq!(tags(&replies), "12DDDCZ");

    client.send(&[query("BEGIN")], 1).await.unwrap();
    let limited = frame(b'E', b"\0\0\0\0\x02");
    let replies = client
        .send(
            &[
                parse("select generate_series(1, 3)"),
                bind_unnamed(),
                limited,
                sync(),
            ],
            1,
        )
        .await
        .unwrap();
    assert_eq!(tags(&replies), "12DDsZ", "two rows, then PortalSuspended");
    let replies = client.send(&[execute_unnamed(), sync()], 1).await.unwrap();
    assert_eq!(tags(&replies), "DCZ", "the third row, from the same portal");
}
