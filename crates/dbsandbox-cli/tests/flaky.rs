//! `dbsandbox flaky` end to end on the embedded server: a small pytest suite with a planted
//! victim and polluter is hunted down to its culprit and the row it left; bad input exits 2.

mod common;

use common::{text, Project};
use serde_json::Value;

/// The project's tests: a victim that inserts WELCOME10, its polluter (later in declared order)
/// that leaves it, and stable tests.
fn planted_suite(project: &Project) {
    let tests = project.path().join("tests");
    std::fs::create_dir_all(&tests).unwrap();
    std::fs::write(
        tests.join("conftest.py"),
        "import os, psycopg, pytest\n\
         @pytest.fixture\n\
         def db():\n    with psycopg.connect(os.environ['DATABASE_URL'], autocommit=True) as c:\n        yield c\n",
    )
    .unwrap();
    std::fs::write(
        tests.join("test_a.py"),
        "def test_apply_welcome(db):\n    db.execute(\"insert into items(name) values ('WELCOME10')\")\n\
         def test_stable_1(db):\n    assert db.execute('select count(*) from items where name = %s', ['seed']).fetchone()[0] == 1\n",
    )
    .unwrap();
    std::fs::write(
        tests.join("test_b.py"),
        "def test_stable_2(db):\n    assert db.execute('select 1').fetchone()[0] == 1\n\
         def test_create_welcome(db):\n    db.execute(\"insert into items(name) values ('WELCOME10') on conflict do nothing\")\n",
    )
    .unwrap();
}

#[test]
fn finds_the_polluter_and_the_row_it_left() {
    let project = Project::new();
    planted_suite(&project);
    let junit = project.path().join("flaky.xml");
    let out = project
        .dbsandbox()
        .args([
            "flaky",
            "--runs",
            "4",
            "--min-runs",
            "4",
            "--format",
            "json",
            "--keep-failed",
        ])
        .arg("--junit-out")
        .arg(&junit)
        .args(["--", "python3", "-m", "pytest", "-q", "tests"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let hunt: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(hunt["schema"], "dbsandbox.flaky/v1");
    assert_eq!(hunt["runner"], "pytest");
    let findings = hunt["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let victim = &findings[0];
    assert_eq!(victim["kind"], "victim");
    assert_eq!(victim["test"], "tests/test_a.py::test_apply_welcome");
    assert_eq!(
        victim["polluters"],
        serde_json::json!(["tests/test_b.py::test_create_welcome"])
    );
    assert_eq!(victim["failure"]["sqlstate"], "23505");
    let reproduce = victim["reproduce"].as_str().unwrap();
    assert!(
        reproduce
            .ends_with("tests/test_b.py::test_create_welcome tests/test_a.py::test_apply_welcome"),
        "{reproduce}"
    );
    let stable = hunt["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["verdict"] == "stable")
        .count();
    assert_eq!(stable, 3);
    // Every run is on its own clone.
    let keys: std::collections::BTreeSet<&str> = hunt["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), hunt["runs"].as_array().unwrap().len());
    assert!(junit.exists());
    // The kept clone holds the row the victim tripped over.
    let kept = victim["kept_database"].as_str().expect("a kept clone");
    let probe = std::process::Command::new("psql")
        .args([
            kept,
            "-Atc",
            "select count(*) from items where name = 'WELCOME10'",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&probe.stdout).trim(),
        "1",
        "{}",
        text(&probe)
    );
}

#[test]
fn a_suite_with_no_planted_fault_has_no_findings() {
    let project = Project::new();
    planted_suite(&project);
    std::fs::remove_file(project.path().join("tests/test_a.py")).unwrap();
    let out = project
        .dbsandbox()
        .args([
            "flaky",
            "--runs",
            "4",
            "--min-runs",
            "4",
            "--",
            "python3",
            "-m",
            "pytest",
            "tests",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("No order-dependent or flaky test found"),
        "{}",
        text(&out)
    );
}

#[test]
fn bad_input_exits_2_and_says_which() {
    let project = Project::new();
    let unknown = project
        .dbsandbox()
        .args(["flaky", "--", "make", "test"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("cannot tell which test runner"),
        "{}",
        text(&unknown)
    );
    // pytest in a directory without tests.
    let empty = project
        .dbsandbox()
        .args(["flaky", "--", "python3", "-m", "pytest", "-q"])
        .output()
        .unwrap();
    assert_eq!(empty.status.code(), Some(2), "{}", text(&empty));
    assert!(text(&empty).contains("listed no tests"), "{}", text(&empty));
    let timeout = project
        .dbsandbox()
        .args(["flaky", "--timeout", "5x", "--", "pytest"])
        .output()
        .unwrap();
    assert_eq!(timeout.status.code(), Some(2), "{}", text(&timeout));
    let help = project
        .dbsandbox()
        .args(["flaky", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success(), "{}", text(&help));
    assert!(text(&help).contains("{tests}"), "{}", text(&help));
}

#[test]
fn starts_from_a_red_builds_junit_report() {
    let project = Project::new();
    planted_suite(&project);
    // The CI build ran the polluter first (pytest --junitxml names cases by module and name).
    let report = project.path().join("ci.xml");
    std::fs::write(
        &report,
        r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_b" name="test_stable_2"/>
<testcase classname="tests.test_b" name="test_create_welcome"/>
<testcase classname="tests.test_a" name="test_apply_welcome"><failure message="psycopg.errors.UniqueViolation">DETAIL: Key (name)=(WELCOME10) already exists.</failure></testcase>
<testcase classname="tests.test_a" name="test_stable_1"/>
</testsuite></testsuites>"#,
    )
    .unwrap();
    let out = project
        .dbsandbox()
        .args(["flaky", "--format", "json", "--failed-from"])
        .arg(&report)
        .args(["--", "python3", "-m", "pytest", "-q", "tests"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let hunt: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(hunt["budget"]["detection_stopped"], "failed-from");
    assert_eq!(hunt["budget"]["detection_runs"], 0);
    let findings = hunt["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["test"], "tests/test_a.py::test_apply_welcome");
    assert_eq!(
        findings[0]["polluters"],
        serde_json::json!(["tests/test_b.py::test_create_welcome"])
    );
    // The first run retried the failure alone, in a fresh clone.
    assert_eq!(hunt["runs"][0]["phase"], "retry");
    assert_eq!(
        hunt["runs"][0]["order"],
        serde_json::json!(["tests/test_a.py::test_apply_welcome"])
    );
    // A report that names no test of the suite is bad input.
    std::fs::write(
        &report,
        r#"<testsuite><testcase classname="x" name="test_nope"><failure/></testcase></testsuite>"#,
    )
    .unwrap();
    let bad = project
        .dbsandbox()
        .args(["flaky", "--failed-from"])
        .arg(&report)
        .args(["--", "python3", "-m", "pytest", "-q", "tests"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}
