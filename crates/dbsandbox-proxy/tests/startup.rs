//! End-to-end tests of what happens before and around a session: refusing bad keys and malformed
//! bytes (while serving everyone else), SSL/GSS negotiation answered 'N', password
//! authentication to the proxy, backend startup errors relayed verbatim, and shutdown.

mod support;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use support::{sqlstate, MapRouter, PgServer, RawConnection, Reply, TestProxy};
use tokio::io::AsyncReadExt;
use tokio_postgres::NoTls;

async fn assert_serves_normally(proxy: &TestProxy, key: &str) {
    let client = proxy.connect(key).await.expect("a normal client connects");
    let answer: i32 = client.query_one("SELECT 41 + 1", &[]).await.unwrap().get(0);
    assert_eq!(answer, 42);
}

#[tokio::test]
async fn bad_keys_are_refused_with_3d000_and_the_rule() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_k").await;
    let proxy = TestProxy::trust(MapRouter::with([(
        "good_key-1",
        pg.tcp_target("sandbox_k"),
    )]))
    .await;

    let too_long = "k".repeat(49);
    for key in [
        "has space",
        "dot.ted",
        "slash/ed",
        "quo\"te",
        "ключ",
        too_long.as_str(),
    ] {
        let err = proxy.connect(key).await.expect_err(key);
        let db = err.as_db_error().unwrap_or_else(|| panic!("{key}: {err}"));
        assert_eq!(db.code().code(), "3D000", "{key}");
        assert_eq!(db.severity(), "FATAL");
        assert!(
            db.message().starts_with("invalid sandbox key")
                && db
                    .message()
                    .ends_with("must be 1 to 48 characters from A-Z, a-z, 0-9, '_' and '-'"),
            "{key}: {}",
            db.message()
        );
    }
    // A well-formed key the router does not know gets the router's own error.
    let err = proxy.connect("unknown").await.unwrap_err();
    assert_eq!(sqlstate(&err), "3D000");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "no sandbox for key unknown"
    );

    assert_serves_normally(&proxy, "good_key-1").await;
    let stats = proxy.stats.snapshot();
    assert_eq!(stats.refused, 7);
    assert_eq!(stats.sessions_established, 1);
}

