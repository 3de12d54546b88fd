//! The Jest adapter against a real Jest (tests/fixtures/jest, `npm ci` there): listing, the
//! exact order of declared, reversed and shuffled-subset runs, outcomes and failure text, ids
//! that round-trip, and a reproduction command that runs the same order.

mod js_support;

use js_support::{check_runner, fixture, missing, Harness};

const DECLARED: [&str; 8] = [
    "a.test.js::Users > creates",
    "a.test.js::Users > lists",
    "a.test.js::Users > nested > deep one",
    "a.test.js::top level (with regex chars) [x]?",
    "b.test.js::fails with a database error",
    "b.test.js::passes",
    "b.test.js::is skipped",
    "b.test.js::Users > creates",
];

#[test]
fn jest_runs_exact_orders_and_reads_outcomes() {
    let dir = fixture("jest");
    if let Some(reason) = missing(&dir, "jest") {
        eprintln!("skipped: {reason}");
        return;
    }
    let harness = Harness::new(&["npx", "jest"], &dir);
    assert_eq!(harness.runner.name(), "jest");
    let [declared, reversed, subset] = check_runner(
        &harness,
        &DECLARED,
        "b.test.js::fails with a database error",
        &["b.test.js::is skipped"],
        // b's `Users > creates` has the name of a's: a pattern for a's must not reach b.
        &[
            "b.test.js::passes",
            "a.test.js::top level (with regex chars) [x]?",
            "a.test.js::Users > creates",
            "b.test.js::fails with a database error",
            "a.test.js::Users > lists",
        ],
    );
    // One process for the declared order; reversed, every test of a file runs alone, but the
    // last of b and the first of a share one process.
    assert_eq!(declared, 1);
    assert_eq!(reversed, DECLARED.len() - 1);
    // b(passes) + a(top level); a(Users > creates); b(fails) + a(lists).
    assert_eq!(subset, 3);
}
