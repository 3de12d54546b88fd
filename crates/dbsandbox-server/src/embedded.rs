//! The embedded server: initdb cache, the shared and private clusters, start or attach,
//! readiness, restart after a crash, stop, reclaim.
//!
//! State lives under the state root (see [`crate::state_root`]):
//!
//! ```text
//! initdb/pg15-<hash>/       a freshly initialised data directory, copied to make new clusters
//! servers/pg15/             the shared cluster: data/, run/ (socket), postgres.log, server.json,
//!                           start.lock and server.lock (see [`crate::shared`])
//! private/<pid>-<ticks>/    throwaway clusters, removed at stop, or by the next start if their
//!                           owner died
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::access::{self, Secrets, SANDBOX_OWNER};
use crate::account::{copy_tree, io_error, short_hash, ServerAccount};
use crate::initdb::{ensure_initdb_cache, initdb_cache_path, initdb_into};
use crate::shared::{self, ServerRecord};
use crate::{
    describe_pg_error, Endpoint, PgBinaries, ProcessId, SandboxRoles, ServerConfig, ServerError,
};

/// The role dbsandbox creates as the embedded server's superuser.
pub(crate) const SUPERUSER: &str = "dbsandbox";

/// Server settings for tests: durability off (a crash loses a test database, never user data),
/// no background work that competes with tests, and room for many clones and connections.
const TEST_SETTINGS: &[(&str, &str)] = &[
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("autovacuum", "off"),
    ("wal_level", "minimal"),
    ("max_wal_senders", "0"),
    ("max_wal_size", "1GB"),
    ("checkpoint_timeout", "30min"),
    ("max_connections", "400"),
    ("shared_buffers", "128MB"),
    ("max_locks_per_transaction", "256"),
    ("jit", "off"),
    ("log_min_messages", "warning"),
    ("logging_collector", "off"),
    // PostgreSQL 13 still defaults to md5.
    ("password_encryption", "scram-sha-256"),
];

/// Where a cluster lives and what runs it.
#[derive(Clone)]
struct Cluster {
    binaries: PgBinaries,
    account: ServerAccount,
    root: PathBuf,
    dir: PathBuf,
    private: bool,
}

