//! `node --test`: Node 20 has no list mode, so the suite is listed by running it with a name
//! pattern that matches nothing (`--test-name-pattern='(?!)'`): no test body runs and each test
//! is reported as skipped, but Node 20 still runs each file's top level and describe bodies, and
//! the `before` hooks of suites. Where a Node reports no filtered-out test, the suite is listed
//! by running it once whole instead. Results come from a reporter shipped with dbsandbox
//! (`node_test_reporter.mjs`, written to the scratch directory): one JSON line per test with its
//! file and titles. Node sorts the files it is given and runs a file's tests only in declared
//! order, so a run is one `node --test <file>` process per segment of the order (consecutive
//! tests of one file in declared order), in sequence against one database, with an anchored
//! `--test-name-pattern` of the chosen tests when the segment is not the whole file. Node 20
//! matches that pattern against each test's own name (not its describe titles), so a test whose
//! name another test of the file shares, or a describe title, runs with it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;

use super::js::{self, ListedTest, Listing, ListingCache, Segment};
use super::shell::shell_join;
use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{Outcome, TestId, TestResult};

const REPORTER: &str = include_str!("node_test_reporter.mjs");
const NO_TEST: &str = "(?!)";

/// Node options that take a value in the next word when written without `=`.
const VALUE_OPTIONS: &[&str] = &[
    "-r",
    "--require",
    "--import",
    "--loader",
    "--experimental-loader",
    "-C",
    "--conditions",
    "--env-file",
    "--input-type",
    "--test-reporter",
    "--test-reporter-destination",
    "--test-name-pattern",
    "--test-skip-pattern",
    "--test-concurrency",
    "--test-timeout",
    "--test-shard",
];

/// The user's options the adapter replaces: reporters, name filters, sharding, watching.
const REPLACED_OPTIONS: &[&str] = &[
    "--test-reporter",
    "--test-reporter-destination",
    "--test-name-pattern",
    "--test-skip-pattern",
    "--test-shard",
    "--watch",
];

pub struct NodeTest {
    /// `node`, and the words before it (`env X=1 node`).
    program: Vec<String>,
    /// The user's options (`--test` among them), without the replaced ones.
    options: Vec<String>,
    /// The files or globs the user named (none: Node's default search).
    files: Vec<String>,
    listing: ListingCache,
    /// The hunt's directory, which report paths are made relative to (known from the context).
    cwd: Mutex<PathBuf>,
}

impl NodeTest {
    pub fn new(command: &[String], runner_word: usize) -> NodeTest {
        let program = command[..=runner_word].to_vec();
        let mut options = Vec::new();
        let mut files = Vec::new();
        let mut words = command[runner_word + 1..].iter();
        while let Some(word) = words.next() {
            if !word.starts_with('-') {
                files.push(word.clone());
                continue;
            }
            let name = word.split('=').next().unwrap_or(word);
            let value = (!word.contains('=') && VALUE_OPTIONS.contains(&name))
                .then(|| words.next())
                .flatten();
            if REPLACED_OPTIONS.contains(&name) {
                continue;
            }
            options.push(word.clone());
            options.extend(value.cloned());
        }
        NodeTest {
            program,
            options,
            files,
            listing: ListingCache::default(),
            cwd: Mutex::new(PathBuf::new()),
        }
    }

    fn reporter_args(&self, ctx: &Context, report: &Path) -> anyhow::Result<Vec<String>> {
        let reporter = js::write_shim(ctx, "dbsandbox-node-test-reporter.mjs", REPORTER)?;
        Ok(vec![
            format!("--test-reporter={}", reporter.display()),
            format!("--test-reporter-destination={}", report.display()),
        ])
    }

