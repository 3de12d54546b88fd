//! The embedded server: initdb cache, the shared and private clusters, start, readiness, stop, reclaim.
//!
//! State lives under the state root (see [`crate::state_root`]):
//!
//! ```text
//! initdb/pg15-<hash>/       a freshly initialised data directory, copied to make new clusters
//! servers/pg15/             the shared cluster: data/, run/ (socket), postgres.log, server.json,
//!                           server.lock (flock held by the dbsandbox that runs it)
//! private/<pid>-<ticks>/    throwaway clusters, removed at stop, or by the next start if their
//!                           owner died
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::account::{copy_tree, io_error, short_hash, ServerAccount};
use crate::{describe_pg_error, Endpoint, PgBinaries, ProcessId, ServerConfig, ServerError};

/// The role dbsandbox creates as the embedded server's superuser.
const SUPERUSER: &str = "dbsandbox";

/// Bump when the initdb arguments change, so old cached directories are not reused.
const INITDB_LAYOUT: &str = "v1";

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
];

/// What a running embedded server records about itself in `server.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServerRecord {
    pub owner: ProcessId,
    pub postgres_pid: u32,
    pub private: bool,
    pub endpoint: Endpoint,
    pub data_dir: PathBuf,
}

/// A PostgreSQL server dbsandbox started and will stop.
pub struct EmbeddedServer {
    endpoint: Endpoint,
    child: Option<Child>,
    cluster_dir: PathBuf,
    log_path: PathBuf,
    private: bool,
    binaries: PgBinaries,
    /// Held for the server's lifetime: tells other dbsandbox processes the shared cluster is taken.
    _lock: Option<Flock<File>>,
}

impl EmbeddedServer {
    /// Prepares a cluster and launches `postgres`; call [`EmbeddedServer::wait_ready`] next.
    pub fn start(config: &ServerConfig) -> Result<EmbeddedServer, ServerError> {
        let binaries = PgBinaries::discover(config.pg_bin.as_deref())?;
        let account = ServerAccount::choose(config.run_as.as_deref())?;
        let root = crate::state_root(config.cache_dir.as_deref(), &account);
        account.create_private_dir(&root)?;
        reclaim_orphans(&root);

        let shared_dir = root.join("servers").join(format!("pg{}", binaries.major));
        let shared = if config.private {
            None
        } else {
            account.create_private_dir(&shared_dir)?;
            take_lock(&shared_dir.join("server.lock"))?
        };
        let (cluster_dir, private, lock) = match shared {
            Some(lock) => {
                let data = shared_dir.join("data");
                stop_stale_postmaster(&data);
                if !data.join("PG_VERSION").exists() {
                    let staging = shared_dir.join(format!("data.tmp-{}", std::process::id()));
                    let _ = std::fs::remove_dir_all(&staging);
                    // A copy of the cached initdb when there is one; otherwise initdb straight
                    // here (a first start need not pay for initdb and a copy).
                    let cached = initdb_cache_path(&root, &binaries);
                    if cached.join("PG_VERSION").exists() {
                        copy_tree(&cached, &staging, &account)?;
                    } else {
                        initdb_into(&binaries, &account, &staging)?;
                    }
                    let _ = std::fs::remove_dir_all(&data);
                    std::fs::rename(&staging, &data)
                        .map_err(|e| io_error("renaming", &staging, e))?;
                }
                (shared_dir, false, Some(lock))
            }
            None => {
                if !config.private {
                    tracing::info!(
                        "the shared cluster is in use by another dbsandbox; starting a private one"
                    );
                }
                let me = ProcessId::current();
                let dir = root.join("private").join(format!(
                    "{}-{}-{}",
                    me.pid,
                    me.start_ticks,
                    unique_suffix()
                ));
                account.create_private_dir(&dir)?;
                let pristine = ensure_initdb_cache(&root, &binaries, &account)?;
                copy_tree(&pristine, &dir.join("data"), &account)?;
                (dir, true, None)
            }
        };

        let data_dir = cluster_dir.join("data");
        let run_dir = cluster_dir.join("run");
        account.create_private_dir(&run_dir)?;
        let port = free_port()?;
        // Unix socket paths are limited to 107 bytes; fall back to TCP only when ours would not fit.
        let socket_dir =
            (run_dir.join(format!(".s.PGSQL.{port}")).as_os_str().len() < 100).then_some(run_dir);
        let log_path = cluster_dir.join("postgres.log");
        let log = File::create(&log_path).map_err(|e| io_error("creating", &log_path, e))?;
        account.chown(&log_path)?;

        let mut command = Command::new(binaries.postgres());
        command
            .arg("-D")
            .arg(&data_dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("port={port}")])
            .args([
                "-c",
                &format!(
                    "unix_socket_directories={}",
                    socket_dir
                        .as_ref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                ),
            ]);
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
        account.apply(&mut command);
        // Its own process group: a Ctrl-C in the terminal reaches dbsandbox, which stops the
        // server after the clones are cleaned up, instead of killing it mid-cleanup.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .map_err(|e| io_error("starting", &binaries.postgres(), e))?;