impl Cluster {
    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Makes the data directory when the cluster has none: a copy of the cached initdb when
    /// there is one, otherwise initdb straight here (a first start need not pay for initdb and
    /// a copy).
    fn ensure_data(&self) -> Result<(), ServerError> {
        let data = self.data_dir();
        if data.join("PG_VERSION").exists() {
            return Ok(());
        }
        let staging = self.dir.join(format!(
            "data.tmp-{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        let _ = std::fs::remove_dir_all(&staging);
        let cached = initdb_cache_path(&self.root, &self.binaries);
        if cached.join("PG_VERSION").exists() {
            copy_tree(&cached, &staging, &self.account)?;
        } else {
            initdb_into(&self.binaries, &self.account, &staging)?;
        }
        let _ = std::fs::remove_dir_all(&data);
        std::fs::rename(&staging, &data).map_err(|e| io_error("renaming", &staging, e))
    }

    /// The socket directory: `run/` in the cluster, or, when a socket path there would pass the
    /// 107-byte limit, a private directory under /tmp named after the cluster.
    fn socket_dir(&self, port: u16) -> Result<PathBuf, ServerError> {
        let run = self.dir.join("run");
        let dir = if run.join(format!(".s.PGSQL.{port}")).as_os_str().len() < 100 {
            run
        } else {
            PathBuf::from(format!(
                "/tmp/dbsandbox-{}-{}",
                self.account.uid,
                short_hash(&self.dir.display().to_string())
            ))
        };
        self.account.create_private_dir(&dir)?;
        let owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(&dir).map_err(|e| io_error("reading", &dir, e))?,
        );
        if owner != self.account.uid {
            return Err(ServerError::Other(format!(
                "the socket directory {} belongs to another user",
                dir.display()
            )));
        }
        Ok(dir)
    }

    /// Stops a leftover postmaster, makes sure the data directory, its secrets and its
    /// pg_hba.conf are in place, and launches `postgres` on `port`.
    fn launch(&self, port: u16) -> Result<(Child, Secrets, PathBuf), ServerError> {
        let data_dir = self.data_dir();
        stop_stale_postmaster(&data_dir);
        clear_dead_postmaster_lock(&data_dir);
        self.ensure_data()?;
        let secrets = access::ensure_secrets(&data_dir, &self.account)?;
        access::write_hba(&data_dir, &self.account)?;
        let socket_dir = self.socket_dir(port)?;
        let socket_lock = socket_dir.join(format!(".s.PGSQL.{port}.lock"));
        if shared::postmaster_pid_in(&socket_lock).is_some_and(crate::account::is_zombie) {
            let _ = std::fs::remove_file(&socket_lock);
        }
        let log_path = self.log_path();
        let log = File::create(&log_path).map_err(|e| io_error("creating", &log_path, e))?;
        self.account.chown(&log_path)?;

        let mut command = Command::new(self.binaries.postgres());
        command
            .arg("-D")
            .arg(&data_dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={port}")])
            .args([
                "-c",
                &format!("unix_socket_directories={}", socket_dir.display()),
            ])
            .args(["-c", "unix_socket_permissions=0700"]);
        for (name, value) in TEST_SETTINGS {
            command.args(["-c", &format!("{name}={value}")]);
        }
        command
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(
                log.try_clone()
                    .map_err(|e| io_error("opening", &log_path, e))?,
            )
            .stderr(log);
        self.account.apply(&mut command);
        // Its own process group: a Ctrl-C in the terminal reaches dbsandbox, which stops the
        // server after the clones are cleaned up, instead of killing it mid-cleanup; and a
        // shared server outlives the process that started it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .map_err(|e| io_error("starting", &self.binaries.postgres(), e))?;
        tracing::debug!(port, dir = %self.dir.display(), private = self.private, "postgres launched");
        Ok((child, secrets, socket_dir))
    }
}

/// A postmaster this process launched, reaped by a thread of its own as soon as it exits: never
/// left a zombie, which PostgreSQL would take for a live postmaster and refuse to start beside.
struct Launched {
    pid: u32,
    exit: std::sync::Arc<std::sync::Mutex<Option<std::process::ExitStatus>>>,
}

impl Launched {
    fn watch(mut child: Child) -> Launched {
        let exit = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = std::sync::Arc::clone(&exit);
        let pid = child.id();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
            }
        });
        Launched { pid, exit }
    }

    fn exit_status(&self) -> Option<std::process::ExitStatus> {
        *self.exit.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs blocking file-system and process work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServerError::Other(format!("server task failed: {e}")))?
}

/// An embedded PostgreSQL server this process uses: one it started, or the shared one another
/// dbsandbox started and it attached to.
pub struct EmbeddedServer {
    cluster: Cluster,
    endpoint: Endpoint,
    /// The postmaster, when this process launched it.
    child: Option<Launched>,
    postgres_pid: u32,
    /// True when another process started it.
    attached: bool,
    /// This process's share of the shared cluster (see [`crate::shared`]).
    share: Option<Flock<File>>,
    /// Sandboxes use the admin role (`--superuser`).
    admin_for_sandboxes: bool,
}

