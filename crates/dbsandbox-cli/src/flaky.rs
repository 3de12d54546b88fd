//! `dbsandbox flaky -- CMD`: the flaky-test hunter on the project's daemon. Each run of the suite
//! (or of a subset, in an exact order) gets its own fresh clone in database isolation; the hunt
//! itself lives in the `dbsandbox-flaky` crate, this file leases the clones and writes the reports.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use dbsandbox_control::ApiClient;
use dbsandbox_flaky::adapter::{self, shell_quote};
use dbsandbox_flaky::exec::{Lease, Sandboxes};
use dbsandbox_flaky::hunt::{lease_env, run_hunt, BadInput, HuntOptions};
use dbsandbox_flaky::plan::PlanOptions;
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::daemon::ServeOptions;
use crate::output::outln;
use crate::run::{RunOptions, Session};
use crate::settings::{parse_duration, SchemaArgs, ServerArgs, Settings, UsageError};

pub const FLAKY_HELP: &str = "Examples:
  dbsandbox flaky -- pytest
  dbsandbox flaky --migrations db/migrations --runs 20 -- npx jest
  dbsandbox flaky --failed-from ci/junit.xml --keep-failed -- pytest tests/
  dbsandbox flaky --format json --junit-out flaky.xml --html flaky.html -- cargo test
  dbsandbox flaky -- mvn -q test -Dtest={tests} -Dsurefire.reportsDirectory={junit}

What it does: runs the suite in its declared order, again in the same order, reversed, and in
seeded shuffles (--runs, --timeout), each run on a fresh clone of the template with real commits
(as the suite runs without dbsandbox); then explains every test that failed somewhere: alone on a
fresh clone, then by delta debugging over the tests that ran before it (about log2(n) runs), then a
confirmation that records what the culprit left in the database. Verdicts: victim (passes alone,
fails after its polluter), brittle (fails alone, passes after its state-setter), flaky (differs in
identical orders, or no order explains it), failing (fails every time, also alone).

Runners: pytest, jest, vitest, node --test, cargo test, cargo nextest, go test, and any command
that writes JUnit XML with {tests} and {junit} placeholders. The test command gets DATABASE_URL and
PGHOST/PGPORT/PGUSER/PGDATABASE of its run's clone.

Exit status: 0 nothing found, 1 findings, 2 bad input (unknown runner, a suite that runs no test
or does not start).";

/// The options of `dbsandbox flaky`.
#[derive(clap::Args, Debug)]
pub struct FlakyArgs {
    #[command(flatten)]
    pub schema: SchemaArgs,
    /// Detection runs at most (declared, repeated, reversed, then seeded shuffles).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub runs: usize,
    /// Detection runs before stopping early when runs show nothing new.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub min_runs: usize,
    /// Wall-clock budget for the whole hunt (90s, 15m, 1h); suspects left are listed unexplained.
    #[arg(long, value_name = "TIME")]
    pub timeout: Option<String>,
    /// Time limit of one run [default: 10 × the first run, at least 2m].
    #[arg(long, value_name = "TIME")]
    pub run_timeout: Option<String>,
    /// Seed of the first shuffle (the next ones follow): the same seed replays the same orders.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub shuffle_seed: u64,
    /// Report format on stdout.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Also write JUnit XML (reruns as flakyFailure / rerunFailure) for CI dashboards.
    #[arg(long, value_name = "FILE")]
    pub junit_out: Option<PathBuf>,
    /// Also write a self-contained HTML report (tests × runs matrix, culprit graph, evidence).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Start from a red build: its JUnit report's failures are the suspects (detection skipped).
    #[arg(long, value_name = "JUNIT.xml")]
    pub failed_from: Option<String>,
    /// Keep a clone with the state the last victim failed on, and print its connection string.
    #[arg(long)]
    pub keep_failed: bool,
    /// No progress lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
    /// Start the server, template and pool inside this process, for this hunt only.
    #[arg(long, env = "DBSANDBOX_NO_DAEMON", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_daemon: bool,
    /// The test command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// Leases clones from the hunt's run scope on the daemon.
struct RunScope<'a> {
    client: &'a ApiClient,
    run: String,
    kept_key: String,
}

