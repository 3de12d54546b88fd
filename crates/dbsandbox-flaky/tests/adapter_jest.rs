//! The Jest adapter against a real Jest (tests/fixtures/jest, `npm ci` there): listing, the
//! exact order of declared, reversed and shuffled-subset runs (a file's tests out of declared
//! order included), outcomes and failure text, ids that round-trip, and a reproduction command
//! that runs the same order.

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
    // One process for the declared order, and for the reversed one (the shipped runner reorders
    // each describe block's children).
    assert_eq!(declared, 1);
    assert_eq!(reversed, 1);
    // b(passes); a(top level, Users > creates); b(fails) + a(Users > lists): a name pattern
    // for a's `Users creates` would pick b's as well, so those do not share a process.
    assert_eq!(subset, 3);

    // Leaving the Users block and coming back to it takes a second process.
    let order: Vec<String> = [
        "a.test.js::Users > creates",
        "a.test.js::top level (with regex chars) [x]?",
        "a.test.js::Users > lists",
    ]
    .map(String::from)
    .to_vec();
    let (invocations, results, ran) = harness.run(&order);
    assert_eq!(ran, order);
    assert_eq!(invocations.len(), 2);
    assert_eq!(results.len(), 3);
}
