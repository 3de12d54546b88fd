//! The go test adapter against a real module (tests/fixtures/go): listing in declared order
//! (file name, then position), exact orders (declared, reversed, a shuffled subset), subtests with
//! their parent, a t.Parallel() test, outcomes and failure text, a test that exits its binary,
//! and the reproduction command. Skips, saying so, when Go is not installed.

mod support;

use dbsandbox_flaky::adapter::{detect, Context, Runner};
use dbsandbox_flaky::model::{FindingKind, Outcome, TestId};
use support::{context, fixture, run, run_shell, words};

const ORDERS: &str = "example.com/flakyfixture/orders";
const USERS: &str = "example.com/flakyfixture/users";
const STATE: &str = "example.com/flakyfixture/state";

fn setup(command: &str) -> Option<(Box<dyn Runner>, Context, tempfile::TempDir)> {
    if !support::installed("go", &["version"]) {
        eprintln!("SKIPPED: go is not installed (apt-get install golang-go)");
        return None;
    }
    let scratch = tempfile::tempdir().unwrap();
    let ctx = context(&fixture("go"), scratch.path(), &[]);
    let runner = detect(&words(command), &ctx.cwd).expect("go test is detected");
    Some((runner, ctx, scratch))
}

fn id(package: &str, name: &str) -> TestId {
    format!("{package}::{name}")
}

fn declared() -> Vec<TestId> {
    let mut ids: Vec<TestId> = [
        "TestPlace",
        "TestCount",
        "TestParallel",
        "TestCrash",
        "TestSkipped",
    ]
    .iter()
    .map(|n| id(ORDERS, n))
    .collect();
    ids.extend(
        ["TestExpectsNoRows", "TestLeavesARow"]
            .iter()
            .map(|n| id(STATE, n)),
    );
    // a_test.go before b_test.go; source order inside each (not name order).
    ids.extend(
        [
            "TestZeta",
            "TestCreate",
            "TestAlpha",
            "TestWithSubtests",
            "TestReadsTestdata",
        ]
        .iter()
        .map(|n| id(USERS, n)),
    );
    ids
}

/// The lines the fixture's tests write for `order` (subtests right after their parent).
fn logged(order: &[TestId]) -> Vec<String> {
    let mut lines = Vec::new();
    for test in order {
        let (package, name) = test.rsplit_once("::").unwrap();
        let short = package.rsplit('/').next().unwrap();
        lines.push(format!("{short}.{name}"));
        if name == "TestWithSubtests" {
            lines.push(format!("{short}.{name}/one"));
            lines.push(format!("{short}.{name}/two"));
        }
    }
    lines
}

#[test]
fn lists_tests_in_declared_order_per_package() {
    let Some((runner, ctx, _scratch)) = setup("go test ./...") else {
        return;
    };
    assert_eq!(runner.name(), "go");
    assert_eq!(runner.list(&ctx).unwrap(), declared());
}

