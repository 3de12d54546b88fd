//! Support code for the `#[dbsandbox::test]` expansion. Not a public API: names and signatures
//! change without notice.
//!
//! These helpers run inside a test, where failing means panicking with a clear message: the
//! test harness reports it as the test's failure.

use std::future::Future;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::{Daemon, Isolation, Sandbox};

/// What the attribute says.
pub struct TestOptions {
    /// `module_path!()::test_name`.
    pub name: &'static str,
    pub isolation: Isolation,
    /// `migrations = "dir"`, relative to `manifest_dir`.
    pub migrations: Option<&'static str>,
    /// `env!("CARGO_MANIFEST_DIR")` of the test crate: the project directory.
    pub manifest_dir: &'static str,
}

/// A test's sandbox. Rollback sandboxes go back to a per-process spare list when the test ends
/// (also when it panics) and are reset before the next test of the process takes them, which
/// saves a clone per test; the daemon releases them when the process exits (`owner_pid`).
/// Database sandboxes, and every sandbox under nextest's process-per-test mode, are released.
pub struct TestSandbox {
    sandbox: Option<Sandbox>,
    recycle: bool,
}

impl Deref for TestSandbox {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        match &self.sandbox {
            Some(s) => s,
            // Only `drop` takes it out.
            None => unreachable!("TestSandbox used after drop"),
        }
    }
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        let Some(sandbox) = self.sandbox.take() else {
            return;
        };
        if self.recycle {
            let (info, daemon) = sandbox.into_parts();
            daemon
                .spare
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(info);
        }
        // Otherwise dropping the Sandbox releases it.
    }
}

fn process_per_test() -> bool {
    std::env::var("NEXTEST_EXECUTION_MODE").is_ok_and(|m| m == "process-per-test")
}

/// Finds the daemon and acquires the test's sandbox; panics with the reason on failure.
#[track_caller]
pub fn acquire_for_test(options: TestOptions) -> TestSandbox {
    match try_acquire(&options) {
        Ok(t) => t,
        Err(e) => panic!(
            "#[dbsandbox::test] {}: cannot get a sandbox: {e}",
            options.name
        ),
    }
}

fn try_acquire(options: &TestOptions) -> crate::Result<TestSandbox> {
    let daemon = Daemon::discover_in(
        Path::new(options.manifest_dir),
        options.migrations.map(Path::new),
    )?;
    let recycle = options.isolation == Isolation::Rollback && !process_per_test();
    if recycle {
        if let Some(sandbox) = take_spare(&daemon) {
            return Ok(TestSandbox {
                sandbox: Some(sandbox),
                recycle,
            });
        }
    }
    let mut attempt = 0;
    let sandbox = loop {
        let key = crate::unique_key(options.name);
        match Sandbox::acquire_on(daemon.clone(), Some(&key), options.isolation) {
            // A stale holder with a recycled pid: the counter gives the next try another key.
            Err(e) if e.code() == Some("key_in_use") && attempt < 5 => attempt += 1,
            other => break other?,
        }
    };
    Ok(TestSandbox {
        sandbox: Some(sandbox),
        recycle,
    })
}

/// A spare rollback sandbox of this process, reset; `None` when there is none that resets.
fn take_spare(daemon: &Arc<Daemon>) -> Option<Sandbox> {
    loop {
        let info = daemon
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()?;
        let sandbox = Sandbox::from_parts(info, daemon.clone());
        match sandbox.reset() {
            Ok(()) => return Some(sandbox),
            // Gone (daemon restarted?) or broken: drop it (release, errors printed) and try the next.
            Err(e) => {
                if e.code() == Some("not_found") {
                    let _ = sandbox.into_parts();
                }
            }
        }
    }
}

/// Runs the test body on a current-thread tokio runtime with I/O and timers enabled.
#[cfg(feature = "tokio")]
pub fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(e) => panic!("#[dbsandbox::test]: cannot build a tokio runtime: {e}"),
    }
}

/// Runs the test body on a minimal executor (no I/O reactor: enable the `tokio` feature for
/// drivers).
#[cfg(not(feature = "tokio"))]
pub fn block_on<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// A pool on the sandbox (the pool's connections all see the sandbox).
#[cfg(feature = "sqlx")]
pub async fn connect_sqlx_pool(url: &str) -> sqlx::PgPool {
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect(url)
        .await
    {
        Ok(pool) => pool,
        Err(e) => panic!("#[dbsandbox::test]: cannot connect sqlx to {url}: {e}"),
    }
}

/// Closes the pool's connections before the sandbox is recycled or released.
#[cfg(feature = "sqlx")]
pub async fn close_sqlx_pool(pool: sqlx::PgPool) {
    pool.close().await;
}

/// One sqlx connection to the sandbox.
#[cfg(feature = "sqlx")]
pub async fn connect_sqlx_connection(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(url).await {
        Ok(conn) => conn,
        Err(e) => panic!("#[dbsandbox::test]: cannot connect sqlx to {url}: {e}"),
    }
}

/// A tokio-postgres client on the sandbox; its connection task runs on the test's runtime.
#[cfg(feature = "tokio-postgres")]
pub async fn connect_tokio_postgres(url: &str) -> tokio_postgres::Client {
    match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    eprintln!("dbsandbox: tokio-postgres connection error: {e}");
                }
            });
            client
        }
        Err(e) => panic!("#[dbsandbox::test]: cannot connect tokio-postgres to {url}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_runs_a_future() {
        assert_eq!(block_on(async { 40 + 2 }), 42);
    }

    #[test]
    fn spare_sandboxes_go_back_to_the_daemon_list() {
        let daemon = Arc::new(Daemon::connect("http://127.0.0.1:1", None).unwrap());
        let info: crate::SandboxInfo =
            serde_json::from_str(r#"{"key": "k1", "url": "postgres://h/k1"}"#).unwrap();
        let t = TestSandbox {
            sandbox: Some(Sandbox::from_parts(info, daemon.clone())),
            recycle: true,
        };
        assert_eq!(t.url(), "postgres://h/k1");
        drop(t);
        assert_eq!(daemon.spare.lock().unwrap().len(), 1);
        // The spare cannot be reset (no daemon there): it is dropped, none is returned.
        assert!(take_spare(&daemon).is_none());
        assert!(daemon.spare.lock().unwrap().is_empty());
    }
}
