//! Which operating-system user runs PostgreSQL, and file-system helpers that respect it.
//!
//! PostgreSQL refuses to run as root. When dbsandbox itself runs as root (CI, containers) it runs
//! the server as an unprivileged user instead: `--run-as USER`, or `postgres` when that account
//! exists. Every directory the server touches must then be reachable by that user, which decides
//! where dbsandbox keeps its state.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

use crate::ServerError;

/// The account PostgreSQL runs under.
#[derive(Debug, Clone)]
pub struct ServerAccount {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// True when it differs from the user running dbsandbox (so children must switch to it).
    pub switch_user: bool,
}

impl ServerAccount {
    /// Chooses the account: the current user unless it is root; as root, `run_as` or `postgres`.
    pub fn choose(run_as: Option<&str>) -> Result<ServerAccount, ServerError> {
        let me = Uid::effective();
        if !me.is_root() {
            let user = User::from_uid(me).ok().flatten();
            let name = user
                .as_ref()
                .map(|u| u.name.clone())
                .unwrap_or_else(|| me.to_string());
            if let Some(wanted) = run_as {
                if wanted != name {
                    return Err(ServerError::Other(format!(
                        "--run-as {wanted}: switching users needs root; dbsandbox runs as {name} and will run PostgreSQL as {name}"
                    )));
                }
            }
            return Ok(ServerAccount {
                name,
                uid: me.as_raw(),
                gid: Gid::effective().as_raw(),
                switch_user: false,
            });
        }
        let wanted = run_as.unwrap_or("postgres");
        match User::from_name(wanted) {
            Ok(Some(user)) if user.uid.is_root() => Err(ServerError::RunAs(format!(
                "--run-as {wanted} is root, and PostgreSQL refuses to run as root"
            ))),
            Ok(Some(user)) => Ok(ServerAccount {
                name: user.name,
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
                switch_user: true,
            }),
            _ if run_as.is_some() => Err(ServerError::RunAs(format!("no such user: {wanted}"))),
            _ => Err(ServerError::RunAs(
                "dbsandbox runs as root and there is no `postgres` user".to_string(),
            )),
        }
    }

    /// Whether this account can reach (traverse) `dir` and everything above it.
    pub fn can_reach(&self, dir: &Path) -> bool {
        if !self.switch_user {
            return true;
        }
        let mut current = Some(dir);
        while let Some(path) = current {
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode();
                let ok = if meta.uid() == self.uid {
                    mode & 0o100 != 0
                } else if meta.gid() == self.gid {
                    mode & 0o010 != 0
                } else {
                    mode & 0o001 != 0
                };
                if !ok {
                    return false;
                }
            }
            current = path.parent();
        }
        true
    }

    /// Creates `dir` (and parents) owned by this account, mode 0700.
    pub fn create_private_dir(&self, dir: &Path) -> Result<(), ServerError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("creating", dir, e))?;
        self.chown(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error("setting permissions of", dir, e))
    }

    pub fn chown(&self, path: &Path) -> Result<(), ServerError> {
        if self.switch_user {
            std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
                .map_err(|e| io_error("changing the owner of", path, e))?;
        }
        Ok(())
    }

    /// Makes `command` run as this account.
    pub fn apply(&self, command: &mut std::process::Command) {
        if self.switch_user {
            use std::os::unix::process::CommandExt;
            command.uid(self.uid).gid(self.gid);
            if let Ok(Some(user)) = User::from_uid(Uid::from_raw(self.uid)) {
                command.env("HOME", user.dir).env("USER", &self.name);
            }
        }
    }
}

pub(crate) fn io_error(doing: &str, path: &Path, e: std::io::Error) -> ServerError {
    ServerError::Io(format!("{doing} {}", path.display()), e)
}

/// Copies a directory tree, preserving permissions, and gives every copy to `owner`.
pub(crate) fn copy_tree(src: &Path, dst: &Path, owner: &ServerAccount) -> Result<(), ServerError> {
    std::fs::create_dir_all(dst).map_err(|e| io_error("creating", dst, e))?;
    let meta = std::fs::metadata(src).map_err(|e| io_error("reading", src, e))?;
    std::fs::set_permissions(dst, meta.permissions())
        .map_err(|e| io_error("setting permissions of", dst, e))?;
    owner.chown(dst)?;
    for entry in std::fs::read_dir(src).map_err(|e| io_error("listing", src, e))? {
        let entry = entry.map_err(|e| io_error("listing", src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| io_error("reading", &from, e))?;
        if kind.is_dir() {
            copy_tree(&from, &to, owner)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&from).map_err(|e| io_error("reading", &from, e))?;
            std::os::unix::fs::symlink(target, &to).map_err(|e| io_error("creating", &to, e))?;
        } else {
            std::fs::copy(&from, &to).map_err(|e| io_error("copying", &from, e))?;
            owner.chown(&to)?;
        }
    }
    Ok(())
}

/// Where dbsandbox keeps its state: the cache directory when the server account can reach it,
/// otherwise a directory under /var/tmp owned by that account (root's home is usually closed to it).
pub fn state_root(cache_dir: Option<&Path>, account: &ServerAccount) -> PathBuf {
    let preferred = cache_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(default_cache_dir);
    if account.can_reach(preferred.parent().unwrap_or(Path::new("/"))) {
        return preferred;
    }
    // Keyed by the preferred path, so two cache directories never share server state.
    let fallback = PathBuf::from(format!(
        "/var/tmp/dbsandbox-{}/{}",
        account.name,
        short_hash(&preferred.display().to_string())
    ));
    tracing::info!(
        preferred = %preferred.display(),
        fallback = %fallback.display(),
        "the cache directory is not reachable by user {}; keeping server state in the fallback",
        account.name
    );
    fallback
}

/// A short stable hash for directory names (FNV-1a; not security relevant).
pub fn short_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{:012x}", hash & 0xffff_ffff_ffff)
}

/// `$XDG_CACHE_HOME/dbsandbox`, else `~/.cache/dbsandbox`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("dbsandbox");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("dbsandbox")
}

/// A process identity that survives pid reuse: the pid plus its start time in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start_ticks: u64,
}

impl ProcessId {
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId {
            pid,
            start_ticks: process_start_ticks(pid).unwrap_or(0),
        }
    }

    /// Whether that very process is still running (a zombie, killed and not yet reaped, is not).
    pub fn is_alive(&self) -> bool {
        process_start_ticks(self.pid)
            .is_some_and(|t| self.start_ticks == 0 || t == self.start_ticks)
            && !is_zombie(self.pid)
    }
}

/// Whether `pid` has exited and waits for its parent to reap it.
pub(crate) fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
            Some(state == "Z" || state == "X")
        })
        .unwrap_or(false)
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive_and_a_made_up_one_is_not() {
        let me = ProcessId::current();
        assert!(me.start_ticks > 0);
        assert!(me.is_alive());
        let reused = ProcessId {
            pid: me.pid,
            start_ticks: me.start_ticks + 1,
        };
        assert!(
            !reused.is_alive(),
            "a different start time means a different process"
        );
    }

    #[test]
    fn unknown_run_as_user_is_named_in_the_error() {
        if !Uid::effective().is_root() {
            return;
        }
        let err = ServerAccount::choose(Some("no_such_user_dbsandbox")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no_such_user_dbsandbox"), "{text}");
        assert!(text.contains("--run-as"), "{text}");
    }
}
