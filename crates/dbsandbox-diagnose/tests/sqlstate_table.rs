//! PostgreSQL's whole SQLSTATE table (data/errcodes.tsv, generated from errcodes.txt): every
//! error code, printed by any of several drivers, becomes a finding with its class, whether or
//! not a playbook covers it; success and warning codes never do.

mod common;

use common::{analyze_json, classes};
use dbsandbox_diagnose::catalogue::builtin;
use dbsandbox_diagnose::errcodes::{table, Severity};
use serde_json::Value;

/// Lines several drivers print for an error with this code.
fn driver_lines(code: &str, python_name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("pgx", format!("    store_test.go:41: query: ERROR: something failed (SQLSTATE {code})")),
        ("psycopg", format!("E       psycopg.errors.{python_name}: something failed")),
        ("psycopg2", format!("psycopg2.errors.{python_name}: something failed")),
        ("node-postgres", format!("  code: '{code}',")),
        ("hibernate", format!("WARN  o.h.engine.jdbc.spi.SqlExceptionHelper - SQL Error: 0, SQLState: {code}")),
        ("tokio-postgres", format!("called `Result::unwrap()` on an `Err` value: Error {{ kind: Db, cause: Some(DbError {{ severity: \"ERROR\", code: SqlState(E{code}), message: \"something failed\" }}) }}")),
    ]
}

