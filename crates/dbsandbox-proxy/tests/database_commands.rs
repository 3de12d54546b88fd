//! A client's CREATE DATABASE and DROP DATABASE through the proxy are refused in both
//! isolations with 0A000 and the remedy (each database name is a sandbox key), never run on the
//! server: no unmanaged database appears, none is dropped. Simple and extended protocol, inside
//! and outside a transaction, with tokio-postgres and psycopg 3; look-alikes pass.

mod support;

use dbsandbox_proxy::{Isolation, ProxyConfig};
use support::{sqlstate, MapRouter, PgServer, TestProxy};

async fn proxy(pg: &PgServer, isolation: Isolation) -> TestProxy {
    pg.create_database("dbc_k").await;
    pg.create_database("victim").await;
    let config = ProxyConfig {
        default_isolation: isolation,
        ..ProxyConfig::default()
    };
    // The backend user is the server's superuser: before the fix CREATE DATABASE made a real,
    // unmanaged database in database isolation.
    TestProxy::start(config, MapRouter::with([("k1", pg.tcp_target("dbc_k"))])).await
}

async fn databases(pg: &PgServer) -> Vec<String> {
    pg.admin()
        .await
        .query("SELECT datname FROM pg_database ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn assert_refused(err: &tokio_postgres::Error, command: &str) {
    assert_eq!(sqlstate(err), "0A000", "{err:?}");
    let message = err.as_db_error().unwrap().message();
    assert!(message.starts_with(command), "{message}");
    assert!(message.contains("connect with dbname=x"), "{message}");
    assert!(message.contains("this connection's is k1"), "{message}");
}

async fn check_tokio_postgres(isolation: Isolation) {
    let pg = PgServer::start().await;
    let before = databases(&pg).await;
    let proxy = proxy(&pg, isolation).await;
    let client = proxy.connect("k1").await.unwrap();
    for sql in [
        "CREATE DATABASE test_x",
        "create database test_x template victim",
        "/* django */ CREATE DATABASE \"test_x_1\" WITH TEMPLATE \"test_x\"",
    ] {
        let err = client.simple_query(sql).await.expect_err(sql);
        assert_refused(&err, "CREATE DATABASE");
        // The extended protocol (Parse/Bind/Execute).
        let err = client.execute(sql, &[]).await.expect_err(sql);
        assert_refused(&err, "CREATE DATABASE");
    }
    for sql in [
        "DROP DATABASE victim",
        "drop database if exists victim with (force)",
    ] {
        let err = client.simple_query(sql).await.expect_err(sql);
        assert_refused(&err, "DROP DATABASE");
        let err = client.execute(sql, &[]).await.expect_err(sql);
        assert_refused(&err, "DROP DATABASE");
    }
    // Inside a transaction: refused, and the transaction goes on as after any error.
    client.batch_execute("BEGIN").await.unwrap();
    let err = client
        .simple_query("CREATE DATABASE test_y")
        .await
        .unwrap_err();
    assert_refused(&err, "CREATE DATABASE");
    let err = client.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();
    // Look-alikes pass untouched.
    let text: String = client
        .query_one("SELECT 'create database x' AS database", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(text, "create database x");
    client
        .batch_execute("CREATE TABLE database (id int); DROP TABLE database")
        .await
        .unwrap();
    let mut after = databases(&pg).await;
    after.retain(|name| name != "dbc_k" && name != "victim");
    assert_eq!(after, before, "no database made or dropped on the server");
    assert!(databases(&pg).await.contains(&"victim".to_string()));
}

#[tokio::test]
async fn tokio_postgres_create_and_drop_database_are_refused_in_database_isolation() {
    check_tokio_postgres(Isolation::Database).await;
}

#[tokio::test]
async fn tokio_postgres_create_and_drop_database_are_refused_in_rollback_isolation() {
    check_tokio_postgres(Isolation::Rollback).await;
}

const PSYCOPG_CHECKS: &str = r#"
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for sql in ['CREATE DATABASE "test_py"', "DROP DATABASE victim"]:
        try:
            conn.execute(sql)
        except psycopg.errors.FeatureNotSupported as e:
            assert "connect with dbname=x" in str(e), str(e)
        else:
            raise AssertionError(sql + " ran")
    assert conn.execute("SELECT 1").fetchone() == (1,)
print("psycopg ok")
"#;

async fn check_psycopg(isolation: Isolation) {
    let pg = PgServer::start().await;
    let proxy = proxy(&pg, isolation).await;
    let url = format!(
        "host=127.0.0.1 port={} user=tester dbname=k1",
        proxy.addr.port()
    );
    let out = tokio::process::Command::new("python3")
        .args(["-c", PSYCOPG_CHECKS, &url])
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("psycopg ok"),
        "{text}"
    );
    let all = databases(&pg).await;
    assert!(!all.contains(&"test_py".to_string()), "{all:?}");
    assert!(all.contains(&"victim".to_string()), "{all:?}");
}

#[tokio::test]
async fn psycopg_create_and_drop_database_are_refused_in_database_isolation() {
    check_psycopg(Isolation::Database).await;
}

#[tokio::test]
async fn psycopg_create_and_drop_database_are_refused_in_rollback_isolation() {
    check_psycopg(Isolation::Rollback).await;
}