#[test]
fn runs_declared_reversed_and_shuffled_orders_exactly() {
    let Some((runner, ctx, _scratch)) = setup("go test ./...") else {
        return;
    };
    let order = runner.list(&ctx).unwrap();

    // The first run shows go test running the t.Parallel() test after the sequential ones.
    let first = run(&*runner, &order, &ctx, &[]);
    assert_eq!(first.processes, 3, "one process per package");
    let mut expected_first = order.clone();
    let parallel = id(ORDERS, "TestParallel");
    expected_first.retain(|t| *t != parallel);
    expected_first.insert(4, parallel.clone());
    assert_eq!(first.ran, logged(&expected_first));

    // From then on the adapter knows it, and gives it a process of its own.
    let second = run(&*runner, &order, &ctx, &[]);
    assert_eq!(second.ran, logged(&order));
    assert_eq!(second.processes, 5);

    let reversed: Vec<TestId> = order.iter().rev().cloned().collect();
    let reversed_run = run(&*runner, &reversed, &ctx, &[]);
    assert_eq!(reversed_run.ran, logged(&reversed));
    assert_eq!(reversed_run.processes, reversed.len());

    let subset = vec![
        id(USERS, "TestCreate"),
        id(USERS, "TestAlpha"),
        id(ORDERS, "TestCount"),
        id(ORDERS, "TestPlace"),
        id(USERS, "TestZeta"),
    ];
    let subset_run = run(&*runner, &subset, &ctx, &[]);
    assert_eq!(subset_run.ran, logged(&subset));
    assert_eq!(subset_run.processes, 4);
    let reported: Vec<&str> = subset_run.results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        reported,
        subset.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn reads_outcomes_and_failure_text() {
    let Some((runner, ctx, _scratch)) = setup("go test -v ./...") else {
        return;
    };
    let order = runner.list(&ctx).unwrap();
    let outcome = run(&*runner, &order, &ctx, &[]);
    assert_eq!(outcome.results.len(), order.len(), "{:?}", outcome.results);
    let count = id(ORDERS, "TestCount");
    assert_eq!(outcome.outcome(&count), Some(Outcome::Failed));
    let message = outcome.message(&count);
    assert!(
        message.contains("orders_test.go:15: planted failure: expected 2 orders, found 3"),
        "{message}"
    );
    assert!(!message.contains("=== RUN"), "{message}");
    assert_eq!(
        outcome.outcome(&id(ORDERS, "TestSkipped")),
        Some(Outcome::Skipped)
    );
    for test in order
        .iter()
        .filter(|t| !t.ends_with("TestCount") && !t.ends_with("TestSkipped"))
    {
        assert_eq!(outcome.outcome(test), Some(Outcome::Passed), "{test}");
    }
}

#[test]
fn a_test_that_exits_its_binary_fails_and_the_tests_after_it_are_missing() {
    let Some((runner, ctx, _scratch)) = setup("go test ./...") else {
        return;
    };
    runner.list(&ctx).unwrap();
    let order = [id(ORDERS, "TestCrash"), id(ORDERS, "TestSkipped")];
    let outcome = run(&*runner, &order, &ctx, &[("FLAKY_FIXTURE_CRASH", "1")]);
    assert_eq!(outcome.processes, 1);
    assert_eq!(outcome.ran, ["orders.TestCrash"]);
    assert_eq!(outcome.outcome(&order[0]), Some(Outcome::Failed));
    assert!(
        outcome
            .message(&order[0])
            .contains("ended while this test ran"),
        "{}",
        outcome.message(&order[0])
    );
    assert_eq!(outcome.outcome(&order[1]), None);
}

#[test]
fn honours_the_users_run_filter_and_reproduces_with_go_test() {
    let Some((runner, ctx, _scratch)) = setup("go test -shuffle=on -run TestC ./...") else {
        return;
    };
    let listed = runner.list(&ctx).unwrap();
    assert_eq!(
        listed,
        [
            id(ORDERS, "TestCount"),
            id(ORDERS, "TestCrash"),
            id(USERS, "TestCreate")
        ]
    );
    let order = [
        id(USERS, "TestCreate"),
        id(ORDERS, "TestCrash"),
        id(ORDERS, "TestCount"),
    ];
    let command = runner.reproduce(&order);
    assert!(
        command.starts_with(
            "go test -count=1 -p 1 -shuffle=off -run '^(TestCreate)$' example.com/flakyfixture/users && "
        ),
        "{command}"
    );
    let (passed, ran) = run_shell(&command, &ctx, &[]);
    assert!(!passed, "TestCount fails: {command}");
    assert_eq!(ran, logged(&order), "{command}");
}

#[test]
fn junit_cases_of_go_junit_report_map_to_listed_ids() {
    let Some((runner, _ctx, _scratch)) = setup("go test ./...") else {
        return;
    };
    let listed = declared();
    assert_eq!(
        runner
            .junit_case(&listed, USERS, "TestWithSubtests/one")
            .as_deref(),
        Some("example.com/flakyfixture/users::TestWithSubtests")
    );
    assert_eq!(
        runner.junit_case(&listed, ORDERS, "TestCount").as_deref(),
        Some("example.com/flakyfixture/orders::TestCount")
    );
    assert_eq!(runner.junit_case(&listed, ORDERS, "TestMissing"), None);
}

#[test]
fn the_hunt_finds_the_victim_and_its_polluter_through_the_adapter() {
    let Some((runner, ctx, _scratch)) = setup("go test ./...") else {
        return;
    };
    let (outcomes, runs) = support::hunt(&*runner, &ctx);
    println!("the hunt used {runs} runs for {} tests", declared().len());
    let found: Vec<(FindingKind, &str, Vec<&str>)> = outcomes
        .findings
        .iter()
        .map(|f| {
            let culprits = f.polluters.iter().map(String::as_str).collect();
            (f.kind, f.test.as_str(), culprits)
        })
        .collect();
    let victim = id(STATE, "TestExpectsNoRows");
    let polluter = id(STATE, "TestLeavesARow");
    let count = id(ORDERS, "TestCount");
    assert_eq!(
        found,
        [
            (
                FindingKind::Victim,
                victim.as_str(),
                vec![polluter.as_str()]
            ),
            (FindingKind::Failing, count.as_str(), vec![]),
        ],
        "after {runs} runs"
    );
    let message = outcomes
        .runs
        .iter()
        .find_map(|r| r.failed(&victim).then(|| r.message_of(&victim)).flatten());
    assert!(
        message.is_some_and(|m| m.contains("Key (code)=(WELCOME10)")),
        "{message:?}"
    );
}
