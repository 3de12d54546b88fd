//! `--junit-out`: the hunt as JUnit XML for CI dashboards (Jenkins, GitLab, …), with every rerun
//! in Maven Surefire's vocabulary. One `<testcase>` per test: a test that failed in some runs and
//! passed in others passes, each failing run a `<flakyFailure>`; a test that failed in every run
//! has a `<failure>` (its first run) and a `<rerunFailure>` per later run. A finding's culprits,
//! explanation, fix and reproduction command go into the case's `<properties>` and `<system-out>`.

use std::borrow::Cow;
use std::sync::OnceLock;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::model::{Finding, Hunt, Outcome, Run, TestSummary, Verdict};

/// The hunt as a JUnit XML document (`testsuites > testsuite > testcase`).
pub fn junit_xml(hunt: &Hunt) -> String {
    let cases: Vec<Case> = hunt.tests.iter().map(|t| Case::of(hunt, t)).collect();
    let count = |status: Status| cases.iter().filter(|c| c.status == status).count();
    let totals = Totals {
        tests: cases.len(),
        failures: count(Status::Failed),
        errors: count(Status::Missing),
        skipped: count(Status::Skipped),
        seconds: seconds(hunt.budget.seconds),
    };
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_document(&mut writer, hunt, &cases, &totals).expect("writing XML to memory cannot fail");
    let mut xml = writer.into_inner();
    xml.push(b'\n');
    String::from_utf8(xml).expect("the writer only writes UTF-8")
}

struct Totals {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    seconds: String,
}

impl Totals {
    fn attributes(&self) -> [(&'static str, String); 5] {
        [
            ("tests", self.tests.to_string()),
            ("failures", self.failures.to_string()),
            ("errors", self.errors.to_string()),
            ("skipped", self.skipped.to_string()),
            ("time", self.seconds.clone()),
        ]
    }
}

/// How the dashboard counts a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Passed in at least one run (flaky when it also failed in some).
    Passed,
    /// Failed in every run it was reported in.
    Failed,
    Skipped,
    /// Not reported in any run.
    Missing,
}

/// One test's runs, and what the hunt found about it.
struct Case<'h> {
    summary: &'h TestSummary,
    classname: String,
    name: String,
    file: Option<String>,
    status: Status,
    /// The runs it failed in, in run order, with their failure text.
    failures: Vec<(&'h Run, &'h str)>,
    findings: Vec<&'h Finding>,
    runs_reported: usize,
}

impl<'h> Case<'h> {
    fn of(hunt: &'h Hunt, summary: &'h TestSummary) -> Case<'h> {
        let id = summary.id.as_str();
        let (classname, name, file) = split_id(&hunt.runner, id);
        let mut failures = Vec::new();
        let (mut passed, mut skipped, mut reported) = (0, 0, 0);
        for run in &hunt.runs {
            match run.outcome_of(id) {
                Some(Outcome::Failed) => failures.push((run, run.message_of(id).unwrap_or(""))),
                Some(Outcome::Passed) => passed += 1,
                Some(Outcome::Skipped) => skipped += 1,
                Some(Outcome::Missing) | None => continue,
            }
            reported += 1;
        }
        let status = if passed > 0 {
            Status::Passed
        } else if !failures.is_empty() {
            Status::Failed
        } else if skipped > 0 {
            Status::Skipped
        } else {
            Status::Missing
        };
        Case {
            summary,
            classname,
            name,
            file,
            status,
            failures,
            findings: hunt.findings.iter().filter(|f| f.test == id).collect(),
            runs_reported: reported,
        }
    }

    /// The `type` of its failure elements: the analyze class of the database failure when one
    /// was read, else the verdict.
    fn failure_type(&self) -> String {
        self.findings
            .iter()
            .find_map(|f| f.failure.as_ref()?.class.clone())
            .unwrap_or_else(|| verdict_name(self.summary.verdict).to_string())
    }
}

type Xml = Writer<Vec<u8>>;

