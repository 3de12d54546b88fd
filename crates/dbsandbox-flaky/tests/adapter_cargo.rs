//! The cargo test / cargo nextest adapter against a real suite (tests/fixtures/cargo, its own
//! workspace): listing, exact orders (declared, reversed, a shuffled subset), outcomes, failure
//! messages, a test that kills its binary, ignored tests, and the reproduction command.

mod support;

use std::path::PathBuf;

use dbsandbox_flaky::adapter::{detect, Context, Runner};
use dbsandbox_flaky::model::{FindingKind, Outcome, TestId};
use support::{context, fixture, run, run_shell, words};

const LIB: &str = "flaky-fixture";
const BIN: &str = "flaky-fixture::bin/flaky-fixture";
const USERS: &str = "flaky-fixture::users";
const STATE: &str = "flaky-fixture::state";

/// One target directory for every test here, kept between test runs (the fixture has no
/// dependencies: it builds in seconds, then not again).
fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("flaky-fixture-cargo")
}

fn setup(command: &str) -> (Box<dyn Runner>, Context, tempfile::TempDir) {
    let scratch = tempfile::tempdir().unwrap();
    let target = target_dir();
    let ctx = context(
        &fixture("cargo"),
        scratch.path(),
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    let runner = detect(&words(command), &ctx.cwd).expect("cargo is detected");
    (runner, ctx, scratch)
}

fn declared() -> Vec<TestId> {
    [
        format!("{LIB}::tests::alpha"),
        format!("{LIB}::tests::beta"),
        format!("{LIB}::tests::gamma"),
        format!("{LIB}::tests::sees_cargo_environment"),
        format!("{BIN}::tests::alpha"),
        format!("{STATE}::expects_no_rows"),
        format!("{STATE}::leaves_a_row"),
        format!("{USERS}::aborts_when_asked"),
        format!("{USERS}::counts_users"),
        format!("{USERS}::creates_user"),
        format!("{USERS}::deletes_user"),
        format!("{USERS}::rejects_unknown_user"),
    ]
    .to_vec()
}

/// The line the fixture's test `id` writes to the order log.
fn logged(id: &str) -> String {
    if let Some(name) = id.strip_prefix(&format!("{BIN}::tests::")) {
        format!("bin::{name}")
    } else if let Some(name) = id.strip_prefix(&format!("{LIB}::tests::")) {
        format!("lib::{name}")
    } else {
        // `users::creates_user`, `state::leaves_a_row`.
        id.strip_prefix(&format!("{LIB}::")).unwrap().to_string()
    }
}

fn logged_all(order: &[TestId]) -> Vec<String> {
    order.iter().map(|id| logged(id)).collect()
}

/// A subset out of order: two stretches stay whole (`creates_user, deletes_user` and `alpha,
/// beta`), the rest need processes of their own.
fn shuffled_subset() -> Vec<TestId> {
    [
        format!("{USERS}::creates_user"),
        format!("{USERS}::deletes_user"),
        format!("{LIB}::tests::gamma"),
        format!("{LIB}::tests::alpha"),
        format!("{LIB}::tests::beta"),
        format!("{BIN}::tests::alpha"),
        format!("{USERS}::counts_users"),
    ]
    .to_vec()
}

#[test]
fn lists_every_test_binary_in_cargo_test_order() {
    let (runner, ctx, _scratch) = setup("cargo test");
    assert_eq!(runner.name(), "cargo");
    assert_eq!(runner.list(&ctx).unwrap(), declared());
}

#[test]
fn runs_declared_reversed_and_shuffled_orders_exactly() {
    let (runner, ctx, _scratch) = setup("cargo test");
    let order = runner.list(&ctx).unwrap();

    let declared_run = run(&*runner, &order, &ctx, &[]);
    assert_eq!(declared_run.ran, logged_all(&order));
    assert_eq!(declared_run.processes, 4, "one process per test binary");

    let reversed: Vec<TestId> = order.iter().rev().cloned().collect();
    let reversed_run = run(&*runner, &reversed, &ctx, &[]);
    assert_eq!(reversed_run.ran, logged_all(&reversed));
    assert_eq!(reversed_run.processes, reversed.len());

    let subset = shuffled_subset();
    let subset_run = run(&*runner, &subset, &ctx, &[]);
    assert_eq!(subset_run.ran, logged_all(&subset));
    assert_eq!(subset_run.processes, 5);
    let reported: Vec<&str> = subset_run.results.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        reported,
        subset.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn reads_outcomes_failure_messages_and_the_cargo_environment() {
    let (runner, ctx, _scratch) = setup("cargo test");
    let order = runner.list(&ctx).unwrap();
    let outcome = run(&*runner, &order, &ctx, &[]);
    assert_eq!(outcome.results.len(), order.len(), "{:?}", outcome.results);
    let counts = format!("{USERS}::counts_users");
    assert_eq!(outcome.outcome(&counts), Some(Outcome::Failed));
    let message = outcome.message(&counts);
    assert!(
        message.contains("planted failure: expected 2 users"),
        "{message}"
    );
    assert!(message.contains("left: 3"), "{message}");
    assert!(!message.contains("stack backtrace"), "{message}");
    for id in order.iter().filter(|id| **id != counts) {
        assert_eq!(
            outcome.outcome(id),
            Some(Outcome::Passed),
            "{id}: {}",
            outcome.message(id)
        );
    }
}

#[test]
fn failure_messages_are_read_even_when_the_environment_asks_for_no_capture() {
    let (runner, mut ctx, _scratch) = setup("cargo test");
    ctx.env
        .push(("RUST_TEST_NOCAPTURE".to_string(), "1".to_string()));
    runner.list(&ctx).unwrap();
    let counts = format!("{USERS}::counts_users");
    let outcome = run(&*runner, std::slice::from_ref(&counts), &ctx, &[]);
    assert_eq!(outcome.outcome(&counts), Some(Outcome::Failed));
    assert!(
        outcome.message(&counts).contains("planted failure"),
        "{:?}",
        outcome.results
    );
}

#[test]
fn a_test_that_kills_its_binary_fails_and_the_tests_after_it_are_missing() {
    let (runner, ctx, _scratch) = setup("cargo test");
    runner.list(&ctx).unwrap();
    let order = [
        format!("{USERS}::aborts_when_asked"),
        format!("{USERS}::creates_user"),
    ];
    let outcome = run(&*runner, &order, &ctx, &[("FLAKY_FIXTURE_ABORT", "1")]);
    assert_eq!(outcome.ran, ["users::aborts_when_asked"]);
    assert_eq!(outcome.outcome(&order[0]), Some(Outcome::Failed));
    assert!(
        outcome
            .message(&order[0])
            .contains("died while this test ran"),
        "{}",
        outcome.message(&order[0])
    );
    assert_eq!(outcome.outcome(&order[1]), None);
}

#[test]
fn ignored_tests_and_filters_follow_the_users_arguments() {
    let (runner, ctx, _scratch) = setup("cargo test -- --include-ignored tests::");
    let listed = runner.list(&ctx).unwrap();
    let ignored = format!("{LIB}::tests::slow_ignored");
    assert!(listed.contains(&ignored), "{listed:?}");
    assert!(
        listed.iter().all(|id| id.contains("::tests::")),
        "{listed:?}"
    );
    let outcome = run(&*runner, std::slice::from_ref(&ignored), &ctx, &[]);
    assert_eq!(outcome.ran, ["lib::slow_ignored"]);
    assert_eq!(outcome.outcome(&ignored), Some(Outcome::Passed));

    let (only_users, ctx, _scratch) = setup("cargo test --test users creates");
    assert_eq!(
        only_users.list(&ctx).unwrap(),
        [format!("{USERS}::creates_user")]
    );
}

#[test]
fn the_reproduction_runs_the_same_order_through_cargo_test() {
    let (runner, ctx, _scratch) = setup("cargo test --quiet");
    runner.list(&ctx).unwrap();
    let subset = shuffled_subset();
    let command = runner.reproduce(&subset);
    assert!(
        command.starts_with(
            "cargo test --quiet -p flaky-fixture --test users -- --exact --test-threads=1"
        ),
        "{command}"
    );
    let (passed, ran) = run_shell(&command, &ctx, &[]);
    // counts_users fails last, so every earlier command ran.
    assert!(!passed, "{command}");
    assert_eq!(ran, logged_all(&subset), "{command}");
}

#[test]
fn nextest_runs_each_test_in_its_own_process_in_the_exact_order() {
    if !support::installed("cargo", &["nextest", "--version"]) {
        eprintln!("SKIPPED: cargo-nextest is not installed (cargo install cargo-nextest)");
        return;
    }
    let (runner, ctx, _scratch) = setup("cargo nextest run --no-fail-fast");
    assert_eq!(runner.name(), "nextest");
    let order = runner.list(&ctx).unwrap();
    assert_eq!(order, declared());

    let reversed: Vec<TestId> = order.iter().rev().cloned().collect();
    let outcome = run(&*runner, &reversed, &ctx, &[]);
    assert_eq!(outcome.ran, logged_all(&reversed));
    assert_eq!(outcome.processes, reversed.len());
    let counts = format!("{USERS}::counts_users");
    assert_eq!(outcome.outcome(&counts), Some(Outcome::Failed));
    assert!(outcome.message(&counts).contains("planted failure"));
    let environment = format!("{LIB}::tests::sees_cargo_environment");
    assert_eq!(
        outcome.outcome(&environment),
        Some(Outcome::Passed),
        "{}",
        outcome.message(&environment)
    );

    let pair = [
        format!("{USERS}::deletes_user"),
        format!("{LIB}::tests::beta"),
    ];
    let command = runner.reproduce(&pair);
    let (passed, ran) = run_shell(&command, &ctx, &[]);
    assert!(passed, "{command}");
    assert_eq!(ran, logged_all(&pair), "{command}");
}

#[test]
fn nextest_junit_cases_map_to_listed_ids() {
    let (runner, _ctx, _scratch) = setup("cargo nextest run");
    let listed = declared();
    // nextest's JUnit: classname is the binary id, name the libtest name.
    assert_eq!(
        runner.junit_case(&listed, USERS, "counts_users").as_deref(),
        Some("flaky-fixture::users::counts_users")
    );
    assert_eq!(
        runner.junit_case(&listed, BIN, "tests::alpha").as_deref(),
        Some("flaky-fixture::bin/flaky-fixture::tests::alpha")
    );
}

#[test]
fn the_hunt_finds_the_victim_and_its_polluter_through_the_adapter() {
    let (runner, ctx, _scratch) = setup("cargo test");
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
    assert_eq!(
        found,
        [
            (
                FindingKind::Victim,
                "flaky-fixture::state::expects_no_rows",
                vec!["flaky-fixture::state::leaves_a_row"]
            ),
            (
                FindingKind::Failing,
                "flaky-fixture::users::counts_users",
                vec![]
            ),
        ],
        "after {runs} runs"
    );
    let victim_runs = &outcomes.findings[0].runs;
    let failed = outcomes.runs.iter().find(|r| {
        victim_runs.contains(&r.index) && r.failed("flaky-fixture::state::expects_no_rows")
    });
    let message = failed.and_then(|r| r.message_of("flaky-fixture::state::expects_no_rows"));
    assert!(
        message.is_some_and(|m| m.contains("Key (code)=(WELCOME10)")),
        "{message:?}"
    );
}
