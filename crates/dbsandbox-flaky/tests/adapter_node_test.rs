//! The `node --test` adapter against the local Node (tests/fixtures/node-test, nothing to
//! install), an ESM file (`.mjs`) and a CommonJS one (`.cjs`): listing, the exact order of
//! declared, reversed and shuffled-subset runs, outcomes and failure text, ids that round-trip,
//! and a reproduction command that runs the same order.

mod js_support;

use js_support::{check_runner, fixture, missing, Harness};

const DECLARED: [&str; 8] = [
    "a.test.mjs::Users > creates",
    "a.test.mjs::Users > lists",
    "a.test.mjs::Users > nested > deep one",
    "a.test.mjs::top level (with regex chars) [x]?",
    "b.test.cjs::fails with a database error",
    "b.test.cjs::passes",
    "b.test.cjs::is skipped",
    "b.test.cjs::Users > creates",
];

#[test]
fn node_test_runs_exact_orders_and_reads_outcomes() {
    let dir = fixture("node-test");
    if let Some(reason) = missing(&dir, "") {
        eprintln!("skipped: {reason}");
        return;
    }
    let harness = Harness::new(&["node", "--test"], &dir);
    assert_eq!(harness.runner.name(), "node-test");
    let [declared, reversed, subset] = check_runner(
        &harness,
        &DECLARED,
        "b.test.cjs::fails with a database error",
        &["b.test.cjs::is skipped"],
        &[
            "b.test.cjs::passes",
            "a.test.mjs::top level (with regex chars) [x]?",
            "a.test.mjs::Users > creates",
            "a.test.mjs::Users > lists",
            "b.test.cjs::fails with a database error",
        ],
    );
    // One process per file; reversed, every test alone; the subset: b, a, a (creates, lists), b.
    assert_eq!(declared, 2);
    assert_eq!(reversed, DECLARED.len());
    assert_eq!(subset, 4);
}