impl Sandboxes for RunScope<'_> {
    async fn lease(&mut self, key: &str) -> anyhow::Result<Lease> {
        // The key kept for --keep-failed outlives the hunt: it belongs to no run.
        let body = if key == self.kept_key {
            json!({"key": key, "isolation": "database"})
        } else {
            json!({"key": key, "isolation": "database", "run": self.run})
        };
        let reply = self
            .client
            .post("/v1/sandboxes", &body)
            .await
            .with_context(|| format!("leasing a fresh clone for {key}"))?;
        if !reply.is_success() {
            anyhow::bail!("leasing a fresh clone for {key}: {}", reply.error_message());
        }
        let url = reply.body["url"]
            .as_str()
            .context("the daemon gave no connection string")?;
        lease_env(key, url)
    }

    async fn release(&mut self, key: &str) -> anyhow::Result<()> {
        let reply = self
            .client
            .delete(&format!("/v1/sandboxes/{key}?run={}", self.run))
            .await
            .with_context(|| format!("releasing {key}"))?;
        if !reply.is_success() && reply.status != 404 {
            anyhow::bail!("releasing {key}: {}", reply.error_message());
        }
        Ok(())
    }
}

/// The hunt was stopped by a signal: the exit code to give.
#[derive(Debug)]
struct Interrupted(i32);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// One progress line on stderr: rewritten in place on a terminal, a line per step elsewhere.
struct Lines {
    quiet: bool,
    terminal: bool,
}

impl dbsandbox_flaky::plan::Progress for Lines {
    fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r\x1b[2Kdbsandbox flaky: {line}");
            let _ = stderr.flush();
        } else {
            let _ = writeln!(stderr, "dbsandbox flaky: {line}");
        }
    }
}

