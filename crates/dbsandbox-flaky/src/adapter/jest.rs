//! Jest: lists by loading every test file with a name pattern that matches nothing
//! (`--testNamePattern='(?!)'`: no test and no hook runs, each test is reported as skipped with
//! its titles), in the file order of a test sequencer shipped with dbsandbox (`jest_sequencer.cjs`,
//! written to the scratch directory): files sorted by path. A run is `--runInBand` with that
//! sequencer running exactly the files of `$DBSANDBOX_FLAKY_JEST_FILES` in that order, and an
//! anchored `--testNamePattern` of the chosen tests' full names when a file runs only some of its
//! tests. Where a file's tests must run out of declared order, a shipped test runner
//! (`jest_runner.cjs`, the project's jest-circus with each describe block's children reordered)
//! runs any order that keeps each describe block's tests together; an order that leaves a block
//! and comes back is cut into several Jest processes, in sequence against one database.
//! Outcomes come from `--json --outputFile`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::js::{self, ListedTest, Listing, ListingCache, Segment};
use super::shell::shell_join;
use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{TestId, TestResult};

const SEQUENCER: &str = include_str!("jest_sequencer.cjs");
const RUNNER: &str = include_str!("jest_runner.cjs");
const FILES_VAR: &str = "DBSANDBOX_FLAKY_JEST_FILES";
const ORDER_VAR: &str = "DBSANDBOX_FLAKY_JEST_ORDER";
/// Matches no name: listing loads the files and runs nothing.
const NO_TEST: &str = "(?!)";
/// One argument may not pass 128 KiB on Linux: longer patterns go to another process.
const MAX_PATTERN: usize = 100_000;

pub struct Jest {
    /// The user's command, as given.
    command: Vec<String>,
    cwd: PathBuf,
    listing: ListingCache,
    /// Jest before 29.2 has no `--randomize` (and refuses unknown flags): found out by listing.
    has_randomize: AtomicBool,
}

impl Jest {
    pub fn new(command: &[String], _runner_word: usize, cwd: &Path) -> Jest {
        Jest {
            command: command.to_vec(),
            cwd: cwd.to_path_buf(),
            listing: ListingCache::default(),
            has_randomize: AtomicBool::new(true),
        }
    }

    /// The flags every process gets after the user's own.
    fn fixed_args(&self, sequencer: &Path, report: &Path) -> Vec<String> {
        let mut args = vec!["--runInBand".to_string()];
        if self.has_randomize.load(Ordering::Relaxed) {
            args.push("--randomize=false".into());
        }
        args.extend([
            "--json".into(),
            format!("--outputFile={}", report.display()),
            format!("--testSequencer={}", sequencer.display()),
        ]);
        args
    }

    fn make_listing(&self, ctx: &Context) -> anyhow::Result<Listing> {
        let sequencer = js::write_shim(ctx, "dbsandbox-jest-sequencer.cjs", SEQUENCER)?;
        let report = ctx.scratch_file("jest-list", "json");
        let listing_args = || {
            let mut args = self.fixed_args(&sequencer, &report);
            args.push(format!("--testNamePattern={NO_TEST}"));
            args
        };
        let mut output = js::run_listing(&self.command, &listing_args(), &[], ctx)?;
        if !report.exists()
            && output
                .tail(40)
                .contains("Unrecognized option \"randomize\"")
        {
            self.has_randomize.store(false, Ordering::Relaxed);
            output = js::run_listing(&self.command, &listing_args(), &[], ctx)?;
        }
        let Ok(text) = std::fs::read_to_string(&report) else {
            anyhow::bail!(
                "`{}` wrote no report, so its tests cannot be listed (exit {}):\n{}",
                self.command.join(" "),
                output.code.unwrap_or(-1),
                output.tail(20)
            );
        };
        let mut tests = Vec::new();
        for file in js::read_jest_json(&text)? {
            let name = js::display_path(&file.path, &ctx.cwd);
            if let Some(message) = &file.message {
                anyhow::bail!("the Jest test file {name} does not load:\n{message}");
            }
            let mut ids = js::IdMaker::new();
            for test in file.tests {
                tests.push(ListedTest {
                    id: ids.id(&name, &test.titles),
                    file: name.clone(),
                    titles: test.titles,
                });
            }
        }
        if tests.is_empty() {
            anyhow::bail!(
                "`{}` lists no tests (exit {}):\n{}",
                self.command.join(" "),
                output.code.unwrap_or(-1),
                output.tail(20)
            );
        }
        Ok(Listing::new(tests))
    }
}

