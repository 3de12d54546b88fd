//! `--junit-out`: a hand-built hunt written as JUnit XML, parsed back, and checked against the
//! structure CI dashboards accept (Jenkins, GitLab: `testsuites > testsuite > testcase` with the
//! counts they read) and Surefire's rerun vocabulary (`flakyFailure`, `rerunFailure`).

use dbsandbox_flaky::adapter::generic::read_junit;
use dbsandbox_flaky::model::{
    BudgetUse, FailureReading, Finding, FindingKind, Hunt, Outcome, Purpose, Run, TableEvidence,
    TestResult, TestSummary, Verdict, SCHEMA,
};
use dbsandbox_flaky::report::junit::{junit_xml, split_id};
use quick_xml::events::{BytesStart, Event};

const STABLE: &str = "tests/test_users.py::test_signup";
const VICTIM: &str = "tests/test_coupons.py::TestApply::test_apply_welcome_coupon[10%]";
const POLLUTER: &str = "tests/test_coupons.py::test_create_welcome_coupon";
const FAILING: &str = "tests/test_orders.py::test_broken";
const SKIPPED: &str = "tests/test_orders.py::test_later";
const MISSING: &str = "tests/test_orders.py::test_hangs";

/// A failure text with everything XML cannot carry as is: markup characters, quotes, terminal
/// colours, a NUL and other control characters.
const NASTY: &str = "E   psycopg.errors.UniqueViolation: duplicate key value violates unique \
constraint \"coupons_code_key\"\nDETAIL:  Key (code)=(WELCOME10) already exists. <b>&amp;</b> 'q'\n\
\x1b[31mred\x1b[0m \u{0}nul \u{7}bell \u{1b}";

fn result(id: &str, outcome: Outcome, message: Option<&str>) -> TestResult {
    TestResult {
        id: id.into(),
        outcome,
        message: message.map(String::from),
    }
}

fn run(index: usize, purpose: Purpose, order: &[&str], results: Vec<TestResult>) -> Run {
    Run {
        index,
        purpose,
        order: order.iter().map(|t| t.to_string()).collect(),
        results,
        seconds: 1.5,
        key: format!("flaky-{index}"),
        problem: None,
    }
}

fn summary(
    id: &str,
    verdict: Verdict,
    passed: usize,
    failed: usize,
    skipped: usize,
) -> TestSummary {
    TestSummary {
        id: id.into(),
        verdict,
        passed,
        failed,
        skipped,
    }
}

