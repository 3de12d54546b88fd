//! End-to-end tests of the pass-through proxy: tokio-postgres as the client, the proxy, and a
//! real private PostgreSQL 15 behind it. Covers the simple and extended protocols, pipelining,
//! large streamed results, COPY both ways, cancel, and several connections of one key.

mod support;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use std::time::{Duration, Instant};
use support::{sqlstate, MapRouter, PgServer, TestProxy};
use tokio_postgres::NoTls;

#[tokio::test]
async fn simple_and_extended_queries_reach_the_routed_database() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_a").await;
    let proxy = TestProxy::trust(MapRouter::with([("a", pg.tcp_target("sandbox_a"))])).await;

    let mut config = proxy.config("a");
    config.application_name("proxy-test-app");
    // Other startup parameters reach the backend too: `options` and what the driver sets itself.
    config.options("-c work_mem=7MB");
    let client = support::connect_with(&config).await.unwrap();

    let rows = client
        .simple_query(
            "SELECT current_database(), current_setting('application_name'), \
             current_setting('work_mem'), current_setting('client_encoding'), \
             current_setting('DateStyle')",
        )
        .await
        .unwrap();
    let row = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .expect("a row");
    assert_eq!(row.get(0), Some("sandbox_a"));
    assert_eq!(row.get(1), Some("proxy-test-app"));
    assert_eq!(row.get(2), Some("7MB"));
    assert_eq!(row.get(3), Some("UTF8"));
    assert_eq!(row.get(4), Some("ISO, MDY"));

    let sum: i32 = client
        .query_one("SELECT $1::int4 + $2::int4", &[&40i32, &2i32])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 42);

    // A named prepared statement used twice exercises Parse/Bind/Execute reuse.
    let statement = client.prepare("SELECT $1::text || '!'").await.unwrap();
    for word in ["one", "two"] {
        let shouted: String = client.query_one(&statement, &[&word]).await.unwrap().get(0);
        assert_eq!(shouted, format!("{word}!"));
    }

    // Errors pass through and leave the session usable.
    let err = client.simple_query("SELECT 1/0").await.unwrap_err();
    assert_eq!(sqlstate(&err), "22012");
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn unix_socket_and_md5_backends_work() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_u").await;
    let admin = pg.admin().await;
    admin
        .batch_execute(&format!(
            "SET password_encryption = 'md5'; \
             CREATE ROLE {} LOGIN PASSWORD '{}'",
            support::MD5_USER,
            support::MD5_PASSWORD
        ))
        .await
        .unwrap();
    let mut md5_target = pg.tcp_target("sandbox_u");
    md5_target.user = support::MD5_USER.into();
    md5_target.password = Some(support::MD5_PASSWORD.into());
    let router = MapRouter::with([("unix", pg.unix_target("sandbox_u")), ("md5", md5_target)]);
    let proxy = TestProxy::trust(router).await;

    let unix = proxy.connect("unix").await.unwrap();
    let row = unix
        .query_one("SELECT current_database(), current_user", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "sandbox_u");
    assert_eq!(row.get::<_, String>(1), "postgres");

    let md5 = proxy.connect("md5").await.unwrap();
    let user: String = md5
        .query_one("SELECT current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, support::MD5_USER);
}

#[tokio::test]
async fn pipelined_queries_come_back_in_order() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_p").await;
    let proxy = TestProxy::trust(MapRouter::with([("p", pg.tcp_target("sandbox_p"))])).await;
    let client = proxy.connect("p").await.unwrap();
    let statement = client.prepare("SELECT $1::int8 * 2").await.unwrap();

    // tokio-postgres sends every request before the first reply arrives when polled together.
    let queries = (0..200i64).map(|i| {
        let client = &client;
        let statement = &statement;
        async move { client.query_one(statement, &[&i]).await }
    });
    let results = futures_util::future::join_all(queries).await;
    let doubled: Vec<i64> = results.into_iter().map(|r| r.unwrap().get(0)).collect();
    assert_eq!(doubled, (0..200i64).map(|i| i * 2).collect::<Vec<_>>());
}

#[tokio::test]
async fn large_result_sets_stream_through() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_l").await;
    let proxy = TestProxy::trust(MapRouter::with([("l", pg.tcp_target("sandbox_l"))])).await;
    let client = proxy.connect("l").await.unwrap();

    let rows = client
        .query_raw(
            "SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g",
            std::iter::empty::<i32>(),
        )
        .await
        .unwrap();
    futures_util::pin_mut!(rows);
    let (mut count, mut sum, mut text_bytes) = (0u64, 0i64, 0usize);
    while let Some(row) = rows.next().await {
        let row = row.unwrap();
        count += 1;
        sum += i64::from(row.get::<_, i32>(0));
        text_bytes += row.get::<_, &str>(1).len();
    }
    assert_eq!(count, 200_000);
    assert_eq!(sum, 200_000 * 200_001 / 2);
    assert_eq!(text_bytes, 200_000 * 100);
    assert!(proxy.stats.snapshot().bytes_to_clients > 20_000_000);

    // Single messages far larger than the relay buffers pass through in pieces, both ways.
    let big = "y".repeat(20_000_000);
    let row = client
        .query_one("SELECT length($1::text), repeat('z', 30000000)", &[&big])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 20_000_000);
    let echoed: &str = row.get(1);
    assert_eq!(echoed.len(), 30_000_000);
    assert!(echoed.bytes().all(|b| b == b'z'));
}

