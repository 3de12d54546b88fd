//! Where a project's daemon is found: `<cache>/daemons/<id>.json` (its address, pid and token),
//! guarded by `<id>.lock`, which the daemon holds locked for as long as it runs. Whoever takes
//! the lock is the one daemon of the project; a record whose lock is free is stale.
//!
//! The record holds the API token, so the directory is the owner's only (0700) and the record
//! readable by the owner only (0600).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What a running daemon publishes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub id: String,
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub api: String,
    /// The API scope's proxy, `127.0.0.1:PORT`.
    pub proxy: String,
    pub token: Option<String>,
    pub project: PathBuf,
    pub version: String,
    pub log: PathBuf,
}

/// The files of one project's daemon.
#[derive(Debug, Clone)]
pub struct DaemonFiles {
    pub id: String,
    pub lock: PathBuf,
    pub record: PathBuf,
    pub log: PathBuf,
}

impl DaemonFiles {
    pub fn new(cache_dir: &Path, id: &str) -> DaemonFiles {
        let dir = cache_dir.join("daemons");
        DaemonFiles {
            id: id.to_string(),
            lock: dir.join(format!("{id}.lock")),
            record: dir.join(format!("{id}.json")),
            log: dir.join(format!("{id}.log")),
        }
    }

    /// The record, when there is one and its daemon still holds the lock.
    pub fn read_live(&self) -> Option<DaemonRecord> {
        let text = std::fs::read(&self.record).ok()?;
        let record: DaemonRecord = serde_json::from_slice(&text).ok()?;
        if lock_is_free(&self.lock) {
            return None;
        }
        Some(record)
    }

    /// Publishes the record atomically (readers never see half of it), readable by the owner only.
    pub fn write(&self, record: &DaemonRecord) -> anyhow::Result<()> {
        if let Some(dir) = self.record.parent() {
            private_dir(dir)?;
        }
        let tmp = self
            .record
            .with_extension(format!("json.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| file.write_all(&serde_json::to_vec_pretty(record)?))
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.record)
            .with_context(|| format!("writing {}", self.record.display()))?;
        Ok(())
    }

    pub fn remove_record(&self) {
        let _ = std::fs::remove_file(&self.record);
    }
}

/// The daemon's exclusive hold on its project; released when dropped (or when the process dies).
pub struct DaemonLock {
    _held: nix::fcntl::Flock<File>,
}

impl DaemonLock {
    /// Takes the project's lock, or returns `None` when another daemon holds it.
    pub fn try_take(files: &DaemonFiles) -> anyhow::Result<Option<DaemonLock>> {
        if let Some(dir) = files.lock.parent() {
            private_dir(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&files.lock)
            .with_context(|| format!("opening {}", files.lock.display()))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(locked) => Ok(Some(DaemonLock { _held: locked })),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(e).with_context(|| format!("locking {}", files.lock.display())),
        }
    }
}

/// Creates `dir` (and its parents) if needed and makes it the owner's only: it holds tokens.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    Ok(())
}

fn lock_is_free(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return true;
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockSharedNonblock) {
        Ok(_released_on_drop) => true,
        Err(_) => false,
    }
}

/// Every live daemon under the cache directory.
pub fn live_daemons(cache_dir: &Path) -> Vec<DaemonRecord> {
    let Ok(entries) = std::fs::read_dir(cache_dir.join("daemons")) else {
        return Vec::new();
    };
    let mut records: Vec<DaemonRecord> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let id = name.strip_suffix(".json")?.to_string();
            DaemonFiles::new(cache_dir, &id).read_live()
        })
        .collect();
    records.sort_by(|a, b| a.project.cmp(&b.project));
    records
}

/// The ids of daemons that hold their lock but have published no record yet: they are starting.
pub fn starting_daemons(cache_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(cache_dir.join("daemons")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let id = name.strip_suffix(".lock")?.to_string();
            let files = DaemonFiles::new(cache_dir, &id);
            (!lock_is_free(&files.lock) && files.read_live().is_none()).then_some(id)
        })
        .collect()
}

