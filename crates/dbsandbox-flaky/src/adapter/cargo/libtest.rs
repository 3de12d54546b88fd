//! Rust's test harness (libtest), driven through its stable command line: which of the user's
//! harness arguments still apply when the hunter picks the tests, and what its plain output says
//! (`test NAME ... ok`, the `---- NAME stdout ----` failure sections). Its `--format json` is
//! unstable (nightly only), so it is not used.

use crate::model::Outcome;

/// libtest options that take a value (`--skip X` or `--skip=X`).
const VALUE_OPTIONS: &[&str] = &[
    "--skip",
    "--test-threads",
    "--format",
    "--color",
    "-Z",
    "--logfile",
    "--shuffle-seed",
];

/// Options the hunter sets itself or that change the output it reads: dropped from every run.
const RUN_DROPPED: &[&str] = &[
    "--exact",
    "--skip",
    "--ignored",
    "--include-ignored",
    "--test-threads",
    "--nocapture",
    "--no-capture",
    "--show-output",
    "-q",
    "--quiet",
    "--format",
    "--color",
    "--list",
    "--logfile",
    "-Z",
    "--shuffle",
    "--shuffle-seed",
    "--report-time",
    "--ensure-time",
    "--fail-fast",
];

/// Options that pick tests: kept when listing, with the filters.
const LIST_KEPT: &[&str] = &["--exact", "--skip", "--ignored", "--include-ignored"];

/// The user's harness arguments (after `--`), sorted by what the hunter does with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HarnessArgs {
    /// Name filters (`cargo test users` or `-- users`), applied when listing.
    pub filters: Vec<String>,
    /// `--exact`, `--skip X`, `--ignored`, `--include-ignored`: applied when listing.
    pub selection: Vec<String>,
    /// Everything else the harness understands and the hunter leaves alone (custom harnesses).
    pub passthrough: Vec<String>,
    /// `--ignored`: only ignored tests are listed.
    pub only_ignored: bool,
    /// `--include-ignored`: ignored tests are listed with the others.
    pub include_ignored: bool,
}

impl HarnessArgs {
    pub fn parse(words: &[String]) -> HarnessArgs {
        let mut args = HarnessArgs::default();
        let mut i = 0;
        while i < words.len() {
            let word = &words[i];
            let (flag, inline_value) = match word.split_once('=') {
                Some((flag, _)) if flag.starts_with('-') => (flag, true),
                _ => (word.as_str(), false),
            };
            let mut taken = vec![word.clone()];
            if VALUE_OPTIONS.contains(&flag) && !inline_value {
                if let Some(value) = words.get(i + 1) {
                    taken.push(value.clone());
                    i += 1;
                }
            }
            i += 1;
            if !flag.starts_with('-') {
                args.filters.push(word.clone());
                continue;
            }
            match flag {
                "--ignored" => args.only_ignored = true,
                "--include-ignored" => args.include_ignored = true,
                _ => {}
            }
            if LIST_KEPT.contains(&flag) {
                args.selection.extend(taken);
            } else if !RUN_DROPPED.contains(&flag) {
                args.passthrough.extend(taken);
            }
        }
        args
    }

    /// The arguments of `BIN --list --format terse …` (`ignored_only`: the listing of ignored tests).
    pub fn list_args(&self, ignored_only: bool) -> Vec<String> {
        let mut words: Vec<String> = ["--list", "--format", "terse"].map(String::from).to_vec();
        words.extend(self.passthrough.iter().cloned());
        words.extend(
            self.selection
                .iter()
                .filter(|w| !ignored_only || !w.contains("ignored"))
                .cloned(),
        );
        if ignored_only {
            words.push("--ignored".into());
        }
        words.extend(self.filters.iter().cloned());
        words
    }

    /// The arguments that run exactly `names` (sorted by name, as libtest runs them) on one thread.
    pub fn run_args(&self, names: &[&str], include_ignored: bool) -> Vec<String> {
        let mut words = self.passthrough.clone();
        words.extend(["--exact", "--test-threads=1", "--color", "never"].map(String::from));
        if include_ignored {
            words.push("--include-ignored".into());
        }
        words.extend(names.iter().map(|n| n.to_string()));
        words
    }
}

/// The test names of `BIN --list --format terse` (benchmarks left out).
pub fn listed_tests(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .map(str::to_string)
        .collect()
}

/// One test's result in libtest's plain output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibtestResult {
    pub name: String,
    /// `None`: the test started and its result never came (the process died while it ran).
    pub outcome: Option<Outcome>,
    pub message: Option<String>,
}

/// The results in a test binary's plain output, in the order it ran them.
pub fn parse_output(stdout: &str) -> Vec<LibtestResult> {
    let mut results: Vec<LibtestResult> = Vec::new();
    // The test whose `test NAME ... ` line had no result yet (its own raw output came between).
    let mut pending: Option<usize> = None;
    let mut lines = stdout.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some((name, rest)) = test_line(line) {
            let outcome = outcome_word(rest);
            if outcome.is_none() && !rest.trim().is_empty() && rest.starts_with("bench:") {
                continue;
            }
            results.push(LibtestResult {
                name: name.to_string(),
                outcome,
                message: None,
            });
            pending = outcome.is_none().then(|| results.len() - 1);
            continue;
        }
        if let Some(index) = pending {
            if let Some(outcome) = outcome_word(line.trim()) {
                results[index].outcome = Some(outcome);
                pending = None;
                continue;
            }
        }
        if let Some(name) = failure_header(line) {
            let mut text = Vec::new();
            while let Some(next) = lines.peek() {
                if failure_header(next).is_some() || *next == "failures:" || *next == "successes:" {
                    break;
                }
                text.push(lines.next().unwrap_or_default());
            }
            let message = failure_text(&text);
            if let Some(result) = results.iter_mut().rev().find(|r| r.name == name) {
                result.message = Some(message);
            }
        }
    }
    results
}