impl EmbeddedServer {
    /// Attaches to the shared cluster's running server, or starts it (or a private cluster when
    /// asked, or when a dbsandbox from before shared servers holds the shared one alone).
    pub async fn start(config: &ServerConfig) -> Result<EmbeddedServer, ServerError> {
        let config = config.clone();
        let (cluster, guard, share) = blocking(move || {
            let binaries = PgBinaries::discover(config.pg_bin.as_deref())?;
            let account = ServerAccount::choose(config.run_as.as_deref())?;
            let root = crate::state_root(config.cache_dir.as_deref(), &account);
            account.create_private_dir(&root)?;
            reclaim_orphans(&root);
            let shared_dir = root.join("servers").join(format!("pg{}", binaries.major));
            let mut cluster = Cluster {
                binaries,
                account,
                root,
                dir: shared_dir.clone(),
                private: false,
            };
            if !config.private {
                cluster.account.create_private_dir(&shared_dir)?;
                let guard = shared::start_lock(&shared_dir)?;
                if let Some(share) = shared::take_share(&shared_dir)? {
                    return Ok((cluster, Some(guard), Some(share)));
                }
                tracing::info!(
                    "the shared cluster is held alone by an older dbsandbox; starting a private one"
                );
            }
            let me = ProcessId::current();
            cluster.dir = cluster.root.join("private").join(format!(
                "{}-{}-{}",
                me.pid,
                me.start_ticks,
                unique_suffix()
            ));
            cluster.private = true;
            cluster.account.create_private_dir(&cluster.dir)?;
            let pristine = ensure_initdb_cache(&cluster.root, &cluster.binaries, &cluster.account)?;
            copy_tree(&pristine, &cluster.data_dir(), &cluster.account)?;
            Ok((cluster, None, None))
        })
        .await?;
        if !cluster.private {
            if let Some(running) = find_running(&cluster).await {
                let server = running.attach(&cluster, share);
                drop(guard);
                return Ok(server);
            }
        }
        let port = match (cluster.private, shared::read_record(&cluster.dir)) {
            // A server that crashed comes back where the daemons attached to it look for it.
            (false, Some(record)) if port_is_free(record.endpoint.port) => record.endpoint.port,
            _ => free_port()?,
        };
        let mut server = EmbeddedServer {
            endpoint: Endpoint {
                host: "127.0.0.1".to_string(),
                port,
                user: SUPERUSER.to_string(),
                password: None,
                admin_database: "postgres".to_string(),
                socket_dir: None,
                version_num: 0,
                sandbox: None,
            },
            cluster,
            child: None,
            postgres_pid: 0,
            attached: false,
            share,
            admin_for_sandboxes: false,
        };
        let started = server.launch().await;
        drop(guard);
        started.map(|()| server)
    }

    /// Launches postgres on the endpoint's port and waits until it answers.
    async fn launch(&mut self) -> Result<(), ServerError> {
        let cluster = self.cluster.clone();
        let port = self.endpoint.port;
        let (child, secrets, socket_dir) = blocking(move || cluster.launch(port)).await?;
        self.postgres_pid = child.id();
        self.child = Some(Launched::watch(child));
        self.attached = false;
        self.endpoint.socket_dir = Some(socket_dir);
        self.endpoint.password = Some(secrets.admin.clone());
        self.endpoint.sandbox = (!self.admin_for_sandboxes).then(|| SandboxRoles {
            owner: SANDBOX_OWNER.to_string(),
            owner_password: Some(secrets.sandbox_owner.clone()),
        });
        self.wait_ready(&secrets).await
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sandbox clients and migrations connect as the admin role (`--superuser`).
    pub fn use_admin_for_sandboxes(&mut self) {
        self.admin_for_sandboxes = true;
        self.endpoint.sandbox = None;
    }

    pub fn cluster_dir(&self) -> &Path {
        &self.cluster.dir
    }

    pub fn is_private(&self) -> bool {
        self.cluster.private
    }

    /// True when another dbsandbox started the server and this one attached to it.
    pub fn is_attached(&self) -> bool {
        self.attached
    }

    pub fn postgres_pid(&self) -> Option<u32> {
        (self.postgres_pid != 0).then_some(self.postgres_pid)
    }

    pub fn describe(&self) -> String {
        format!(
            "embedded PostgreSQL {} on 127.0.0.1:{} ({}, {})",
            self.cluster.binaries.version,
            self.endpoint.port,
            if self.cluster.private {
                "private"
            } else {
                "shared by this cache's daemons"
            },
            self.cluster.dir.display(),
        )
    }

    /// Waits until the server answers queries (not merely accepts connections: a server still
    /// starting answers 57P03), sets the roles' passwords, and records where it is; fails with
    /// the end of its log when it died.
    async fn wait_ready(&mut self, secrets: &Secrets) -> Result<(), ServerError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut delay = Duration::from_millis(5);
        let mut last_error;
        loop {
            if let Some(status) = self.child.as_ref().and_then(Launched::exit_status) {
                return Err(self.start_error(format!("postgres exited with {status}")));
            }
            match self.endpoint.admin().await {
                Ok(client) => match client
                    .query_one("select current_setting('server_version_num')::int", &[])
                    .await
                {
                    Ok(row) => {
                        let version: i32 = row.get(0);
                        self.endpoint.version_num = version as u32;
                        client
                            .batch_execute(&access::roles_sql(SUPERUSER, secrets))
                            .await
                            .map_err(|e| {
                                self.start_error(format!(
                                    "setting up roles: {}",
                                    describe_pg_error(&e)
                                ))
                            })?;
                        self.write_record();
                        return Ok(());
                    }
                    Err(e) => last_error = describe_pg_error(&e),
                },
                Err(e) => last_error = describe_pg_error(&e),
            }
            if Instant::now() > deadline {
                return Err(self.start_error(format!("not ready after 60 s: {last_error}")));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    /// Records where the server is, for the processes that attach to it and for reclaiming it.
    fn write_record(&self) {
        let record = ServerRecord {
            owner: ProcessId::current(),
            postgres_pid: self.postgres_pid,
            private: self.cluster.private,
            endpoint: self.endpoint.clone(),
            data_dir: self.cluster.data_dir(),
        };
        shared::write_record(&self.cluster.dir, &record);
    }

    fn start_error(&self, reason: String) -> ServerError {
        let log = self.cluster.log_path();
        ServerError::Start {
            reason,
            tail: log_tail(&log, 20),
            log: log.display().to_string(),
        }
    }

    /// Whether the postmaster is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_ref() {
            Some(child) => child.exit_status().is_none(),
            None => shared::postgres_alive(self.postgres_pid),
        }
    }

    /// Brings a server that died (killed, crashed) back on the same port, so every handle to
    /// its endpoint works again; returns true when it had died. A shared server restarted by
    /// another daemon meanwhile is adopted instead.
    pub async fn ensure_running(&mut self) -> Result<bool, ServerError> {
        if self.is_running() {
            return Ok(false);
        }
        tracing::warn!(
            pid = self.postgres_pid,
            "the PostgreSQL server is gone: restarting it"
        );
        let guard = if self.cluster.private {
            None
        } else {
            let dir = self.cluster.dir.clone();
            Some(blocking(move || shared::start_lock(&dir)).await?)
        };
        if !self.cluster.private {
            if let Some(running) = find_running(&self.cluster).await {
                if running.endpoint.port == self.endpoint.port {
                    self.endpoint.socket_dir = running.endpoint.socket_dir;
                    self.postgres_pid = running.pid;
                    self.child = None;
                    self.attached = true;
                    return Ok(true);
                }
            }
        }
        // Backends of the killed postmaster may hold its shared memory a moment longer, and
        // PostgreSQL refuses to start beside them: try again until they are gone.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.launch().await {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("restart failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
        drop(guard);
        Ok(true)
    }

    /// Leaves the server: stops it (fast shutdown, then harder) when this process is its last
    /// user, and removes a private cluster.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown();
        Ok(())
    }

