//! Vitest: lists with `vitest list --json=<file>` (collects every file, runs no test and no
//! hook; skipped tests are not listed), files sorted by path, tests in declared order. Vitest
//! orders files itself (cached durations, then size) whatever the command line says, and runs a
//! file's tests only in declared order, so a run is one `vitest run <file>` process per segment
//! of the order (consecutive tests of one file in declared order), in sequence against one
//! database, with an anchored `-t` pattern when the segment is not the whole file, and
//! `--no-file-parallelism --sequence.shuffle=false --sequence.concurrent=false`. Outcomes come
//! from the Jest-shaped `json` reporter.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::js::{self, ListedTest, Listing, ListingCache, Segment};
use super::shell::shell_join;
use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{TestId, TestResult};

/// Vitest's options that take a value in the next word (so that word is not a file filter).
const VALUE_OPTIONS: &[&str] = &[
    "-c",
    "--config",
    "-r",
    "--root",
    "--dir",
    "--reporter",
    "--outputFile",
    "--pool",
    "--project",
    "--mode",
    "--environment",
    "-t",
    "--testNamePattern",
    "--exclude",
    "--shard",
    "--bail",
    "--retry",
    "--maxWorkers",
    "--minWorkers",
    "--testTimeout",
    "--hookTimeout",
    "--teardownTimeout",
    "--workspace",
    "--sequence.seed",
    "--sequence.hooks",
    "--sequence.setupFiles",
    "--changed",
    "--coverage.provider",
    "--coverage.reporter",
    "--coverage.reportsDirectory",
];

pub struct Vitest {
    /// The launcher and `vitest` (`npx vitest`), without a sub-command.
    program: Vec<String>,
    /// The user's options, without the sub-command and the file filters.
    options: Vec<String>,
    /// The user's file filters (`vitest run tests/db`).
    filters: Vec<String>,
    cwd: PathBuf,
    listing: ListingCache,
}

impl Vitest {
    pub fn new(command: &[String], runner_word: usize, cwd: &Path) -> Vitest {
        let program = command[..=runner_word].to_vec();
        let mut rest = &command[runner_word + 1..];
        if let Some(first) = rest.first() {
            if matches!(first.as_str(), "run" | "watch" | "dev" | "related") {
                rest = &rest[1..];
            }
        }
        let mut options = Vec::new();
        let mut filters = Vec::new();
        let mut takes_value = false;
        for word in rest {
            if takes_value {
                options.push(word.clone());
                takes_value = false;
            } else if word.starts_with('-') {
                takes_value = !word.contains('=') && VALUE_OPTIONS.contains(&word.as_str());
                options.push(word.clone());
            } else {
                filters.push(word.clone());
            }
        }
        Vitest {
            program,
            options,
            filters,
            cwd: cwd.to_path_buf(),
            listing: ListingCache::default(),
        }
    }

    fn make_listing(&self, ctx: &Context) -> anyhow::Result<Listing> {
        let report = ctx.scratch_file("vitest-list", "json");
        let mut command = self.program.clone();
        command.push("list".into());
        command.extend(self.options.iter().cloned());
        command.extend(self.filters.iter().cloned());
        let output = js::run_listing(
            &command,
            &[format!("--json={}", report.display())],
            &[],
            ctx,
        )?;
        // A file that does not load makes `vitest list` fail (and leaves its tests out).
        let text = match std::fs::read_to_string(&report) {
            Ok(text) if output.code == Some(0) => text,
            _ => anyhow::bail!(
                "`{}` could not list the tests (exit {}; `vitest list` needs Vitest 1.6 or \
                 later):\n{}",
                shell_join(&command),
                output.code.unwrap_or(-1),
                output.tail(20)
            ),
        };
        #[derive(serde::Deserialize)]
        struct Entry {
            name: String,
            file: PathBuf,
        }
        let entries: Vec<Entry> =
            serde_json::from_str(&text).with_context(|| format!("reading {}", report.display()))?;
        // Stable sort: files by path, each file's tests kept in declared order.
        let mut tests: Vec<(String, Vec<String>)> = entries
            .into_iter()
            .map(|e| {
                let titles = e.name.split(" > ").map(String::from).collect();
                (js::display_path(&e.file, &ctx.cwd), titles)
            })
            .collect();
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

    /// `vitest run` of one segment: the user's options, then ours.
    fn segment_words(&self, segment: &Segment, listing: &Listing, file: &str) -> Vec<String> {
        let mut words = self.program.clone();
        words.push("run".into());
        words.extend(self.options.iter().cloned());
        words.extend(
            [
                "--no-file-parallelism",
                "--sequence.shuffle=false",
                "--sequence.concurrent=false",
            ]
            .map(String::from),
        );
        if segment.tests.len() < listing.of_file(&segment.file).len() {
            let names: Vec<String> = segment
                .tests
                .iter()
                .map(|&i| listing.tests[i].spaced_name())
                .collect();
            words.push("-t".into());
            words.push(js::names_pattern(&names));
        }
        words.push(file.to_string());
        words
    }
}

impl Runner for Vitest {
    fn name(&self) -> &'static str {
        "vitest"
    }

    fn order_units(&self, tests: &[TestId]) -> Option<Vec<Vec<TestId>>> {
        // A shuffle of single tests would cost a process per test: files move as wholes.
        Some(super::units_by_file(tests))
    }

    fn ordering_note(&self) -> Option<String> {
        Some(
            "Vitest picks the order of files itself and runs a file's tests only in declared \
             order: each run is one Vitest process per file (per stretch of a file's tests in \
             declared order), in sequence on one database"
                .into(),
        )
    }

    fn list(&self, ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        let listing = self.listing.set(self.make_listing(ctx)?);
        Ok(listing.ids())
    }

    fn invocations(&self, order: &[TestId], ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        let listing = self.listing.get_or_list(|| self.make_listing(ctx))?;
        js::segments(order, &listing, js::InFile::Declared)?
            .into_iter()
            .map(|segment| {
                let report = ctx.scratch_file("vitest-report", "json");
                // An absolute path: Vitest's filters match any file whose path contains them.
                let file = js::absolute(&segment.file, &ctx.cwd).display().to_string();
                let mut words = self.segment_words(&segment, &listing, &file);
                words.push("--reporter=json".into());
                words.push(format!("--outputFile={}", report.display()));
                Ok(Invocation {
                    program: words[0].clone(),
                    args: words[1..].to_vec(),
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
        js::jest_json_results(report, &self.cwd, &invocation.tests)
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
                // `./file`: a filter that names the file from the hunt's directory.
                let file = if Path::new(&segment.file).is_absolute() {
                    segment.file.clone()
                } else {
                    format!("./{}", segment.file)
                };
                shell_join(&self.segment_words(segment, &listing, &file))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_file_filters_from_options() {
        let command: Vec<String> = [
            "npx",
            "vitest",
            "run",
            "--reporter",
            "dot",
            "tests/db",
            "--pool=forks",
            "-c",
            "v.config.ts",
        ]
        .map(String::from)
        .to_vec();
        let vitest = Vitest::new(&command, 1, Path::new("/x"));
        assert_eq!(vitest.program, ["npx", "vitest"]);
        assert_eq!(vitest.filters, ["tests/db"]);
        assert_eq!(
            vitest.options,
            ["--reporter", "dot", "--pool=forks", "-c", "v.config.ts"]
        );
    }
}
