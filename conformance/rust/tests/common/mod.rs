//! Helpers shared by the tokio-postgres and sqlx conformance tests.
//!
//! Run under `dbsandbox run`, which exports DBSANDBOX_HOST and DBSANDBOX_PORT. The database
//! name is the sandbox key; every test uses its own key and resets its sandbox in-band
//! (`SELECT dbsandbox_reset()`) before and after it runs.
#![allow(dead_code)]

use sqlx::postgres::PgConnectOptions;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};

pub const RESET: &str = "SELECT dbsandbox_reset()";

fn host_port() -> (String, u16) {
    let host = std::env::var("DBSANDBOX_HOST");
    let port = std::env::var("DBSANDBOX_PORT");
    match (host, port) {
        (Ok(h), Ok(p)) => (h, p.parse().expect("DBSANDBOX_PORT is a number")),
        _ => panic!(
            "DBSANDBOX_HOST/DBSANDBOX_PORT are not set: run this suite through \
             `dbsandbox run --migrations conformance/migrations -- cargo test` (see conformance/run.sh)"
        ),
    }
}

/// A sandbox key ([A-Za-z0-9_-]{1,48}) for a test: prefix + name, unique per test.
pub fn key_for(prefix: &str, name: &str) -> String {
    let key = format!("{prefix}_{name}");
    assert!(key.len() <= 48 && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "bad key {key}");
    key
}

pub fn conninfo(key: &str) -> String {
    let (host, port) = host_port();
    format!("host={host} port={port} user=dbsandbox dbname={key} connect_timeout=10")
}

pub fn sqlx_options(key: &str) -> PgConnectOptions {
    let (host, port) = host_port();
    PgConnectOptions::new().host(&host).port(port).username("dbsandbox").database(key)
}

/// A tokio-postgres client whose connection task forwards NOTIFY messages to `notes`.
pub struct Conn {
    pub client: Client,
    pub notes: mpsc::UnboundedReceiver<Notification>,
    /// The connection task: ends once the connection is closed (after the client is dropped,
    /// tokio-postgres sends Terminate and closes the socket).
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn connect(key: &str) -> Conn {
    let (client, mut connection) = tokio_postgres::connect(&conninfo(key), NoTls).await.expect("connect through the proxy");
    let (tx, notes) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    let _ = tx.send(n);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
    });
    Conn { client, notes, task }
}

/// The in-band reset, tolerant of one thing only: a proxy without the rollback engine passes
/// the statement to PostgreSQL, which answers 42883 (no such function). Then each key is a
/// fresh database anyway; the tests that need a real reset call `reset_strict`.
pub async fn reset_lenient(key: &str) {
    let c = connect(key).await;
    if let Err(e) = c.client.simple_query(RESET).await {
        assert_eq!(e.code().map(|c| c.code()), Some("42883"), "reset failed: {e}");
    }
}

/// The reset over the simple protocol; must answer one row `dbsandbox_reset` = 'ok'.
pub async fn reset_strict(client: &Client) {
    let msgs = client.simple_query(RESET).await.expect("SELECT dbsandbox_reset()");
    let rows: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].columns()[0].name(), "dbsandbox_reset");
    assert_eq!(rows[0].get(0), Some("ok"));
}

/// One test's sandbox: `let sb = Sandbox::start("rs_name").await;` at the top of a test,
/// `sb.finish().await` at its end.
pub struct Sandbox {
    pub key: String,
}

impl Sandbox {
    pub async fn start(key: String) -> Sandbox {
        reset_lenient(&key).await;
        Sandbox { key }
    }
    pub async fn connect(&self) -> Conn {
        connect(&self.key).await
    }
    pub async fn client(&self) -> Client {
        connect(&self.key).await.client
    }
    pub async fn finish(self) {
        reset_lenient(&self.key).await;
    }
}

pub async fn names(client: &Client) -> Vec<String> {
    client.query("select name from items order by id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

pub async fn count(client: &Client, table: &str) -> i64 {
    client.query_one(&format!("select count(*) from {table}"), &[]).await.unwrap().get(0)
}

pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.code().map(|c| c.code())
}
