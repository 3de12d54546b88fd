//! The initialised data directory a cluster starts from: made by initdb once per PostgreSQL
//! version and cache directory, then copied.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::account::{io_error, short_hash, ServerAccount};
use crate::embedded::{unique_suffix, SUPERUSER};
use crate::{PgBinaries, ServerError};

/// Bump when the initdb arguments or the cluster's access rules change, so old cached
/// directories are not reused (v2: passwords and a pg_hba.conf written by dbsandbox).
const INITDB_LAYOUT: &str = "v2";

/// Where the pristine initialised data directory for these binaries is cached.
pub(crate) fn initdb_cache_path(root: &Path, binaries: &PgBinaries) -> PathBuf {
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
pub(crate) fn ensure_initdb_cache(
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
pub(crate) fn initdb_into(
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
