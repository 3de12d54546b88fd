//! What the JavaScript adapter tests share: a tiny executor that runs an adapter's invocations
//! in sequence (as the hunter does, minus the database), and the checks every JS runner passes
//! against its fixture suite in `tests/fixtures/<runner>/`. The fixture tests append their own
//! id to the file `$FLAKY_FIXTURE_LOG` names (hooks append `hook: …`), so a check compares the
//! order the runner really ran with the order asked for.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use dbsandbox_flaky::adapter::{self, Context, Invocation, ProcessOutput, Runner};
use dbsandbox_flaky::model::{Outcome, TestId, TestResult};

pub fn fixture(runner: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(runner)
}

/// Why the runner's tests cannot run here (printed, and the test returns), or None.
pub fn missing(dir: &Path, binary: &str) -> Option<String> {
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed".into());
    }
    if !binary.is_empty() && Command::new("npx").arg("--version").output().is_err() {
        return Some("npx (npm) is not installed".into());
    }
    if !binary.is_empty() && !dir.join("node_modules/.bin").join(binary).exists() {
        return Some(format!(
            "{binary} is not installed in {} (run `npm ci` there)",
            dir.display()
        ));
    }
    None
}

pub struct Harness {
    pub runner: Box<dyn Runner>,
    pub ctx: Context,
    pub log: PathBuf,
    _scratch: tempfile::TempDir,
}

impl Harness {
    pub fn new(command: &[&str], dir: &Path) -> Harness {
        let command: Vec<String> = command.iter().map(|w| w.to_string()).collect();
        let runner = adapter::detect(&command, dir).expect("a JS runner");
        let scratch = tempfile::tempdir().unwrap();
        let log = scratch.path().join("order.log");
        Harness {
            runner,
            ctx: Context {
                cwd: dir.to_path_buf(),
                scratch: scratch.path().to_path_buf(),
                env: vec![("FLAKY_FIXTURE_LOG".into(), log.display().to_string())],
            },
            log,
            _scratch: scratch,
        }
    }

    /// Runs `order` as the hunter would; the invocations, the results, and the tests that ran
    /// (hooks left out), in the order they ran.
    pub fn run(&self, order: &[TestId]) -> (Vec<Invocation>, Vec<TestResult>, Vec<String>) {
        let _ = std::fs::remove_file(&self.log);
        let invocations = self.runner.invocations(order, &self.ctx).unwrap();
        let mut results = Vec::new();
        for invocation in &invocations {
            let output = Command::new(&invocation.program)
                .args(&invocation.args)
                .envs(self.ctx.env.iter().cloned())
                .envs(invocation.env.iter().cloned())
                .current_dir(&self.ctx.cwd)
                .output()
                .unwrap();
            let output = ProcessOutput {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                timed_out: false,
            };
            let found = self.runner.results(invocation, &output).unwrap();
            assert!(
                !found.is_empty(),
                "{} {:?} reported nothing:\n{}",
                invocation.program,
                invocation.args,
                output.tail(30)
            );
            results.extend(found);
        }
        (invocations, results, self.ran())
    }

    pub fn ran(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("hook: "))
            .map(String::from)
            .collect()
    }

    /// Runs the adapter's reproduction command with `sh -c`: the tests it ran, in order.
    pub fn run_reproduction(&self, order: &[TestId]) -> (String, Vec<String>) {
        let _ = std::fs::remove_file(&self.log);
        let command = self.runner.reproduce(order);
        // Its status is the last test's; what it ran is in the log.
        Command::new("sh")
            .arg("-c")
            .arg(&command)
            .envs(self.ctx.env.iter().cloned())
            .current_dir(&self.ctx.cwd)
            .output()
            .unwrap();
        (command, self.ran())
    }
}

fn ids(names: &[&str]) -> Vec<TestId> {
    names.iter().map(|n| n.to_string()).collect()
}

/// The tests that can leave a log line: all but the skipped ones.
fn runnable(order: &[TestId], skipped: &[&str]) -> Vec<String> {
    order
        .iter()
        .filter(|t| !skipped.contains(&t.as_str()))
        .cloned()
        .collect()
}

pub fn outcome(results: &[TestResult], id: &str) -> Outcome {
    results
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no result for {id} in {results:#?}"))
        .outcome
}

/// Every check of one runner against a fixture that declares `declared` (in that order), where
/// `failing` fails with a unique violation on (code)=(WELCOME10) and `skipped` are skipped.
/// Returns the number of invocations each order took: declared, reversed, shuffled subset.
pub fn check_runner(
    harness: &Harness,
    declared: &[&str],
    failing: &str,
    skipped: &[&str],
    shuffled_subset: &[&str],
) -> [usize; 3] {
    let listed = harness.runner.list(&harness.ctx).unwrap();
    assert_eq!(listed, ids(declared), "the listing, in declared order");
    assert!(
        harness.ran().is_empty(),
        "listing ran tests: {:?}",
        harness.ran()
    );

    // Declared order: every outcome, the failure's text.
    let (declared_invocations, results, ran) = harness.run(&listed);
    assert_eq!(ran, runnable(&listed, skipped), "declared order");
    for id in &listed {
        let expected = if id == failing {
            Outcome::Failed
        } else if skipped.contains(&id.as_str()) {
            Outcome::Skipped
        } else {
            Outcome::Passed
        };
        assert_eq!(outcome(&results, id), expected, "{id}");
    }
    assert_eq!(results.len(), listed.len(), "one result per test");
    let message = results
        .iter()
        .find(|r| r.id == failing)
        .and_then(|r| r.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("DETAIL: Key (code)=(WELCOME10) already exists"),
        "failure text: {message}"
    );
    assert!(
        results
            .iter()
            .filter(|r| r.id != failing)
            .all(|r| r.message.is_none()),
        "{results:#?}"
    );

    // Reversed: exactly reversed, whatever the file boundaries.
    let reversed: Vec<TestId> = listed.iter().rev().cloned().collect();
    let (reversed_invocations, results, ran) = harness.run(&reversed);
    assert_eq!(ran, runnable(&reversed, skipped), "reversed order");
    assert_eq!(outcome(&results, failing), Outcome::Failed);
    assert_eq!(results.len(), listed.len());

    // A shuffled subset: only those, in that order, reported under the same ids.
    let subset = ids(shuffled_subset);
    let (subset_invocations, results, ran) = harness.run(&subset);
    assert_eq!(ran, runnable(&subset, skipped), "shuffled subset");
    let reported: Vec<&str> = results.iter().map(|r| r.id.as_str()).collect();
    let mut expected: Vec<&str> = shuffled_subset.to_vec();
    let mut reported_sorted = reported.clone();
    expected.sort();
    reported_sorted.sort();
    assert_eq!(reported_sorted, expected, "the subset's results");

    // The reproduction command runs the same order on its own.
    let (command, ran) = harness.run_reproduction(&subset);
    assert_eq!(ran, runnable(&subset, skipped), "reproduction: {command}");

    [
        declared_invocations.len(),
        reversed_invocations.len(),
        subset_invocations.len(),
    ]
}
