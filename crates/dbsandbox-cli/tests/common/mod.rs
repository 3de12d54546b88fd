//! Helpers the CLI and daemon end-to-end tests share.
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dbsandbox_control::ApiClient;
use serde_json::Value;

/// An output's status, stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// True while the process exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// SIGKILLs a process and then its direct children (a killed `dbsandbox run` leaves its test
/// command behind), without touching other tests' processes.
pub fn kill_with_children(child: &mut std::process::Child) {
    kill_with_children_but(child, &[]);
}

/// The direct children of process `pid` (of any of its threads).
pub fn children_of(pid: u32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|list| {
                    list.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<i32>>()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILL to `child` and its children, except the pids in `keep` (a server it started, which
/// a `kill -9` of dbsandbox alone would leave running).
pub fn kill_with_children_but(child: &mut std::process::Child, keep: &[i32]) {
    let children = children_of(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    for pid in children.into_iter().filter(|p| !keep.contains(p)) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// A temporary project (its `dbsandbox.toml` and migrations) with its own cache directory,
/// whose daemons are stopped when the test ends, pass or fail.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub cache: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
        std::fs::write(
            dir.path().join("dbsandbox.toml"),
            "migrations = \"migrations\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("migrations/0001_items.sql"),
            "create table items(id serial primary key, name text unique not null);\n\
             insert into items(name) values ('seed');",
        )
        .unwrap();
        Project {
            dir,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The binary, in the project directory, with this project's cache and no inherited
    /// `DBSANDBOX_*` settings.
    pub fn dbsandbox(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbsandbox"));
        for (name, _) in std::env::vars() {
            if name.starts_with("DBSANDBOX_") {
                command.env_remove(name);
            }
        }
        command
            .current_dir(self.path())
            .env_remove("DATABASE_URL")
            .env("DBSANDBOX_CACHE_DIR", self.cache.path());
        command
    }

    /// `serve --detach ARGS`: its JSON line.
    pub fn detach_with(&self, args: &[&str]) -> Value {
        let out = self
            .dbsandbox()
            .args(["serve", "--detach"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }

    /// `serve --detach`: its JSON line.
    pub fn detach(&self) -> Value {
        self.detach_with(&[])
    }

    /// The daemon records (`*.json`) under the cache directory.
    pub fn records(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.cache.path().join("daemons"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.dbsandbox().args(["stop", "--all"]).output();
    }
}

/// A client for the daemon `serve --detach` described, with its token.
pub fn client(detached: &Value) -> ApiClient {
    ApiClient::new(
        detached["api"].as_str().unwrap(),
        detached["token"].as_str().map(str::to_string),
    )
}

/// Connects to `url` with tokio-postgres, driving the connection in the background.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Rows in the `items` table of the test migrations (1 in a fresh clone).
pub async fn items(url: &str) -> i64 {
    connect(url)
        .await
        .query_one("select count(*) from items", &[])
        .await
        .unwrap()
        .get(0)
}
