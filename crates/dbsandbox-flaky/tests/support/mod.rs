//! What the adapter tests share: the fixture suites under `tests/fixtures/`, and a small executor
//! that starts an adapter's invocations in sequence, as the hunter does (minus the database), with
//! FLAKY_FIXTURE_LOG naming the file the fixture tests append their names to; and the hunter's
//! plan over an adapter ([`hunt`]).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use dbsandbox_flaky::adapter::{Context, Invocation, ProcessOutput, Runner};
use dbsandbox_flaky::model::Purpose;
use dbsandbox_flaky::model::{Outcome, Run, TableEvidence, TestId, TestResult};
use dbsandbox_flaky::plan::{self, Executor, Outcomes, PlanOptions};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

/// A context for a suite in `cwd`, with a scratch directory of its own.
pub fn context(cwd: &Path, scratch: &Path, env: &[(&str, &str)]) -> Context {
    Context {
        cwd: cwd.to_path_buf(),
        scratch: scratch.to_path_buf(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// One run of `order`: every result, the order the tests really ran in, and how many processes
/// it took.
pub struct RunOutcome {
    pub results: Vec<TestResult>,
    pub ran: Vec<String>,
    pub processes: usize,
}

impl RunOutcome {
    pub fn outcome(&self, id: &str) -> Option<Outcome> {
        self.results.iter().find(|r| r.id == id).map(|r| r.outcome)
    }

    pub fn message(&self, id: &str) -> &str {
        self.results
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.message.as_deref())
            .unwrap_or("")
    }
}

/// Runs `order` the way the hunter's executor does: each invocation in turn, its environment on
/// top of the context's, in its own directory or the context's.
pub fn run(
    runner: &dyn Runner,
    order: &[TestId],
    ctx: &Context,
    env: &[(&str, &str)],
) -> RunOutcome {
    let log = ctx.scratch_file("order", "log");
    let invocations = runner.invocations(order, ctx).expect("invocations");
    let mut results = Vec::new();
    for invocation in &invocations {
        let output = start(invocation, ctx, &log, env);
        results.extend(runner.results(invocation, &output).expect("results"));
    }
    let ran = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    RunOutcome {
        results,
        ran,
        processes: invocations.len(),
    }
}

fn start(
    invocation: &Invocation,
    ctx: &Context,
    log: &Path,
    env: &[(&str, &str)],
) -> ProcessOutput {
    let output = Command::new(&invocation.program)
        .args(&invocation.args)
        .envs(ctx.env.iter().cloned())
        .envs(invocation.env.iter().cloned())
        .envs(env.iter().copied())
        .env("FLAKY_FIXTURE_LOG", log)
        .current_dir(invocation.cwd.as_deref().unwrap_or(&ctx.cwd))
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", invocation.program));
    ProcessOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        timed_out: false,
    }
}

/// Runs a pasteable command (`reproduce`) with `sh -c` in `cwd`; the names the tests logged.
pub fn run_shell(command: &str, ctx: &Context, env: &[(&str, &str)]) -> (bool, Vec<String>) {
    let log = ctx.scratch_file("reproduce", "log");
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .envs(ctx.env.iter().cloned())
        .envs(env.iter().copied())
        .env("FLAKY_FIXTURE_LOG", &log)
        .current_dir(&ctx.cwd)
        .output()
        .expect("sh");
    let ran = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    (status.status.success(), ran)
}

/// True when `program` runs (`program version` or `--version`).
pub fn installed(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The hunter's plan over an adapter, with a fresh directory in FLAKY_FIXTURE_STATE standing in
/// for each run's fresh clone (the fixtures' state-dependent tests read and write it).
pub struct FixtureExecutor<'a> {
    pub runner: &'a dyn Runner,
    pub ctx: &'a Context,
    pub runs: usize,
}

impl FixtureExecutor<'_> {
    fn execute(&mut self, parts: &[&[TestId]], purpose: Purpose) -> Run {
        self.runs += 1;
        let state = tempfile::tempdir().unwrap();
        let env = [("FLAKY_FIXTURE_STATE", state.path().to_str().unwrap())];
        let mut order = Vec::new();
        let mut results = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            results.extend(run(self.runner, part, self.ctx, &env).results);
            order.extend(part.iter().cloned());
        }
        Run {
            index: 0,
            purpose,
            order,
            results,
            seconds: 0.0,
            key: format!("fixture-{}", self.runs),
            problem: None,
        }
    }
}

impl Executor for FixtureExecutor<'_> {
    async fn run(&mut self, order: &[TestId], purpose: Purpose) -> anyhow::Result<Run> {
        Ok(self.execute(&[order], purpose))
    }

    async fn run_split(
        &mut self,
        culprits: &[TestId],
        test: &TestId,
        purpose: Purpose,
    ) -> anyhow::Result<(Run, Vec<TableEvidence>)> {
        let run = self.execute(&[culprits, std::slice::from_ref(test)], purpose);
        Ok((run, Vec::new()))
    }
}

/// A whole hunt over `runner`'s suite, as `dbsandbox flaky` runs it (no database).
pub fn hunt(runner: &dyn Runner, ctx: &Context) -> (Outcomes, usize) {
    let tests = runner.list(ctx).expect("list");
    let mut exec = FixtureExecutor {
        runner,
        ctx,
        runs: 0,
    };
    let outcomes = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(plan::hunt(
            &mut exec,
            &(),
            &tests,
            PlanOptions::default(),
            None,
        ))
        .expect("hunt");
    (outcomes, exec.runs)
}
