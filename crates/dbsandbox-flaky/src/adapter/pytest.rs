//! pytest: lists with `--collect-only -q`; runs an exact order in one process through a plugin
//! shipped with dbsandbox (`-p dbsandbox_flaky_order`, written to the hunt's scratch directory and
//! put on PYTHONPATH), which needs nothing beyond pytest, turns pytest-xdist's workers off and runs
//! after pytest-randomly (which `-p no:randomly` also blocks), so the order is exact whichever of
//! them are installed. Outcomes come from the plugin's JSON lines, keyed by node id.

use std::path::Path;

use anyhow::Context as _;

use super::shell::shell_join;
use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{Outcome, TestId, TestResult};

const PLUGIN: &str = include_str!("pytest_order.py");
const PLUGIN_MODULE: &str = "dbsandbox_flaky_order";

pub struct Pytest {
    /// The user's command, as given.
    command: Vec<String>,
}

impl Pytest {
    pub fn new(command: &[String], _runner_word: usize) -> Pytest {
        Pytest {
            command: command.to_vec(),
        }
    }

    fn plugin_env(&self, ctx: &Context) -> anyhow::Result<Vec<(String, String)>> {
        let dir = ctx.scratch.join("pytest-plugin");
        let file = dir.join(format!("{PLUGIN_MODULE}.py"));
        if !file.exists() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(&file, PLUGIN).with_context(|| format!("writing {}", file.display()))?;
        }
        let python_path = match std::env::var("PYTHONPATH") {
            Ok(existing) if !existing.is_empty() => format!("{}:{existing}", dir.display()),
            _ => dir.display().to_string(),
        };
        Ok(vec![("PYTHONPATH".into(), python_path)])
    }

    fn base_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self.command[1..].to_vec();
        args.extend(["-p", PLUGIN_MODULE, "-p", "no:randomly"].map(String::from));
        args
    }
}

impl Runner for Pytest {
    fn name(&self) -> &'static str {
        "pytest"
    }

    fn list(&self, ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        let mut args = self.base_args();
        // Absolute, so that the user's own -q or -v does not change what the listing prints.
        args.extend(["--collect-only", "--verbosity=-1"].map(String::from));
        let output = std::process::Command::new(&self.command[0])
            .args(&args)
            .envs(ctx.env.iter().cloned())
            .envs(self.plugin_env(ctx)?)
            .current_dir(&ctx.cwd)
            .output()
            .with_context(|| format!("cannot run {}", self.command[0]))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let tests = collected_ids(&stdout);
        // Exit 5: no tests collected.
        if tests.is_empty() {
            anyhow::bail!(
                "`{} --collect-only` listed no tests (exit {}):\n{}",
                self.command.join(" "),
                output.status.code().unwrap_or(-1),
                ProcessOutput {
                    stdout: stdout.into_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                    ..Default::default()
                }
                .tail(15)
            );
        }
        Ok(tests)
    }

    fn invocations(&self, order: &[TestId], ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        let order_file = ctx.scratch_file("pytest-order", "txt");
        let results = ctx.scratch_file("pytest-results", "jsonl");
        std::fs::write(&order_file, order.join("\n") + "\n")
            .with_context(|| format!("writing {}", order_file.display()))?;
        let mut env = self.plugin_env(ctx)?;
        env.push((
            "DBSANDBOX_FLAKY_ORDER".into(),
            order_file.display().to_string(),
        ));
        env.push((
            "DBSANDBOX_FLAKY_RESULTS".into(),
            results.display().to_string(),
        ));
        Ok(vec![Invocation {
            program: self.command[0].clone(),
            args: self.base_args(),
            env,
            report: Some(results),
            tests: order.to_vec(),
            cwd: None,
        }])
    }

    fn results(
        &self,
        invocation: &Invocation,
        _output: &ProcessOutput,
    ) -> anyhow::Result<Vec<TestResult>> {
        let Some(path) = &invocation.report else {
            return Ok(Vec::new());
        };
        read_results(path)
    }

    fn reproduce(&self, order: &[TestId]) -> String {
        let mut words = self.command.clone();
        words.extend(["-p", "no:randomly"].map(String::from));
        words.extend(order.iter().cloned());
        shell_join(&words)
    }
}

/// The node ids `--collect-only -q` prints first, up to the blank line before its summary.
fn collected_ids(stdout: &str) -> Vec<TestId> {
    let mut tests = Vec::new();
    for line in stdout.lines() {
        if line.trim().is_empty() && !tests.is_empty() {
            break;
        }
        if line.contains("::") && !line.starts_with(char::is_whitespace) {
            tests.push(line.to_string());
        }
    }
    tests
}

/// The plugin's JSON lines; a missing file (pytest died before the end) reads as no results.
fn read_results(path: &Path) -> anyhow::Result<Vec<TestResult>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let mut results = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        #[derive(serde::Deserialize)]
        struct Line {
            id: String,
            outcome: String,
            message: Option<String>,
        }
        let line: Line = serde_json::from_str(line)
            .with_context(|| format!("reading {}: {line}", path.display()))?;
        let outcome = match line.outcome.as_str() {
            "passed" => Outcome::Passed,
            "failed" => Outcome::Failed,
            _ => Outcome::Skipped,
        };
        results.push(TestResult {
            id: line.id,
            outcome,
            message: line.message,
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_collected_ids_up_to_the_summary() {
        let out = "tests/test_a.py::test_x\ntests/test_a.py::test_p[a b]\n\n\
                   ==== warnings summary ====\ntests/test_a.py::test_x\n  warn\n\n2 tests collected\n";
        assert_eq!(
            collected_ids(out),
            vec!["tests/test_a.py::test_x", "tests/test_a.py::test_p[a b]"]
        );
    }
}
