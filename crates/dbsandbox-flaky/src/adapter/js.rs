//! What the JavaScript adapters (Jest, Vitest, `node --test`) share: test ids
//! (`relative/file.test.js::Describe > test name`), the listed suite they keep to plan
//! invocations, the split of an order into runs of one file in declared order (none of these
//! runners reorders tests inside a file), escaped name patterns, and the reader of the
//! Jest-shaped JSON report that Jest and Vitest both write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use super::{Context, ProcessOutput};
use crate::model::{Outcome, TestId, TestResult};

/// One test as the runner listed it.
#[derive(Debug, Clone)]
pub struct ListedTest {
    pub id: TestId,
    /// The file as the ids name it: relative to the hunt's directory when under it.
    pub file: String,
    pub titles: Vec<String>,
}

impl ListedTest {
    /// The describe titles and the test's title joined by spaces: the name Jest's and Vitest's
    /// `-t` patterns are matched against.
    pub fn spaced_name(&self) -> String {
        self.titles.join(" ")
    }
}

/// The suite in declared order, with each test's place in its file.
#[derive(Debug, Default)]
pub struct Listing {
    pub tests: Vec<ListedTest>,
    index: HashMap<TestId, usize>,
    by_file: HashMap<String, Vec<usize>>,
    /// Each test's spaced name, lowercased (Jest matches `-t` without case).
    lower_names: Vec<String>,
    /// Tests whose titles do not tell their place in the file's tree: a repeated name, or a
    /// describe title two separate blocks of the file share.
    ambiguous: Vec<bool>,
}

impl Listing {
    pub fn new(tests: Vec<ListedTest>) -> Listing {
        let index = tests
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let mut by_file: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, t) in tests.iter().enumerate() {
            by_file.entry(t.file.clone()).or_default().push(i);
        }
        let lower_names = tests
            .iter()
            .map(|t| t.spaced_name().to_lowercase())
            .collect();
        let ambiguous = ambiguous_tests(&tests, &by_file);
        Listing {
            tests,
            index,
            by_file,
            lower_names,
            ambiguous,
        }
    }

    pub fn is_ambiguous(&self, position: usize) -> bool {
        self.ambiguous[position]
    }

    /// The spaced name of the test at `position`, lowercased.
    pub fn lower_name(&self, position: usize) -> &str {
        &self.lower_names[position]
    }

    pub fn position(&self, id: &str) -> anyhow::Result<usize> {
        self.index
            .get(id)
            .copied()
            .with_context(|| format!("`{id}` is not a test the suite listed"))
    }

    pub fn ids(&self) -> Vec<TestId> {
        self.tests.iter().map(|t| t.id.clone()).collect()
    }

    /// The positions of the listed tests of `file`, in declared order.
    pub fn of_file(&self, file: &str) -> &[usize] {
        self.by_file.get(file).map(Vec::as_slice).unwrap_or(&[])
    }
}

fn ambiguous_tests(tests: &[ListedTest], by_file: &HashMap<String, Vec<usize>>) -> Vec<bool> {
    use std::collections::HashSet;
    let mut ambiguous = vec![false; tests.len()];
    for positions in by_file.values() {
        let mut names: HashMap<&[String], usize> = HashMap::new();
        // A block is split when its title comes back after tests outside it.
        let mut closed: HashSet<&[String]> = HashSet::new();
        let mut split: HashSet<&[String]> = HashSet::new();
        let mut open: Vec<&[String]> = Vec::new();
        for &i in positions {
            let titles = tests[i].titles.as_slice();
            *names.entry(titles).or_insert(0) += 1;
            let blocks: Vec<&[String]> = (1..titles.len()).map(|d| &titles[..d]).collect();
            for block in open.drain(..) {
                if !blocks.contains(&block) {
                    closed.insert(block);
                }
            }
            for &block in &blocks {
                if closed.contains(block) {
                    split.insert(block);
                }
            }
            open = blocks;
        }
        for &i in positions {
            let titles = tests[i].titles.as_slice();
            ambiguous[i] =
                names[titles] > 1 || (1..titles.len()).any(|d| split.contains(&titles[..d]));
        }
    }
    ambiguous
}

/// The listing an adapter made once, kept for planning every run's invocations.
#[derive(Default)]
pub struct ListingCache(Mutex<Option<Arc<Listing>>>);

impl ListingCache {
    pub fn get(&self) -> Option<Arc<Listing>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, listing: Listing) -> Arc<Listing> {
        let listing = Arc::new(listing);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(listing.clone());
        listing
    }

    /// The kept listing, or a new one made with `list`.
    pub fn get_or_list(
        &self,
        list: impl FnOnce() -> anyhow::Result<Listing>,
    ) -> anyhow::Result<Arc<Listing>> {
        match self.get() {
            Some(listing) => Ok(listing),
            None => Ok(self.set(list()?)),
        }
    }
}

