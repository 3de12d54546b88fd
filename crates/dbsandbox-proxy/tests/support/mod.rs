//! Test support: a private, throw-away PostgreSQL server per test (15 preferred; as root it runs
//! as the `postgres` user, since PostgreSQL refuses root), a router that maps sandbox keys to
//! databases the test creates, and helpers to run a proxy in front of it and to speak raw protocol bytes to it. The server
//! is stopped and its directory removed when the [`PgServer`] is dropped.
//!
//! initdb runs once per machine into a cached template directory (renamed into place, so
//! concurrent test processes never see a half-built one); each server starts from a copy.

#![allow(dead_code)] // Each test binary uses a different subset.

use bytes::BytesMut;
use dbsandbox_proxy::{
    BackendTarget, ClientAuth, Proxy, ProxyConfig, RouteError, Router, Sandboxes, StatsHandle,
};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{Header, Message};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};

/// PostgreSQL's bin directory: `$PG_BIN`, else version 15 from the Debian layout, else the
/// newest version installed there.
fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return PathBuf::from(dir);
    }
    let preferred = PathBuf::from("/usr/lib/postgresql/15/bin");
    if preferred.join("postgres").exists() {
        return preferred;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "no PostgreSQL found: install postgresql (apt-get install postgresql) or set PG_BIN",
    )
}

fn running_as_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}
/// Password of the `postgres` superuser for TCP (SCRAM) connections.
pub const SUPERUSER_PASSWORD: &str = "super-secret";
/// A role whose password is stored as MD5 and whose TCP logins use the md5 method.
pub const MD5_USER: &str = "md5user";
pub const MD5_PASSWORD: &str = "md5-secret";

fn postgres_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name("postgres")
        .expect("user lookup")
        .expect("the tests need a 'postgres' OS user to run PostgreSQL as");
    (user.uid.as_raw(), user.gid.as_raw())
}

fn chown_to_postgres(path: &Path) {
    if !running_as_root() {
        return;
    }
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
}

/// PostgreSQL refuses to run as root, so as root the server runs as `postgres`; as anyone else
/// it runs as that user.
fn run_as_postgres(cmd: &mut Command) -> &mut Command {
    if !running_as_root() {
        return cmd;
    }
    let (uid, gid) = postgres_ids();
    cmd.uid(uid).gid(gid)
}