    fn make_listing(&self, ctx: &Context) -> anyhow::Result<Listing> {
        let report = ctx.scratch_file("node-test-list", "jsonl");
        let command = |pattern: Option<&str>| -> anyhow::Result<Vec<String>> {
            let mut words = self.program.clone();
            words.extend(self.options.iter().cloned());
            words.extend(self.reporter_args(ctx, &report)?);
            words.extend(pattern.map(|p| format!("--test-name-pattern={p}")));
            words.extend(self.files.iter().cloned());
            Ok(words)
        };
        let mut words = command(Some(NO_TEST))?;
        let mut output = js::run_listing(&words, &[], &[], ctx)?;
        let mut lines = read_lines(&report).with_context(|| {
            format!(
                "`{}` wrote no report (exit {}):\n{}",
                shell_join(&words),
                output.code.unwrap_or(-1),
                output.tail(20)
            )
        })?;
        // A Node that leaves filtered tests out of its report (not 20) is listed by one whole
        // run of the suite instead, on the listing's own clone.
        if lines.iter().all(|l| l.suite) {
            words = command(None)?;
            output = js::run_listing(&words, &[], &[], ctx)?;
            lines = read_lines(&report)?;
        }
        let command = words;
        let mut tests: Vec<(String, Vec<String>)> = Vec::new();
        for line in lines {
            let file = js::display_path(Path::new(&line.file), &ctx.cwd);
            if line.file_failure {
                anyhow::bail!(
                    "the test file {file} does not load:\n{}",
                    line.message.unwrap_or_default()
                );
            }
            if !line.suite {
                tests.push((file, line.titles));
            }
        }
        tests.sort_by(|a, b| a.0.cmp(&b.0));
        let mut ids = js::IdMaker::new();
        let tests: Vec<ListedTest> = tests
            .into_iter()
            .map(|(file, titles)| ListedTest {
                id: ids.id(&file, &titles),
                file,
                titles,
            })
            .collect();
        if tests.is_empty() {
            anyhow::bail!(
                "`{}` lists no tests (exit {}):\n{}",
                shell_join(&command),
                output.code.unwrap_or(-1),
                output.tail(20)
            );
        }
        Ok(Listing::new(tests))
    }

