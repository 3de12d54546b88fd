//! Isolated PostgreSQL sandboxes for Rust tests, served by the dbsandbox daemon.
//!
//! Every test gets its own database state from a template built once from your migrations: a
//! **rollback** sandbox (the default: all the test's connections share one transaction that is
//! never committed, reset in about a millisecond) or a **database** sandbox (a whole clone of
//! the template; commits are real).
//!
//! ```no_run
//! // Cargo.toml: dbsandbox = { version = "0.1", features = ["sqlx"] }
//! #[dbsandbox::test]
//! async fn inserts_a_user(pool: sqlx::PgPool) {
//!     sqlx::query("insert into users(email) values ('a@example.com')")
//!         .execute(&pool)
//!         .await
//!         .unwrap();
//! }
//! ```
//!
//! `#[dbsandbox::test]` accepts an `async fn` with no argument or one of: `sqlx::PgPool`,
//! `sqlx::PgConnection` (feature `sqlx`), `tokio_postgres::Client` (feature `tokio-postgres`),
//! `String` or `&str` (the sandbox's connection URL), `&dbsandbox::Sandbox`. Options:
//! `isolation = "rollback" | "database"`, `migrations = "dir"` (relative to the crate; the usual
//! place for settings is a `dbsandbox.toml` beside `Cargo.toml`). The test may return `()` or a
//! `Result`.
//!
//! Without the macro, [`Sandbox`] acquires a sandbox by key and isolation, gives its
//! [`url`](Sandbox::url), [`reset`](Sandbox::reset)s it and releases it when dropped, also when
//! a test panics. The daemon is found through `DBSANDBOX_URL` (set by `dbsandbox run`) or
//! started with `dbsandbox serve --detach` (see [`Daemon::discover_in`]); processes share it,
//! so `cargo test` (threads) and `cargo nextest` (a process per test) both work.

mod daemon;
mod error;
mod http;
mod key;

#[doc(hidden)]
pub mod __private;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use daemon::{Daemon, API_VERSION};
pub use dbsandbox_macros::test;
pub use error::{Error, Result};
pub use key::{is_valid_key, sanitize as sanitize_key, unique_key, MAX_KEY_LEN};

/// How a sandbox isolates its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Every connection of the key shares one transaction that is never committed; `reset`
    /// rolls it back to the template state in about a millisecond. COMMIT is absorbed.
    #[default]
    Rollback,
    /// The key has its own clone of the template; commits are real; `reset` swaps the clone
    /// for a fresh one.
    Database,
}

impl Isolation {
    /// `"rollback"` or `"database"`, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Rollback => "rollback",
            Isolation::Database => "database",
        }
    }
}

impl std::str::FromStr for Isolation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Isolation> {
        match s {
            "rollback" => Ok(Isolation::Rollback),
            "database" => Ok(Isolation::Database),
            other => Err(Error::InvalidArgument(format!(
                "unknown isolation {other:?} (expected \"rollback\" or \"database\")"
            ))),
        }
    }
}

/// Connection statistics of a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SandboxStats {
    pub connections_open: u64,
    pub connections_total: u64,
    pub statements: u64,
    pub commits_absorbed: u64,
    pub errors_recovered: u64,
    pub resets: u64,
}

/// A table written since the last reset, with its current row count.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
}

/// The daemon's Sandbox object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct SandboxInfo {
    pub key: String,
    #[serde(default)]
    pub isolation: Isolation,
    pub url: String,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default)]
    pub owner_pid: Option<u32>,
    #[serde(default)]
    pub stats: Option<SandboxStats>,
    /// Only filled in by [`Sandbox::info`] / [`Daemon::sandbox`].
    #[serde(default)]
    pub tables: Option<Vec<TableRows>>,
}

/// An acquired sandbox. Dropping it releases it (errors are printed to stderr, never panic);
/// call [`release`](Sandbox::release) to see them.
#[derive(Debug)]
pub struct Sandbox {
    info: SandboxInfo,
    daemon: Arc<Daemon>,
    released: bool,
}

/// Options for [`Sandbox::builder`].
#[derive(Debug, Clone, Default)]
pub struct Builder {
    key: Option<String>,
    isolation: Isolation,
    project_dir: Option<PathBuf>,
    migrations: Option<PathBuf>,
    daemon: Option<Arc<Daemon>>,
}