/// `file::A > B > test`.
pub fn test_id(file: &str, titles: &[String]) -> TestId {
    format!("{file}::{}", titles.join(" > "))
}

/// Ids for the tests of one file in document order; a name used twice gets ` (2)`, ` (3)` … so
/// ids stay unique (the runner itself cannot select one of two equal names).
pub struct IdMaker {
    seen: HashMap<TestId, usize>,
}

impl IdMaker {
    pub fn new() -> IdMaker {
        IdMaker {
            seen: HashMap::new(),
        }
    }

    pub fn id(&mut self, file: &str, titles: &[String]) -> TestId {
        let base = test_id(file, titles);
        let n = self.seen.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base
        } else {
            format!("{base} ({n})")
        }
    }
}

/// `path` as ids name it: relative to `cwd` (or to its real path) when under it.
pub fn display_path(path: &Path, cwd: &Path) -> String {
    if let Ok(relative) = path.strip_prefix(cwd) {
        return relative.display().to_string();
    }
    if let Some(relative) = std::fs::canonicalize(cwd)
        .ok()
        .and_then(|real| path.strip_prefix(real).ok().map(Path::to_path_buf))
    {
        return relative.display().to_string();
    }
    path.display().to_string()
}

/// The file an id's file part names, as an absolute path.
pub fn absolute(file: &str, cwd: &Path) -> PathBuf {
    let path = Path::new(file);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

/// `text` as a JavaScript regular expression that matches it literally.
pub fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.*+?()[]{}|/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A pattern matching exactly these names (whole names, nothing else).
pub fn names_pattern<S: AsRef<str>>(names: &[S]) -> String {
    let alternatives: Vec<String> = names.iter().map(|n| regex_escape(n.as_ref())).collect();
    format!("^(?:{})$", alternatives.join("|"))
}

/// A run of consecutive tests of one file, in the file's declared order: what one runner
/// process can run of that file.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub file: String,
    /// Indices into the listing, increasing.
    pub tests: Vec<usize>,
}

impl Segment {
    /// The segment's test ids, in its order.
    pub fn ids(&self, listing: &Listing) -> Vec<TestId> {
        self.tests
            .iter()
            .map(|&i| listing.tests[i].id.clone())
            .collect()
    }
}

/// What one runner process can do with the tests of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InFile {
    /// Run them in declared order only.
    Declared,
    /// Reorder each describe block's children (Jest with the shipped runner): any order that
    /// keeps each describe block's tests together.
    Grouped,
}

/// `order` cut into maximal segments: a new one starts when the file changes or the next test
/// cannot follow the segment in one process (`in_file`).
pub fn segments(
    order: &[TestId],
    listing: &Listing,
    in_file: InFile,
) -> anyhow::Result<Vec<Segment>> {
    let mut out: Vec<Segment> = Vec::new();
    for id in order {
        let position = listing.position(id)?;
        let file = &listing.tests[position].file;
        let follows = |last: &Segment| {
            let declared = *last.tests.last().unwrap() < position;
            match in_file {
                InFile::Declared => declared,
                InFile::Grouped => {
                    keeps_blocks_together(last, position, listing)
                        && (declared || !listing.is_ambiguous(position))
                }
            }
        };
        match out.last_mut() {
            Some(last) if &last.file == file && follows(last) => last.tests.push(position),
            _ => out.push(Segment {
                file: file.clone(),
                tests: vec![position],
            }),
        }
    }
    Ok(out)
}

/// Whether `next` after `segment` leaves every describe block's tests together: a block of
/// `next` that an earlier test of the segment is in must be the block the segment is in now.
fn keeps_blocks_together(segment: &Segment, next: usize, listing: &Listing) -> bool {
    let titles = &listing.tests[next].titles;
    let last = &listing.tests[*segment.tests.last().unwrap()].titles;
    (1..titles.len()).all(|depth| {
        let block = &titles[..depth];
        let inside = |t: &[String]| t.len() > depth && t.starts_with(block);
        inside(last)
            || !segment
                .tests
                .iter()
                .any(|&u| inside(&listing.tests[u].titles))
    })
}

/// A launcher-free description of the processes in a Jest-shaped report: what one file did.
#[derive(Debug, Clone)]
pub struct ReportedFile {
    pub path: PathBuf,
    /// The file's own failure (it did not load, a hook outside any test failed…).
    pub message: Option<String>,
    pub tests: Vec<ReportedTest>,
}

#[derive(Debug, Clone)]
pub struct ReportedTest {
    pub titles: Vec<String>,
    pub outcome: Outcome,
    pub message: Option<String>,
}