    fn shutdown(&mut self) {
        if self.cluster.private {
            self.stop_postmaster();
            let _ = std::fs::remove_dir_all(&self.cluster.dir);
            return;
        }
        let guard = shared::start_lock(&self.cluster.dir);
        if let Err(e) = &guard {
            tracing::warn!("{e}");
        }
        let Some(share) = self.share.take() else {
            return;
        };
        drop(share);
        match shared::take_sole_use(&self.cluster.dir) {
            Ok(Some(_sole)) => {
                self.stop_postmaster();
                let _ = std::fs::remove_file(shared::record_path(&self.cluster.dir));
            }
            _ => tracing::debug!("other daemons use the server: leaving it running"),
        }
    }

    fn stop_postmaster(&mut self) {
        let stopped = match self.child.take() {
            // Never signal a pid that already exited: it may belong to another process by now.
            Some(child) if child.exit_status().is_some() => true,
            Some(child) => stop_process(Pid::from_raw(child.pid as i32), || {
                child.exit_status().is_some()
            }),
            None if shared::postgres_alive(self.postgres_pid) => {
                let pid = self.postgres_pid;
                stop_process(Pid::from_raw(pid as i32), || !shared::postgres_alive(pid))
            }
            None => true,
        };
        if !stopped {
            tracing::warn!(pid = self.postgres_pid, "postgres did not stop");
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A running server found through its record.
struct Running {
    endpoint: Endpoint,
    pid: u32,
}

impl Running {
    fn attach(self, cluster: &Cluster, share: Option<Flock<File>>) -> EmbeddedServer {
        EmbeddedServer {
            cluster: cluster.clone(),
            endpoint: self.endpoint,
            child: None,
            postgres_pid: self.pid,
            attached: true,
            share,
            admin_for_sandboxes: false,
        }
    }
}

/// The shared cluster's server when it is running and answers; the caller holds the start lock.
async fn find_running(cluster: &Cluster) -> Option<Running> {
    let record = shared::read_record(&cluster.dir)?;
    let pid = shared::postmaster_pid(&cluster.data_dir())?;
    if pid != record.postgres_pid || !shared::postgres_alive(pid) {
        return None;
    }
    let secrets = access::read_secrets(&cluster.data_dir())?;
    let mut endpoint = record.endpoint;
    endpoint.password = Some(secrets.admin);
    endpoint.sandbox = Some(SandboxRoles {
        owner: SANDBOX_OWNER.to_string(),
        owner_password: Some(secrets.sandbox_owner),
    });
    let client = endpoint.admin().await.ok()?;
    client.simple_query("select 1").await.ok()?;
    tracing::debug!(pid, port = endpoint.port, "attached to the shared server");
    Some(Running { endpoint, pid })
}

/// How a server is stopped: fast shutdown, then immediate shutdown, then SIGKILL, each given
/// this long before the next.
const STOP_LADDER: [(Signal, Duration); 3] = [
    (Signal::SIGINT, Duration::from_secs(15)),
    (Signal::SIGQUIT, Duration::from_secs(5)),
    (Signal::SIGKILL, Duration::from_secs(5)),
];

/// Walks `pid` down the [`STOP_LADDER`] until `gone` says it exited; false if it never did.
fn stop_process(pid: Pid, mut gone: impl FnMut() -> bool) -> bool {
    STOP_LADDER.iter().any(|&(signal, patience)| {
        let _ = kill(pid, signal);
        let deadline = Instant::now() + patience;
        loop {
            if gone() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

/// Stops what a previous, killed dbsandbox left behind: private clusters whose owner is gone.
/// (The shared cluster's leftover server is stopped by whoever takes its lock next.)
pub fn reclaim_orphans(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root.join("private")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let mut parts = name.split('-');
        let owner = match (
            parts.next().and_then(|p| p.parse().ok()),
            parts.next().and_then(|t| t.parse().ok()),
        ) {
            (Some(pid), Some(start_ticks)) => ProcessId { pid, start_ticks },
            _ => continue,
        };
        if owner.is_alive() {
            continue;
        }
        tracing::info!(dir = %entry.path().display(), "reclaiming a private cluster left by a dead dbsandbox");
        stop_stale_postmaster(&entry.path().join("data"));
        let _ = std::fs::remove_dir_all(entry.path());
    }
}

/// Stops the postmaster recorded in `data/postmaster.pid`, if it is still running.
fn stop_stale_postmaster(data_dir: &Path) {
    let Some(pid) = shared::postmaster_pid(data_dir) else {
        return;
    };
    if !shared::postgres_alive(pid) {
        return;
    }
    tracing::info!(pid, dir = %data_dir.display(), "stopping a PostgreSQL server left running by a dead dbsandbox");
    // Not our child: it is gone when it no longer runs (or is a zombie its parent will reap).
    if !stop_process(Pid::from_raw(pid as i32), || !shared::postgres_alive(pid)) {
        tracing::warn!(
            pid,
            "a PostgreSQL server left by a dead dbsandbox did not stop"
        );
    }
}

/// Removes `postmaster.pid` of a postmaster that was killed and is not reaped yet (a zombie,
/// which PostgreSQL takes for a running postmaster and refuses to start beside), once none of
/// its backends is left (they work in the data directory and exit when their postmaster dies).
fn clear_dead_postmaster_lock(data_dir: &Path) {
    let Some(pid) = shared::postmaster_pid(data_dir) else {
        return;
    };
    if shared::postgres_alive(pid) || !crate::account::is_zombie(pid) {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared::processes_working_in(data_dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::debug!(pid, "removing the lock file of a killed postmaster");
    let _ = std::fs::remove_file(data_dir.join("postmaster.pid"));
}

/// Whether nobody listens on this loopback port right now.
fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16, ServerError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ServerError::Io("finding a free loopback port".to_string(), e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| ServerError::Io("finding a free loopback port".to_string(), e))
}

pub(crate) fn unique_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