impl Builder {
    /// The sandbox key (1 to 48 of `[A-Za-z0-9_-]`). Default: the daemon picks one (`sb-<n>`).
    /// Use [`unique_key`] to derive one from a test name.
    pub fn key(mut self, key: impl Into<String>) -> Builder {
        self.key = Some(key.into());
        self
    }

    /// The isolation (default [`Isolation::Rollback`]).
    pub fn isolation(mut self, isolation: Isolation) -> Builder {
        self.isolation = isolation;
        self
    }

    /// The project directory whose daemon serves the sandbox. Default: `$CARGO_MANIFEST_DIR`,
    /// else the current directory.
    pub fn project_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.project_dir = Some(dir.into());
        self
    }

    /// A migrations directory (relative to the project directory) overriding `dbsandbox.toml`'s;
    /// passed to `dbsandbox serve --detach --migrations`. Not used when `DBSANDBOX_URL` is set.
    pub fn migrations(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.migrations = Some(dir.into());
        self
    }

    /// Use this daemon instead of discovering one.
    pub fn daemon(mut self, daemon: Arc<Daemon>) -> Builder {
        self.daemon = Some(daemon);
        self
    }

    /// Finds or starts the daemon and acquires the sandbox (`POST /v1/sandboxes`).
    pub fn acquire(self) -> Result<Sandbox> {
        if let Some(key) = &self.key {
            if !is_valid_key(key) {
                return Err(Error::InvalidArgument(format!(
                    "invalid sandbox key {key:?}: keys are 1 to 48 characters of [A-Za-z0-9_-]"
                )));
            }
        }
        let daemon = match self.daemon {
            Some(d) => d,
            None => {
                let dir = self.project_dir.unwrap_or_else(daemon::default_project_dir);
                Daemon::discover_in(&dir, self.migrations.as_deref())?
            }
        };
        Sandbox::acquire_on(daemon, self.key.as_deref(), self.isolation)
    }
}

impl Sandbox {
    /// Options: key, isolation, project directory, migrations.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Acquires a sandbox from the default project's daemon: `key` `None` lets the daemon pick
    /// one. Fails with code `key_in_use` when the key is already held.
    pub fn acquire(key: Option<&str>, isolation: Isolation) -> Result<Sandbox> {
        let mut builder = Sandbox::builder().isolation(isolation);
        if let Some(key) = key {
            builder = builder.key(key);
        }
        builder.acquire()
    }

    /// Acquires on a given daemon.
    pub fn acquire_on(
        daemon: Arc<Daemon>,
        key: Option<&str>,
        isolation: Isolation,
    ) -> Result<Sandbox> {
        let mut body = json!({
            "isolation": isolation.as_str(),
            "owner_pid": std::process::id(),
        });
        if let Some(key) = key {
            if !is_valid_key(key) {
                return Err(Error::InvalidArgument(format!(
                    "invalid sandbox key {key:?}: keys are 1 to 48 characters of [A-Za-z0-9_-]"
                )));
            }
            body["key"] = json!(key);
        }
        if let Some(run) = daemon.run() {
            body["run"] = json!(run);
        }
        let value = daemon.request("POST", "/v1/sandboxes", Some(&body))?;
        let info = daemon::parse_info(value, "POST /v1/sandboxes")?;
        Ok(Sandbox {
            info,
            daemon,
            released: false,
        })
    }

    /// Wraps a sandbox this process already holds (e.g. a recycled one).
    pub(crate) fn from_parts(info: SandboxInfo, daemon: Arc<Daemon>) -> Sandbox {
        Sandbox {
            info,
            daemon,
            released: false,
        }
    }

    /// Gives up ownership without releasing (the caller keeps the lease).
    pub(crate) fn into_parts(mut self) -> (SandboxInfo, Arc<Daemon>) {
        self.released = true;
        (self.info.clone(), self.daemon.clone())
    }

    /// The PostgreSQL connection string; its database name is the key. Connect to it with any
    /// driver, as many times as you like: every connection gets this sandbox.
    pub fn url(&self) -> &str {
        &self.info.url
    }

    /// The sandbox key.
    pub fn key(&self) -> &str {
        &self.info.key
    }

    /// The isolation the daemon gave.
    pub fn isolation(&self) -> Isolation {
        self.info.isolation
    }

    /// The daemon serving this sandbox.
    pub fn daemon(&self) -> &Arc<Daemon> {
        &self.daemon
    }

