//! The generic `{tests}`/`{junit}` adapter against a runner script (tests/fixtures/generic) that
//! writes JUnit XML and logs the order it ran tests in: listing by one whole run, exact orders
//! (one invocation per test), outcomes and failure text, Surefire's `-Dtest=Class#method` with a
//! report directory, a runner that dies before reporting, and the reproduction command.

mod support;

use dbsandbox_flaky::adapter::{detect, Context, Runner};
use dbsandbox_flaky::model::{Outcome, TestId};
use support::{context, fixture, run, run_shell, words};

/// The runner script copied into a directory of its own, which is the suite's directory (the
/// reproduction writes its `report.xml` there).
fn setup(command: &str) -> (Box<dyn Runner>, Context, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("generic").join("fake-runner.sh"),
        dir.path().join("fake-runner.sh"),
    )
    .unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let ctx = context(dir.path(), &scratch, &[]);
    let runner = detect(&words(command), &ctx.cwd).expect("the generic adapter is chosen");
    (runner, ctx, dir)
}

fn ids(classname: &str, names: &[&str]) -> Vec<TestId> {
    names.iter().map(|n| format!("{classname}::{n}")).collect()
}

fn names(order: &[TestId]) -> Vec<String> {
    order
        .iter()
        .map(|id| id.rsplit_once("::").unwrap().1.to_string())
        .collect()
}

const DECLARED: [&str; 4] = ["test_create", "test_count", "test_skip", "test_delete"];

#[test]
fn lists_by_one_whole_run_and_runs_each_order_exactly() {
    let (runner, ctx, _dir) = setup("sh fake-runner.sh --report={junit} {tests}");
    assert_eq!(runner.name(), "junit");
    let order = runner.list(&ctx).unwrap();
    assert_eq!(order, ids("suite.fake", &DECLARED));

    for wanted in [
        order.clone(),
        order.iter().rev().cloned().collect(),
        ids("suite.fake", &["test_delete", "test_create", "test_count"]),
    ] {
        let outcome = run(&*runner, &wanted, &ctx, &[]);
        assert_eq!(outcome.ran, names(&wanted));
        assert_eq!(outcome.processes, wanted.len());
        let reported: Vec<&str> = outcome.results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            reported,
            wanted.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
}

#[test]
fn reads_outcomes_and_failure_text() {
    let (runner, ctx, _dir) = setup("sh fake-runner.sh --report={junit} {tests}");
    let order = runner.list(&ctx).unwrap();
    let outcome = run(&*runner, &order, &ctx, &[]);
    let [create, count, skip, delete] = [0, 1, 2, 3].map(|i| order[i].as_str());
    assert_eq!(outcome.outcome(create), Some(Outcome::Passed));
    assert_eq!(outcome.outcome(delete), Some(Outcome::Passed));
    assert_eq!(outcome.outcome(skip), Some(Outcome::Skipped));
    assert_eq!(outcome.outcome(count), Some(Outcome::Failed));
    assert_eq!(
        outcome.message(count),
        "expected 2 rows & got <3>\nassert rows == 2\nDETAIL: Key (code)=(WELCOME10) already exists."
    );
}

#[test]
fn surefire_style_class_hash_method_and_a_report_directory() {
    let (runner, ctx, _dir) = setup(
        "sh fake-runner.sh --classname=com.example.UsersTest --report-dir={junit} -Dtest={tests}",
    );
    let order = runner.list(&ctx).unwrap();
    assert_eq!(order, ids("com.example.UsersTest", &DECLARED));
    let subset = ids("com.example.UsersTest", &["test_delete", "test_create"]);
    let invocations = runner.invocations(&subset, &ctx).unwrap();
    assert!(
        invocations[0]
            .args
            .contains(&"-Dtest=com.example.UsersTest#test_delete".to_string()),
        "{:?}",
        invocations[0].args
    );
    let outcome = run(&*runner, &subset, &ctx, &[]);
    assert_eq!(outcome.ran, names(&subset));
    assert_eq!(outcome.outcome(&subset[0]), Some(Outcome::Passed));
    assert_eq!(outcome.outcome(&subset[1]), Some(Outcome::Passed));
}

#[test]
fn a_runner_that_dies_before_its_report_leaves_its_test_missing() {
    let (runner, ctx, _dir) = setup("sh fake-runner.sh --report={junit} {tests}");
    let order = runner.list(&ctx).unwrap();
    let outcome = run(&*runner, &order[..1], &ctx, &[("FAKE_RUNNER_DIE", "1")]);
    assert_eq!(outcome.ran, ["test_create"]);
    assert!(outcome.results.is_empty(), "{:?}", outcome.results);
}

#[test]
fn bad_commands_say_what_is_wrong() {
    let (runner, ctx, _dir) = setup("true {junit} {tests}");
    let error = runner.list(&ctx).unwrap_err().to_string();
    assert!(error.contains("wrote no JUnit report"), "{error}");

    let error = detect(
        &words("sh fake-runner.sh {tests}"),
        std::path::Path::new("."),
    )
    .err()
    .expect("no {junit}");
    assert!(error.contains("but no {junit}"), "{error}");
}

#[test]
fn the_reproduction_runs_the_same_order() {
    let (runner, ctx, _dir) = setup("sh fake-runner.sh --report={junit} {tests}");
    runner.list(&ctx).unwrap();
    let order = ids("suite.fake", &["test_delete", "test_skip", "test_create"]);
    let command = runner.reproduce(&order);
    assert_eq!(
        command,
        "sh fake-runner.sh --report=report.xml test_delete && \
         sh fake-runner.sh --report=report.xml test_skip && \
         sh fake-runner.sh --report=report.xml test_create"
    );
    let (passed, ran) = run_shell(&command, &ctx, &[]);
    assert!(passed, "{command}");
    assert_eq!(ran, names(&order));
}
