//! The Vitest adapter against a real Vitest (tests/fixtures/vitest, `npm ci` there), ESM files
//! (`.mjs`, and `.js` under `"type": "module"`): listing, the exact order of declared, reversed
//! and shuffled-subset runs, outcomes and failure text, ids that round-trip, and a reproduction
//! command that runs the same order.

mod js_support;

use js_support::{check_runner, fixture, missing, Harness};

/// `vitest list` leaves skipped tests out (b.test.js has one).
const DECLARED: [&str; 7] = [
    "a.test.mjs::Users > creates",
    "a.test.mjs::Users > lists",
    "a.test.mjs::Users > nested > deep one",
    "a.test.mjs::top level (with regex chars) [x]?",
    "b.test.js::fails with a database error",
    "b.test.js::passes",
    "b.test.js::Users > creates",
];

#[test]
fn vitest_runs_exact_orders_and_reads_outcomes() {
    let dir = fixture("vitest");
    if let Some(reason) = missing(&dir, "vitest") {
        eprintln!("skipped: {reason}");
        return;
    }
    let harness = Harness::new(&["npx", "vitest", "run"], &dir);
    assert_eq!(harness.runner.name(), "vitest");
    let [declared, reversed, subset] = check_runner(
        &harness,
        &DECLARED,
        "b.test.js::fails with a database error",
        &[],
        &[
            "b.test.js::passes",
            "a.test.mjs::top level (with regex chars) [x]?",
            "a.test.mjs::Users > creates",
            "a.test.mjs::Users > lists",
            "b.test.js::Users > creates",
        ],
    );
    // One process per file; reversed, every test alone; the subset: b, a, a (creates, lists), b.
    assert_eq!(declared, 2);
    assert_eq!(reversed, DECLARED.len());
    assert_eq!(subset, 4);
}