/// The `testResults` of a Jest-shaped JSON report (Jest's `--json`, Vitest's `json` reporter).
pub fn read_jest_json(text: &str) -> anyhow::Result<Vec<ReportedFile>> {
    #[derive(serde::Deserialize)]
    struct Report {
        #[serde(rename = "testResults", default)]
        test_results: Vec<File>,
    }
    #[derive(serde::Deserialize)]
    struct File {
        name: String,
        #[serde(default)]
        message: Option<String>,
        #[serde(rename = "assertionResults", default)]
        assertion_results: Vec<Assertion>,
    }
    #[derive(serde::Deserialize)]
    struct Assertion {
        #[serde(rename = "ancestorTitles", default)]
        ancestor_titles: Vec<String>,
        title: String,
        status: String,
        #[serde(rename = "failureMessages", default)]
        failure_messages: Vec<String>,
    }
    let report: Report = serde_json::from_str(text)?;
    Ok(report
        .test_results
        .into_iter()
        .map(|file| ReportedFile {
            path: PathBuf::from(file.name),
            message: file
                .message
                .filter(|m| !m.trim().is_empty())
                .map(|m| strip_ansi(&m)),
            tests: file
                .assertion_results
                .into_iter()
                .map(|a| {
                    let mut titles = a.ancestor_titles;
                    titles.push(a.title);
                    let outcome = match a.status.as_str() {
                        "passed" => Outcome::Passed,
                        "failed" => Outcome::Failed,
                        _ => Outcome::Skipped,
                    };
                    let message = (outcome == Outcome::Failed).then(|| {
                        strip_ansi(&a.failure_messages.join("\n"))
                            .chars()
                            .take(8000)
                            .collect()
                    });
                    ReportedTest {
                        titles,
                        outcome,
                        message,
                    }
                })
                .collect(),
        })
        .collect())
}

/// The results of `wanted` in a Jest-shaped report at `report` (none when it is missing: the
/// runner died first). A wanted test of a file that failed on its own, unreported, failed with
/// the file's message; tests the report has but the invocation did not ask for are left out.
pub fn jest_json_results(
    report: &Path,
    cwd: &Path,
    wanted: &[TestId],
) -> anyhow::Result<Vec<TestResult>> {
    let Ok(text) = std::fs::read_to_string(report) else {
        return Ok(Vec::new());
    };
    let files = read_jest_json(&text)
        .with_context(|| format!("reading the report {}", report.display()))?;
    let mut found: HashMap<TestId, TestResult> = HashMap::new();
    let mut file_failures: HashMap<String, String> = HashMap::new();
    for file in files {
        let name = display_path(&file.path, cwd);
        let mut ids = IdMaker::new();
        for test in file.tests {
            let id = ids.id(&name, &test.titles);
            found.insert(
                id.clone(),
                TestResult {
                    id,
                    outcome: test.outcome,
                    message: test.message,
                },
            );
        }
        if let Some(message) = file.message {
            file_failures.insert(name, message);
        }
    }
    Ok(wanted
        .iter()
        .filter_map(|id| {
            found.remove(id).or_else(|| {
                let file = id.split_once("::").map(|(f, _)| f)?;
                file_failures.get(file).map(|message| TestResult {
                    id: id.clone(),
                    outcome: Outcome::Failed,
                    message: Some(message.clone()),
                })
            })
        })
        .collect())
}

/// Terminal colour codes out of a runner's text.
pub fn strip_ansi(text: &str) -> String {
    static ANSI: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    ANSI.get_or_init(|| regex::Regex::new("\x1b\\[[0-9;]*[A-Za-z]").unwrap())
        .replace_all(text, "")
        .into_owned()
}

/// Runs a listing command in `ctx.cwd` with the clone's environment.
pub fn run_listing(
    command: &[String],
    extra_args: &[String],
    extra_env: &[(String, String)],
    ctx: &Context,
) -> anyhow::Result<ProcessOutput> {
    let output = std::process::Command::new(&command[0])
        .args(&command[1..])
        .args(extra_args)
        .envs(ctx.env.iter().cloned())
        .envs(extra_env.iter().cloned())
        .current_dir(&ctx.cwd)
        .output()
        .with_context(|| format!("cannot run {}", command[0]))?;
    Ok(ProcessOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        timed_out: false,
    })
}

