//! `cargo test` and `cargo nextest run`: the suite is built once (`cargo test --no-run
//! --message-format=json-render-diagnostics`, or `cargo nextest list --message-format json`, with
//! the user's cargo arguments), then the test binaries run directly, started in their package's
//! directory with the variables `cargo test` sets (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, …).
//!
//! Test ids are `<binary id>::<libtest name>`, with nextest's binary ids: `app::tests::x` (unit
//! tests of package `app`'s library), `app::users::creates_user` (integration test `users`),
//! `app::bin/app::tests::x` (a binary's unit tests). libtest runs the tests it is given sorted by
//! name, so under `cargo test` one process runs each maximal stretch of an order that stays in one
//! binary with names ascending (`BIN --exact a c --test-threads=1`), which the declared order is
//! whole; under nextest every test gets its own process, as nextest itself does.

mod catalog;
mod libtest;

use std::sync::{Arc, Mutex};

use catalog::{Catalog, TestBinary};
use libtest::HarnessArgs;

use super::shell::shell_join;
use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{Outcome, TestId, TestResult};

/// `cargo test` options that take a value (`-p app` or `-p=app`).
const CARGO_VALUE_OPTIONS: &[&str] = &[
    "-p",
    "--package",
    "--exclude",
    "--test",
    "--bench",
    "--bin",
    "--example",
    "-F",
    "--features",
    "--target",
    "--target-dir",
    "--manifest-path",
    "-j",
    "--jobs",
    "--profile",
    "--color",
    "--message-format",
    "--config",
    "-Z",
    "--lockfile-path",
    "--artifact-dir",
];

/// `cargo test` options that choose which binaries are built: a reproduction names its own.
const CARGO_SELECTION: &[&str] = &[
    "-p",
    "--package",
    "--exclude",
    "--workspace",
    "--all",
    "--lib",
    "--bins",
    "--bin",
    "--tests",
    "--test",
    "--benches",
    "--bench",
    "--examples",
    "--example",
    "--all-targets",
    "--doc",
];

/// `cargo nextest run` options that `cargo nextest list` refuses, with whether they take a value.
const NEXTEST_RUN_ONLY: &[(&str, bool)] = &[
    ("-R", true),
    ("--rerun", true),
    ("-j", true),
    ("--test-threads", true),
    ("--retries", true),
    ("--flaky-result", true),
    ("--max-fail", true),
    ("--debugger", true),
    ("--tracer", true),
    ("--no-tests", true),
    ("--stress-count", true),
    ("--stress-duration", true),
    ("--failure-output", true),
    ("--success-output", true),
    ("--status-level", true),
    ("--final-status-level", true),
    ("--max-progress-running", true),
    ("--message-format", true),
    ("--message-format-version", true),
    ("--no-run", false),
    ("--fail-fast", false),
    ("--no-fail-fast", false),
    ("--no-capture", false),
    ("--nocapture", false),
    ("--no-output-indent", false),
    ("--hide-progress-bar", false),
    ("--no-input-handler", false),
];

/// `cargo nextest` options, besides the run-only ones, that take a value: their values are not
/// test filters.
const NEXTEST_VALUE_OPTIONS: &[&str] = &[
    "-p",
    "--package",
    "--exclude",
    "--bin",
    "--example",
    "--test",
    "--bench",
    "-F",
    "--features",
    "--target",
    "--target-dir",
    "--manifest-path",
    "--config",
    "-Z",
    "--cargo-profile",
    "-P",
    "--profile",
    "--build-jobs",
    "--run-ignored",
    "--partition",
    "-E",
    "--filterset",
    "--filter-expr",
    "--archive-file",
    "--archive-format",
    "--extract-to",
    "--workspace-remap",
    "--binaries-metadata",
    "--cargo-metadata",
    "--target-dir-remap",
    "--tool-config-file",
    "--config-file",
    "--color",
    "--cargo-message-format",
    "--user-config-file",
];