/// The segments of one Jest process: its files, each once, and the name pattern they need.
#[derive(Default)]
struct Process {
    segments: Vec<Segment>,
    /// Lowercased spaced names (Jest matches `-t` case-insensitively).
    names: HashSet<String>,
    pattern_len: usize,
}

impl Process {
    fn has_file(&self, file: &str) -> bool {
        self.segments.iter().any(|s| s.file == file)
    }

    /// Whether a pattern of `names` would also pick a listed test of these files that the
    /// process does not run (two tests of one file with one name are left alone: no pattern
    /// tells them apart).
    fn picks_others(&self, names: &HashSet<String>, listing: &Listing, extra: &Segment) -> bool {
        let segments = || self.segments.iter().chain(std::iter::once(extra));
        let chosen: HashSet<usize> = segments().flat_map(|s| s.tests.iter().copied()).collect();
        segments().any(|segment| {
            let own: HashSet<&str> = segment
                .tests
                .iter()
                .map(|&c| listing.lower_name(c))
                .collect();
            listing.of_file(&segment.file).iter().any(|&i| {
                let name = listing.lower_name(i);
                !chosen.contains(&i) && names.contains(name) && !own.contains(name)
            })
        })
    }

    /// Adds `segment` when it fits; false when it needs a process of its own.
    fn try_add(&mut self, segment: &Segment, listing: &Listing) -> bool {
        let new_names: Vec<String> = segment
            .tests
            .iter()
            .map(|&i| listing.tests[i].spaced_name())
            .collect();
        let added_len: usize = new_names.iter().map(|n| n.len() * 2 + 1).sum();
        if !self.segments.is_empty() {
            if self.has_file(&segment.file) || self.pattern_len + added_len > MAX_PATTERN {
                return false;
            }
            let mut names = self.names.clone();
            names.extend(
                segment
                    .tests
                    .iter()
                    .map(|&i| listing.lower_name(i).to_string()),
            );
            if self.picks_others(&names, listing, segment) {
                return false;
            }
        }
        self.names.extend(
            segment
                .tests
                .iter()
                .map(|&i| listing.lower_name(i).to_string()),
        );
        self.pattern_len += added_len;
        self.segments.push(segment.clone());
        true
    }

    /// The anchored pattern, or none when every file runs all of its tests.
    fn pattern(&self, listing: &Listing) -> Option<String> {
        let whole = self
            .segments
            .iter()
            .all(|s| s.tests.len() == listing.of_file(&s.file).len());
        if whole {
            return None;
        }
        Some(segment_pattern(
            self.segments.iter().flat_map(|s| s.tests.iter()),
            listing,
        ))
    }
}

fn segment_pattern<'a>(tests: impl Iterator<Item = &'a usize>, listing: &Listing) -> String {
    let mut seen = HashSet::new();
    let names: Vec<String> = tests
        .map(|&i| listing.tests[i].spaced_name())
        .filter(|n| seen.insert(n.to_lowercase()))
        .collect();
    js::names_pattern(&names)
}