/// Builds (once) and returns the cached initdb output.
fn template_data_dir() -> PathBuf {
    let root = tests_root();
    let bin = pg_bin();
    let version = bin
        .parent()
        .and_then(|p| p.file_name())
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let template = root.join(format!("pgdata-{version}-v1"));
    if template.join("PG_VERSION").exists() {
        return template;
    }
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let staging = tempfile::Builder::new()
        .prefix("initdb-")
        .tempdir_in(&root)
        .unwrap()
        .keep();
    chown_to_postgres(&staging);
    let data = staging.join("data");
    let pwfile = staging.join("pw");
    std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();
    chown_to_postgres(&pwfile);
    let status = run_as_postgres(
        Command::new(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--no-locale", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null()),
    )
    .status()
    .expect("run initdb");
    assert!(status.success(), "initdb failed");
    // Local socket: trust (admin). TCP: md5 for the md5 role, SCRAM for everyone else, so the
    // proxy's backend authentication is exercised both ways.
    std::fs::write(
        data.join("pg_hba.conf"),
        format!(
            "local all all trust\n\
             host all {MD5_USER} 127.0.0.1/32 md5\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        ),
    )
    .unwrap();
    // Another test process may have won the race; then ours is simply discarded.
    if std::fs::rename(&data, &template).is_err() {
        assert!(template.join("PG_VERSION").exists());
    }
    let _ = std::fs::remove_dir_all(&staging);
    template
}

/// Shared by all test processes; per-user so a non-root run does not trip over root's files.
fn tests_root() -> PathBuf {
    let user = nix::unistd::Uid::effective().as_raw();
    let suffix = if user == 0 {
        String::new()
    } else {
        format!("-{user}")
    };
    PathBuf::from(format!("/tmp/dbsandbox-proxy-tests{suffix}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running private PostgreSQL server; stopped and deleted on drop.
pub struct PgServer {
    child: Child,
    pub port: u16,
    pub socket_dir: PathBuf,
    dir: tempfile::TempDir,
}

impl PgServer {
    pub async fn start() -> PgServer {
        let template = template_data_dir();
        let dir = tempfile::Builder::new()
            .prefix("pg-")
            .tempdir_in(tests_root())
            .unwrap();
        chown_to_postgres(dir.path());
        let data = dir.path().join("data");
        let status = run_as_postgres(Command::new("cp").arg("-a").arg(&template).arg(&data))
            .status()
            .unwrap();
        assert!(status.success(), "copying the data directory failed");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let child = run_as_postgres(
            Command::new(pg_bin().join("postgres"))
                .arg("-D")
                .arg(&data)
                .args(["-c", "fsync=off", "-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
                // The pass-through corpus opens every sequence's connections at once (four
                // per sequence at its peak): 50 was too few for its 28 sequences (53300).
                .args([
                    "-c",
                    "max_connections=150",
                    "-c",
                    "log_min_messages=warning",
                ])
                .arg("-c")
                .arg(format!("port={port}"))
                .arg("-c")
                .arg(format!("unix_socket_directories={}", dir.path().display()))
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .spawn()
        .expect("start postgres");
        let server = PgServer {
            child,
            port,
            socket_dir: dir.path().to_owned(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(client) = server.try_admin("postgres").await {
                if client.simple_query("SELECT 1").await.is_ok() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// The server log's lines that tell of a backend crash (the postmaster then ends every
    /// session and recovers), with the statement it was running: empty when none crashed.
    pub fn crash_report(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let mut report = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.contains("was terminated by signal")
                || line.contains("exited with exit code")
                || line.contains("PANIC:")
            {
                report.extend(lines[i..lines.len().min(i + 3)].iter().copied());
            }
        }
        report.join("\n")
    }

    /// A superuser connection straight to `database`, or why the server refused it.
    pub async fn try_admin(&self, database: &str) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(&self.socket_dir)
            .port(self.port)
            .user("postgres")
            .dbname(database)
            .connect(NoTls)
            .await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A superuser connection straight to the server (Unix socket, trust).
    pub async fn admin(&self) -> Client {
        self.admin_of("postgres").await
    }

    /// A superuser connection straight to `database` (Unix socket, trust).
    pub async fn admin_of(&self, database: &str) -> Client {
        self.try_admin(database).await.expect("admin connection")
    }

    pub async fn create_database(&self, name: &str) {
        self.admin()
            .await
            .simple_query(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create database");
    }

    /// Target reaching `database` over TCP as the superuser (SCRAM-SHA-256).
    pub fn tcp_target(&self, database: &str) -> BackendTarget {
        BackendTarget {
            host: "127.0.0.1".into(),
            port: self.port,
            user: "postgres".into(),
            password: Some(SUPERUSER_PASSWORD.into()),
            database: database.into(),
            isolation: None,
            reset_on_close: None,
        }
    }

    /// Target reaching `database` over the Unix socket (trust).
    pub fn unix_target(&self, database: &str) -> BackendTarget {
        BackendTarget {
            host: self.socket_dir.display().to_string(),
            port: self.port,
            user: "postgres".into(),
            password: None,
            database: database.into(),
            isolation: None,
            reset_on_close: None,
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown; SIGKILL if it takes too long.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Routes keys by a fixed table; unknown keys are refused with 3D000. Records disconnects.
#[derive(Default)]
pub struct MapRouter {
    pub routes: Mutex<HashMap<String, BackendTarget>>,
    pub disconnects: Mutex<Vec<String>>,
}

impl MapRouter {
    pub fn with(routes: impl IntoIterator<Item = (&'static str, BackendTarget)>) -> Arc<Self> {
        let router = MapRouter::default();
        router
            .routes
            .lock()
            .unwrap()
            .extend(routes.into_iter().map(|(k, t)| (k.to_owned(), t)));
        Arc::new(router)
    }

    pub fn disconnect_count(&self, key: &str) -> usize {
        self.disconnects
            .lock()
            .unwrap()
            .iter()
            .filter(|k| *k == key)
            .count()
    }
}

impl Router for MapRouter {
    fn route<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<BackendTarget, RouteError>> + Send + 'a>> {
        let found = self.routes.lock().unwrap().get(key).cloned();
        Box::pin(async move {
            found.ok_or_else(|| RouteError::new("3D000", format!("no sandbox for key {key}")))
        })
    }

    fn disconnected(&self, key: &str) {
        self.disconnects.lock().unwrap().push(key.to_owned());
    }
}

/// A proxy serving in the background; shut down on drop.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub stats: StatsHandle,
    /// The proxy's rollback sandboxes (reset, remove, stats), as the daemon holds them.
    pub sandboxes: Arc<Sandboxes>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestProxy {
    pub async fn start(config: ProxyConfig, router: Arc<dyn Router>) -> TestProxy {
        let proxy = Proxy::bind("127.0.0.1:0".parse().unwrap(), config, router)
            .await
            .unwrap();
        let addr = proxy.local_addr();
        let stats = proxy.stats_handle();
        let sandboxes = proxy.sandboxes();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(async move {
            let _ = stopped.await;
        }));
        TestProxy {
            addr,
            stats,
            sandboxes,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn trust(router: Arc<dyn Router>) -> TestProxy {
        TestProxy::start(ProxyConfig::default(), router).await
    }

    pub fn config(&self, key: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.addr.port())
            .user("tester")
            .dbname(key);
        config
    }

    pub async fn connect(&self, key: &str) -> Result<Client, tokio_postgres::Error> {
        connect_with(&self.config(key)).await
    }

    /// Stops the proxy and waits for `serve` to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn connect_with(
    config: &tokio_postgres::Config,
) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The `pg_stat_activity` rows of key k's sandbox backend, seen from an admin connection to its
/// database: the backend names itself after the key, but while a client's settings are applied
/// it carries the client's `application_name` ('' unless the client set one), inside the
/// sandbox's never-ending transaction.
#[allow(dead_code)]
pub const SANDBOX_BACKEND_OF_K: &str = "(application_name = 'dbsandbox sandbox k' or \
     (application_name = '' and datname = current_database() and pid <> pg_backend_pid() \
     and backend_type = 'client backend' and xact_start is not null))";

/// The SQLSTATE of a database error, or a description of a non-database error.
pub fn sqlstate(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.code().code().to_owned(),
        None => format!("not a database error: {err}"),
    }
}

pub fn password_config(proxy: &TestProxy, key: &str, password: &str) -> tokio_postgres::Config {
    let mut config = proxy.config(key);
    config.password(password);
    config
}

pub fn password_auth(password: &str) -> ProxyConfig {
    ProxyConfig {
        auth: ClientAuth::Password(password.into()),
        ..ProxyConfig::default()
    }
}

fn decode(raw: &mut BytesMut) -> Reply {
    match Message::parse(raw).unwrap() {
        Some(Message::ErrorResponse(body)) => {
            let mut fields = HashMap::new();
            let mut it = body.fields();
            while let Some(field) = it.next().unwrap() {
                fields.insert(
                    field.type_(),
                    String::from_utf8_lossy(field.value_bytes()).into_owned(),
                );
            }
            Reply::Error(
                fields.remove(&b'S').unwrap_or_default(),
                fields.remove(&b'C').unwrap_or_default(),
                fields.remove(&b'M').unwrap_or_default(),
            )
        }
        Some(Message::ReadyForQuery(body)) => Reply::ReadyForQuery(body.status()),
        _ => unreachable!("only E and Z are decoded"),
    }
}

/// Waits until the proxy has no open client connection (connection tasks finish
/// asynchronously after the client's socket closes).
pub async fn wait_until_no_open_connections(proxy: &TestProxy) {
    wait_until_open_connections(proxy, 0).await;
}

/// Waits until the proxy has `open` client connections open.
pub async fn wait_until_open_connections(proxy: &TestProxy, open: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while proxy.stats.snapshot().connections_open != open {
        assert!(Instant::now() < deadline, "{:?}", proxy.stats.snapshot());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A backend message as the tests see it.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// ErrorResponse: (severity, SQLSTATE, message).
    Error(String, String, String),
    ReadyForQuery(u8),
    /// Any other message, by tag.
    Other(u8),
}

/// Raw protocol connection for sending bytes no well-behaved driver would send.
pub struct RawConnection {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl RawConnection {
    pub async fn open(addr: SocketAddr) -> RawConnection {
        let stream = TcpStream::connect(addr).await.unwrap();
        RawConnection {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub async fn send_startup(&mut self, key: &str) {
        let mut buf = BytesMut::new();
        postgres_protocol::message::frontend::startup_message(
            [("user", "tester"), ("database", key)],
            &mut buf,
        )
        .unwrap();
        self.send(&buf).await;
    }

    /// Next message, or None at end of stream. Times out after 10 s.
    pub async fn recv(&mut self) -> Option<Reply> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(header) = Header::parse(&self.buf).unwrap() {
                    let total = header.len() as usize + 1;
                    if self.buf.len() >= total {
                        let mut raw = self.buf.split_to(total);
                        return Some(match header.tag() {
                            b'E' | b'Z' => decode(&mut raw),
                            tag => Reply::Other(tag),
                        });
                    }
                }
                if self.stream.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("timed out waiting for the proxy")
    }

    /// Reads until ReadyForQuery and returns the tags of every message seen, ReadyForQuery
    /// included; panics on an error or end of stream.
    pub async fn until_ready(&mut self) -> Vec<u8> {
        let mut tags = Vec::new();
        loop {
            match self.recv().await {
                Some(Reply::ReadyForQuery(_)) => {
                    tags.push(b'Z');
                    return tags;
                }
                Some(Reply::Error(s, c, m)) => panic!("error during startup: {s} {c} {m}"),
                Some(Reply::Other(tag)) => tags.push(tag),
                None => panic!("connection closed during startup"),
            }
        }
    }

    /// Expects an ErrorResponse followed by the end of the connection; returns (SQLSTATE, message).
    pub async fn expect_fatal(&mut self) -> (String, String) {
        let reply = loop {
            match self.recv().await {
                Some(Reply::Other(_)) | Some(Reply::ReadyForQuery(_)) => continue,
                other => break other,
            }
        };
        let Some(Reply::Error(severity, code, message)) = reply else {
            panic!("expected an ErrorResponse, got {reply:?}");
        };
        assert_eq!(severity, "FATAL");
        assert_eq!(self.recv().await, None, "connection should be closed");
        (code, message)
    }
}