fn write_document(
    w: &mut Xml,
    hunt: &Hunt,
    cases: &[Case],
    totals: &Totals,
) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let suite_name = format!("dbsandbox flaky ({})", hunt.runner);
    w.create_element("testsuites")
        .with_attribute(("name", "dbsandbox flaky"))
        .with_attributes(totals.attributes().iter().map(|(k, v)| (*k, v.as_str())))
        .write_inner_content(|w| {
            w.create_element("testsuite")
                .with_attribute(("name", suite_name.as_str()))
                .with_attributes(totals.attributes().iter().map(|(k, v)| (*k, v.as_str())))
                .write_inner_content(|w| {
                    write_suite_properties(w, hunt)?;
                    for case in cases {
                        write_case(w, case)?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    Ok(())
}

fn write_suite_properties(w: &mut Xml, hunt: &Hunt) -> std::io::Result<()> {
    let mut properties = vec![
        ("dbsandbox.schema", hunt.schema.clone()),
        ("dbsandbox.runner", hunt.runner.clone()),
        ("dbsandbox.command", hunt.command.join(" ")),
        ("dbsandbox.runs", hunt.runs.len().to_string()),
        (
            "dbsandbox.detection_runs",
            hunt.budget.detection_runs.to_string(),
        ),
        (
            "dbsandbox.detection_stopped",
            hunt.budget.detection_stopped.clone(),
        ),
        ("dbsandbox.findings", hunt.findings.len().to_string()),
    ];
    if let Some(note) = &hunt.ordering_note {
        properties.push(("dbsandbox.ordering_note", note.clone()));
    }
    for test in &hunt.budget.unexplained {
        properties.push(("dbsandbox.unexplained", test.clone()));
    }
    write_properties(w, &properties)
}

fn write_properties(w: &mut Xml, properties: &[(&str, String)]) -> std::io::Result<()> {
    if properties.is_empty() {
        return Ok(());
    }
    w.create_element("properties").write_inner_content(|w| {
        for (name, value) in properties {
            w.create_element("property")
                .with_attribute(("name", *name))
                .with_attribute(("value", attribute_text(value).as_ref()))
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_case(w: &mut Xml, case: &Case) -> std::io::Result<()> {
    let mut element = w
        .create_element("testcase")
        .with_attribute(("classname", xml_text(&case.classname).as_ref()))
        .with_attribute(("name", xml_text(&case.name).as_ref()))
        .with_attribute(("time", "0"));
    if let Some(file) = &case.file {
        element = element.with_attribute(("file", xml_text(file).as_ref()));
    }
    let quiet = case.status == Status::Passed
        && case.failures.is_empty()
        && case.findings.is_empty()
        && case.summary.verdict == Verdict::Stable;
    if quiet {
        element.write_empty()?;
        return Ok(());
    }
    element.write_inner_content(|w| {
        write_properties(w, &case_properties(case))?;
        let kind = case.failure_type();
        let mut failures = case.failures.iter();
        match case.status {
            Status::Failed => {
                if let Some((run, text)) = failures.next() {
                    w.create_element("failure")
                        .with_attribute(("message", message_line(text).as_str()))
                        .with_attribute(("type", kind.as_str()))
                        .write_text_content(BytesText::new(&xml_text(&format!(
                            "{text}\n\n{}",
                            run_line(run, &case.summary.id)
                        ))))?;
                }
                for (run, text) in failures {
                    write_rerun(w, "rerunFailure", &kind, run, text, &case.summary.id)?;
                }
            }
            Status::Passed => {
                for (run, text) in failures {
                    write_rerun(w, "flakyFailure", &kind, run, text, &case.summary.id)?;
                }
            }
            Status::Skipped => {
                w.create_element("skipped")
                    .with_attribute(("message", "skipped in every run"))
                    .write_empty()?;
            }
            Status::Missing => {
                w.create_element("error")
                    .with_attribute(("message", "not reported by the runner in any run"))
                    .with_attribute(("type", "missing"))
                    .write_empty()?;
            }
        }
        let out = case_output(case);
        w.create_element("system-out")
            .write_text_content(BytesText::new(&xml_text(&out)))?;
        Ok(())
    })?;
    Ok(())
}

/// `<flakyFailure>`/`<rerunFailure>`: the failure text as its stack trace, the run in its output.
fn write_rerun(
    w: &mut Xml,
    element: &str,
    kind: &str,
    run: &Run,
    text: &str,
    test: &str,
) -> std::io::Result<()> {
    w.create_element(element)
        .with_attribute(("message", message_line(text).as_str()))
        .with_attribute(("type", kind))
        .write_inner_content(|w| {
            w.create_element("stackTrace")
                .write_text_content(BytesText::new(&xml_text(text)))?;
            w.create_element("system-out")
                .write_text_content(BytesText::new(&xml_text(&run_line(run, test))))?;
            Ok(())
        })?;
    Ok(())
}

/// `run 3 (reversed order), after 12 other tests, sandbox key k`.
fn run_line(run: &Run, test: &str) -> String {
    let before = run.before(test).len();
    let mut line = format!(
        "run {} ({}), after {before} other test{}",
        run.index,
        run.purpose.label(),
        if before == 1 { "" } else { "s" }
    );
    if !run.key.is_empty() {
        line.push_str(&format!(", sandbox key {}", run.key));
    }
    if let Some(problem) = &run.problem {
        line.push_str(&format!("; the run's problem: {problem}"));
    }
    line
}

fn case_properties(case: &Case) -> Vec<(&'static str, String)> {
    let mut properties = vec![(
        "dbsandbox.verdict",
        verdict_name(case.summary.verdict).to_string(),
    )];
    for finding in &case.findings {
        properties.extend(
            finding
                .polluters
                .iter()
                .map(|t| ("dbsandbox.polluter", t.clone())),
        );
        properties.extend(
            finding
                .state_setters
                .iter()
                .map(|t| ("dbsandbox.state_setter", t.clone())),
        );
        if !finding.reproduce.is_empty() {
            properties.push(("dbsandbox.reproduce", finding.reproduce.clone()));
        }
        if let Some(url) = &finding.kept_database {
            properties.push(("dbsandbox.kept_database", url.clone()));
        }
    }
    properties
}

/// What a person reads under the test in the dashboard.
fn case_output(case: &Case) -> String {
    let s = case.summary;
    let mut out = format!(
        "dbsandbox flaky: {} (passed {}, failed {}, skipped {} of {} runs)\n",
        verdict_name(s.verdict),
        s.passed,
        s.failed,
        s.skipped,
        case.runs_reported
    );
    for finding in &case.findings {
        if !finding.polluters.is_empty() {
            out.push_str(&format!("polluted by: {}\n", finding.polluters.join(", ")));
        }
        if !finding.state_setters.is_empty() {
            out.push_str(&format!(
                "passes only after: {}\n",
                finding.state_setters.join(", ")
            ));
        }
        for table in finding.evidence.iter().filter(|e| !e.is_empty()) {
            out.push_str(&format!(
                "left behind in {}: {} inserted, {} updated, {} deleted\n",
                table.table, table.inserted_count, table.updated_count, table.deleted_count
            ));
        }
        for (label, text) in [
            ("", &finding.explanation),
            ("fix: ", &finding.fix),
            ("reproduce: ", &finding.reproduce),
        ] {
            if !text.is_empty() {
                out.push_str(&format!("{label}{text}\n"));
            }
        }
        if let Some(url) = &finding.kept_database {
            out.push_str(&format!("kept database: {url}\n"));
        }
    }
    out
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Victim => "victim",
        Verdict::Brittle => "brittle",
        Verdict::Flaky => "flaky",
        Verdict::Failing => "failing",
        Verdict::Stable => "stable",
    }
}

/// The runner's id as JUnit's `classname` and `name` (and `file` where the id names one), the
/// way each runner's own JUnit reporter splits it.
pub fn split_id(runner: &str, id: &str) -> (String, String, Option<String>) {
    let whole = || (runner.to_string(), id.to_string(), None);
    match runner {
        // tests/test_a.py::TestX::test_y[p] → tests.test_a.TestX / test_y[p], as pytest's
        // --junitxml does (parameters may hold `::`, so split before them).
        "pytest" => {
            let Some((file, rest)) = id.split_once("::") else {
                return whole();
            };
            let params_at = rest.find('[').unwrap_or(rest.len());
            let (path, params) = rest.split_at(params_at);
            let mut parts: Vec<&str> = path.split("::").collect();
            let test = format!("{}{params}", parts.pop().unwrap_or_default());
            let module = file.trim_end_matches(".py").replace(['/', '\\'], ".");
            let classname = std::iter::once(module.as_str())
                .chain(parts)
                .collect::<Vec<_>>()
                .join(".");
            (classname, test, Some(file.to_string()))
        }
        // src/a.test.js::outer > inner > does x → src/a.test.js > outer > inner / does x.
        "jest" | "vitest" | "node-test" => {
            let (file, titles) = id.split_once("::").unwrap_or(("", id));
            let (describe, test) = titles.rsplit_once(" > ").unwrap_or(("", titles));
            let classname = [file, describe]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(" > ");
            let file = (!file.is_empty()).then(|| file.to_string());
            if classname.is_empty() {
                (runner.to_string(), test.to_string(), file)
            } else {
                (classname, test.to_string(), file)
            }
        }
        // A Go package path never holds `::`, a subtest name may: split at the first.
        "go" => match id.split_once("::") {
            Some((package, test)) if !package.is_empty() => {
                (package.to_string(), test.to_string(), None)
            }
            _ => whole(),
        },
        // module::tests::name, com.example.Class::method, Class#method, com.example.Class.method:
        // split at the last `::`, else `#`, else (JUnit ids) the last `.`.
        _ => {
            let split = id
                .rfind("::")
                .map(|at| (at, 2))
                .or_else(|| id.rfind('#').map(|at| (at, 1)))
                .or_else(|| {
                    id.rfind('.')
                        .filter(|_| runner == "junit")
                        .map(|at| (at, 1))
                });
            match split {
                Some((at, width)) if at > 0 => {
                    (id[..at].to_string(), id[at + width..].to_string(), None)
                }
                _ => whole(),
            }
        }
    }
}

/// The first non-empty line of a failure text, at most 300 characters: the `message` attribute.
fn message_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("failed");
    let line = xml_text(line);
    match line.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.into_owned(),
    }
}

/// An attribute value on one line (parsers fold newlines in attributes to spaces anyway).
fn attribute_text(text: &str) -> Cow<'_, str> {
    let clean = xml_text(text);
    if clean.contains(['\n', '\r']) {
        Cow::Owned(clean.replace("\r\n", " ").replace(['\n', '\r'], " "))
    } else {
        clean
    }
}

/// `text` without what XML 1.0 cannot carry: terminal colour codes (whole sequences, not only
/// their escape character) and control characters other than tab, newline and carriage return.
pub fn xml_text(text: &str) -> Cow<'_, str> {
    static ANSI: OnceLock<regex::Regex> = OnceLock::new();
    let ansi = ANSI.get_or_init(|| {
        regex::Regex::new(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-_])")
            .expect("a valid pattern")
    });
    // C1 controls (U+0080–U+009F) are allowed by XML 1.0 but discouraged, and never text.
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r')
            || (c >= ' '
                && !('\u{7F}'..='\u{9F}').contains(&c)
                && c != '\u{FFFE}'
                && c != '\u{FFFF}')
    };
    let without_colours = ansi.replace_all(text, "");
    if without_colours.chars().all(allowed) {
        return without_colours;
    }
    Cow::Owned(without_colours.chars().filter(|c| allowed(*c)).collect())
}

fn seconds(value: f64) -> String {
    format!("{:.3}", value.max(0.0))
}
