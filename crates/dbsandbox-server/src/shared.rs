//! The shared cluster's lifetime across processes: one embedded server per PostgreSQL version and
//! cache directory, used by every project's daemon at once.
//!
//! Two lock files under `servers/pgNN/`:
//! - `start.lock`, held exclusively while a process decides whether to start, attach to, restart
//!   or stop the server, so those decisions never race;
//! - `server.lock`, held *shared* by every process that uses the server, for as long as it uses
//!   it. The process leaving last (it gets the lock exclusively) stops the server. A process that
//!   dies drops its share with it, so a crash never keeps a server alive on its account.
//!
//! `server.json` records where the running server listens, for the processes that attach to it.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::account::io_error;
use crate::{Endpoint, ProcessId, ServerError};

/// What a running embedded server records about itself in `server.json` (mode 0600, no password).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServerRecord {
    /// The process that started it (it may have left since).
    pub owner: ProcessId,
    pub postgres_pid: u32,
    pub private: bool,
    pub endpoint: Endpoint,
    pub data_dir: PathBuf,
}

pub(crate) fn record_path(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join("server.json")
}

pub(crate) fn read_record(cluster_dir: &Path) -> Option<ServerRecord> {
    let bytes = std::fs::read(record_path(cluster_dir)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub(crate) fn write_record(cluster_dir: &Path, record: &ServerRecord) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut record = record.clone();
    record.endpoint.password = None;
    if let Some(roles) = record.endpoint.sandbox.as_mut() {
        roles.owner_password = None;
    }
    let path = record_path(cluster_dir);
    let written = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(&serde_json::to_vec_pretty(&record).unwrap_or_default()));
    if let Err(e) = written {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}

fn open_lock_file(path: &Path) -> Result<File, ServerError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io_error("opening", path, e))
}

/// Waits for the start lock of the shared cluster in `dir`.
pub(crate) fn start_lock(dir: &Path) -> Result<Flock<File>, ServerError> {
    let path = dir.join("start.lock");
    Flock::lock(open_lock_file(&path)?, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io_error("locking", &path, errno.into()))
}

/// A share of the cluster in `dir`; `None` when someone holds it exclusively (a dbsandbox from
/// before shared servers, which runs it alone, or the last user stopping it).
pub(crate) fn take_share(dir: &Path) -> Result<Option<Flock<File>>, ServerError> {
    try_lock(&dir.join("server.lock"), FlockArg::LockSharedNonblock)
}

/// The whole cluster in `dir`, when nobody else uses it.
pub(crate) fn take_sole_use(dir: &Path) -> Result<Option<Flock<File>>, ServerError> {
    try_lock(&dir.join("server.lock"), FlockArg::LockExclusiveNonblock)
}

fn try_lock(path: &Path, arg: FlockArg) -> Result<Option<Flock<File>>, ServerError> {
    match Flock::lock(open_lock_file(path)?, arg) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(io_error("locking", path, errno.into())),
    }
}

/// Whether `pid` is a running (not zombie) `postgres` process.
pub(crate) fn postgres_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let name = &stat[open + 1..close];
    let state = stat[close + 1..].split_whitespace().next().unwrap_or("");
    name == "postgres" && state != "Z" && state != "X"
}

/// The postmaster's pid from `data/postmaster.pid`.
pub(crate) fn postmaster_pid(data_dir: &Path) -> Option<u32> {
    postmaster_pid_in(&data_dir.join("postmaster.pid"))
}

/// The pid on the first line of a PostgreSQL lock file (`postmaster.pid`, `.s.PGSQL.N.lock`).
pub(crate) fn postmaster_pid_in(lock_file: &Path) -> Option<u32> {
    std::fs::read_to_string(lock_file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether a live (not zombie) process has `dir` as its working directory: PostgreSQL's
/// processes all work in their data directory.
pub(crate) fn processes_working_in(dir: &Path) -> bool {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir))
        .any(|pid| !crate::account::is_zombie(pid))
}
