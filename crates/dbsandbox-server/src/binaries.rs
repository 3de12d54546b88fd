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
            install: install_hint(),
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
    dirs.extend(distribution_dirs(Path::new("/")));
    dirs
}

/// Where distributions, Homebrew and Postgres.app put the server binaries, under `root` (`/`
/// but in tests), newest major version first within each layout.
fn distribution_dirs(root: &Path) -> Vec<PathBuf> {
    let at = |relative: &str| root.join(relative);
    let mut dirs = Vec::new();
    // Debian, Ubuntu: /usr/lib/postgresql/16/bin.
    dirs.extend(versioned_dirs(&at("usr/lib/postgresql"), "", "bin"));
    // Fedora, RHEL, Rocky with the PGDG packages: /usr/pgsql-16/bin.
    dirs.extend(versioned_dirs(&at("usr"), "pgsql-", "bin"));
    // Alpine: /usr/libexec/postgresql16 (postgresql16 package).
    dirs.extend(versioned_dirs(&at("usr/libexec"), "postgresql", ""));
    // Fedora's own packages (and Arch): the binaries are in /usr/bin, usually already on PATH.
    dirs.push(at("usr/bin"));
    dirs.push(at("usr/local/pgsql/bin"));
    // Homebrew (Apple silicon, then Intel): /opt/homebrew/opt/postgresql@17/bin.
    for prefix in ["opt/homebrew/opt", "usr/local/opt"] {
        dirs.extend(versioned_dirs(&at(prefix), "postgresql", "bin"));
    }
    // Postgres.app: /Applications/Postgres.app/Contents/Versions/17/bin (and `latest`).
    dirs.extend(versioned_dirs(
        &at("Applications/Postgres.app/Contents/Versions"),
        "",
        "bin",
    ));
    dirs
}

/// How to install the server binaries on the platform this runs on, for the not-found error.
pub fn install_hint() -> String {
    if cfg!(target_os = "macos") {
        return "`brew install postgresql@17` (Homebrew) or Postgres.app (https://postgresapp.com)"
            .into();
    }
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    install_hint_for(&os_release).into()
}

/// The install command for the distribution `/etc/os-release` (its `ID` and `ID_LIKE`) names.
fn install_hint_for(os_release: &str) -> &'static str {
    let ids: Vec<String> = os_release
        .lines()
        .filter_map(|line| {
            line.strip_prefix("ID=")
                .or_else(|| line.strip_prefix("ID_LIKE="))
        })
        .flat_map(|value| {
            value
                .trim_matches('"')
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>()
        })
        .collect();
    let is = |name: &str| ids.iter().any(|id| id == name);
    if is("debian") || is("ubuntu") {
        "`apt-get install postgresql` (Debian/Ubuntu)"
    } else if is("fedora") || is("rhel") || is("centos") {
        "`dnf install postgresql-server` (Fedora/RHEL)"
    } else if is("alpine") {
        "`apk add postgresql17` (Alpine)"
    } else if is("arch") {
        "`pacman -S postgresql` (Arch)"
    } else if is("suse") || is("opensuse") {
        "`zypper install postgresql-server` (openSUSE)"
    } else {
        "your distribution's PostgreSQL server package, e.g. `apt-get install postgresql` \
         (Debian/Ubuntu), `dnf install postgresql-server` (Fedora/RHEL), `apk add postgresql17` \
         (Alpine), `brew install postgresql@17` (macOS)"
    }
}

/// `root/<prefix>*/suffix`, newest version first (by the first number after the prefix; a
/// directory without one, such as Postgres.app's `latest`, comes last).
fn versioned_dirs(root: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let rest = name.strip_prefix(prefix)?;
            let number = rest
                .split(|c: char| !c.is_ascii_digit())
                .find(|s| !s.is_empty())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let dir = e.path();
            Some((
                number,
                if suffix.is_empty() {
                    dir
                } else {
                    dir.join(suffix)
                },
            ))
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
        assert!(text.contains(&install_hint()), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }

    /// Touches `initdb` and `postgres` in `root/relative`.
    fn fake_binaries(root: &Path, relative: &str) -> PathBuf {
        let dir = root.join(relative);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["initdb", "postgres"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        dir
    }

    #[test]
    fn finds_every_distribution_layout_newest_first() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let layouts = [
            "usr/lib/postgresql/16/bin",
            "usr/lib/postgresql/17/bin",
            "usr/pgsql-16/bin",
            "usr/libexec/postgresql16",
            "opt/homebrew/opt/postgresql@17/bin",
            "usr/local/opt/postgresql@16/bin",
            "Applications/Postgres.app/Contents/Versions/17/bin",
            "Applications/Postgres.app/Contents/Versions/latest/bin",
        ];
        for layout in layouts {
            fake_binaries(root, layout);
        }
        // Not PostgreSQL: another Homebrew formula, another /usr entry.
        fake_binaries(root, "opt/homebrew/opt/redis/bin");
        fake_binaries(root, "usr/share/bin");
        let found = distribution_dirs(root);
        for layout in layouts.iter().chain(&["usr/bin"]) {
            assert!(
                found.contains(&root.join(layout)),
                "{layout} not in {found:?}"
            );
        }
        for other in ["opt/homebrew/opt/redis/bin", "usr/share/bin"] {
            assert!(!found.contains(&root.join(other)), "{other} in {found:?}");
        }
        let position = |layout: &str| found.iter().position(|d| d == &root.join(layout)).unwrap();
        assert!(position("usr/lib/postgresql/17/bin") < position("usr/lib/postgresql/16/bin"));
        assert!(
            position("Applications/Postgres.app/Contents/Versions/17/bin")
                < position("Applications/Postgres.app/Contents/Versions/latest/bin")
        );
    }

    #[test]
    fn install_hint_names_the_distribution_package_manager() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12\"\nID=debian\n";
        assert!(install_hint_for(debian).contains("apt-get install postgresql"));
        let ubuntu = "ID=ubuntu\nID_LIKE=debian\n";
        assert!(install_hint_for(ubuntu).contains("apt-get"));
        let rocky = "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n";
        assert!(install_hint_for(rocky).contains("dnf install postgresql-server"));
        assert!(install_hint_for("ID=alpine\n").contains("apk add postgresql"));
        let unknown = install_hint_for("ID=plan9\n");
        assert!(
            unknown.contains("apt-get") && unknown.contains("brew"),
            "{unknown}"
        );
    }
}
