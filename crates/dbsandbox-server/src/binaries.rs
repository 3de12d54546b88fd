//! Finding the PostgreSQL server binaries (`initdb`, `postgres`) on this machine.
//!
//! The search order is the one a user would try by hand: an explicit `--pg-bin DIR`, then `PATH`,
//! then `pg_config --bindir`, then the places distributions and Homebrew install them. Among the
//! distribution directories the newest major version wins.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ServerError;

/// The server binaries dbsandbox needs, and the version they report.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    /// Full version as `postgres --version` prints it, e.g. `15.18`.
    pub version: String,
    /// Major version, e.g. 15.
    pub major: u32,
}

impl PgBinaries {
    pub fn initdb(&self) -> PathBuf {
        self.bin_dir.join("initdb")
    }

    pub fn postgres(&self) -> PathBuf {
        self.bin_dir.join("postgres")
    }

    /// Looks for the binaries, in `explicit` only when it is given.
    pub fn discover(explicit: Option<&Path>) -> Result<PgBinaries, ServerError> {
        let candidates = match explicit {
            Some(dir) => vec![dir.to_path_buf()],
            None => candidate_dirs(),
        };
        let mut tried = Vec::new();
        for dir in candidates {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                // Resolve symlinks such as /usr/local/bin/postgres -> /usr/lib/postgresql/15/bin/postgres,
                // so that postgres finds its share directory relative to its real location.
                let real_dir = std::fs::canonicalize(dir.join("postgres"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or(dir.clone());
                let (version, major) = read_version(&real_dir.join("postgres"))?;
                return Ok(PgBinaries {
                    bin_dir: real_dir,
                    version,
                    major,
                });
            }
            tried.push(dir);
        }
        Err(ServerError::BinariesNotFound {
            tried: tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !text.is_empty() {
                dirs.push(PathBuf::from(text));
            }
        }
    }
    dirs.extend(versioned_dirs("/usr/lib/postgresql", "bin"));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    for prefix in ["/opt/homebrew", "/usr/local"] {
        dirs.extend(
            versioned_dirs(&format!("{prefix}/opt"), "bin")
                .into_iter()
                .filter(|d| {
                    d.parent()
                        .and_then(|p| p.file_name())
                        .is_some_and(|n| n.to_string_lossy().starts_with("postgresql"))
                }),
        );
    }
    dirs
}

/// `root/*/suffix`, newest version first (by the first number in the directory name).
fn versioned_dirs(root: &str, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let number = name
                .split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (number, e.path().join(suffix))
        })
        .collect();
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    found.into_iter().map(|(_, p)| p).collect()
}

fn read_version(postgres: &Path) -> Result<(String, u32), ServerError> {
    let out = Command::new(postgres)
        .arg("--version")
        .output()
        .map_err(|e| ServerError::Io(format!("running {} --version", postgres.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| {
        ServerError::Other(format!(
            "could not read the version from `{} --version`: {text:?}",
            postgres.display()
        ))
    })
}

/// Parses `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` into (`15.18`, 15).
fn parse_version(text: &str) -> Option<(String, u32)> {
    let version = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?
        .to_string();
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((version, major))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_and_plain_versions() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".to_string(), 15))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 17beta1"),
            Some(("17beta1".to_string(), 17))
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn explicit_dir_without_binaries_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = PgBinaries::discover(Some(dir.path())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("apt-get install postgresql"), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }
}