    /// The Sandbox object as of acquisition.
    pub fn acquired_info(&self) -> &SandboxInfo {
        &self.info
    }

    /// `GET /v1/sandboxes/{key}`: current statistics and the tables written since the last reset.
    pub fn info(&self) -> Result<SandboxInfo> {
        self.daemon.sandbox(&self.info.key)
    }

    /// Back to the template's state: a rollback (rollback isolation) or a fresh clone
    /// (database isolation). Connections stay valid in rollback isolation.
    pub fn reset(&self) -> Result<()> {
        let path = self.daemon.key_path(&self.info.key, "/reset")?;
        self.daemon.request("POST", &path, None).map(|_| ())
    }

    /// Releases the sandbox (`DELETE /v1/sandboxes/{key}`) and reports errors.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        release_key(&self.daemon, &self.info.key)
    }
}

fn release_key(daemon: &Daemon, key: &str) -> Result<()> {
    let path = daemon.key_path(key, "")?;
    match daemon.request("DELETE", &path, None) {
        Ok(_) => Ok(()),
        // Already gone (reaped, daemon restarted): nothing is leaked.
        Err(e) if e.code() == Some("not_found") => Ok(()),
        Err(e) => Err(e),
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.released = true;
        if let Err(e) = release_key(&self.daemon, &self.info.key) {
            eprintln!(
                "dbsandbox: could not release sandbox {:?}: {e} (the daemon releases it when this process exits)",
                self.info.key
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Daemon, Error, Isolation, Sandbox, SandboxInfo};
    use std::sync::Arc;

    #[test]
    fn isolation_round_trips() {
        assert_eq!(
            "rollback".parse::<Isolation>().unwrap(),
            Isolation::Rollback
        );
        assert_eq!(
            "database".parse::<Isolation>().unwrap(),
            Isolation::Database
        );
        assert!("Database".parse::<Isolation>().is_err());
        assert_eq!(
            serde_json::to_string(&Isolation::Database).unwrap(),
            "\"database\""
        );
        assert_eq!(Isolation::default(), Isolation::Rollback);
    }

    #[test]
    fn parses_the_sandbox_object() {
        let info: SandboxInfo = serde_json::from_str(
            r#"{"key": "pytest-gw0-4242", "isolation": "rollback",
                "url": "postgres://dbsandbox@127.0.0.1:41235/pytest-gw0-4242",
                "database": "dbsandbox_c_3f2a", "run": null, "owner_pid": 4242,
                "stats": {"connections_open": 1, "connections_total": 3, "statements": 120,
                          "commits_absorbed": 4, "errors_recovered": 1, "resets": 10},
                "tables": [{"table": "public.users", "rows": 3}], "future_field": 1}"#,
        )
        .unwrap();
        assert_eq!(info.key, "pytest-gw0-4242");
        assert_eq!(info.stats.as_ref().unwrap().resets, 10);
        assert_eq!(info.tables.as_ref().unwrap()[0].rows, 3);
        let minimal: SandboxInfo =
            serde_json::from_str(r#"{"key": "k", "url": "postgres://h/k", "tables": null}"#)
                .unwrap();
        assert_eq!(minimal.isolation, Isolation::Rollback);
        assert!(minimal.tables.is_none());
    }

    #[test]
    fn invalid_keys_fail_before_any_request() {
        // Port 1 on loopback: a request would fail with a connection error, not InvalidArgument.
        let daemon = Arc::new(Daemon::connect("http://127.0.0.1:1", None).unwrap());
        let err =
            Sandbox::acquire_on(daemon.clone(), Some("bad key!"), Isolation::Rollback).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        let err = Sandbox::builder()
            .key("x".repeat(49))
            .daemon(daemon.clone())
            .acquire()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        let err = Sandbox::acquire_on(daemon, Some("ok"), Isolation::Rollback).unwrap_err();
        assert!(matches!(err, Error::Http(_)), "{err}");
    }

    #[test]
    fn drop_against_an_unreachable_daemon_does_not_panic() {
        let daemon = Arc::new(Daemon::connect("http://127.0.0.1:1", None).unwrap());
        let info: SandboxInfo =
            serde_json::from_str(r#"{"key": "k", "url": "postgres://h/k"}"#).unwrap();
        let sandbox = Sandbox::from_parts(info.clone(), daemon.clone());
        drop(sandbox);
        let sandbox = Sandbox::from_parts(info, daemon);
        assert!(sandbox.release().is_err());
    }
}
