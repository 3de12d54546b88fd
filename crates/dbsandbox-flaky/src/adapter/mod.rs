//! Runner adapters: how to list a suite's tests, run an exact subset in an exact order, and read
//! each test's outcome, for pytest, Jest, Vitest, `node --test`, `cargo test`/`nextest`, `go test`
//! and any command that writes JUnit XML (`{tests}` placeholder). One small file per runner.
//!
//! An adapter never starts a database: the hunter runs each [`Invocation`] it returns with a
//! fresh clone's connection variables in its environment, several invocations of one run in
//! sequence against the same clone (that is how runners that cannot order tests inside one
//! process still get an exact order).

use std::path::{Path, PathBuf};

use crate::model::{TestId, TestResult};

pub mod cargo;
pub mod generic;
pub mod go;
pub mod jest;
mod js;
pub mod node_test;
pub mod pytest;
mod shell;
pub mod vitest;

pub use shell::shell_quote;

/// Where an adapter may write what it needs (order files, plugin files, reports), and the
/// environment its listing command runs with.
#[derive(Debug, Clone)]
pub struct Context {
    /// The directory the user ran `dbsandbox flaky` in.
    pub cwd: PathBuf,
    /// A private directory for this hunt, removed at its end.
    pub scratch: PathBuf,
    /// The connection variables of a fresh clone (DATABASE_URL, PG*), for listing commands that
    /// import application code.
    pub env: Vec<(String, String)>,
}

impl Context {
    /// A fresh path in the scratch directory (`stem-N.ext`).
    pub fn scratch_file(&self, stem: &str, ext: &str) -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.scratch.join(format!("{stem}-{n}.{ext}"))
    }
}

/// One process to start: part (or all) of one run.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    /// Added to the run's environment (which already has the clone's connection variables).
    pub env: Vec<(String, String)>,
    /// The report file the runner writes (JUnit XML, Jest JSON, …), read by [`Runner::results`].
    pub report: Option<PathBuf>,
    /// The tests this invocation runs, in order.
    pub tests: Vec<TestId>,
    /// Where the process starts; `None`: `ctx.cwd`. (Test binaries run directly, as the cargo
    /// adapter does, need their package's directory, which is where `cargo test` starts them.)
    pub cwd: Option<PathBuf>,
}

/// What a finished process left: its exit code (None when killed), its output.
#[derive(Debug, Clone, Default)]
pub struct ProcessOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl ProcessOutput {
    /// The end of stdout and stderr, for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let mut all: Vec<&str> = self.stdout.lines().chain(self.stderr.lines()).collect();
        if all.len() > lines {
            all.drain(..all.len() - lines);
        }
        all.join("\n")
    }
}

/// A test runner the hunter can drive.
pub trait Runner: Send + Sync {
    /// `pytest`, `jest`, `vitest`, `node-test`, `cargo`, `nextest`, `go`, `junit`.
    fn name(&self) -> &'static str;

    /// What this runner cannot order exactly, in one sentence (shown in reports and the README).
    fn ordering_note(&self) -> Option<String> {
        None
    }

    /// For runners that cannot reorder tests inside a file cheaply: the groups (files, in
    /// declared order) that reversed and shuffled runs move as wholes. `None`: any test moves.
    fn order_units(&self, _tests: &[TestId]) -> Option<Vec<Vec<TestId>>> {
        None
    }

    /// The suite's tests in declared order. May start processes (with `ctx.env`).
    fn list(&self, ctx: &Context) -> anyhow::Result<Vec<TestId>>;

    /// The processes that run exactly `order`, in that order, against one database.
    fn invocations(&self, order: &[TestId], ctx: &Context) -> anyhow::Result<Vec<Invocation>>;

    /// Each test's outcome after `invocation` ended (tests it does not report are missing).
    fn results(
        &self,
        invocation: &Invocation,
        output: &ProcessOutput,
    ) -> anyhow::Result<Vec<TestResult>>;

    /// A command the user can paste that runs exactly `order` with the runner alone (the hunter
    /// wraps it in `dbsandbox run --isolation database -- …`).
    fn reproduce(&self, order: &[TestId]) -> String;

    /// The listed test a JUnit `<testcase>` (from `--failed-from`) stands for.
    fn junit_case(&self, listed: &[TestId], classname: &str, name: &str) -> Option<TestId> {
        generic::match_junit_case(listed, classname, name)
    }
}

/// The runner a command uses, chosen from its words; `None` when no adapter knows it.
pub fn detect(command: &[String], cwd: &Path) -> Result<Box<dyn Runner>, String> {
    if command.is_empty() {
        return Err("no test command given after --".into());
    }
    if command
        .iter()
        .any(|w| w.contains(generic::TESTS_PLACEHOLDER))
    {
        return generic::Junit::new(command).map(|r| Box::new(r) as Box<dyn Runner>);
    }
    let words: Vec<&str> = command.iter().map(String::as_str).collect();
    let base = |w: &str| {
        Path::new(w)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(w)
            .to_string()
    };
    // Skip launchers: npx, pnpm exec, yarn, python -m, uv run, poetry run.
    let mut i = 0;
    while i < words.len() {
        let w = base(words[i]);
        match w.as_str() {
            "npx" | "pnpx" | "bunx" | "yarn" | "uv" | "poetry" | "pipenv" | "hatch" | "exec"
            | "run" | "env" => i += 1,
            "pnpm" | "npm" => i += 1,
            "python" | "python3" | "py" if words.get(i + 1) == Some(&"-m") => i += 2,
            w if w.starts_with("python3.") && words.get(i + 1) == Some(&"-m") => i += 2,
            _ => break,
        }
    }
    let Some(word) = words.get(i).map(|w| base(w)) else {
        return Err(unknown(command));
    };
    let runner: Box<dyn Runner> = match word.as_str() {
        "pytest" | "py.test" => Box::new(pytest::Pytest::new(command, i)),
        "jest" => Box::new(jest::Jest::new(command, i, cwd)),
        "vitest" => Box::new(vitest::Vitest::new(command, i, cwd)),
        "node" if words[i + 1..].contains(&"--test") => {
            Box::new(node_test::NodeTest::new(command, i))
        }
        "cargo" if words.get(i + 1) == Some(&"test") => {
            Box::new(cargo::Cargo::new(command, i, false))
        }
        "cargo" if words.get(i + 1) == Some(&"nextest") => {
            Box::new(cargo::Cargo::new(command, i, true))
        }
        "go" if words.get(i + 1) == Some(&"test") => Box::new(go::Go::new(command, i)),
        _ => return Err(unknown(command)),
    };
    Ok(runner)
}

fn unknown(command: &[String]) -> String {
    format!(
        "cannot tell which test runner `{}` is: dbsandbox flaky knows pytest, jest, vitest, \
         node --test, cargo test, cargo nextest and go test; for any other runner that writes \
         JUnit XML, put {{tests}} where the test names go and {{junit}} where the report goes \
         (e.g. `-- mvn test -Dtest={{tests}}`; see `dbsandbox flaky --help`)",
        command.join(" ")
    )
}

/// Tests grouped by the file part of their id (`file::…`), files in first-seen order.
pub fn units_by_file(tests: &[TestId]) -> Vec<Vec<TestId>> {
    let mut units: Vec<(String, Vec<TestId>)> = Vec::new();
    for test in tests {
        let file = test.split("::").next().unwrap_or(test).to_string();
        match units.iter_mut().find(|(f, _)| *f == file) {
            Some((_, unit)) => unit.push(test.clone()),
            None => units.push((file, vec![test.clone()])),
        }
    }
    units.into_iter().map(|(_, unit)| unit).collect()
}