pub struct Cargo {
    /// `cargo` as the user spelled it.
    program: String,
    nextest: bool,
    /// The words between `test` (or `nextest run`) and `--`.
    cargo_args: Vec<String>,
    /// The words after `--`, for the test binaries.
    harness_words: Vec<String>,
    /// Built by the first `list` (or `invocations`), then shared by every run.
    catalog: Mutex<Option<Arc<Catalog>>>,
}

impl Cargo {
    pub fn new(command: &[String], runner_word: usize, nextest: bool) -> Cargo {
        // `cargo test …` or `cargo nextest run …`.
        let skip = if nextest { 3 } else { 2 };
        let rest = command.get(runner_word + skip..).unwrap_or_default();
        let (cargo_args, harness_words) = match rest.iter().position(|w| w == "--") {
            Some(dash) => (rest[..dash].to_vec(), rest[dash + 1..].to_vec()),
            None => (rest.to_vec(), Vec::new()),
        };
        Cargo {
            program: command[runner_word].clone(),
            nextest,
            cargo_args,
            harness_words,
            catalog: Mutex::new(None),
        }
    }

    /// The cargo arguments as options (each with its value) and the positional test-name filter.
    fn split_cargo_args(&self, value_options: &[&str]) -> (Vec<Vec<String>>, Vec<String>) {
        let mut options = Vec::new();
        let mut filters = Vec::new();
        let mut words = self.cargo_args.iter();
        while let Some(word) = words.next() {
            if !word.starts_with('-') {
                filters.push(word.clone());
                continue;
            }
            let mut option = vec![word.clone()];
            if value_options.contains(&word.as_str()) {
                option.extend(words.next().cloned());
            }
            options.push(option);
        }
        (options, filters)
    }

    /// The harness arguments, with `cargo test NAME`'s filter among them.
    fn harness(&self) -> HarnessArgs {
        let mut words = Vec::new();
        if !self.nextest {
            words = self.split_cargo_args(CARGO_VALUE_OPTIONS).1;
        }
        words.extend(self.harness_words.iter().cloned());
        HarnessArgs::parse(&words)
    }

    /// The user's cargo options for `cargo test --no-run` (no filter, no output options).
    fn build_args(&self) -> Vec<String> {
        let (options, _) = self.split_cargo_args(CARGO_VALUE_OPTIONS);
        options
            .into_iter()
            .filter(|o| !matches!(option_name(&o[0]), "--message-format" | "--no-run"))
            .flatten()
            .collect()
    }

    /// The user's nextest arguments that `cargo nextest list` takes.
    fn nextest_list_args(&self) -> Vec<String> {
        let mut words = Vec::new();
        let mut iter = self.cargo_args.iter();
        while let Some(word) = iter.next() {
            match NEXTEST_RUN_ONLY
                .iter()
                .find(|(n, _)| *n == option_name(word))
            {
                Some((_, takes_value)) => {
                    if *takes_value && !word.contains('=') {
                        iter.next();
                    }
                }
                None => words.push(word.clone()),
            }
        }
        if !self.harness_words.is_empty() {
            words.push("--".into());
            words.extend(self.harness_words.iter().cloned());
        }
        words
    }

    fn catalog(&self, ctx: &Context) -> anyhow::Result<Arc<Catalog>> {
        let mut slot = self.catalog.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(catalog) = slot.as_ref() {
            return Ok(catalog.clone());
        }
        let catalog = if self.nextest {
            catalog::build_with_nextest(&self.program, &self.nextest_list_args(), ctx)?
        } else {
            catalog::build_with_cargo(&self.program, &self.build_args(), &self.harness(), ctx)?
        };
        let catalog = Arc::new(catalog);
        *slot = Some(catalog.clone());
        Ok(catalog)
    }