#[tokio::test]
async fn malformed_bytes_get_08p01_and_others_are_still_served() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_m").await;
    let proxy = TestProxy::trust(MapRouter::with([("m", pg.tcp_target("sandbox_m"))])).await;

    // Not PostgreSQL at all: closed without a word, as PostgreSQL does (it only logs "invalid
    // length of startup packet"); so is a Terminate sent before the startup packet, which
    // node-postgres does when end() follows connect() at once (its quick-disconnect test).
    for bytes in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        &[b'X', 0, 0, 0, 4][..],
    ] {
        let mut raw = RawConnection::open(proxy.addr).await;
        raw.send(bytes).await;
        assert_eq!(raw.recv().await, None, "closed silently after {bytes:?}");
    }

    // A plausible length but an unknown request code.
    let mut raw = RawConnection::open(proxy.addr).await;
    raw.send(&[0, 0, 0, 12, 0x12, 0x34, 0x56, 0x78, 1, 2, 3, 4])
        .await;
    let (code, message) = raw.expect_fatal().await;
    assert_eq!(code, "08P01");
    assert_eq!(
        message,
        "invalid startup packet: unknown request code 305419896"
    );

    // A StartupMessage without the final terminator.
    let mut raw = RawConnection::open(proxy.addr).await;
    let mut packet = vec![0, 0, 0, 0, 0, 3, 0, 0];
    packet.extend_from_slice(b"user\0tester\0database\0m\0");
    let len = (packet.len() as i32).to_be_bytes();
    packet[..4].copy_from_slice(&len);
    raw.send(&packet).await;
    let (code, message) = raw.expect_fatal().await;
    assert_eq!(code, "08P01");
    assert!(
        message.starts_with("invalid startup packet layout"),
        "{message}"
    );

    // After a good startup: a message whose length is 3.
    let mut raw = RawConnection::open(proxy.addr).await;
    raw.send_startup("m").await;
    raw.until_ready().await;
    raw.send(&[b'Q', 0, 0, 0, 3]).await;
    let (code, message) = raw.expect_fatal().await;
    assert_eq!(code, "08P01");
    assert_eq!(
        message,
        "invalid message length 3 for message type 'Q': a length must be at least 4"
    );

    // After a good startup: a length above the 64 MiB default limit (nothing else is sent).
    let mut raw = RawConnection::open(proxy.addr).await;
    raw.send_startup("m").await;
    raw.until_ready().await;
    raw.send(&[b'Q', 0x10, 0, 0, 0]).await;
    let (code, message) = raw.expect_fatal().await;
    assert_eq!(code, "08P01");
    assert_eq!(
        message,
        "message of type 'Q' is 268435456 bytes long, more than the proxy's limit of 67108864 bytes"
    );

    // A negative length right behind a valid query in the same write.
    let mut raw = RawConnection::open(proxy.addr).await;
    raw.send_startup("m").await;
    raw.until_ready().await;
    let mut batch = BytesMut::new();
    frontend::query("SELECT 1", &mut batch).unwrap();
    batch.extend_from_slice(&[b'Q', 0xff, 0xff, 0xff, 0xf0]);
    raw.send(&batch).await;
    let (code, message) = raw.expect_fatal().await;
    assert_eq!(code, "08P01");
    assert_eq!(
        message,
        "invalid message length -16 for message type 'Q': a length must be at least 4"
    );

    assert_serves_normally(&proxy, "m").await;
    support::wait_until_no_open_connections(&proxy).await;
    let stats = proxy.stats.snapshot();
    assert_eq!(stats.protocol_errors, 7);
    assert_eq!(stats.connections_open, 0);
}

#[tokio::test]
async fn ssl_and_gss_requests_are_declined_then_startup_proceeds() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_t").await;
    let proxy = TestProxy::trust(MapRouter::with([("t", pg.tcp_target("sandbox_t"))])).await;

    // What libpq does with gssencmode=prefer and sslmode=prefer: GSSENCRequest, then
    // SSLRequest, then the StartupMessage, all on one socket.
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    for code in [80_877_104i32, 80_877_103] {
        let mut packet = 8i32.to_be_bytes().to_vec();
        packet.extend_from_slice(&code.to_be_bytes());
        tokio::io::AsyncWriteExt::write_all(&mut stream, &packet)
            .await
            .unwrap();
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"N");
    }
    let mut config = proxy.config("t");
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, connection) = config.connect_raw(stream, NoTls).await.unwrap();
    tokio::spawn(connection);
    let db: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, "sandbox_t");

    // And a driver configured with sslmode=prefer but no TLS support connects as usual.
    let mut config = proxy.config("t");
    config.ssl_mode(tokio_postgres::config::SslMode::Prefer);
    let client = support::connect_with(&config).await.unwrap();
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn password_authentication_to_the_proxy() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_w").await;
    let router = MapRouter::with([("w", pg.tcp_target("sandbox_w"))]);
    let proxy = TestProxy::start(support::password_auth("proxy-pass"), router.clone()).await;

    let client = support::connect_with(&support::password_config(&proxy, "w", "proxy-pass"))
        .await
        .unwrap();
    let db: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(db, "sandbox_w");

    let err = support::connect_with(&support::password_config(&proxy, "w", "wrong"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "28P01");
    assert_eq!(
        err.as_db_error().unwrap().message(),
        "password authentication failed for user \"tester\""
    );

    // Authentication comes before routing: a bad key with a bad password learns nothing about
    // the key, and the router is never asked.
    let err = support::connect_with(&support::password_config(&proxy, "bad key", "wrong"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "28P01");
    assert_eq!(router.disconnect_count("w"), 0);
}

#[tokio::test]
async fn backend_startup_errors_are_relayed_verbatim() {
    let pg = PgServer::start().await;
    let mut wrong_password = pg.tcp_target("postgres");
    wrong_password.password = Some("not-the-password".into());
    let router = MapRouter::with([
        ("missing", pg.tcp_target("no_such_db")),
        ("badpw", wrong_password),
    ]);
    let proxy = TestProxy::trust(router.clone()).await;

    let err = proxy.connect("missing").await.unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "3D000");
    assert_eq!(db.message(), "database \"no_such_db\" does not exist");

    let err = proxy.connect("badpw").await.unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "28P01");
    assert_eq!(
        db.message(),
        "password authentication failed for user \"postgres\""
    );

    // Routing succeeded for both, so the router hears both connections end.
    assert_eq!(router.disconnect_count("missing"), 1);
    assert_eq!(router.disconnect_count("badpw"), 1);
}

