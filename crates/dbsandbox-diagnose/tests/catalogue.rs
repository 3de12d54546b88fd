//! The built-in catalogue: it loads, every pattern example is recognised as its own class and
//! passes the prefilter, no near-miss is recognised, the required codes are all present,
//! and the building blocks of the reader behave exactly.

use dbsandbox_diagnose::analysis::same_test;
use dbsandbox_diagnose::catalogue::{builtin, Kind};
use dbsandbox_diagnose::matcher::Matcher;
use dbsandbox_diagnose::reader::{count_newlines, strip_ansi};

#[test]
fn builtin_catalogue_compiles_and_checks_its_own_examples() {
    let playbooks = builtin().expect("built-in playbooks parse");
    assert_eq!(playbooks.len(), 14);
    let examples: usize = playbooks
        .iter()
        .flat_map(|p| &p.patterns)
        .map(|p| p.examples.len())
        .sum();
    assert!(examples >= 80, "only {examples} examples");
    // Matcher::new rejects any example that is not matched or near-miss that is.
    let matcher = Matcher::new(playbooks).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matcher.trigger_count() >= 50,
        "{} triggers",
        matcher.trigger_count()
    );
}

#[test]
fn required_codes_are_all_catalogued() {
    let playbooks = builtin().unwrap();
    let has = |code: &str| playbooks.iter().any(|p| p.codes.iter().any(|c| c == code));
    for code in [
        "sqlstate:23505",
        "mysql:1062",
        "sqlite:SQLITE_CONSTRAINT_UNIQUE",
        "sqlstate:23503",
        "sqlstate:40P01",
        "mysql:1213",
        "sqlstate:40001",
        "sqlstate:55P03",
        "mysql:1205",
        "sqlite:SQLITE_BUSY",
        "sqlstate:53300",
        "mysql:1040",
        "sqlstate:42P01",
        "sqlstate:42703",
        "sqlstate:42P07",
        "sqlstate:55006",
        "sqlstate:57014",
        "sqlstate:25P02",
        "prisma:P2002",
        "prisma:P2024",
    ] {
        assert!(has(code), "no playbook claims {code}");
    }
    let aborted = playbooks
        .iter()
        .find(|p| p.id == "aborted-transaction")
        .unwrap();
    assert_eq!(aborted.kind, Kind::Consequence);
    for playbook in &playbooks {
        assert!(
            playbook.fix.iter().any(|f| f.ecosystem == "dbsandbox"),
            "{} lacks a dbsandbox fix",
            playbook.id
        );
        assert!(
            !playbook.validate.trim().is_empty(),
            "{} lacks validation",
            playbook.id
        );
    }
}

#[test]
fn same_wording_in_every_stack_is_one_sqlstate() {
    let matcher = Matcher::load(None).unwrap();
    let unique = matcher
        .playbooks
        .iter()
        .position(|p| p.id == "unique-violation")
        .unwrap();
    for line in [
        "psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint \"u_key\"",
        "PG::UniqueViolation: ERROR:  duplicate key value violates unique constraint \"u_key\"",
        "ERROR: duplicate key value violates unique constraint \"u_key\" (SQLSTATE 23505)",
        "pq: duplicate key value violates unique constraint \"u_key\"",
        "org.postgresql.util.PSQLException: ERROR: duplicate key value violates unique constraint \"u_key\"",
        "error returned from database: duplicate key value violates unique constraint \"u_key\"",
        "db error: ERROR: duplicate key value violates unique constraint \"u_key\"",
        "FEHLER:  doppelter Schl\u{fc}sselwert verletzt Unique-Constraint \u{bb}u_key\u{ab}",
        "ERREUR:  la valeur d'une cl\u{e9} dupliqu\u{e9}e rompt la contrainte unique \u{ab} u_key \u{bb}",
        "{\"level\":\"error\",\"msg\":\"duplicate key value violates unique constraint \\\"u_key\\\"\"}",
    ] {
        let facts = matcher.analyze_line(line.as_bytes(), b"");
        assert_eq!(facts.classes.len(), 1, "{line}");
        assert_eq!(facts.classes[0].playbook, unique, "{line}");
        assert_eq!(facts.classes[0].code.as_deref(), Some("sqlstate:23505"), "{line}");
        assert_eq!(facts.classes[0].fields.constraint.as_deref(), Some("u_key"), "{line}");
    }
}

#[test]
fn newline_count_matches_naive_count_at_all_lengths() {
    let text: Vec<u8> = (0..20_000u32)
        .map(|i| {
            if i % 7 == 0 || i % 251 == 3 {
                b'\n'
            } else {
                b'a'
            }
        })
        .collect();
    for end in [0, 1, 31, 32, 33, 8160, 8161, 19_999, 20_000] {
        let naive = text[..end].iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(count_newlines(&text[..end]), naive, "length {end}");
    }
}

#[test]
fn ansi_sequences_and_progress_redraws_are_removed() {
    assert_eq!(
        &*strip_ansi(b"\x1b[31mFAILED\x1b[0m tests/a.py::t"),
        b"FAILED tests/a.py::t"
    );
    assert_eq!(
        &*strip_ansi(b"\x1b]8;;http://x\x07link\x1b]8;;\x07 ok"),
        b"link ok"
    );
    assert_eq!(
        &*strip_ansi(b"10%\r50%\rERROR: deadlock detected"),
        b"ERROR: deadlock detected"
    );
    assert_eq!(&*strip_ansi(b"trailing escape \x1b"), b"trailing escape ");
    assert_eq!(&*strip_ansi(b"\x1b[38;5;196"), b"");
}

#[test]
fn test_names_match_across_qualifications() {
    assert!(same_test(
        Some("test_signup"),
        Some("tests/test_users.py::test_signup")
    ));
    assert!(same_test(
        Some("TestLedger.test_post"),
        Some("tests/test_ledger.py::TestLedger::test_post")
    ));
    assert!(same_test(
        Some("UserTest.saves"),
        Some("com.example.UserTest.saves")
    ));
    assert!(!same_test(
        Some("test_signup"),
        Some("tests/test_users.py::test_signup_twice")
    ));
    assert!(!same_test(Some("a"), None));
    assert!(same_test(None, None));
}