    fn built(&self) -> Option<Arc<Catalog>> {
        self.catalog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `order` cut into the stretches one process can run: one binary, names ascending (under
    /// nextest: one test each).
    fn groups<'c>(&self, catalog: &'c Catalog, order: &[TestId]) -> anyhow::Result<Vec<Group<'c>>> {
        let mut groups: Vec<Group<'c>> = Vec::new();
        for id in order {
            let (binary, name, ignored) = catalog.find(id)?;
            if let Some(last) = groups.last_mut() {
                let same_binary = std::ptr::eq(last.binary, binary);
                let ascending = last.names.last().is_some_and(|prev| *prev < name);
                if !self.nextest && same_binary && ascending {
                    last.names.push(name);
                    last.ids.push(id.clone());
                    last.ignored |= ignored;
                    continue;
                }
            }
            groups.push(Group {
                binary,
                names: vec![name],
                ids: vec![id.clone()],
                ignored,
            });
        }
        Ok(groups)
    }

    /// `cargo test -p PKG --test users -- --exact --test-threads=1 a b`, for one group.
    fn cargo_test_command(&self, group: &Group<'_>) -> Vec<String> {
        let (options, _) = self.split_cargo_args(CARGO_VALUE_OPTIONS);
        let mut words = vec![self.program.clone(), "test".into()];
        words.extend(
            options
                .into_iter()
                .filter(|o| {
                    let name = option_name(&o[0]);
                    !CARGO_SELECTION.contains(&name)
                        && !matches!(name, "--message-format" | "--no-run" | "--no-fail-fast")
                })
                .flatten(),
        );
        words.extend(["-p".to_string(), group.binary.package.clone()]);
        words.extend(group.binary.kind.cargo_selector(&group.binary.target));
        words.push("--".into());
        words.extend(self.harness().run_args(&group.names, group.ignored));
        words
    }

    /// `cargo nextest run -E 'binary_id(=ID) & test(=NAME)'`, for one test.
    fn nextest_command(&self, group: &Group<'_>) -> Vec<String> {
        let (options, _) = {
            let mut value_options: Vec<&str> = NEXTEST_VALUE_OPTIONS.to_vec();
            value_options.extend(NEXTEST_RUN_ONLY.iter().filter(|o| o.1).map(|o| o.0));
            self.split_cargo_args(&value_options)
        };
        let mut words = vec![self.program.clone(), "nextest".into(), "run".into()];
        words.extend(
            options
                .into_iter()
                .filter(|o| {
                    !matches!(
                        option_name(&o[0]),
                        "-E" | "--filterset"
                            | "--filter-expr"
                            | "--run-ignored"
                            | "--partition"
                            | "-R"
                            | "--rerun"
                    )
                })
                .flatten(),
        );
        if group.ignored {
            words.extend(["--run-ignored".to_string(), "all".to_string()]);
        }
        let filter = format!(
            "binary_id(={}) & test(={})",
            group.binary.binary_id, group.names[0]
        );
        words.extend(["-E".to_string(), filter]);
        words
    }
}

/// Consecutive tests of one order that one process of one binary runs.
struct Group<'c> {
    binary: &'c TestBinary,
    names: Vec<&'c str>,
    ids: Vec<TestId>,
    ignored: bool,
}

/// `--features` of `--features=x`.
fn option_name(word: &str) -> &str {
    word.split_once('=').map(|(name, _)| name).unwrap_or(word)
}