#[tokio::test]
async fn protocol_3_2_clients_are_negotiated_down_to_3_0() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_n").await;
    let proxy = TestProxy::trust(MapRouter::with([("n", pg.tcp_target("sandbox_n"))])).await;

    let mut body = Vec::new();
    body.extend_from_slice(&0x0003_0002i32.to_be_bytes());
    body.extend_from_slice(b"user\0tester\0database\0n\0_pq_.future_option\0on\0\0");
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    let mut raw = RawConnection::open(proxy.addr).await;
    raw.send(&packet).await;
    let startup_tags = raw.until_ready().await;
    // NegotiateProtocolVersion first, then AuthenticationOk, ParameterStatus..., BackendKeyData,
    // ReadyForQuery.
    assert_eq!(&startup_tags[..2], b"vR");
    assert_eq!(&startup_tags[startup_tags.len() - 2..], b"KZ");
    assert!(startup_tags[2..startup_tags.len() - 2]
        .iter()
        .all(|&t| t == b'S'));
    let mut query = BytesMut::new();
    frontend::query("SELECT 1", &mut query).unwrap();
    raw.send(&query).await;
    let mut replies = Vec::new();
    loop {
        let reply = raw.recv().await.expect("reply");
        let done = matches!(reply, Reply::ReadyForQuery(_));
        replies.push(reply);
        if done {
            break;
        }
    }
    assert_eq!(
        replies,
        [
            Reply::Other(b'T'),
            Reply::Other(b'D'),
            Reply::Other(b'C'),
            Reply::ReadyForQuery(b'I')
        ]
    );
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_clients_with_57p01() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_d").await;
    let proxy = TestProxy::trust(MapRouter::with([("d", pg.tcp_target("sandbox_d"))])).await;
    let addr = proxy.addr;
    let mut raw = RawConnection::open(addr).await;
    raw.send_startup("d").await;
    raw.until_ready().await;

    proxy.shutdown().await;
    let (code, message) = raw.expect_fatal().await;
    assert_eq!(code, "57P01");
    assert_eq!(
        message,
        "terminating connection because the dbsandbox proxy is shutting down"
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn replication_connections_and_missing_users_are_refused() {
    let proxy = TestProxy::trust(MapRouter::with([])).await;
    for (params, code, message) in [
        (
            &b"user\0tester\0database\0k\0replication\0database\0\0"[..],
            "0A000",
            "replication connections are not supported by the dbsandbox proxy",
        ),
        (
            b"database\0k\0\0",
            "28000",
            "no PostgreSQL user name specified in startup packet",
        ),
    ] {
        let mut packet = ((params.len() + 8) as i32).to_be_bytes().to_vec();
        packet.extend_from_slice(&0x0003_0000i32.to_be_bytes());
        packet.extend_from_slice(params);
        let mut raw = RawConnection::open(proxy.addr).await;
        raw.send(&packet).await;
        assert_eq!(raw.expect_fatal().await, (code.into(), message.into()));
    }
}
