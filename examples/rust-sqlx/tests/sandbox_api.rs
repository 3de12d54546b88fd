//! The `Sandbox` API without the attribute: keys, reset, release, and no leak on panic.

use std::time::{Duration, Instant};

use dbsandbox::{Daemon, Isolation, Sandbox};

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

async fn count(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("select count(*) from users", &[])
        .await
        .unwrap()
        .get(0)
}

fn held_keys(daemon: &Daemon) -> Vec<String> {
    daemon
        .sandboxes()
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect()
}

#[dbsandbox::test]
async fn reset_through_the_api(sandbox: &Sandbox) {
    let c = client(sandbox.url()).await;
    c.execute(
        "insert into users(email, name) values ('alice@example.com', 'Alice')",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(count(&c).await, 2);
    let info = sandbox.info().unwrap();
    let tables = info.tables.unwrap_or_default();
    assert!(
        tables
            .iter()
            .any(|t| t.table.ends_with("users") && t.rows == 2),
        "{tables:?}"
    );
    sandbox.reset().unwrap();
    // The same connection keeps working, on the template's state.
    assert_eq!(count(&c).await, 1);
}

#[test]
fn acquire_by_key_and_release() {
    let key = dbsandbox::unique_key("acquire_by_key_and_release");
    let sandbox = Sandbox::acquire(Some(&key), Isolation::Database).unwrap();
    assert_eq!(sandbox.key(), key);
    assert_eq!(sandbox.isolation(), Isolation::Database);
    assert!(
        sandbox.url().ends_with(&format!("/{key}")),
        "{}",
        sandbox.url()
    );
    let daemon = sandbox.daemon().clone();
    // The key is held: a second acquire gets key_in_use.
    let err = Sandbox::acquire(Some(&key), Isolation::Rollback).unwrap_err();
    assert_eq!(err.code(), Some("key_in_use"), "{err}");
    assert!(held_keys(&daemon).contains(&key));
    sandbox.release().unwrap();
    assert!(!held_keys(&daemon).contains(&key));
}

#[test]
fn daemon_picks_a_key_and_bad_keys_are_refused() {
    let sandbox = Sandbox::acquire(None, Isolation::Rollback).unwrap();
    assert!(dbsandbox::is_valid_key(sandbox.key()), "{}", sandbox.key());
    drop(sandbox);
    let err = Sandbox::acquire(Some("no spaces allowed"), Isolation::Rollback).unwrap_err();
    assert!(matches!(err, dbsandbox::Error::InvalidArgument(_)), "{err}");
}

#[test]
fn a_panicking_test_does_not_leak_its_sandbox() {
    let key = dbsandbox::unique_key("panicking_test");
    let thread_key = key.clone();
    let outcome = std::thread::spawn(move || {
        let sandbox = Sandbox::builder()
            .key(thread_key)
            .isolation(Isolation::Database)
            .acquire()
            .unwrap();
        assert!(!sandbox.url().is_empty());
        panic!("the test fails while holding {}", sandbox.key());
    })
    .join();
    assert!(outcome.is_err(), "the thread should have panicked");
    let daemon = Daemon::discover().unwrap();
    // Drop ran during unwinding: the key is gone right away, not after the owner_pid reaper.
    let deadline = Instant::now() + Duration::from_secs(2);
    while held_keys(&daemon).contains(&key) {
        assert!(Instant::now() < deadline, "sandbox {key} leaked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = daemon.sandbox(&key).unwrap_err();
    assert_eq!(err.code(), Some("not_found"), "{err}");
}

#[test]
fn daemon_status_has_the_admin_url() {
    let status = Daemon::discover().unwrap().status().unwrap();
    let url = status["server"]["url"].as_str().unwrap_or_default();
    assert!(url.starts_with("postgres"), "{status}");
}