impl Runner for Jest {
    fn name(&self) -> &'static str {
        "jest"
    }

    fn order_units(&self, tests: &[TestId]) -> Option<Vec<Vec<TestId>>> {
        // A shuffle of single tests would cost a process per test: files move as wholes.
        Some(super::units_by_file(tests))
    }

    fn ordering_note(&self) -> Option<String> {
        Some(
            "Jest keeps a describe block's tests together: an order that leaves a block and comes \
             back to it runs as several Jest processes in sequence on one database (global setup \
             runs in each)"
                .into(),
        )
    }

    fn list(&self, ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        let listing = self.listing.set(self.make_listing(ctx)?);
        Ok(listing.ids())
    }

    fn invocations(&self, order: &[TestId], ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        let listing = self.listing.get_or_list(|| self.make_listing(ctx))?;
        let sequencer = js::write_shim(ctx, "dbsandbox-jest-sequencer.cjs", SEQUENCER)?;
        let mut processes: Vec<Process> = Vec::new();
        for segment in js::segments(order, &listing, js::InFile::Grouped)? {
            let fits = processes
                .last_mut()
                .is_some_and(|p| p.try_add(&segment, &listing));
            if !fits {
                let mut process = Process::default();
                process.try_add(&segment, &listing);
                processes.push(process);
            }
        }
        let mut invocations = Vec::new();
        for process in processes {
            let report = ctx.scratch_file("jest-report", "json");
            let files = ctx.scratch_file("jest-files", "txt");
            let paths: Vec<String> = process
                .segments
                .iter()
                .map(|s| js::absolute(&s.file, &ctx.cwd).display().to_string())
                .collect();
            std::fs::write(&files, paths.join("\n") + "\n")?;
            let mut args = self.command[1..].to_vec();
            args.extend(self.fixed_args(&sequencer, &report));
            if let Some(pattern) = process.pattern(&listing) {
                args.push(format!("--testNamePattern={pattern}"));
            }
            let mut env = vec![(FILES_VAR.into(), files.display().to_string())];
            // The shipped runner only where a file's tests run out of declared order.
            let reordered = process
                .segments
                .iter()
                .any(|s| s.tests.windows(2).any(|w| w[0] > w[1]));
            if reordered {
                let runner = js::write_shim(ctx, "dbsandbox-jest-runner.cjs", RUNNER)?;
                args.push(format!("--testRunner={}", runner.display()));
                let order_file = ctx.scratch_file("jest-order", "json");
                let by_file: serde_json::Map<String, serde_json::Value> = process
                    .segments
                    .iter()
                    .map(|s| {
                        let titles: Vec<&Vec<String>> =
                            s.tests.iter().map(|&i| &listing.tests[i].titles).collect();
                        (
                            js::absolute(&s.file, &ctx.cwd).display().to_string(),
                            serde_json::json!(titles),
                        )
                    })
                    .collect();
                std::fs::write(&order_file, serde_json::Value::Object(by_file).to_string())?;
                env.push((ORDER_VAR.into(), order_file.display().to_string()));
            }
            invocations.push(Invocation {
                program: self.command[0].clone(),
                args,
                env,
                report: Some(report),
                cwd: None,
                tests: process
                    .segments
                    .iter()
                    .flat_map(|s| s.ids(&listing))
                    .collect(),
            });
        }
        Ok(invocations)
    }

    fn results(
        &self,
        invocation: &Invocation,
        _output: &ProcessOutput,
    ) -> anyhow::Result<Vec<TestResult>> {
        let Some(report) = &invocation.report else {
            return Ok(Vec::new());
        };
        js::jest_json_results(report, &self.cwd, &invocation.tests)
    }

    /// One `jest --runTestsByPath <file>` per segment (without the shipped sequencer Jest picks
    /// the order of several files itself), joined by `;` so a failing step does not stop the
    /// rest: the command's status is the last test's.
    fn reproduce(&self, order: &[TestId]) -> String {
        let Some(listing) = self.listing.get() else {
            return shell_join(&self.command);
        };
        let Ok(segments) = js::segments(order, &listing, js::InFile::Declared) else {
            return shell_join(&self.command);
        };
        segments
            .iter()
            .map(|segment| {
                let mut words = self.command.clone();
                words.extend(["--runInBand", "--runTestsByPath"].map(String::from));
                words.push(segment.file.clone());
                if segment.tests.len() < listing.of_file(&segment.file).len() {
                    words.push("-t".into());
                    words.push(segment_pattern(segment.tests.iter(), &listing));
                }
                shell_join(&words)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}