/// Removes the files of `run --no-daemon` processes that died (`<project>.run-<pid>.*`): their
/// lock is free, and no other process ever takes a dead pid's id. Returns the ids removed.
pub fn reap_dead_run_records(cache_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(cache_dir.join("daemons")) else {
        return Vec::new();
    };
    // A run that failed to start leaves a lock without a record: its files go too.
    let ids: std::collections::BTreeSet<String> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            let id = name
                .strip_suffix(".json")
                .or_else(|| name.strip_suffix(".lock"))?;
            Some(id.to_string())
        })
        .collect();
    let mut reaped = Vec::new();
    for id in &ids {
        let Some((_, pid)) = id.rsplit_once(".run-") else {
            continue;
        };
        if pid.parse::<u32>().is_err() {
            continue;
        }
        let files = DaemonFiles::new(cache_dir, id);
        // Holding the lock while removing: a run that is only starting up is not reaped.
        let Ok(Some(_held)) = DaemonLock::try_take(&files) else {
            continue;
        };
        files.remove_record();
        let _ = std::fs::remove_file(&files.log);
        let _ = std::fs::remove_file(&files.lock);
        reaped.push(id.clone());
    }
    reaped
}

/// A random token for a daemon's API.
pub fn new_token() -> String {
    let mut bytes = [0u8; 24];
    if let Ok(mut f) = File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_a_record_without_holder_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let files = DaemonFiles::new(dir.path(), "p1");
        let record = DaemonRecord {
            id: "p1".into(),
            pid: std::process::id(),
            api: "http://127.0.0.1:1".into(),
            proxy: "127.0.0.1:2".into(),
            token: None,
            project: dir.path().to_path_buf(),
            version: "0".into(),
            log: files.log.clone(),
        };
        let held = DaemonLock::try_take(&files)
            .unwrap()
            .expect("first taker wins");
        assert!(
            DaemonLock::try_take(&files).unwrap().is_none(),
            "second must lose"
        );
        files.write(&record).unwrap();
        assert_eq!(files.read_live().unwrap().api, record.api);
        assert_eq!(live_daemons(dir.path()).len(), 1);
        drop(held);
        assert!(
            files.read_live().is_none(),
            "record without a lock holder is stale"
        );
        assert!(DaemonLock::try_take(&files).unwrap().is_some());
        assert_ne!(new_token(), new_token());
    }

    fn record_of(files: &DaemonFiles, dir: &Path) -> DaemonRecord {
        DaemonRecord {
            id: files.id.clone(),
            pid: 1,
            api: "http://127.0.0.1:1".into(),
            proxy: "127.0.0.1:2".into(),
            token: Some(new_token()),
            project: dir.to_path_buf(),
            version: "0".into(),
            log: files.log.clone(),
        }
    }

    #[test]
    fn only_dead_runs_records_are_reaped_and_records_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let dead = DaemonFiles::new(dir.path(), "p1.run-4242");
        let live = DaemonFiles::new(dir.path(), "p1.run-4343");
        let project = DaemonFiles::new(dir.path(), "p1");
        let _held = DaemonLock::try_take(&live).unwrap().unwrap();
        let failed = DaemonFiles::new(dir.path(), "p1.run-4444");
        drop(DaemonLock::try_take(&failed).unwrap().unwrap()); // a lock, never a record
        for files in [&dead, &live, &project] {
            files.write(&record_of(files, dir.path())).unwrap();
        }
        let mode = std::fs::metadata(&dead.record)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let mode = std::fs::metadata(dir.path().join("daemons"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");

        assert_eq!(
            reap_dead_run_records(dir.path()),
            ["p1.run-4242", "p1.run-4444"]
        );
        assert!(!dead.record.exists() && !dead.lock.exists() && !failed.lock.exists());
        assert!(live.record.exists(), "a live run keeps its record");
        assert!(
            project.record.exists(),
            "a project daemon's record is its next daemon's"
        );
    }

    #[test]
    fn a_held_lock_without_a_record_is_a_starting_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let files = DaemonFiles::new(dir.path(), "p2");
        assert!(starting_daemons(dir.path()).is_empty());
        let _held = DaemonLock::try_take(&files).unwrap().unwrap();
        assert_eq!(starting_daemons(dir.path()), ["p2"]);
        files.write(&record_of(&files, dir.path())).unwrap();
        assert!(starting_daemons(dir.path()).is_empty());
    }
}
