//! PostgreSQL servers for dbsandbox: an embedded one it starts itself, or an external one the user names.
//!
//! The embedded server runs the PostgreSQL binaries already on the machine (no Docker), tuned for
//! tests (fsync, synchronous_commit, full_page_writes and autovacuum off), on a free loopback port
//! and a private Unix socket. Its data directory persists between runs, so templates built by one
//! run are reused by the next; the freshly initialised directory is cached per PostgreSQL version
//! so a new cluster never waits for initdb twice. One server per PostgreSQL version and cache
//! directory is shared by every dbsandbox process that needs one: the first starts it, the others
//! attach, the last to leave stops it, and a server that died is started again by the next that
//! needs it. Only dbsandbox can connect to it (see [`access`]).

mod access;
mod account;
mod binaries;
mod embedded;
mod initdb;
mod shared;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use access::SANDBOX_OWNER;
pub use account::{
    default_cache_dir, process_start_ticks, short_hash, state_root, ProcessId, ServerAccount,
};
pub use binaries::PgBinaries;
pub use embedded::{reclaim_orphans, EmbeddedServer};
pub use shared::ServerRecord;

/// How to obtain a server.
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// `postgres://user:password@host:port/db` of an existing server; embedded when `None`.
    pub external: Option<String>,
    /// Directory holding `initdb` and `postgres`; searched for when `None`.
    pub pg_bin: Option<PathBuf>,
    /// Cache directory; `$XDG_CACHE_HOME/dbsandbox` when `None`.
    pub cache_dir: Option<PathBuf>,
    /// User to run PostgreSQL as when dbsandbox runs as root; `postgres` when `None`.
    pub run_as: Option<String>,
    /// Always use a private throwaway cluster (tests use this to run side by side).
    pub private: bool,
    /// Sandbox clients and migrations use the admin role (a superuser on the embedded server)
    /// instead of unprivileged roles.
    pub superuser: bool,
}

/// How to connect to a server as its administrator.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// IP address or host name for TCP.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    /// The maintenance database to connect to (`postgres`).
    pub admin_database: String,
    /// Directory of the server's Unix socket, when it is local.
    pub socket_dir: Option<PathBuf>,
    /// `server_version_num`, e.g. 150018.
    pub version_num: u32,
    /// The unprivileged roles sandboxes use; `None`: the admin role (`--superuser`, or an
    /// external server).
    #[serde(default)]
    pub sandbox: Option<SandboxRoles>,
}

/// Sandbox roles on a server: migrations run as `owner`, so the template's objects are its own;
/// each clone's clients connect as a role named like the clone, a member of `owner`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SandboxRoles {
    pub owner: String,
    pub owner_password: Option<String>,
}

impl Endpoint {
    pub fn major_version(&self) -> u32 {
        self.version_num / 10000
    }

    /// A `postgres://` URL for `database` over TCP.
    pub fn url(&self, database: &str) -> String {
        let auth = match &self.password {
            Some(p) => format!("{}:{}", percent_encode(&self.user), percent_encode(p)),
            None => percent_encode(&self.user),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "postgres://{auth}@{host}:{}/{}",
            self.port,
            percent_encode(database)
        )
    }

