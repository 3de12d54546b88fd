//! The `pg_notify()` templates carry for rollback sandboxes, against a real embedded PostgreSQL:
//! in a clone it is PostgreSQL's own for every session but a rollback sandbox's, which gets the
//! notice the proxy turns into a notification; an admin role that is not a superuser builds
//! templates with PostgreSQL's function untouched.

use dbsandbox_pool::{ensure_template, SchemaSource, NOTIFY_SQLSTATE, ROLLBACK_SANDBOX_SETTING};
use dbsandbox_server::{Endpoint, Server, ServerConfig};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

fn project(dir: &std::path::Path) -> SchemaSource {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("0001_t.sql"), "create table t(id int);").unwrap();
    SchemaSource {
        project_root: dir.to_path_buf(),
        migrations: Some(migrations),
        ..Default::default()
    }
}

/// A clone of `template` made by the superuser, and the language of its `pg_notify`.
async fn clone_of(admin: &Endpoint, template: &str, name: &str) -> String {
    admin
        .admin()
        .await
        .unwrap()
        .batch_execute(&format!("create database {name} template {template}"))
        .await
        .unwrap();
    admin
        .connect(name)
        .await
        .unwrap()
        .query_one(
            "select l.lanname::text from pg_proc p join pg_language l on l.oid = p.prolang \
             where p.oid = 'pg_catalog.pg_notify(text, text)'::regprocedure",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

enum Heard {
    Notification(String, String),
    Notice(String, Option<String>, Option<String>),
}

#[tokio::test]
async fn templates_carry_a_pg_notify_rollback_sandboxes_can_deliver() {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        private: true,
        ..Default::default()
    })
    .await
    .expect("embedded server starts");
    let endpoint = server.endpoint().clone();
    let dir = tempfile::tempdir().unwrap();
    let template = ensure_template(&endpoint, &project(dir.path()), &|_| {})
        .await
        .unwrap();
    assert_eq!(clone_of(&endpoint, &template.name, "c1").await, "sql");

    let (client, mut connection) = endpoint
        .config("c1")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut heard) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            let _ = tx.send(match message {
                AsyncMessage::Notification(n) => {
                    Heard::Notification(n.channel().into(), n.payload().into())
                }
                AsyncMessage::Notice(e) => Heard::Notice(
                    e.code().code().into(),
                    e.detail().map(Into::into),
                    e.hint().map(Into::into),
                ),
                _ => continue,
            });
        }
    });
    client
        .batch_execute("LISTEN c; SELECT pg_notify('c', 'real')")
        .await
        .unwrap();
    assert!(
        matches!(heard.recv().await, Some(Heard::Notification(c, p)) if c == "c" && p == "real"),
        "outside a rollback sandbox it is PostgreSQL's own"
    );
    let error = client
        .batch_execute("SELECT pg_notify('', 'x')")
        .await
        .unwrap_err();
    let error = error.as_db_error().unwrap();
    assert_eq!(
        (error.code().code(), error.message(), error.where_()),
        ("22023", "channel name cannot be empty", None),
        "PostgreSQL's own error, without a CONTEXT of ours (the call is inlined)"
    );

    client
        .batch_execute(&format!(
            "SET {ROLLBACK_SANDBOX_SETTING} = on; SET client_min_messages = error; \
             SELECT pg_notify('c', 'it''s ü'); NOTIFY c, 'sentinel'"
        ))
        .await
        .unwrap();
    match heard.recv().await {
        Some(Heard::Notice(code, Some(channel), Some(payload))) => {
            assert_eq!(
                (code.as_str(), channel.as_str(), payload.as_str()),
                (NOTIFY_SQLSTATE, "c", "it's ü")
            )
        }
        _ => panic!("a rollback sandbox's session gets the notice, whatever client_min_messages"),
    }
    assert!(
        matches!(heard.recv().await, Some(Heard::Notification(_, p)) if p == "sentinel"),
        "and no notification of its own"
    );

    // An admin role that is not a superuser leaves PostgreSQL's function alone.
    endpoint
        .admin()
        .await
        .unwrap()
        .batch_execute("create role plain_admin login createdb")
        .await
        .unwrap();
    let plain = Endpoint {
        user: "plain_admin".into(),
        password: None,
        sandbox: None,
        ..endpoint.clone()
    };
    let other = tempfile::tempdir().unwrap();
    let template = ensure_template(&plain, &project(other.path()), &|_| {})
        .await
        .unwrap();
    assert_eq!(clone_of(&endpoint, &template.name, "c2").await, "internal");
    server.stop().await.unwrap();
}
