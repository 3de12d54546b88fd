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
    case.message = Some(attribute(element, b"message").unwrap_or_default());
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

/// The listed test a JUnit case stands for: the one whose id ends with the case's name and
/// mentions the last part of its classname; failing that, the only one ending with the name.
pub fn match_junit_case(listed: &[TestId], classname: &str, name: &str) -> Option<TestId> {
    let ends = |id: &&TestId| {
        id.as_str() == name
            || id.ends_with(&format!("::{name}"))
            || id.ends_with(&format!(" > {name}"))
            || id.ends_with(&format!(".{name}"))
            || id.ends_with(&format!("#{name}"))
    };
    let candidates: Vec<&TestId> = listed.iter().filter(ends).collect();
    if candidates.len() == 1 {
        return Some(candidates[0].clone());
    }
    let class_tail = classname
        .rsplit(['.', '/', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or(classname);
    candidates
        .into_iter()
        .find(|id| id.contains(class_tail))
        .cloned()
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
                    words.extend(tests.iter().map(|t| test_name(t).to_string()));
                }
            } else if word.contains(TESTS_PLACEHOLDER) {
                if let Some(tests) = tests {
                    let joined: Vec<&str> = tests.iter().map(|t| test_name(t)).collect();
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
/// command gets `classname#name` when the classname is a Java-style class, else the name.
fn test_name(id: &str) -> &str {
    id.rsplit_once("::").map(|(_, name)| name).unwrap_or(id)
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
        let xml = std::fs::read_to_string(&report).with_context(|| {
            format!(
                "`{}` wrote no JUnit report at {} (exit {}):\n{}",
                shell_join(&words),
                report.display(),
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        let tests: Vec<TestId> = read_junit(&xml)?.iter().map(generic_id).collect();
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
        let Ok(xml) = std::fs::read_to_string(report) else {
            return Ok(Vec::new());
        };
        Ok(read_junit(&xml)?
            .into_iter()
            .map(|case| TestResult {
                id: generic_id(&case),
                outcome: case.outcome,
                message: case.message,
            })
            .collect())
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
    fn matches_junit_cases_to_listed_ids() {
        let listed: Vec<TestId> = vec![
            "tests/test_a.py::test_x".into(),
            "tests/test_b.py::test_x".into(),
            "tests/test_b.py::test_y".into(),
        ];
        assert_eq!(
            match_junit_case(&listed, "tests.test_b", "test_x").as_deref(),
            Some("tests/test_b.py::test_x")
        );
        assert_eq!(
            match_junit_case(&listed, "whatever", "test_y").as_deref(),
            Some("tests/test_b.py::test_y")
        );
        assert_eq!(match_junit_case(&listed, "x", "test_z"), None);
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
        assert_eq!(words, ["mvn", "test", "-Dtest=m1,m2", "-Dreport=/r.xml"]);
        let all = junit.expand(None, Path::new("/r.xml"));
        assert_eq!(all, ["mvn", "test", "-Dreport=/r.xml"]);
    }
}