    /// A tokio-postgres configuration for `database`, over the Unix socket when there is one.
    pub fn config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        match &self.socket_dir {
            Some(dir) => config.host_path(dir),
            None => config.host(&self.host),
        };
        config
            .port(self.port)
            .user(&self.user)
            .dbname(database)
            .application_name("dbsandbox")
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = &self.password {
            config.password(password);
        }
        config
    }

    /// Connects to `database`, driving the connection on a background task.
    pub async fn connect(
        &self,
        database: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.config(database).connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("admin connection ended: {e}");
            }
        });
        Ok(client)
    }

    /// The endpoint migrations, migrate commands and seeds run through: as the sandbox owner
    /// role, or as the admin role when there is none.
    pub fn owner(&self) -> Endpoint {
        match &self.sandbox {
            Some(roles) => Endpoint {
                user: roles.owner.clone(),
                password: roles.owner_password.clone(),
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// The role (and its password) clients of clone `database` connect as.
    pub fn clone_login(&self, database: &str) -> (String, Option<String>) {
        match &self.sandbox {
            Some(_) => (database.to_string(), None),
            None => (self.user.clone(), self.password.clone()),
        }
    }

    /// Connects to the maintenance database.
    pub async fn admin(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        self.connect(&self.admin_database).await
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Errors that the CLI turns into messages and exit codes.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "no PostgreSQL server binaries (initdb, postgres) found; looked in: {tried}\n\
         install them with {install}, \
         or point dbsandbox at them with --pg-bin DIR, or use an existing server with --server postgres://…"
    )]
    BinariesNotFound { tried: String, install: String },
    #[error("{0}\nPostgreSQL refuses to run as root: name an unprivileged account with --run-as USER (e.g. `useradd -r postgres`)")]
    RunAs(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("initdb failed ({status}):\n{output}")]
    Initdb { status: String, output: String },
    #[error("PostgreSQL did not start: {reason}\nlast lines of its log ({log}):\n{tail}")]
    Start {
        reason: String,
        log: String,
        tail: String,
    },
    #[error("cannot use the server at {url}: {message}")]
    External { url: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl ServerError {
    /// Exit code for the CLI: 2 for problems of set-up the user must fix, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ServerError::BinariesNotFound { .. }
            | ServerError::RunAs(_)
            | ServerError::External { .. } => 2,
            _ => 1,
        }
    }
}

/// A server dbsandbox works against. Dropping an embedded one stops it (prefer `stop`).
pub enum Server {
    Embedded(EmbeddedServer),
    /// An external server, or an embedded one another dbsandbox process runs: used, never stopped.
    External(Endpoint),
}

impl Server {
    /// Starts the embedded server, or checks the external one.
    pub async fn start(config: &ServerConfig) -> Result<Server, ServerError> {
        match &config.external {
            Some(url) => Ok(Server::External(check_external(url).await?)),
            None => {
                let mut server = EmbeddedServer::start(config).await?;
                if config.superuser {
                    server.use_admin_for_sandboxes();
                }
                Ok(Server::Embedded(server))
            }
        }
    }

    /// Starts a server that died again (an embedded one; an external one is left to its
    /// owner); true when it had died.
    pub async fn ensure_running(&mut self) -> Result<bool, ServerError> {
        match self {
            Server::Embedded(s) => s.ensure_running().await,
            Server::External(_) => Ok(false),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        match self {
            Server::Embedded(s) => s.endpoint(),
            Server::External(e) => e,
        }
    }

    /// A short description for logs and summaries.
    pub fn describe(&self) -> String {
        match self {
            Server::Embedded(s) => s.describe(),
            Server::External(e) => format!(
                "external PostgreSQL {} at {}:{}",
                e.version_num, e.host, e.port
            ),
        }
    }

    /// Who sandbox clients connect as, for status and summaries.
    pub fn describe_roles(&self) -> String {
        let endpoint = self.endpoint();
        match (&endpoint.sandbox, self) {
            (Some(roles), _) => format!(
                "sandbox clients: one unprivileged role per clone, member of {} (which owns the templates' objects)",
                roles.owner
            ),
            (None, Server::Embedded(_)) => format!(
                "sandbox clients: the superuser {} (--superuser)",
                endpoint.user
            ),
            (None, Server::External(_)) => format!(
                "sandbox clients: the given role {}, as migrations",
                endpoint.user
            ),
        }
    }

    /// Attaches to the shared embedded server, or starts it, or checks the external server:
    /// for short commands (`status`, `gc`).
    pub async fn attach_or_start(config: &ServerConfig) -> Result<Server, ServerError> {
        Server::start(config).await
    }

    /// Stops an embedded server; an external one is left as it is.
    pub async fn stop(self) -> Result<(), ServerError> {
        match self {
            Server::Embedded(s) => tokio::task::spawn_blocking(move || s.stop())
                .await
                .map_err(|e| ServerError::Other(format!("server stop task failed: {e}")))?,
            Server::External(_) => Ok(()),
        }
    }
}

/// Parses and checks an external server: reachable, PostgreSQL 13+, allowed to create databases.
async fn check_external(url: &str) -> Result<Endpoint, ServerError> {
    let fail = |message: String| ServerError::External {
        url: redact(url),
        message,
    };
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| fail(format!("not a valid connection string: {e}")))?;
    let (host, socket_dir) = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => (h.clone(), None),
        Some(tokio_postgres::config::Host::Unix(p)) => ("127.0.0.1".to_string(), Some(p.clone())),
        None => ("127.0.0.1".to_string(), None),
    };
    let mut endpoint = Endpoint {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        user: config
            .get_user()
            .map(str::to_string)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "postgres".to_string()),
        password: config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        admin_database: config.get_dbname().unwrap_or("postgres").to_string(),
        socket_dir,
        version_num: 0,
        sandbox: None,
    };
    let client = endpoint
        .admin()
        .await
        .map_err(|e| fail(format!("cannot connect: {}", describe_pg_error(&e))))?;
    let row = client
        .query_one(
            "select current_setting('server_version_num')::int, \
                    (select rolsuper or rolcreatedb from pg_roles where rolname = current_user)",
            &[],
        )
        .await
        .map_err(|e| fail(describe_pg_error(&e)))?;
    let version: i32 = row.get(0);
    let can_create: bool = row.get(1);
    if version < 130000 {
        return Err(fail(format!(
            "PostgreSQL {version} is too old; dbsandbox needs 13 or newer"
        )));
    }
    if !can_create {
        return Err(fail(format!(
            "role {} may not create databases; grant it CREATEDB",
            endpoint.user
        )));
    }
    endpoint.version_num = version as u32;
    Ok(endpoint)
}

/// The message of a PostgreSQL error, with its SQLSTATE, or the transport error.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// A connection string with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_encoded_and_redacted() {
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 5432,
            user: "a b".into(),
            password: Some("p@ss".into()),
            admin_database: "postgres".into(),
            socket_dir: None,
            version_num: 150000,
            sandbox: None,
        };
        assert_eq!(
            endpoint.url("db"),
            "postgres://a%20b:p%40ss@127.0.0.1:5432/db"
        );
        assert_eq!(
            redact("postgres://u:secret@h:1/db"),
            "postgres://u:***@h:1/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(endpoint.major_version(), 15);
    }
}