/// `test NAME ... REST` (also `test NAME - should panic ... REST`): the name and the rest.
fn test_line(line: &str) -> Option<(&str, &str)> {
    let body = line.strip_prefix("test ")?;
    let (name, rest) = match body.split_once(" ... ") {
        Some(split) => split,
        // A test that died before its result: libtest wrote `test NAME ... ` and nothing more.
        None => (body.strip_suffix(" ...")?, ""),
    };
    let name = name.strip_suffix(" - should panic").unwrap_or(name);
    Some((name, rest))
}

fn outcome_word(text: &str) -> Option<Outcome> {
    match text {
        "ok" => Some(Outcome::Passed),
        "FAILED" => Some(Outcome::Failed),
        t if t == "ignored" || t.starts_with("ignored, ") => Some(Outcome::Skipped),
        _ => None,
    }
}

/// `---- NAME stdout ----`: the start of a test's captured output.
fn failure_header(line: &str) -> Option<&str> {
    line.strip_prefix("---- ")?.strip_suffix(" stdout ----")
}

/// A failure section without its blank edges and without the backtrace's frames (noise for the
/// reader of the failure, which wants the panic message, SQLSTATE and DETAIL lines).
fn failure_text(lines: &[&str]) -> String {
    let mut kept = Vec::new();
    let mut in_backtrace = false;
    for line in lines {
        if *line == "stack backtrace:" {
            in_backtrace = true;
            continue;
        }
        if in_backtrace {
            let frame = line.starts_with(' ') || line.starts_with("note: Some details");
            if frame {
                continue;
            }
            in_backtrace = false;
        }
        kept.push(*line);
    }
    kept.join("\n").trim_matches('\n').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn sorts_harness_arguments() {
        let args = HarnessArgs::parse(&words(
            "users --skip slow --test-threads 4 --nocapture --include-ignored --custom -Z unstable-options --format=json",
        ));
        assert_eq!(args.filters, ["users"]);
        assert_eq!(args.selection, ["--skip", "slow", "--include-ignored"]);
        assert_eq!(args.passthrough, ["--custom"]);
        assert!(args.include_ignored && !args.only_ignored);
        assert_eq!(
            args.run_args(&["a", "b"], true),
            words("--custom --exact --test-threads=1 --color never --include-ignored a b")
        );
        assert_eq!(
            args.list_args(true),
            words("--list --format terse --custom --skip slow --ignored users")
        );
    }

    #[test]
    fn reads_plain_output() {
        let stdout = "\nrunning 4 tests\n\
            test tests::a ... ok\n\
            test tests::b ... FAILED\n\
            test tests::c - should panic ... ok\n\
            test tests::d ... ignored, slow\n\
            test tests::e ... raw output of a child process\n\
            ok\n\
            \nfailures:\n\n\
            ---- tests::b stdout ----\n\n\
            thread 'tests::b' (9296) panicked at src/lib.rs:19:5:\n\
            db error: ERROR: duplicate key value violates unique constraint \"coupons_code_key\"\n\
            DETAIL: Key (code)=(WELCOME10) already exists.\n\
            stack backtrace:\n   0: core::panicking::panic_fmt\n             at /rustc/x/panicking.rs:80:14\n\
            note: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.\n\n\n\
            failures:\n    tests::b\n\n\
            test result: FAILED. 3 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out\n";
        let results = parse_output(stdout);
        let outcomes: Vec<(&str, Option<Outcome>)> = results
            .iter()
            .map(|r| (r.name.as_str(), r.outcome))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("tests::a", Some(Outcome::Passed)),
                ("tests::b", Some(Outcome::Failed)),
                ("tests::c", Some(Outcome::Passed)),
                ("tests::d", Some(Outcome::Skipped)),
                ("tests::e", Some(Outcome::Passed)),
            ]
        );
        assert_eq!(
            results[1].message.as_deref(),
            Some(
                "thread 'tests::b' (9296) panicked at src/lib.rs:19:5:\n\
                 db error: ERROR: duplicate key value violates unique constraint \"coupons_code_key\"\n\
                 DETAIL: Key (code)=(WELCOME10) already exists."
            )
        );
    }

    #[test]
    fn a_test_that_killed_its_process_has_no_result() {
        let results = parse_output("\nrunning 2 tests\ntest a ... ok\ntest b ... ");
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].name, "b");
        assert_eq!(results[1].outcome, None);
    }

    #[test]
    fn lists_tests_not_benchmarks() {
        assert_eq!(
            listed_tests("a::b: test\nbig: benchmark\nc: test\n"),
            ["a::b", "c"]
        );
    }
}