fn hunt() -> Hunt {
    use Outcome::*;
    let declared = [STABLE, VICTIM, POLLUTER, FAILING, SKIPPED, MISSING];
    let reversed = [MISSING, SKIPPED, FAILING, POLLUTER, VICTIM, STABLE];
    let everyone = |victim: Outcome, failing: &str| {
        vec![
            result(STABLE, Passed, None),
            result(VICTIM, victim, (victim == Failed).then_some(NASTY)),
            result(POLLUTER, Passed, None),
            result(FAILING, Failed, Some(failing)),
            result(SKIPPED, Skipped, None),
        ]
    };
    let runs = vec![
        run(
            1,
            Purpose::Declared,
            &declared,
            everyone(Passed, "assert 1 == 2"),
        ),
        run(
            2,
            Purpose::Reversed,
            &reversed,
            everyone(Failed, "assert 1 == 3"),
        ),
        run(
            3,
            Purpose::Confirm {
                test: VICTIM.into(),
            },
            &[POLLUTER, VICTIM],
            vec![
                result(POLLUTER, Passed, None),
                result(VICTIM, Failed, Some(NASTY)),
            ],
        ),
    ];
    let finding = Finding {
        kind: FindingKind::Victim,
        test: VICTIM.into(),
        polluters: vec![POLLUTER.into()],
        state_setters: vec![],
        evidence: vec![TableEvidence {
            table: "public.coupons".into(),
            key_columns: vec!["id".into()],
            inserted: vec![serde_json::json!({"id": 1, "code": "WELCOME10"})],
            inserted_count: 1,
            ..Default::default()
        }],
        failure: Some(FailureReading {
            class: Some("unique-violation".into()),
            sqlstate: Some("23505".into()),
            constraint: Some("coupons_code_key".into()),
            detail: Some("(code)=(WELCOME10)".into()),
            excerpt: "duplicate key".into(),
        }),
        explanation: "test_create_welcome_coupon left coupons (code)=(WELCOME10) & <more>".into(),
        fix: "run each test in a rollback sandbox".into(),
        reproduce: format!(
            "dbsandbox run --isolation database -- pytest -p no:randomly '{POLLUTER}' '{VICTIM}'"
        ),
        runs: vec![2, 3],
        kept_database: None,
    };
    Hunt {
        schema: SCHEMA.into(),
        runner: "pytest".into(),
        command: vec!["pytest".into(), "-q".into()],
        ordering_note: None,
        runs,
        tests: vec![
            summary(STABLE, Verdict::Stable, 3, 0, 0),
            summary(VICTIM, Verdict::Victim, 1, 2, 0),
            summary(POLLUTER, Verdict::Stable, 3, 0, 0),
            summary(FAILING, Verdict::Failing, 0, 2, 0),
            summary(SKIPPED, Verdict::Stable, 0, 0, 2),
            summary(MISSING, Verdict::Stable, 0, 0, 0),
        ],
        findings: vec![finding],
        budget: BudgetUse {
            runs_used: 3,
            max_runs: 40,
            detection_runs: 2,
            seconds: 4.5,
            detection_stopped: "nothing new".into(),
            ..Default::default()
        },
    }
}

