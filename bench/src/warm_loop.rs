//! Issue 4, the warm loop: with the project's daemon running, `dbsandbox run -- true` on an
//! unchanged project (goal ≤ 150 ms wall), against baselines measured in the same run: the same
//! command with `--no-daemon` (server, template check and pool started inside the process, on a
//! warm cache) and a plain `true` spawn (the floor: process creation alone).
//!
//! The scenario uses its own project (a temporary directory with a `dbsandbox.toml` naming a copy
//! of schema40) and its own cache directory, and stops the daemon it started (`dbsandbox stop`),
//! also when a step fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};

use crate::{dbsandbox, median, percentile, schema40_migrations};

/// The goal of issue 4, in milliseconds of wall time.
const GOAL_MS: f64 = 150.0;

/// A temporary project on schema40 with its own cache directory.
struct Project {
    dir: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Project {
    fn new() -> anyhow::Result<Project> {
        let dir = tempfile::tempdir()?;
        schema40_migrations(dir.path())?;
        std::fs::write(
            dir.path().join("dbsandbox.toml"),
            "migrations = \"migrations\"\n",
        )?;
        Ok(Project {
            dir,
            cache: tempfile::tempdir()?,
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `dbsandbox --cache-dir <ours> ARGS…` in the project directory, without inherited
    /// `DBSANDBOX_*` settings that would point it elsewhere.
    fn command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let mut command = dbsandbox(self.cache.path())?;
        command.args(args).current_dir(self.path());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("DBSANDBOX_") {
                command.env_remove(name);
            }
        }
        Ok(command)
    }

    /// Runs a command to completion and returns its wall time in milliseconds.
    fn time(&self, args: &[&str]) -> anyhow::Result<f64> {
        let mut command = self.command(args)?;
        command.stdout(Stdio::null());
        let started = Instant::now();
        let status = command.status()?;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        if !status.success() {
            bail!("dbsandbox {} failed: {status}", args.join(" "));
        }
        Ok(elapsed)
    }
}

/// Stops the project's daemon when dropped, whatever happened in between.
struct DaemonGuard<'a> {
    project: &'a Project,
}

impl Drop for DaemonGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut stop) = self.project.command(&["stop"]) {
            let _ = stop.stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}

fn time_true() -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = Command::new("true").status().context("running true")?;
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        bail!("true failed: {status}");
    }
    Ok(elapsed)
}

const RUN_TRUE: &[&str] = &["run", "-q", "--port", "0", "--", "true"];
const RUN_TRUE_NO_DAEMON: &[&str] = &["run", "-q", "--no-daemon", "--port", "0", "--", "true"];

/// Measures and prints the warm-loop table; `samples` sets how many runs each row takes.
pub fn warm_loop(samples: usize) -> anyhow::Result<()> {
    let warm_n = (samples * 2).max(10);
    let no_daemon_n = samples.div_ceil(2).max(5);
    let project = Project::new()?;

    // Baseline 1: a plain process spawn.
    let mut spawn = Vec::new();
    for _ in 0..warm_n {
        spawn.push(time_true()?);
    }

    // Baseline 2: everything in process. The first run builds the cache (initdb, template); the
    // samples reuse it, as the loop would without a daemon.
    project.time(RUN_TRUE_NO_DAEMON)?;
    let mut no_daemon = Vec::new();
    for _ in 0..no_daemon_n {
        no_daemon.push(project.time(RUN_TRUE_NO_DAEMON)?);
    }

    // The daemon: started once, then the loop.
    let guard = DaemonGuard { project: &project };
    let start_ms = project.time(&["serve", "--detach", "--idle-timeout", "10m"])?;
    project.time(RUN_TRUE)?;
    let mut warm = Vec::new();
    for _ in 0..warm_n {
        warm.push(project.time(RUN_TRUE)?);
    }
    let mut attach = Vec::new();
    for _ in 0..warm_n {
        attach.push(project.time(&["serve", "--detach"])?);
    }
    let binary: PathBuf = crate::dbsandbox_binary()?;
    drop(guard);

    let (warm_p50, warm_p90) = (median(&mut warm.clone()), percentile(&mut warm, 0.9));
    let no_daemon_p50 = median(&mut no_daemon);
    let (spawn_p50, spawn_p90) = (median(&mut spawn.clone()), percentile(&mut spawn, 0.9));
    let (attach_p50, attach_p90) = (median(&mut attach.clone()), percentile(&mut attach, 0.9));
    let met = if warm_p50 <= GOAL_MS && warm_p90 <= GOAL_MS {
        "**met** (p50 and p90)"
    } else if warm_p50 <= GOAL_MS {
        "**met** at p50, not at p90"
    } else {
        "**not met**"
    };
    println!(
        "### Warm loop (issue 4): `dbsandbox run -- true` with the project's daemon running\n"
    );
    println!(
        "binary: `{}`; project: schema40 via `dbsandbox.toml`, own cache dir; `run -q --port 0`\n",
        binary.display()
    );
    println!("| measurement | dbsandbox | baseline (same run) | ratio | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| `dbsandbox run -- true`, daemon warm, unchanged project (p50 / p90, n={warm_n}) | {warm_p50:.1} ms / {warm_p90:.1} ms | `dbsandbox run --no-daemon -- true`, warm cache: {no_daemon_p50:.0} ms (p50, n={no_daemon_n}) | {:.1}× faster | ≤ {GOAL_MS:.0} ms: {met} |",
        no_daemon_p50 / warm_p50
    );
    println!(
        "| … over a plain spawn | | `true` spawned from the harness: {spawn_p50:.2} ms / {spawn_p90:.2} ms (p50 / p90, n={warm_n}) | +{:.1} ms | |",
        warm_p50 - spawn_p50
    );
    println!(
        "| `dbsandbox serve --detach`, attaching to the running daemon (p50 / p90, n={warm_n}) | {attach_p50:.1} ms / {attach_p90:.1} ms | | | |"
    );
    println!(
        "| `dbsandbox serve --detach`, starting the daemon (warm cache, one sample) | {start_ms:.0} ms | | | |"
    );
    Ok(())
}