fn all_classes_with_codes(report: &Value) -> Vec<(String, Vec<String>)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["consequences"].as_array().unwrap())
        .map(|f| {
            let codes = f["codes"]
                .as_array()
                .map(|c| c.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_else(|| {
                    f["occurrences"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(|o| o["code"].as_str().map(str::to_string))
                        .collect()
                });
            (f["class"].as_str().unwrap().to_string(), codes)
        })
        .collect()
}

#[test]
fn the_generated_table_is_postgresql_s_whole_errcodes_list() {
    let table = table();
    assert!(table.states.len() >= 250, "{} codes", table.states.len());
    let state = table.lookup("34000").expect("34000 in the table");
    assert_eq!(state.condition, "invalid_cursor_name");
    assert_eq!(state.class, "34");
    assert_eq!(state.class_title, "Invalid Cursor Name");
    assert_eq!(
        table.lookup("23505").unwrap().python_name,
        "UniqueViolation"
    );
    assert_eq!(table.lookup("XX000").unwrap().python_name, "InternalError_");
    assert_eq!(table.lookup("01000").unwrap().severity, Severity::Warning);
    // Every class that test suites meet has a note saying what it means there.
    for class in [
        "08", "22", "23", "25", "34", "40", "42", "53", "55", "57", "58", "XX",
    ] {
        assert!(
            table.class_note(class).is_some(),
            "no note for class {class}"
        );
    }
    // Exception names drivers derive from the condition names.
    let code_of = |name: &str| table.by_exception_name(name).map(|s| s.code);
    assert_eq!(code_of("InvalidCursorName"), Some("34000")); // psycopg, ruby-pg
    assert_eq!(code_of("InvalidCursorNameError"), Some("34000")); // asyncpg
    assert_eq!(code_of("PostgresSyntaxError"), Some("42601")); // asyncpg
    assert_eq!(code_of("InternalError_"), Some("XX000")); // psycopg
    assert_eq!(code_of("ModifyingSqlDataNotPermittedExt"), Some("38002")); // psycopg
    assert_eq!(code_of("ConnectionBad"), None); // ruby-pg's client-side error has no code
}

#[test]
fn every_error_sqlstate_in_the_table_maps_to_a_class_and_a_finding_through_every_driver() {
    let table = table();
    let playbooks = builtin().unwrap();
    let mut checked = 0;
    for state in &table.states {
        let wanted = format!("sqlstate:{}", state.code);
        for (driver, line) in driver_lines(state.code, state.python_name) {
            let input = format!("{line}\n");
            let (exit, report, _) = analyze_json(&[("one.log", input.as_bytes())]);
            let context = format!("{} ({}) via {driver}: {line}", state.code, state.condition);
            let by_name = driver.starts_with("psycopg");
            if state.severity != Severity::Error && by_name {
                // psycopg has no warning classes: `StringDataRightTruncation` is the error 22001.
                continue;
            }
            if state.severity != Severity::Error {
                // Success and warnings (classes 00, 01, 02) are not database errors: Hibernate
                // logs `SQLState: 00000` for every server NOTICE.
                assert_eq!(exit, 0, "{context}: {report}");
                continue;
            }
            assert_eq!(exit, 1, "{context}: not a finding: {report}");
            let found = all_classes_with_codes(&report);
            assert_eq!(found.len(), 1, "{context}: {found:?}");
            let (class, codes) = &found[0];
            assert!(codes.contains(&wanted), "{context}: codes {codes:?}");
            let claimant = playbooks
                .iter()
                .find(|p| p.id != "unmigrated-database" && p.codes.contains(&wanted));
            match claimant {
                Some(playbook) => assert_eq!(class, &playbook.id, "{context}"),
                None => {
                    assert_eq!(class, "unclassified-database-error", "{context}");
                    let sqlstate = &report["findings"][0]["sqlstates"][0];
                    assert_eq!(sqlstate["code"], wanted.as_str(), "{context}");
                    assert_eq!(sqlstate["condition"], state.condition, "{context}");
                    assert_eq!(sqlstate["class"], state.class, "{context}");
                    assert_eq!(sqlstate["class_title"], state.class_title, "{context}");
                    let occurrence = &report["findings"][0]["occurrences"][0];
                    assert_eq!(occurrence["sqlstate_class"], state.class, "{context}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 240 * 6, "only {checked} lines checked");
}

#[test]
fn an_unknown_code_in_a_known_class_is_reported_with_its_class() {
    // A newer server's or an extension's code: not in the table, but its class is known.
    let (exit, report, _) = analyze_json(&[(
        "x.log",
        b"ERROR: citus: shard move failed (SQLSTATE 55Z42)\n",
    )]);
    assert_eq!(exit, 1);
    assert_eq!(classes(&report), ["unclassified-database-error"]);
    let sqlstate = &report["findings"][0]["sqlstates"][0];
    assert_eq!(sqlstate["condition"], Value::Null);
    assert_eq!(sqlstate["class"], "55");
    assert_eq!(sqlstate["class_title"], "Object Not In Prerequisite State");
    // Five capitals that are no SQLSTATE class (`code: 'EPIPE'`) are not database errors.
    let (exit, report, _) = analyze_json(&[("x.log", b"  code: 'EPIPE',\n")]);
    assert_eq!(exit, 0, "{report}");
}

#[test]
fn explain_names_any_sqlstate_with_its_class_and_every_class_for_a_shared_code() {
    use dbsandbox_diagnose::{run_explain, ExplainArgs};
    let explain = |id: &str| {
        let args = ExplainArgs {
            id: Some(id.to_string()),
            ..ExplainArgs::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_explain(&args, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap())
    };
    let (code, out) = explain("34000");
    assert_eq!(code, 0);
    assert!(out.starts_with("SQLSTATE 34000 invalid_cursor_name \u{2014} class 34 \u{201c}Invalid Cursor Name\u{201d}\n"), "{out}");
    assert!(out.contains("psycopg `errors.InvalidCursorName`"), "{out}");
    assert!(
        out.contains("unclassified-database-error \u{2014}"),
        "{out}"
    );
    let (_, out) = explain("55006");
    assert!(
        out.contains("database-in-use, pending-trigger-events"),
        "{out}"
    );
    // An isolation class lists the integration line of every runner.
    let (_, out) = explain("unique-violation");
    assert!(out.contains("- pytest (pytest-dbsandbox):"), "{out}");
    assert!(out.contains("- cargo (#[dbsandbox::test]):"), "{out}");
    assert!(out.contains("- jest (@dbsandbox/node):"), "{out}");
}