        let endpoint = Endpoint {
            host: "127.0.0.1".to_string(),
            port,
            user: SUPERUSER.to_string(),
            password: None,
            admin_database: "postgres".to_string(),
            socket_dir,
            version_num: 0,
        };
        tracing::debug!(port, dir = %cluster_dir.display(), private, "postgres launched");
        Ok(EmbeddedServer {
            endpoint,
            child: Some(child),
            cluster_dir,
            log_path,
            private,
            binaries,
            _lock: lock,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub fn cluster_dir(&self) -> &Path {
        &self.cluster_dir
    }

    pub fn is_private(&self) -> bool {
        self.private
    }

    pub fn postgres_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn describe(&self) -> String {
        format!(
            "embedded PostgreSQL {} on 127.0.0.1:{} ({}{})",
            self.binaries.version,
            self.endpoint.port,
            self.cluster_dir.display(),
            if self.private { ", private" } else { "" }
        )
    }

    /// Waits until the server answers queries (not merely accepts connections: a server still
    /// starting answers 57P03), or fails with the end of its log when it died.
    pub async fn wait_ready(&mut self) -> Result<(), ServerError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut delay = Duration::from_millis(5);
        let mut last_error;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
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

    /// Records where the server is, for `dbsandbox status` and for reclaiming it after a crash.
    fn write_record(&self) {
        let record = ServerRecord {
            owner: ProcessId::current(),
            postgres_pid: self.postgres_pid().unwrap_or(0),
            private: self.private,
            endpoint: self.endpoint.clone(),
            data_dir: self.cluster_dir.join("data"),
        };
        let path = self.cluster_dir.join("server.json");
        if let Err(e) = std::fs::write(
            &path,
            serde_json::to_vec_pretty(&record).unwrap_or_default(),
        ) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    fn start_error(&self, reason: String) -> ServerError {
        ServerError::Start {
            reason,
            log: self.log_path.display().to_string(),
            tail: log_tail(&self.log_path, 20),
        }
    }

    /// Stops the server (fast shutdown, then harder), and removes a private cluster.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown();
        Ok(())
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let stopped = stop_process(pid, || !matches!(child.try_wait(), Ok(None)));
            if !stopped {
                tracing::warn!(pid = child.id(), "postgres did not stop");
            }
        }
        let _ = std::fs::remove_file(self.cluster_dir.join("server.json"));
        if self.private {
            let _ = std::fs::remove_dir_all(&self.cluster_dir);
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.shutdown();
    }
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

/// Takes the shared cluster's lock without waiting; `None` when another live process holds it.
fn take_lock(path: &Path) -> Result<Option<Flock<File>>, ServerError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io_error("opening", path, e))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(io_error("locking", path, errno.into())),
    }
}

/// Where the pristine initialised data directory for these binaries is cached.
fn initdb_cache_path(root: &Path, binaries: &PgBinaries) -> PathBuf {
    let key = short_hash(&format!(
        "{INITDB_LAYOUT}|{}|{}",
        binaries.bin_dir.display(),
        binaries.version
    ));
    root.join("initdb")
        .join(format!("pg{}-{key}", binaries.major))
}

/// Makes sure a pristine initialised data directory exists for these binaries; returns its path.
/// Private clusters are copies of it.
fn ensure_initdb_cache(
    root: &Path,
    binaries: &PgBinaries,
    account: &ServerAccount,
) -> Result<PathBuf, ServerError> {
    let cached = initdb_cache_path(root, binaries);
    if cached.join("PG_VERSION").exists() {
        return Ok(cached);
    }
    let parent = root.join("initdb");
    account.create_private_dir(&parent)?;
    let staging = parent.join(format!("tmp-{}-{}", std::process::id(), unique_suffix()));
    initdb_into(binaries, account, &staging)?;
    // Another process may have won the race; either copy is as good.
    if std::fs::rename(&staging, &cached).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok(cached)
}

/// Runs initdb into `dir` (which must not exist) with dbsandbox's settings, as `account`.
fn initdb_into(
    binaries: &PgBinaries,
    account: &ServerAccount,
    dir: &Path,
) -> Result<(), ServerError> {
    let started = Instant::now();
    tracing::info!(
        "initialising a PostgreSQL {} data directory (once per version and cache)",
        binaries.version
    );
    let mut command = Command::new(binaries.initdb());
    command
        .arg("-D")
        .arg(dir)
        .args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    account.apply(&mut command);
    let output = command
        .output()
        .map_err(|e| io_error("running", &binaries.initdb(), e))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(dir);
        return Err(ServerError::Initdb {
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    tracing::debug!(elapsed = ?started.elapsed(), "initdb done");
    Ok(())
}

/// The shared embedded cluster a live dbsandbox is running for this configuration, if any
/// (`status` and `gc` attach to it instead of starting their own).
pub fn find_running_shared(config: &ServerConfig) -> Option<ServerRecord> {
    let account = ServerAccount::choose(config.run_as.as_deref()).ok()?;
    let root = crate::state_root(config.cache_dir.as_deref(), &account);
    let servers = std::fs::read_dir(root.join("servers")).ok()?;
    servers
        .flatten()
        .filter_map(|dir| std::fs::read(dir.path().join("server.json")).ok())
        .filter_map(|bytes| serde_json::from_slice::<ServerRecord>(&bytes).ok())
        .find(|record| record.owner.is_alive() && record.endpoint.version_num > 0)
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
    let Ok(text) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else {
        return;
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
    else {
        return;
    };
    let is_postgres = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() == "postgres")
        .unwrap_or(false);
    if !is_postgres {
        return;
    }
    tracing::info!(pid, dir = %data_dir.display(), "stopping a PostgreSQL server left running by a dead dbsandbox");
    let pid = Pid::from_raw(pid);
    // Not our child: it is gone when signalling it fails.
    if !stop_process(pid, || kill(pid, None).is_err()) {
        tracing::warn!(%pid, "a PostgreSQL server left by a dead dbsandbox did not stop");
    }
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

fn unique_suffix() -> u32 {
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
