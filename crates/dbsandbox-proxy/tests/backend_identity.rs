//! The pass-through proxy shows the client its real backend: BackendKeyData carries the backend's
//! own process id (drivers compare it with `pg_backend_pid()`, notification pids and
//! `pg_stat_activity`, and pass it to `pg_terminate_backend`), and the server's own words reach
//! the client when that backend is terminated (FATAL 57P01, then the end of the connection).
//! Found by psycopg's own suite through a `database` key (`test_broken`, `test_notify`,
//! `test_right_exception_on_server_disconnect`).

mod support;

use bytes::{Buf, BytesMut};
use postgres_protocol::message::frontend;
use std::time::Duration;
use support::{MapRouter, PgServer, RawConnection, TestProxy};
use tokio::io::AsyncReadExt;

/// One whole backend message: its tag and body.
async fn next_message(raw: &mut RawConnection, buf: &mut BytesMut) -> Option<(u8, BytesMut)> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if buf.len() >= 5 {
                let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                if buf.len() > len {
                    let tag = buf[0];
                    buf.advance(5);
                    return Some((tag, buf.split_to(len - 4)));
                }
            }
            if raw.stream.read_buf(buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    })
    .await
    .expect("timed out waiting for the proxy")
}

/// The fields of an ErrorResponse body, by field type.
fn error_fields(mut body: BytesMut) -> Vec<(u8, String)> {
    let mut fields = Vec::new();
    while body.first().is_some_and(|&t| t != 0) {
        let kind = body.get_u8();
        let end = body.iter().position(|&b| b == 0).unwrap();
        fields.push((kind, String::from_utf8_lossy(&body[..end]).into_owned()));
        body.advance(end + 1);
    }
    fields
}

/// Sends a simple query and returns the first column of its first row.
async fn query_value(raw: &mut RawConnection, buf: &mut BytesMut, sql: &str) -> String {
    let mut msg = BytesMut::new();
    frontend::query(sql, &mut msg).unwrap();
    raw.send(&msg).await;
    let mut value = None;
    loop {
        match next_message(raw, buf).await.expect("connection closed") {
            (b'D', mut body) => {
                body.advance(2);
                let len = body.get_i32() as usize;
                value = Some(String::from_utf8_lossy(&body[..len]).into_owned());
            }
            (b'E', body) => panic!("{sql}: {:?}", error_fields(body)),
            (b'Z', _) => return value.expect("a row"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn clients_see_the_backend_pid_and_its_termination() {
    let pg = PgServer::start().await;
    pg.create_database("sandbox_id").await;
    let proxy = TestProxy::trust(MapRouter::with([("id", pg.tcp_target("sandbox_id"))])).await;

    let mut raw = RawConnection::open(proxy.addr).await;
    let mut buf = BytesMut::new();
    raw.send_startup("id").await;
    let mut key_pid = None;
    loop {
        match next_message(&mut raw, &mut buf).await.expect("startup") {
            (b'K', mut body) => key_pid = Some(body.get_i32()),
            (b'E', body) => panic!("startup failed: {:?}", error_fields(body)),
            (b'Z', _) => break,
            _ => {}
        }
    }
    let key_pid = key_pid.expect("BackendKeyData");
    let backend_pid = query_value(&mut raw, &mut buf, "SELECT pg_backend_pid()").await;
    assert_eq!(backend_pid, key_pid.to_string());

    // pg_terminate_backend of the pid the client was given ends exactly that session, and the
    // client hears it from the server: FATAL 57P01, then the end of the stream.
    let mut msg = BytesMut::new();
    frontend::query(&format!("SELECT pg_terminate_backend({key_pid})"), &mut msg).unwrap();
    raw.send(&msg).await;
    let mut fatal = None;
    while let Some((tag, body)) = next_message(&mut raw, &mut buf).await {
        if tag == b'E' {
            fatal = Some(error_fields(body));
        }
    }
    let fatal = fatal.expect("an ErrorResponse before the end of the connection");
    assert!(fatal.contains(&(b'C', "57P01".to_string())), "{fatal:?}");
    assert!(fatal.contains(&(b'V', "FATAL".to_string())), "{fatal:?}");

    // The cancel key still works with the real pid: a second session's long query is cancelled.
    let client = proxy.connect("id").await.unwrap();
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("cancel did not take effect")
        .unwrap();
    assert_eq!(support::sqlstate(&result.unwrap_err()), "57014");
}