/// Writes a shipped shim file into the scratch directory once; its path.
pub fn write_shim(ctx: &Context, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let dir = ctx.scratch.join("js-shims");
    let file = dir.join(name);
    if !file.exists() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(ids: &[(&str, &str)]) -> Listing {
        let mut maker = IdMaker::new();
        Listing::new(
            ids.iter()
                .map(|(file, name)| {
                    let titles: Vec<String> = name.split(" > ").map(String::from).collect();
                    ListedTest {
                        id: maker.id(file, &titles),
                        file: file.to_string(),
                        titles,
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn cuts_orders_where_a_file_would_run_out_of_order() {
        let l = listing(&[("a", "x"), ("a", "y"), ("a", "z"), ("b", "p"), ("b", "q")]);
        let order: Vec<TestId> = ["a::x", "a::z", "b::q", "b::p", "a::y"]
            .map(String::from)
            .to_vec();
        let cut = segments(&order, &l, InFile::Declared).unwrap();
        let files: Vec<(&str, &[usize])> = cut
            .iter()
            .map(|s| (s.file.as_str(), s.tests.as_slice()))
            .collect();
        assert_eq!(
            files,
            vec![
                ("a", &[0, 2][..]),
                ("b", &[4][..]),
                ("b", &[3][..]),
                ("a", &[1][..])
            ]
        );
        assert!(segments(&["c::nope".to_string()], &l, InFile::Declared).is_err());
    }

    #[test]
    fn grouped_segments_keep_describe_blocks_together() {
        let l = listing(&[
            ("a", "D > x"),
            ("a", "D > y"),
            ("a", "top"),
            ("a", "E > z"),
            ("a", "E > w"),
        ]);
        let cut = |order: &[&str]| -> Vec<Vec<usize>> {
            let order: Vec<TestId> = order.iter().map(|t| t.to_string()).collect();
            segments(&order, &l, InFile::Grouped)
                .unwrap()
                .into_iter()
                .map(|s| s.tests)
                .collect()
        };
        // Reversed keeps each block together: one segment.
        assert_eq!(
            cut(&["a::E > w", "a::E > z", "a::top", "a::D > y", "a::D > x"]),
            vec![vec![4, 3, 2, 1, 0]]
        );
        // Back into D after leaving it: a new segment.
        assert_eq!(
            cut(&["a::D > y", "a::top", "a::D > x"]),
            vec![vec![1, 2], vec![0]]
        );
    }

    #[test]
    fn split_blocks_and_repeated_names_run_in_declared_order_only() {
        let l = listing(&[("a", "D > x"), ("a", "top"), ("a", "D > y"), ("a", "ok")]);
        assert!(l.is_ambiguous(0) && l.is_ambiguous(2));
        assert!(!l.is_ambiguous(1) && !l.is_ambiguous(3));
        let order: Vec<TestId> = ["a::D > y", "a::D > x"].map(String::from).to_vec();
        assert_eq!(segments(&order, &l, InFile::Grouped).unwrap().len(), 2);
    }

    #[test]
    fn reads_jest_json_for_the_wanted_tests_only() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r.json");
        let json = serde_json::json!({"testResults": [
            {"name": "/p/a.test.js", "message": "\x1b[31m1 failed\x1b[0m", "assertionResults": [
                {"ancestorTitles": ["Users"], "title": "creates", "status": "failed",
                 "failureMessages": ["\x1b[31mError: DETAIL: Key (code)=(W)\x1b[0m"]},
                {"ancestorTitles": [], "title": "other", "status": "pending", "failureMessages": []}
            ]},
            {"name": "/p/b.test.js", "message": "Cannot find module 'pg'", "assertionResults": []}
        ]});
        std::fs::write(&report, json.to_string()).unwrap();
        let wanted: Vec<TestId> = ["a.test.js::Users > creates", "b.test.js::x"]
            .map(String::from)
            .to_vec();
        let results = jest_json_results(&report, Path::new("/p"), &wanted).unwrap();
        assert_eq!(results.len(), 2, "{results:#?}");
        assert_eq!(results[0].outcome, Outcome::Failed);
        assert_eq!(
            results[0].message.as_deref(),
            Some("Error: DETAIL: Key (code)=(W)")
        );
        // b.test.js did not load: its wanted test failed with the file's message.
        assert_eq!(results[1].outcome, Outcome::Failed);
        assert_eq!(
            results[1].message.as_deref(),
            Some("Cannot find module 'pg'")
        );
        let missing = jest_json_results(&dir.path().join("none.json"), Path::new("/p"), &wanted);
        assert!(missing.unwrap().is_empty());
    }

    #[test]
    fn escapes_names_into_exact_patterns() {
        assert_eq!(
            names_pattern(&["Users creates", "top (x) [y]?"]),
            r"^(?:Users creates|top \(x\) \[y\]\?)$"
        );
    }

    #[test]
    fn keeps_ids_of_repeated_names_apart() {
        let mut maker = IdMaker::new();
        let t = vec!["same".to_string()];
        assert_eq!(maker.id("f.js", &t), "f.js::same");
        assert_eq!(maker.id("f.js", &t), "f.js::same (2)");
    }
}
