//! What a sandbox client may reach beyond its own clone, through the proxy with a real driver
//! (psycopg), in both isolations: by default nothing (no programs, no server files, no roles,
//! no other key's backend or database); with `--superuser` what a superuser may.

mod common;
use common::text;

use std::path::Path;
use std::process::{Command, Output};

fn dbsandbox(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dbsandbox"));
    for (name, _) in std::env::vars() {
        if name.starts_with("DBSANDBOX_") {
            command.env_remove(name);
        }
    }
    command
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("DATABASE_URL")
        .env("DBSANDBOX_NO_DAEMON", "1");
    command
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
    std::fs::write(
        dir.path().join("migrations/0001_items.sql"),
        "create table items(id serial primary key, name text unique not null);\n\
         insert into items(name) values ('seed');",
    )
    .unwrap();
    dir
}

/// `dbsandbox run` of the reach script, expecting `refused` or `allowed`.
fn reach(cache: &Path, project: &Path, args: &[&str], expect: &str) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/privilege/sandbox_reach.py");
    dbsandbox(cache)
        .current_dir(project)
        .args(["run", "--port", "0", "--migrations", "migrations"])
        .args(args)
        .args(["--", "python3"])
        .arg(script)
        .arg(expect)
        .output()
        .unwrap()
}

#[test]
fn a_sandbox_client_reaches_nothing_beyond_its_clone_in_either_isolation() {
    let cache = tempfile::tempdir().unwrap();
    let project = project();
    for isolation in ["rollback", "database"] {
        let out = reach(
            cache.path(),
            project.path(),
            &["--isolation", isolation],
            "refused",
        );
        let all = text(&out);
        assert!(out.status.success(), "{isolation}: {all}");
        assert!(all.contains("checked 5"), "{isolation}: {all}");
        for what in [
            "COPY TO PROGRAM: refused 42501",
            "pg_read_file: refused 42501",
            "CREATE ROLE: refused 42501",
            "pg_terminate_backend of another key: refused 42501",
        ] {
            assert!(all.contains(what), "{isolation}: {what}: {all}");
        }
    }
}

#[test]
fn with_superuser_a_sandbox_client_is_the_superuser() {
    let cache = tempfile::tempdir().unwrap();
    let project = project();
    for isolation in ["rollback", "database"] {
        let out = reach(
            cache.path(),
            project.path(),
            &["--superuser", "--isolation", isolation],
            "allowed",
        );
        let all = text(&out);
        assert!(out.status.success(), "{isolation}: {all}");
        assert!(all.contains("checked 3"), "{isolation}: {all}");
    }
}