impl Runner for Cargo {
    fn name(&self) -> &'static str {
        if self.nextest {
            "nextest"
        } else {
            "cargo"
        }
    }

    fn ordering_note(&self) -> Option<String> {
        Some(if self.nextest {
            "each test runs alone in its own process of its test binary, as under nextest \
             (nextest's setup scripts, retries and per-test overrides are not applied); doc tests \
             are not run"
                .into()
        } else {
            "tests of one binary share a process while an order keeps them in name order (as \
             libtest runs them); anything else starts the binary again, so state kept in the \
             process (statics) does not carry across; doc tests are not run"
                .into()
        })
    }

    fn list(&self, ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        let ids = self.catalog(ctx)?.ids();
        if ids.is_empty() {
            anyhow::bail!(
                "the test binaries of `cargo test` list no test (or none that pass the filters)"
            );
        }
        Ok(ids)
    }

    fn invocations(&self, order: &[TestId], ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        let catalog = self.catalog(ctx)?;
        let harness = self.harness();
        Ok(self
            .groups(&catalog, order)?
            .into_iter()
            .map(|group| Invocation {
                program: group.binary.path.display().to_string(),
                args: harness.run_args(&group.names, group.ignored),
                env: group
                    .binary
                    .env
                    .iter()
                    .cloned()
                    // Uncaptured output would leave no failure sections to read.
                    .chain([("RUST_TEST_NOCAPTURE".to_string(), "0".to_string())])
                    .collect(),
                report: None,
                tests: group.ids,
                cwd: Some(group.binary.manifest_dir.clone()),
            })
            .collect())
    }

    fn results(
        &self,
        invocation: &Invocation,
        output: &ProcessOutput,
    ) -> anyhow::Result<Vec<TestResult>> {
        let Some(catalog) = self.built() else {
            return Ok(Vec::new());
        };
        let Some(first) = invocation.tests.first() else {
            return Ok(Vec::new());
        };
        let binary_id = catalog.find(first)?.0.binary_id.clone();
        let mut results = Vec::new();
        for result in libtest::parse_output(&output.stdout) {
            let id = catalog::test_id(&binary_id, &result.name);
            if !invocation.tests.contains(&id) {
                continue;
            }
            match result.outcome {
                Some(outcome) => results.push(TestResult {
                    id,
                    outcome,
                    message: result.message,
                }),
                // It started and never finished: it took its process down (abort, segfault,
                // `process::exit`). A timeout is the executor's to report.
                None if !output.timed_out => results.push(TestResult {
                    id,
                    outcome: Outcome::Failed,
                    message: Some(format!(
                        "the test binary died while this test ran ({}):\n{}",
                        match output.code {
                            Some(code) => format!("exit status {code}"),
                            None => "killed by a signal".into(),
                        },
                        output.tail(20)
                    )),
                }),
                None => {}
            }
        }
        Ok(results)
    }

    fn reproduce(&self, order: &[TestId]) -> String {
        let Some(catalog) = self.built() else {
            return String::new();
        };
        let Ok(groups) = self.groups(&catalog, order) else {
            return String::new();
        };
        groups
            .iter()
            .map(|group| {
                shell_join(&if self.nextest {
                    self.nextest_command(group)
                } else {
                    self.cargo_test_command(group)
                })
            })
            .collect::<Vec<_>>()
            .join(" && ")
    }

    fn junit_case(&self, listed: &[TestId], classname: &str, name: &str) -> Option<TestId> {
        // nextest's JUnit: classname is the binary id, name the test's full libtest name.
        let exact = catalog::test_id(classname, name);
        if listed.contains(&exact) {
            return Some(exact);
        }
        super::generic::match_junit_case(listed, classname, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn splits_cargo_and_harness_arguments() {
        let cargo = Cargo::new(
            &command("cargo test -p app --features x users --release -- --nocapture --skip slow"),
            0,
            false,
        );
        assert_eq!(cargo.build_args(), command("-p app --features x --release"));
        let harness = cargo.harness();
        assert_eq!(harness.filters, ["users"]);
        assert_eq!(harness.selection, ["--skip", "slow"]);
        assert!(harness.passthrough.is_empty());
    }

    #[test]
    fn keeps_what_nextest_list_takes() {
        let cargo = Cargo::new(
            &command("cargo nextest run --no-fail-fast -j 4 --retries=2 -E test(users) -p app -- --ignored"),
            0,
            true,
        );
        assert_eq!(
            cargo.nextest_list_args(),
            command("-E test(users) -p app -- --ignored")
        );
    }
}
