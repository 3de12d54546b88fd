//! Any runner that writes JUnit XML and takes a list of tests: the command says where the tests go
//! (`{tests}`) and where the report goes (`{junit}`). A word that is exactly `{tests}` becomes one
//! argument per test; a word that contains it (`-Dtest={tests}`) gets the tests joined by commas.
//! The suite is listed by running it once whole (the `{tests}` words left out) and reading the
//! report. Also the JUnit reader the other adapters and `--failed-from` use.

use std::path::Path;

use anyhow::Context as _;
use quick_xml::events::{BytesStart, Event};

use super::shell::shell_join;
use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{Outcome, TestId, TestResult};

mod matching;

pub use matching::match_junit_case;

pub const TESTS_PLACEHOLDER: &str = "{tests}";
pub const JUNIT_PLACEHOLDER: &str = "{junit}";

/// One `<testcase>` of a JUnit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JunitCase {
    pub classname: String,
    pub name: String,
    pub file: Option<String>,
    pub outcome: Outcome,
    pub message: Option<String>,
}

/// Every `<testcase>` of a JUnit XML document, in document order.
pub fn read_junit(xml: &str) -> anyhow::Result<Vec<JunitCase>> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut cases = Vec::new();
    let mut current: Option<JunitCase> = None;
    // Inside <failure>/<error>: its text is the message.
    let mut in_failure = false;
    loop {
        let event = reader
            .read_event()
            .with_context(|| format!("JUnit XML at byte {}", reader.buffer_position()))?;
        match event {
            Event::Start(e) if e.name().as_ref() == b"testcase" => {
                if let Some(done) = current.take() {
                    cases.push(done);
                }
                current = Some(new_case(&e));
            }
            // <testcase/>: nothing inside, it passed.
            Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                if let Some(done) = current.take() {
                    cases.push(done);
                }
                cases.push(new_case(&e));
            }
            Event::Start(e) if matches!(e.name().as_ref(), b"failure" | b"error") => {
                in_failure = mark_failed(current.as_mut(), &e);
            }
            Event::Empty(e) if matches!(e.name().as_ref(), b"failure" | b"error") => {
                mark_failed(current.as_mut(), &e);
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"skipped" => {
                if let Some(case) = current.as_mut() {
                    if case.outcome == Outcome::Passed {
                        case.outcome = Outcome::Skipped;
                    }
                }
            }
            Event::Text(t) if in_failure => {
                if let Some(case) = current.as_mut() {
                    let text = t.unescape().map(|c| c.into_owned()).unwrap_or_default();
                    let message = case.message.get_or_insert_with(String::new);
                    if !message.is_empty() {
                        message.push('\n');
                    }
                    message.push_str(&text);
                }
            }
            Event::CData(t) if in_failure => {
                if let Some(case) = current.as_mut() {
                    let message = case.message.get_or_insert_with(String::new);
                    message.push('\n');
                    message.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(e) if matches!(e.name().as_ref(), b"failure" | b"error") => {
                in_failure = false;
            }
            Event::End(e) if e.name().as_ref() == b"testcase" => {
                if let Some(done) = current.take() {
                    cases.push(done);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(done) = current.take() {
        cases.push(done);
    }
    Ok(cases)
}

/// A `<failure>`/`<error>` fails the case it is in; true when there was one.
fn mark_failed(case: Option<&mut JunitCase>, element: &BytesStart<'_>) -> bool {
    let Some(case) = case else { return false };
    case.outcome = Outcome::Failed;
    let message = attribute(element, b"message").unwrap_or_default();
    match case.message.as_mut() {
        // A second <failure>/<error> in one case: keep both.
        Some(earlier) => {
            earlier.push('\n');
            earlier.push_str(&message);
        }
        None => case.message = Some(message),
    }
    true
}

fn new_case(element: &BytesStart<'_>) -> JunitCase {
    JunitCase {
        classname: attribute(element, b"classname").unwrap_or_default(),
        name: attribute(element, b"name").unwrap_or_default(),
        file: attribute(element, b"file"),
        outcome: Outcome::Passed,
        message: None,
    }
}

fn attribute(element: &BytesStart<'_>, wanted: &[u8]) -> Option<String> {
    element
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == wanted)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// The generic adapter: `{tests}` and `{junit}` in the user's command.
pub struct Junit {
    command: Vec<String>,
}

impl Junit {
    pub fn new(command: &[String]) -> Result<Junit, String> {
        if !command.iter().any(|w| w.contains(JUNIT_PLACEHOLDER)) {
            return Err(format!(
                "the command has {TESTS_PLACEHOLDER} but no {JUNIT_PLACEHOLDER}: put {JUNIT_PLACEHOLDER} \
                 where the runner takes the path of its JUnit XML report"
            ));
        }
        Ok(Junit {
            command: command.to_vec(),
        })
    }

    /// The command with `tests` and `report` in place of the placeholders (`None`: every test).
    fn expand(&self, tests: Option<&[TestId]>, report: &Path) -> Vec<String> {
        let report = report.display().to_string();
        let mut words = Vec::new();
        for word in &self.command {
            let word = word.replace(JUNIT_PLACEHOLDER, &report);
            if word == TESTS_PLACEHOLDER {
                if let Some(tests) = tests {
                    words.extend(tests.iter().map(|t| test_name(t)));
                }
            } else if word.contains(TESTS_PLACEHOLDER) {
                if let Some(tests) = tests {
                    let joined: Vec<String> = tests.iter().map(|t| test_name(t)).collect();
                    words.push(word.replace(TESTS_PLACEHOLDER, &joined.join(",")));
                }
            } else {
                words.push(word);
            }
        }
        words
    }
}

/// The part of a generic test id the runner takes back: ids are `classname::name`, and the
/// command gets `classname#name` when the classname is a Java-style class (`com.x.FooTest`, what
/// Surefire's `-Dtest=` takes), else the name.
fn test_name(id: &str) -> String {
    let Some((classname, name)) = id.rsplit_once("::") else {
        return id.to_string();
    };
    let java_class = classname.rsplit('.').next().is_some_and(|simple| {
        simple.starts_with(|c: char| c.is_ascii_uppercase())
            && classname.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
            })
    });
    if java_class {
        // JUnit 5 reports `testBar()`; Surefire selects by the bare method name.
        format!("{classname}#{}", name.trim_end_matches("()"))
    } else {
        name.to_string()
    }
}

/// The cases of a report: a file, or a directory of them (Surefire's `reportsDirectory`).
fn read_report(path: &Path) -> anyhow::Result<Option<Vec<JunitCase>>> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            .collect();
        files.sort();
        files
    } else if path.exists() {
        vec![path.to_path_buf()]
    } else {
        return Ok(None);
    };
    let mut cases = Vec::new();
    for file in files {
        let xml = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        cases.extend(read_junit(&xml).with_context(|| format!("reading {}", file.display()))?);
    }
    Ok(Some(cases))
}

fn generic_id(case: &JunitCase) -> TestId {
    if case.classname.is_empty() {
        case.name.clone()
    } else {
        format!("{}::{}", case.classname, case.name)
    }
}

impl Runner for Junit {
    fn name(&self) -> &'static str {
        "junit"
    }

    fn ordering_note(&self) -> Option<String> {
        Some(
            "the generic adapter runs one invocation per test, in order, against one database \
             (the command's own order inside one invocation is unknown)"
                .into(),
        )
    }

    fn list(&self, ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        let report = ctx.scratch_file("junit-list", "xml");
        let words = self.expand(None, &report);
        let output = std::process::Command::new(&words[0])
            .args(&words[1..])
            .envs(ctx.env.iter().cloned())
            .current_dir(&ctx.cwd)
            .output()
            .with_context(|| format!("cannot run {}", words[0]))?;
        let Some(cases) = read_report(&report)? else {
            anyhow::bail!(
                "`{}` wrote no JUnit report at {} (exit {}): put {JUNIT_PLACEHOLDER} where the \
                 runner takes its report's path\n{}",
                shell_join(&words),
                report.display(),
                output.status.code().unwrap_or(-1),
                ProcessOutput {
                    stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                    ..Default::default()
                }
                .tail(15)
            );
        };
        let mut tests: Vec<TestId> = Vec::new();
        for id in cases.iter().map(generic_id) {
            // A case reported twice (a rerun, a repeated parameter) is one test.
            if !tests.contains(&id) {
                tests.push(id);
            }
        }
        if tests.is_empty() {
            anyhow::bail!("`{}` ran no test", shell_join(&words));
        }
        Ok(tests)
    }

    fn invocations(&self, order: &[TestId], ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        Ok(order
            .iter()
            .map(|test| {
                let report = ctx.scratch_file("junit", "xml");
                let words = self.expand(Some(std::slice::from_ref(test)), &report);
                Invocation {
                    program: words[0].clone(),
                    args: words[1..].to_vec(),
                    env: Vec::new(),
                    report: Some(report),
                    tests: vec![test.clone()],
                    cwd: None,
                }
            })
            .collect())
    }

    fn results(
        &self,
        invocation: &Invocation,
        _output: &ProcessOutput,
    ) -> anyhow::Result<Vec<TestResult>> {
        let Some(report) = &invocation.report else {
            return Ok(Vec::new());
        };
        // No report: the runner died first; its tests are missing.
        let Some(cases) = read_report(report)? else {
            return Ok(Vec::new());
        };
        let mut results: Vec<TestResult> = Vec::new();
        for case in cases {
            let id = generic_id(&case);
            // Only what was asked for: a name filter can match more tests than the one given.
            if !invocation.tests.contains(&id) || results.iter().any(|r| r.id == id) {
                continue;
            }
            results.push(TestResult {
                id,
                outcome: case.outcome,
                message: case.message,
            });
        }
        Ok(results)
    }

    fn reproduce(&self, order: &[TestId]) -> String {
        order
            .iter()
            .map(|t| {
                shell_join(&self.expand(Some(std::slice::from_ref(t)), Path::new("report.xml")))
            })
            .collect::<Vec<_>>()
            .join(" && ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_outcomes_and_messages() {
        let xml = r#"<?xml version="1.0"?><testsuites><testsuite name="s">
            <testcase classname="tests.test_a" name="test_ok" time="0.1"/>
            <testcase classname="tests.test_a" name="test_bad"><failure message="boom">E  assert 2 == 1
DETAIL: Key (code)=(W)</failure></testcase>
            <testcase classname="tests.test_b" name="test_skip"><skipped/></testcase>
            <testcase classname="tests.test_b" name="test_err"><error message="x"><![CDATA[trace]]></error></testcase>
        </testsuite></testsuites>"#;
        let cases = read_junit(xml).unwrap();
        let summary: Vec<(&str, Outcome)> =
            cases.iter().map(|c| (c.name.as_str(), c.outcome)).collect();
        assert_eq!(
            summary,
            vec![
                ("test_ok", Outcome::Passed),
                ("test_bad", Outcome::Failed),
                ("test_skip", Outcome::Skipped),
                ("test_err", Outcome::Failed),
            ]
        );
        let message = cases[1].message.as_deref().unwrap();
        assert!(message.starts_with("boom\n"), "{message}");
        assert!(message.contains("Key (code)=(W)"), "{message}");
        assert!(cases[3].message.as_deref().unwrap().contains("trace"));
    }

    #[test]
    fn expands_placeholders() {
        let cmd: Vec<String> = ["mvn", "test", "-Dtest={tests}", "-Dreport={junit}"]
            .map(String::from)
            .to_vec();
        let junit = Junit::new(&cmd).unwrap();
        let words = junit.expand(
            Some(&["a.B::m1".to_string(), "a.B::m2".to_string()]),
            Path::new("/r.xml"),
        );
        // Surefire selects `Class#method`; a bare `m1` would name a class.
        assert_eq!(
            words,
            ["mvn", "test", "-Dtest=a.B#m1,a.B#m2", "-Dreport=/r.xml"]
        );
        let all = junit.expand(None, Path::new("/r.xml"));
        assert_eq!(all, ["mvn", "test", "-Dreport=/r.xml"]);
        assert_eq!(
            test_name("com.x.FooTest::testBar()"),
            "com.x.FooTest#testBar"
        );
        assert_eq!(test_name("tests.test_a::test_x"), "test_x");
        assert_eq!(test_name("suite name::does a thing"), "does a thing");
        assert_eq!(test_name("bare"), "bare");
    }
}