    /// The name pattern a segment needs (none for a whole file): each chosen test's own name,
    /// which Node 20 matches, and its spaced full name, which later Nodes match.
    fn pattern(segment: &Segment, listing: &Listing) -> Option<String> {
        if segment.tests.len() == listing.of_file(&segment.file).len() {
            return None;
        }
        let mut names: Vec<String> = Vec::new();
        for &i in &segment.tests {
            let test = &listing.tests[i];
            for name in [
                test.titles.last().cloned().unwrap_or_default(),
                test.spaced_name(),
            ] {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Some(js::names_pattern(&names))
    }
}

impl Runner for NodeTest {
    fn name(&self) -> &'static str {
        "node-test"
    }

    fn order_units(&self, tests: &[TestId]) -> Option<Vec<Vec<TestId>>> {
        // A shuffle of single tests would cost a process per test: files move as wholes.
        Some(super::units_by_file(tests))
    }

    fn ordering_note(&self) -> Option<String> {
        Some(
            "node --test sorts its files and runs a file's tests only in declared order: each \
             run is one node process per file (per stretch of a file's tests in declared order), \
             in sequence on one database; Node 20 selects tests by their own name, so tests of \
             one file sharing a name run together"
                .into(),
        )
    }

    fn list(&self, ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        *self.cwd.lock().unwrap_or_else(|e| e.into_inner()) = ctx.cwd.clone();
        let listing = self.listing.set(self.make_listing(ctx)?);
        Ok(listing.ids())
    }

    fn invocations(&self, order: &[TestId], ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        *self.cwd.lock().unwrap_or_else(|e| e.into_inner()) = ctx.cwd.clone();
        let listing = self.listing.get_or_list(|| self.make_listing(ctx))?;
        js::segments(order, &listing, js::InFile::Declared)?
            .into_iter()
            .map(|segment| {
                let report = ctx.scratch_file("node-test-report", "jsonl");
                let mut args = self.program[1..].to_vec();
                args.extend(self.options.iter().cloned());
                args.extend(self.reporter_args(ctx, &report)?);
                if let Some(pattern) = Self::pattern(&segment, &listing) {
                    args.push(format!("--test-name-pattern={pattern}"));
                }
                args.push(js::absolute(&segment.file, &ctx.cwd).display().to_string());
                Ok(Invocation {
                    program: self.program[0].clone(),
                    args,
                    env: Vec::new(),
                    report: Some(report),
                    cwd: None,
                    tests: segment.ids(&listing),
                })
            })
            .collect()
    }

    fn results(
        &self,
        invocation: &Invocation,
        _output: &ProcessOutput,
    ) -> anyhow::Result<Vec<TestResult>> {
        let Some(report) = &invocation.report else {
            return Ok(Vec::new());
        };
        let cwd = self.cwd.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Ok(lines) = read_lines(report) else {
            return Ok(Vec::new());
        };
        Ok(results_of(lines, &cwd, &invocation.tests))
    }

    fn reproduce(&self, order: &[TestId]) -> String {
        let Some(listing) = self.listing.get() else {
            return shell_join(&self.program);
        };
        let Ok(segments) = js::segments(order, &listing, js::InFile::Declared) else {
            return shell_join(&self.program);
        };
        segments
            .iter()
            .map(|segment| {
                let mut words = self.program.clone();
                words.extend(self.options.iter().cloned());
                if let Some(pattern) = Self::pattern(segment, &listing) {
                    words.push(format!("--test-name-pattern={pattern}"));
                }
                words.push(segment.file.clone());
                shell_join(&words)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One line of the shipped reporter.
#[derive(Debug, serde::Deserialize)]
struct Line {
    file: String,
    titles: Vec<String>,
    outcome: String,
    message: Option<String>,
    #[serde(default)]
    suite: bool,
    #[serde(default, rename = "fileFailure")]
    file_failure: bool,
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<Line>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("{}: {l}", path.display())))
        .collect()
}

/// The wanted tests' results; a wanted test left unreported by a file or a suite that failed on
/// its own failed with that failure's text.
fn results_of(lines: Vec<Line>, cwd: &Path, wanted: &[TestId]) -> Vec<TestResult> {
    let mut found: HashMap<TestId, TestResult> = HashMap::new();
    // (id prefix, message) of files and suites that failed on their own.
    let mut failed_scopes: Vec<(String, String)> = Vec::new();
    let mut ids: HashMap<String, js::IdMaker> = HashMap::new();
    for line in lines {
        let file = js::display_path(Path::new(&line.file), cwd);
        let message = line.message.map(|m| js::strip_ansi(&m));
        if line.file_failure {
            failed_scopes.push((format!("{file}::"), message.unwrap_or_default()));
            continue;
        }
        if line.suite {
            let prefix = format!("{} > ", js::test_id(&file, &line.titles));
            failed_scopes.push((prefix, message.unwrap_or_default()));
            continue;
        }
        let id = ids
            .entry(file.clone())
            .or_insert_with(js::IdMaker::new)
            .id(&file, &line.titles);
        let outcome = match line.outcome.as_str() {
            "passed" => Outcome::Passed,
            "failed" => Outcome::Failed,
            _ => Outcome::Skipped,
        };
        found.insert(
            id.clone(),
            TestResult {
                id,
                outcome,
                message: (outcome == Outcome::Failed).then(|| message.unwrap_or_default()),
            },
        );
    }
    wanted
        .iter()
        .filter_map(|id| {
            found.remove(id).or_else(|| {
                failed_scopes
                    .iter()
                    .find(|(prefix, _)| id.starts_with(prefix.as_str()))
                    .map(|(_, message)| TestResult {
                        id: id.clone(),
                        outcome: Outcome::Failed,
                        message: Some(message.clone()),
                    })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_options_and_files_apart_and_drops_reporters() {
        let command: Vec<String> = [
            "node",
            "--test",
            "--require",
            "./setup.cjs",
            "--test-reporter",
            "spec",
            "--test-reporter-destination=stdout",
            "test/a.test.mjs",
        ]
        .map(String::from)
        .to_vec();
        let node = NodeTest::new(&command, 0);
        assert_eq!(node.program, ["node"]);
        assert_eq!(node.options, ["--test", "--require", "./setup.cjs"]);
        assert_eq!(node.files, ["test/a.test.mjs"]);
    }

    #[test]
    fn a_file_that_does_not_load_fails_its_wanted_tests() {
        let lines = vec![Line {
            file: "/p/c.test.cjs".into(),
            titles: vec!["/p/c.test.cjs".into()],
            outcome: "failed".into(),
            message: Some("ECONNREFUSED".into()),
            suite: false,
            file_failure: true,
        }];
        let results = results_of(lines, Path::new("/p"), &["c.test.cjs::x".to_string()]);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].outcome, Outcome::Failed);
        assert_eq!(results[0].message.as_deref(), Some("ECONNREFUSED"));
    }
}