impl Lines {
    fn clear(&self) {
        if !self.quiet && self.terminal {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

fn duration(flag: &str, text: &Option<String>) -> anyhow::Result<Option<std::time::Duration>> {
    match text {
        None => Ok(None),
        Some(text) => parse_duration(text).map_err(|_| {
            UsageError(format!(
                "{flag} {text}: use seconds or a number with s, m, h or d (e.g. 15m)"
            ))
            .into()
        }),
    }
}

/// Runs the hunt and returns the exit code.
pub async fn flaky(server: ServerArgs, args: FlakyArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let cwd = std::env::current_dir().context("the current directory")?;
    let runner = adapter::detect(&args.command, &cwd).map_err(UsageError)?;
    if args.runs == 0 {
        return Err(UsageError("--runs 0: at least one detection run is needed".into()).into());
    }
    let timeout = duration("--timeout", &args.timeout)?;
    let run_timeout = duration("--run-timeout", &args.run_timeout)?;
    for (flag, path) in [("--junit-out", &args.junit_out), ("--html", &args.html)] {
        if let Some(parent) = path.as_ref().and_then(|p| p.parent()) {
            if !parent.as_os_str().is_empty() && !parent.is_dir() {
                return Err(UsageError(format!(
                    "{flag} {}: no directory {}",
                    path.as_ref().unwrap().display(),
                    parent.display()
                ))
                .into());
            }
        }
    }
    let settings = Settings::resolve(&server, &args.schema)?;
    let reproduce_prefix = reproduce_prefix(&args.schema);
    let progress = crate::progress::Progress::new(args.quiet);
    let run_options = RunOptions {
        listen: "127.0.0.1".into(),
        port: Some(0),
        password: None,
        command: args.command.clone(),
        quiet: args.quiet,
        isolation: dbsandbox_proxy::Isolation::Database,
        reset_on_close: true,
        no_daemon: args.no_daemon,
        serve: ServeOptions::default(),
        server_args: server,
        schema_args: args.schema,
    };
    let session = Session::start(&settings, &run_options, &progress).await?;
    progress.finish(&format!(
        "{} · template {} · hunting with {}",
        session.describe_host(),
        session.template["fingerprint"].as_str().unwrap_or("?"),
        runner.name()
    ));
    let scratch = dbsandbox_flaky::exec::Scratch::new()?;
    let key_prefix = format!("flaky{}", std::process::id());
    let sandboxes = RunScope {
        client: &session.client,
        run: session.id.clone(),
        kept_key: format!("{key_prefix}-kept"),
    };
    let ctx = adapter::Context {
        cwd,
        scratch: scratch.0.clone(),
        env: Vec::new(),
    };
    let options = HuntOptions {
        command: args.command.clone(),
        plan: PlanOptions {
            detection_runs: args.runs,
            min_runs: args.min_runs.min(args.runs),
            timeout,
            seed: args.shuffle_seed,
            ..Default::default()
        },
        run_timeout,
        failed_from: args.failed_from.clone(),
        keep_failed: args.keep_failed,
        reproduce_prefix,
        key_prefix,
    };
    let lines = Lines {
        quiet: args.quiet,
        terminal: std::io::stderr().is_terminal(),
    };
    let hunt = {
        let hunting = run_hunt(runner.as_ref(), sandboxes, ctx, options, &lines);
        let mut interrupt =
            signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let mut terminate =
            signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        tokio::select! {
            hunt = hunting => hunt,
            _ = interrupt.recv() => Err(Interrupted(130).into()),
            _ = terminate.recv() => Err(Interrupted(143).into()),
        }
    };
    lines.clear();
    if let Some(Interrupted(code)) = hunt.as_ref().err().and_then(|e| e.downcast_ref()) {
        // The test processes run in their own process group, out of the terminal's reach.
        dbsandbox_flaky::exec::kill_running();
        crate::output::errln!("dbsandbox flaky: interrupted; the hunt's clones are released");
        let code = *code;
        let _ = session.finish(started).await;
        return Ok(code);
    }
    let closed = session.finish(started).await;
    let hunt = match hunt {
        Ok(hunt) => hunt,
        Err(e) if e.is::<BadInput>() => {
            return Err(UsageError(format!("{e:#}")).into());
        }
        Err(e) => return Err(e),
    };
    if let Err(e) = closed {
        tracing::warn!("closing the hunt's run: {e:#}");
    }
    if let Some(path) = &args.junit_out {
        let xml = dbsandbox_flaky::report::junit::junit_xml(&hunt);
        std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        let html = dbsandbox_flaky::report::html::html_report(&hunt);
        std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    }
    match args.format {
        Format::Human => {
            outln!(
                "{}",
                dbsandbox_flaky::report::human::human_report(&hunt).trim_end()
            )
        }
        Format::Json => outln!("{}", serde_json::to_string_pretty(&hunt)?),
    }
    Ok(if hunt.findings.is_empty() { 0 } else { 1 })
}

/// `dbsandbox run [--migrations …] --isolation database --`: what a reproduction runs under,
/// with the schema flags this hunt was given (a dbsandbox.toml gives the rest by itself).
fn reproduce_prefix(schema: &SchemaArgs) -> String {
    let mut words = vec!["dbsandbox".to_string(), "run".into()];
    let mut flag = |name: &str, value: String| {
        words.push(name.into());
        words.push(shell_quote(&value));
    };
    if let Some(dir) = &schema.migrations {
        flag("--migrations", dir.display().to_string());
    }
    if let Some(cmd) = &schema.migrate_cmd {
        flag("--migrate-cmd", cmd.clone());
    }
    for file in &schema.seed {
        flag("--seed", file.display().to_string());
    }
    words.extend(["--isolation", "database", "--"].map(String::from));
    words.join(" ")
}