/// A parsed element: enough of a DOM to check structure.
#[derive(Debug, Default)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    fn child(&self, name: &str) -> &Element {
        self.children
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("<{}> has no <{name}>: {self:#?}", self.name))
    }

    fn names(&self) -> Vec<&str> {
        self.children.iter().map(|c| c.name.as_str()).collect()
    }

    fn properties(&self) -> Vec<(String, String)> {
        self.children_named("properties")
            .flat_map(|p| p.children_named("property"))
            .map(|p| {
                (
                    p.attr("name").unwrap().to_string(),
                    p.attr("value").unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn element(start: &BytesStart<'_>) -> Element {
    Element {
        name: String::from_utf8(start.name().as_ref().to_vec()).unwrap(),
        attributes: start
            .attributes()
            .map(|a| {
                let a = a.expect("well-formed attribute");
                (
                    String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                    a.unescape_value().expect("escaped value").into_owned(),
                )
            })
            .collect(),
        ..Default::default()
    }
}

/// Parses the whole document strictly (a parse error fails the test).
fn parse(xml: &str) -> Element {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack = vec![Element::default()];
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(element(&e)),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(element(&e)),
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Text(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&t.unescape().expect("escaped text")),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "every element closed");
    let mut document = stack.pop().unwrap();
    assert_eq!(document.children.len(), 1, "one root element");
    document.children.pop().unwrap()
}

/// What XML 1.0 allows in a document (besides the markup, which the parser checked).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

#[test]
fn writes_reruns_as_surefire_flaky_and_rerun_failures() {
    let xml = junit_xml(&hunt());
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
        "{xml}"
    );
    assert!(xml.chars().all(xml_char), "only XML characters: {xml:?}");
    assert!(
        !xml.contains("[31m"),
        "colour codes are stripped whole: {xml}"
    );

    let root = parse(&xml);
    assert_eq!(root.name, "testsuites");
    assert_eq!(root.names(), ["testsuite"]);
    let suite = root.child("testsuite");
    for (element, what) in [(&root, "testsuites"), (suite, "testsuite")] {
        let counts: Vec<Option<&str>> = ["tests", "failures", "errors", "skipped", "time"]
            .iter()
            .map(|a| element.attr(a))
            .collect();
        assert_eq!(
            counts,
            [Some("6"), Some("1"), Some("1"), Some("1"), Some("4.500")],
            "{what} counts"
        );
    }
    assert_eq!(suite.attr("name"), Some("dbsandbox flaky (pytest)"));
    let suite_properties = suite.properties();
    assert!(suite_properties.contains(&("dbsandbox.runner".into(), "pytest".into())));
    assert!(suite_properties.contains(&("dbsandbox.runs".into(), "3".into())));
    // Properties first, then the cases: the order the JUnit schemas give.
    assert_eq!(suite.names()[0], "properties");
    let cases: Vec<&Element> = suite.children_named("testcase").collect();
    assert_eq!(cases.len(), 6);
    for case in &cases {
        assert!(case.attr("name").is_some() && case.attr("classname").is_some());
        assert!(case.attr("time").unwrap().parse::<f64>().is_ok());
        for child in case.names() {
            assert!(
                [
                    "properties",
                    "failure",
                    "error",
                    "skipped",
                    "rerunFailure",
                    "flakyFailure",
                    "system-out"
                ]
                .contains(&child),
                "unexpected <{child}> in a testcase"
            );
        }
    }
    let case = |name: &str| {
        *cases
            .iter()
            .find(|c| c.attr("name") == Some(name))
            .unwrap_or_else(|| panic!("no testcase {name}: {xml}"))
    };

    // A stable test: an empty case.
    let stable = case("test_signup");
    assert_eq!(stable.attr("classname"), Some("tests.test_users"));
    assert_eq!(stable.attr("file"), Some("tests/test_users.py"));
    assert!(stable.children.is_empty());

    // The victim passed once and failed twice: it passes, with two flaky failures.
    let victim = case("test_apply_welcome_coupon[10%]");
    assert_eq!(
        victim.attr("classname"),
        Some("tests.test_coupons.TestApply")
    );
    assert_eq!(
        victim.names(),
        ["properties", "flakyFailure", "flakyFailure", "system-out"]
    );
    let flaky: Vec<&Element> = victim.children_named("flakyFailure").collect();
    let first = flaky[0];
    assert_eq!(
        first.attr("message"),
        Some("E   psycopg.errors.UniqueViolation: duplicate key value violates unique constraint \"coupons_code_key\"")
    );
    assert_eq!(first.attr("type"), Some("unique-violation"));
    let trace = &first.child("stackTrace").text;
    assert!(
        trace.contains("Key (code)=(WELCOME10) already exists. <b>&amp;</b> 'q'"),
        "{trace}"
    );
    assert!(
        trace.contains("red nul bell "),
        "control characters dropped: {trace:?}"
    );
    assert_eq!(
        first.child("system-out").text,
        "run 2 (reversed order), after 4 other tests, sandbox key flaky-2"
    );
    assert_eq!(
        flaky[1].child("system-out").text,
        "run 3 (confirmation), after 1 other test, sandbox key flaky-3"
    );
    let properties = victim.properties();
    assert_eq!(
        properties,
        [
            ("dbsandbox.verdict".to_string(), "victim".to_string()),
            ("dbsandbox.polluter".into(), POLLUTER.into()),
            (
                "dbsandbox.reproduce".into(),
                hunt().findings[0].reproduce.clone()
            ),
        ]
    );
    let out = &victim.child("system-out").text;
    for wanted in [
        "dbsandbox flaky: victim (passed 1, failed 2, skipped 0 of 3 runs)",
        &format!("polluted by: {POLLUTER}"),
        "left behind in public.coupons: 1 inserted, 0 updated, 0 deleted",
        "left coupons (code)=(WELCOME10) & <more>",
        "fix: run each test in a rollback sandbox",
        &format!("reproduce: {}", hunt().findings[0].reproduce),
    ] {
        assert!(out.contains(wanted), "{wanted:?} not in {out}");
    }

    // Failed in both runs: a failure for the first, a rerun failure for the second.
    let failing = case("test_broken");
    assert_eq!(
        failing.names(),
        ["properties", "failure", "rerunFailure", "system-out"]
    );
    let failure = failing.child("failure");
    assert_eq!(failure.attr("message"), Some("assert 1 == 2"));
    assert_eq!(failure.attr("type"), Some("failing"));
    assert!(failure
        .text
        .ends_with("\n\nrun 1 (declared order), after 3 other tests, sandbox key flaky-1"));
    let rerun = failing.child("rerunFailure");
    assert_eq!(rerun.attr("message"), Some("assert 1 == 3"));
    assert_eq!(rerun.child("stackTrace").text, "assert 1 == 3");
    assert!(rerun
        .child("system-out")
        .text
        .starts_with("run 2 (reversed order)"));

    assert_eq!(
        case("test_later").names(),
        ["properties", "skipped", "system-out"]
    );
    let missing = case("test_hangs");
    assert_eq!(missing.names(), ["properties", "error", "system-out"]);
    assert_eq!(missing.child("error").attr("type"), Some("missing"));
}

#[test]
fn its_own_junit_reader_reads_the_outcomes_back() {
    // `--failed-from` reads JUnit: a hunt's report read back fails exactly the test that failed
    // in every run (and the one never reported), not the victim whose reruns passed.
    let cases = read_junit(&junit_xml(&hunt())).unwrap();
    let outcomes: Vec<(String, Outcome)> = cases
        .iter()
        .map(|c| (format!("{}::{}", c.classname, c.name), c.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("tests.test_users::test_signup".to_string(), Outcome::Passed),
            (
                "tests.test_coupons.TestApply::test_apply_welcome_coupon[10%]".into(),
                Outcome::Passed
            ),
            (
                "tests.test_coupons::test_create_welcome_coupon".into(),
                Outcome::Passed
            ),
            ("tests.test_orders::test_broken".into(), Outcome::Failed),
            ("tests.test_orders::test_later".into(), Outcome::Skipped),
            ("tests.test_orders::test_hangs".into(), Outcome::Failed),
        ]
    );
}

#[test]
fn an_empty_hunt_is_a_valid_empty_suite() {
    let mut empty = hunt();
    empty.tests.clear();
    empty.runs.clear();
    empty.findings.clear();
    let root = parse(&junit_xml(&empty));
    let suite = root.child("testsuite");
    assert_eq!(suite.attr("tests"), Some("0"));
    assert_eq!(suite.children_named("testcase").count(), 0);
}

#[test]
fn splits_ids_the_way_each_runner_reports_them() {
    let cases = [
        (
            "pytest",
            "tests/api/test_a.py::TestX::test_y[a::b]",
            (
                "tests.api.test_a.TestX",
                "test_y[a::b]",
                Some("tests/api/test_a.py"),
            ),
        ),
        (
            "pytest",
            "test_b.py::test_z",
            ("test_b", "test_z", Some("test_b.py")),
        ),
        (
            "jest",
            "src/cart.test.js::cart > coupons > applies WELCOME10",
            (
                "src/cart.test.js > cart > coupons",
                "applies WELCOME10",
                Some("src/cart.test.js"),
            ),
        ),
        (
            "vitest",
            "src/a.test.ts::top level",
            ("src/a.test.ts", "top level", Some("src/a.test.ts")),
        ),
        (
            "cargo",
            "users::tests::signup",
            ("users::tests", "signup", None),
        ),
        (
            "go",
            "example.com/shop::TestCart/a::b",
            ("example.com/shop", "TestCart/a::b", None),
        ),
        (
            "junit",
            "com.shop.CartTest::applies",
            ("com.shop.CartTest", "applies", None),
        ),
        (
            "junit",
            "com.shop.CartTest.applies",
            ("com.shop.CartTest", "applies", None),
        ),
        ("cargo", "lonely", ("cargo", "lonely", None)),
    ];
    for (runner, id, (classname, name, file)) in cases {
        assert_eq!(
            split_id(runner, id),
            (
                classname.to_string(),
                name.to_string(),
                file.map(String::from)
            ),
            "{runner}: {id}"
        );
    }
}