#[tokio::test]
async fn copy_in_and_copy_out_pass_through() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_c").await;
    let proxy = TestProxy::trust(MapRouter::with([("c", pg.tcp_target("sandbox_c"))])).await;
    let client = proxy.connect("c").await.unwrap();
    client
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        .await
        .unwrap();

    let mut expected = String::new();
    for i in 1..=10_000 {
        expected.push_str(&format!("{i}\titem-{i}\n"));
    }
    let sink = client
        .copy_in("COPY items (id, name) FROM STDIN")
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    // Several CopyData messages of uneven size, as real drivers send.
    for chunk in expected.as_bytes().chunks(7_777) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .unwrap();
    }
    let copied = sink.finish().await.unwrap();
    assert_eq!(copied, 10_000);

    let row = client
        .query_one("SELECT count(*), sum(id) FROM items", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 10_000);
    assert_eq!(
        row.get::<_, rust_decimal_free::Sum>(1).0,
        10_000 * 10_001 / 2
    );

    let stream = client
        .copy_out("COPY (SELECT id, name FROM items ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    let out: Vec<u8> = chunks.concat();
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

/// `sum(int)` is bigint; this reads it without pulling in a decimal crate.
mod rust_decimal_free {
    pub struct Sum(pub i64);
    impl<'a> tokio_postgres::types::FromSql<'a> for Sum {
        fn from_sql(
            ty: &tokio_postgres::types::Type,
            raw: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            Ok(Sum(i64::from_sql(ty, raw)?))
        }
        fn accepts(ty: &tokio_postgres::types::Type) -> bool {
            *ty == tokio_postgres::types::Type::INT8
        }
    }
}

#[tokio::test]
async fn cancel_request_reaches_the_right_backend() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_x").await;
    let proxy = TestProxy::trust(MapRouter::with([("x", pg.tcp_target("sandbox_x"))])).await;
    let client = proxy.connect("x").await.unwrap();
    // A second, idle session of the same key must not be the one cancelled.
    let bystander = proxy.connect("x").await.unwrap();

    let token = client.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let result = client.simple_query("SELECT pg_sleep(30)").await;
        (client, result)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(NoTls).await.unwrap();
    let (client, result) = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("cancel did not take effect")
        .unwrap();
    assert_eq!(sqlstate(&result.unwrap_err()), "57014");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The proxy counts a forward once the backend closed the cancel connection, which can be a
    // moment after the cancelled query's error reached the client.
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.stats.snapshot().cancels_forwarded == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = proxy.stats.snapshot();
    assert_eq!(stats.cancel_requests, 1);
    assert_eq!(stats.cancels_forwarded, 1);

    // Both sessions stay usable.
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    let two: i32 = bystander.query_one("SELECT 2", &[]).await.unwrap().get(0);
    assert_eq!((one, two), (1, 2));

    // A made-up key is dropped silently: the proxy just closes that connection.
    let mut raw = support::RawConnection::open(proxy.addr).await;
    let mut packet = bytes::BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(12345, 678, &mut packet);
    raw.send(&packet).await;
    // The proxy closes the socket only after it decided, so the counters are final here.
    assert_eq!(raw.recv().await, None);
    let stats = proxy.stats.snapshot();
    assert_eq!(stats.cancel_requests, 2);
    assert_eq!(stats.cancels_forwarded, 1);
}

#[tokio::test]
async fn connections_of_one_key_share_the_database_and_end_cleanly() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_s").await;
    let router = MapRouter::with([("shared-key", pg.tcp_target("sandbox_s"))]);
    let proxy = TestProxy::trust(router.clone()).await;
    let first = proxy.connect("shared-key").await.unwrap();
    let second = proxy.connect("shared-key").await.unwrap();

    first
        .batch_execute("CREATE TABLE seen (v text); INSERT INTO seen VALUES ('from first')")
        .await
        .unwrap();
    let row = second
        .query_one("SELECT current_database(), (SELECT v FROM seen)", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "sandbox_s");
    assert_eq!(row.get::<_, String>(1), "from first");
    let pids: Vec<i32> = futures_util::future::try_join_all(
        [&first, &second].map(|c| async move { c.query_one("SELECT pg_backend_pid()", &[]).await }),
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert_ne!(
        pids[0], pids[1],
        "each client connection has its own backend"
    );

    assert_eq!(proxy.stats.snapshot().connections_open, 2);
    drop(first);
    drop(second);

    // Terminate from the client closes the backend connections, and the router hears of it.
    let admin = pg.admin().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let backends: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'sandbox_s'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if backends == 0 && router.disconnect_count("shared-key") == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{backends} backends still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = proxy.stats.snapshot();
    assert_eq!(stats.connections_open, 0);
    assert_eq!(stats.sessions_established, 2);
    assert_eq!(stats.refused, 0);
    assert!(
        !pg.log().contains("unexpected EOF"),
        "backends saw a dirty close:\n{}",
        pg.log()
    );
}
