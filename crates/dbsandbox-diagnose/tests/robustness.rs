//! Inputs that are not a normal log (empty, binary, invalid UTF-8, huge lines, truncated or
//! malformed XML, pseudo-random bytes), the exit codes and the JSON shape scripts rely on.

mod common;

use common::{analyze_corpus, analyze_json, corpus, corpus_path};
use dbsandbox_diagnose::{
    analyze_bytes, run_analyze, run_explain, AnalyzeArgs, ExplainArgs, OutputFormat,
};
use std::path::PathBuf;

const UNIQUE_LINE: &[u8] =
    b"ERROR: duplicate key value violates unique constraint \"users_email_key\" (SQLSTATE 23505)\n";

#[test]
fn empty_input_is_bad_input_with_a_clear_message() {
    let (code, report, stderr) = analyze_json(&[("empty.log", b"")]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "dbsandbox analyze: empty.log: input is empty (0 bytes): nothing to analyse\n"
    );
    assert_eq!(report["exit_code"], 2);
    assert_eq!(
        report["inputs"][0]["error"],
        "input is empty (0 bytes): nothing to analyse"
    );
    assert!(report["inputs"][0]["format"].is_null());
}

#[test]
fn binary_garbage_is_refused_not_scanned() {
    let mut garbage = vec![0u8; 4096];
    for (i, byte) in garbage.iter_mut().enumerate() {
        *byte = (i * 7 % 251) as u8;
    }
    let (code, report, stderr) = analyze_json(&[("core.bin", &garbage)]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("dbsandbox analyze: core.bin: input looks binary, not a log: "),
        "{stderr}"
    );
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);

    let gzip = [0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03];
    let (code, _, stderr) = analyze_json(&[("build.log.gz", &gzip)]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "dbsandbox analyze: build.log.gz: input looks binary, not a log: gzip data; decompress it first (zcat FILE | dbsandbox analyze)\n"
    );
}

#[test]
fn invalid_utf8_is_matched_on_bytes_and_printed_lossily() {
    let mut log = b"latin-1 noise: caf\xe9 \xff\xfe\n".to_vec();
    log.extend_from_slice(
        b"ERROR: duplicate key value violates unique constraint \"caf\xe9_key\" (SQLSTATE 23505)\n",
    );
    let (code, report, stderr) = analyze_json(&[("latin1.log", &log)]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "dbsandbox analyze: latin1.log: warning: input is not valid UTF-8; matched on raw bytes, excerpts show \u{fffd} for invalid bytes\n"
    );
    let occurrence = &report["findings"][0]["occurrences"][0];
    assert_eq!(occurrence["line"], 2);
    assert_eq!(occurrence["constraint"], "caf\u{fffd}_key");
}

#[test]
fn stray_nul_bytes_in_a_text_log_do_not_make_it_binary() {
    let mut log = b"step 1\n".repeat(200);
    log.push(0);
    log.extend_from_slice(UNIQUE_LINE);
    let (code, report, _) = analyze_json(&[("ci.log", &log)]);
    assert_eq!(code, 1);
    assert_eq!(report["findings"][0]["occurrences"][0]["line"], 201);
}

#[test]
fn line_numbers_survive_chunk_boundaries_and_crlf() {
    // Enough filler to cross several 1 MiB chunks; failures land right at and after boundaries.
    let filler = b"INFO request served in 3ms\r\n";
    let mut log = Vec::new();
    let mut expected_lines = Vec::new();
    let mut line = 0u64;
    while log.len() < 3 * (1 << 20) + 100 {
        log.extend_from_slice(filler);
        line += 1;
        if line.is_multiple_of(40_000) {
            log.extend_from_slice(b"ERROR: deadlock detected (SQLSTATE 40P01)\r\n");
            line += 1;
            expected_lines.push(line);
        }
    }
    let (code, report, _) = analyze_json(&[("big.log", &log)]);
    assert_eq!(code, 1);
    let deadlock = &report["findings"][0];
    assert_eq!(deadlock["class"], "deadlock");
    assert_eq!(
        deadlock["count"].as_u64(),
        Some(expected_lines.len() as u64)
    );
    let lines: Vec<u64> = deadlock["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, expected_lines[..lines.len()].to_vec());
    assert_eq!(report["inputs"][0]["lines"].as_u64(), Some(line));
}

#[test]
fn a_line_longer_than_the_buffer_is_split_with_a_warning() {
    let mut log = vec![b'x'; 3 << 20];
    log.extend_from_slice(b" ERROR: deadlock detected\nnext line\n");
    let (code, report, stderr) = analyze_json(&[("minified.log", &log)]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("line(s) longer than 1048576 bytes were scanned in pieces"),
        "{stderr}"
    );
    assert_eq!(report["findings"][0]["occurrences"][0]["line"], 1);
    assert_eq!(report["inputs"][0]["lines"], 2);
}

#[test]
fn malformed_junit_is_a_warning_not_a_panic() {
    let xml = b"<?xml version=\"1.0\"?>\n<testsuite name=\"s\">\n<testcase name=\"t\" classname=\"C\">\n<failure message=\"x\">ERROR: deadlock detected\n</error>\n</testsuite>\n";
    let (code, report, stderr) = analyze_json(&[("bad.xml", xml)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("JUnit XML is malformed or truncated at line"),
        "{stderr}"
    );
    assert_eq!(report["findings"][0]["occurrences"][0]["test"], "C.t");
    assert_eq!(report["findings"][0]["occurrences"][0]["line"], 4);
}

#[test]
fn json_report_has_the_documented_shape() {
    let (code, report, _) = analyze_corpus("pytest_sqlalchemy_psycopg2.log");
    assert_eq!(code, 1);
    let keys = |value: &serde_json::Value| -> Vec<String> {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&report),
        [
            "attribution",
            "consequences",
            "exit_code",
            "findings",
            "inputs",
            "schema"
        ]
    );
    // v1.1 only added fields: every v1 field is still there with its meaning.
    assert_eq!(report["schema"], "dbsandbox.analyze/v1.1");
    assert_eq!(
        keys(&report["attribution"]),
        ["attributed_to_tests", "database_errors", "note"]
    );
    assert_eq!(report["attribution"]["database_errors"], 2);
    assert_eq!(report["attribution"]["attributed_to_tests"], 2);
    assert_eq!(
        keys(&report["inputs"][0]),
        [
            "attributed_to_tests",
            "bytes",
            "database_errors",
            "error",
            "format",
            "lines",
            "name",
            "warnings"
        ]
    );
    assert_eq!(report["inputs"][0]["lines"], 80);
    assert_eq!(report["inputs"][0]["format"], "text");
    let finding = &report["findings"][0];
    assert_eq!(
        keys(finding),
        [
            "class",
            "codes",
            "consequences",
            "constraints",
            "count",
            "diagnosis",
            "explain",
            "fix",
            "integration",
            "keys",
            "kind",
            "matched_lines",
            "notes",
            "occurrences",
            "occurrences_omitted",
            "rank",
            "runner",
            "sqlstates",
            "tables",
            "tests",
            "tests_omitted",
            "title",
            "validate"
        ]
    );
    assert_eq!(finding["runner"], "pytest");
    assert_eq!(finding["integration"]["name"], "pytest-dbsandbox");
    assert_eq!(finding["sqlstates"][0]["condition"], "unique_violation");
    assert_eq!(
        finding["sqlstates"][0]["class_title"],
        "Integrity Constraint Violation"
    );
    assert_eq!(finding["rank"], 1);
    assert_eq!(finding["kind"], "primary");
    assert_eq!(finding["keys"][0], "(email)=(alice@example.com)");
    assert_eq!(finding["fix"][0]["ecosystem"], "dbsandbox");
    assert_eq!(
        keys(&finding["occurrences"][0]),
        [
            "code",
            "column",
            "condition",
            "constraint",
            "database",
            "excerpt",
            "file",
            "key",
            "line",
            "referenced_table",
            "sqlstate_class",
            "sqlstate_class_title",
            "stack",
            "table",
            "test"
        ]
    );
    let consequence = &report["consequences"][0];
    assert_eq!(
        keys(consequence),
        [
            "class",
            "count",
            "diagnosis",
            "explain",
            "explained",
            "occurrences",
            "occurrences_omitted",
            "title"
        ]
    );
    assert_eq!(
        keys(&consequence["occurrences"][0]["caused_by"]),
        ["class", "excerpt", "file", "line", "test"]
    );
}

#[test]
fn max_examples_bounds_occurrences_and_counts_the_rest() {
    let log = UNIQUE_LINE
        .iter()
        .chain(b"filler\n".repeat(20).iter())
        .copied()
        .collect::<Vec<u8>>()
        .repeat(7);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = analyze_bytes(
        &[("x.log", &log)],
        OutputFormat::Json,
        2,
        &mut stdout,
        &mut stderr,
    );
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(report["findings"][0]["count"], 7);
    assert_eq!(
        report["findings"][0]["occurrences"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(report["findings"][0]["occurrences_omitted"], 5);
    assert_eq!(report["findings"][0]["occurrences"][1]["line"], 22);
}

#[test]
fn exit_codes_over_files_missing_file_and_human_output() {
    let args = |files: Vec<PathBuf>| AnalyzeArgs {
        files,
        max_examples: 3,
        ..AnalyzeArgs::default()
    };
    let run = |args: &AnalyzeArgs| {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_analyze(args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let (code, out, err) = run(&args(vec![corpus_path("clean_near_misses.log")]));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, "No database failure found in 1 input (31 lines).\n");

    let (code, out, _) = run(&args(vec![
        corpus_path("go_pgx_libpq.log"),
        corpus_path("clean_migration.log"),
    ]));
    assert_eq!(code, 1);
    assert!(
        out.starts_with("5 database failure classes in 2 inputs (39 lines):\n"),
        "{out}"
    );
    assert!(
        out.contains("1. unique-violation \u{2014} Leaked or duplicate rows"),
        "{out}"
    );
    assert!(
        out.contains("go_pgx_libpq.log:2  test TestCreateUser  [sqlstate:23505]"),
        "{out}"
    );
    assert!(
        out.contains("Full playbook: dbsandbox explain unique-violation"),
        "{out}"
    );
    // The dbsandbox remedy first, then the one for the ecosystem the log comes from (Go).
    assert!(
        out.contains("   Fix (dbsandbox): Give every test its own sandbox"),
        "{out}"
    );
    // The integration line for Go, and why `dbsandbox run` alone is not it.
    assert!(
        out.contains(
            "   The one line (go, in-band reset): Connect each test package to its own key"
        ),
        "{out}"
    );
    assert!(
        out.contains("shared `default` key") || out.contains("the `default` key"),
        "{out}"
    );
    assert!(out.contains("   Fix (go): Use go-txdb"), "{out}");
    assert!(!out.contains("Fix (python)"), "{out}");

    let missing = PathBuf::from("/nonexistent/build.log");
    let (code, _, err) = run(&args(vec![corpus_path("go_pgx_libpq.log"), missing]));
    assert_eq!(code, 2, "bad input wins over findings");
    assert!(
        err.starts_with("dbsandbox analyze: /nonexistent/build.log: cannot read input: "),
        "{err}"
    );
}

#[test]
fn invalid_user_playbook_is_bad_input_and_valid_one_is_merged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "id = \"x\"\ntitle = \"t\"\ndiagnosis = \"d\"\nvalidate = \"v\"\ntriggers = [\"boom\"]\n[[pattern]]\nregex = '''(unclosed'''\n",
    )
    .unwrap();
    let args = AnalyzeArgs {
        files: vec![corpus_path("clean_near_misses.log")],
        playbooks: Some(dir.path().to_path_buf()),
        max_examples: 3,
        ..AnalyzeArgs::default()
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    assert_eq!(run_analyze(&args, &mut out, &mut err), 2);
    assert!(
        String::from_utf8_lossy(&err).contains("playbook x: pattern \"(unclosed\""),
        "{}",
        String::from_utf8_lossy(&err)
    );

    std::fs::write(
        dir.path().join("bad.toml"),
        "id = \"gpu-offline\"\ntitle = \"GPU runner offline\"\ndiagnosis = \"d\"\nvalidate = \"v\"\ntriggers = [\"GPU runner\"]\n[[pattern]]\nregex = '''GPU runner is offline'''\nexamples = [\"ERROR: tests were skipped because the GPU runner is offline\"]\n",
    )
    .unwrap();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let json = AnalyzeArgs {
        format: OutputFormat::Json,
        ..args
    };
    assert_eq!(
        run_analyze(&json, &mut out, &mut err),
        1,
        "{}",
        String::from_utf8_lossy(&err)
    );
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(report["findings"][0]["class"], "gpu-offline");
    assert_eq!(report["findings"][0]["occurrences"][0]["line"], 25);
}

#[test]
fn user_playbook_example_without_trigger_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "id = \"unique-violation\"\ntitle = \"t\"\ndiagnosis = \"d\"\nvalidate = \"v\"\ntriggers = [\"nope\"]\n[[pattern]]\nregex = '''zzz'''\nexamples = [\"zzz\"]\n",
    )
    .unwrap();
    let args = AnalyzeArgs {
        playbooks: Some(dir.path().to_path_buf()),
        max_examples: 3,
        ..AnalyzeArgs::default()
    };
    let mut err = Vec::new();
    assert_eq!(run_analyze(&args, &mut Vec::new(), &mut err), 2);
    assert!(
        String::from_utf8_lossy(&err).contains("contains none of the triggers"),
        "{}",
        String::from_utf8_lossy(&err)
    );
}

#[test]
fn explain_prints_a_playbook_by_id_or_code_and_lists_all() {
    let run = |args: ExplainArgs| {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = run_explain(&args, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    };
    let (code, out, _) = run(ExplainArgs {
        list: true,
        ..ExplainArgs::default()
    });
    assert_eq!(code, 0);
    let ids: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "unique-violation",
            "foreign-key-violation",
            "deadlock",
            "serialization-failure",
            "lock-timeout",
            "connection-exhaustion",
            "schema-drift",
            "unmigrated-database",
            "database-in-use",
            "pending-trigger-events",
            "statement-timeout",
            "aborted-transaction",
            "leaked-rows-assertion",
            "unclassified-database-error",
        ]
    );
    let (code, out, _) = run(ExplainArgs {
        id: Some("40P01".into()),
        ..ExplainArgs::default()
    });
    assert_eq!(code, 0);
    // An SQLSTATE is introduced by what PostgreSQL's table says of it, then its class's playbook.
    assert!(out.starts_with("SQLSTATE 40P01 deadlock_detected \u{2014} class 40 \u{201c}Transaction Rollback\u{201d}\n"), "{out}");
    assert!(out.contains("\ndeadlock \u{2014} Deadlock between concurrent transactions\nCodes: sqlstate:40P01, mysql:1213\n"), "{out}");
    assert!(out.contains("\nFix\n  dbsandbox:\n"), "{out}");
    assert!(out.contains("\nValidate the fix\n"), "{out}");
    let (code, out, _) = run(ExplainArgs {
        id: Some("mysql:1062".into()),
        format: OutputFormat::Json,
        ..ExplainArgs::default()
    });
    assert_eq!(code, 0);
    let playbook: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(playbook["id"], "unique-violation");
    let (code, _, err) = run(ExplainArgs {
        id: Some("nope".into()),
        ..ExplainArgs::default()
    });
    assert_eq!(code, 2);
    assert_eq!(
        err,
        "dbsandbox explain: no failure class \"nope\"; `dbsandbox explain --list` shows them all\n"
    );
}

#[test]
fn corpus_files_analysed_together_keep_their_own_locations() {
    let a = corpus("go_pgx_libpq.log");
    let b = corpus("mysql_mixed.log");
    let (code, report, _) = analyze_json(&[("a.log", &a), ("b.log", &b)]);
    assert_eq!(code, 1);
    let unique = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["class"] == "unique-violation")
        .unwrap();
    assert_eq!(unique["count"], 2);
    assert_eq!(unique["occurrences"][0]["file"], "a.log");
    assert_eq!(unique["occurrences"][1]["file"], "b.log");
    assert_eq!(unique["occurrences"][1]["line"], 2);
    assert_eq!(
        unique["codes"],
        serde_json::json!(["sqlstate:23505", "mysql:1062"])
    );
}

/// Deterministic xorshift; no dependency, reproducible failures.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn pseudo_random_and_mutated_inputs_never_panic() {
    let seeds: Vec<Vec<u8>> = [
        "pytest_sqlalchemy_psycopg2.log",
        "junit_surefire.xml",
        "junit_pytest.xml",
        "postgres_server_de.log",
        "pytest_ansi_color.log",
        "jest_typeorm_sequelize_knex.log",
    ]
    .iter()
    .map(|name| corpus(name))
    .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let interesting: &[&[u8]] = &[
        b"\x1b[",
        b"<",
        b"&#",
        b"\xe2\x97",
        b"\n",
        b"\0",
        b"]]>",
        b"<testcase",
        b"\xff",
        b"Key (",
        b"\xc3",
    ];
    for round in 0..3000u32 {
        let mut input = if round.is_multiple_of(5) {
            // Pure noise of random length.
            (0..rng.next() % 2048).map(|_| rng.next() as u8).collect()
        } else {
            seeds[(rng.next() % seeds.len() as u64) as usize].clone()
        };
        for _ in 0..(rng.next() % 8) {
            if input.is_empty() {
                break;
            }
            let at = (rng.next() % input.len() as u64) as usize;
            match rng.next() % 4 {
                0 => input[at] = rng.next() as u8,
                1 => input.truncate(at),
                2 => {
                    let piece = interesting[(rng.next() % interesting.len() as u64) as usize];
                    input.splice(at..at, piece.iter().copied());
                }
                _ => {
                    let end = (at + (rng.next() % 64) as usize).min(input.len());
                    input.drain(at..end);
                }
            }
        }
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let code = analyze_bytes(
            &[("fuzz", &input)],
            OutputFormat::Json,
            3,
            &mut stdout,
            &mut stderr,
        );
        assert!((0..=2).contains(&code), "round {round}: exit {code}");
        serde_json::from_slice::<serde_json::Value>(&stdout)
            .unwrap_or_else(|e| panic!("round {round}: bad JSON {e}"));
    }
}

#[test]
fn one_test_failing_twice_far_apart_counts_twice_but_its_summary_does_not() {
    let mut log =
        b"=== RUN   TestLongRunning\n    a_test.go:10: ERROR: deadlock detected (SQLSTATE 40P01)\n"
            .to_vec();
    log.extend_from_slice(&b"    a_test.go:11: retrying\n".repeat(300));
    log.extend_from_slice(b"    a_test.go:12: ERROR: deadlock detected (SQLSTATE 40P01)\n--- FAIL: TestLongRunning (9.00s)\n");
    let (_, report, _) = analyze_json(&[("go.log", &log)]);
    assert_eq!(report["findings"][0]["count"], 2);
    assert_eq!(report["findings"][0]["occurrences"][1]["line"], 303);

    let mut pytest =
        b"___ test_slow ___\nE   psycopg2.errors.DeadlockDetected: deadlock detected\n".to_vec();
    pytest.extend_from_slice(&b"captured log line\n".repeat(300));
    pytest.extend_from_slice(b"=== short test summary info ===\nFAILED tests/test_a.py::test_slow - psycopg2.errors.DeadlockDetected: deadlock detected\n");
    let (_, report, _) = analyze_json(&[("py.log", &pytest)]);
    assert_eq!(report["findings"][0]["count"], 1);
    assert_eq!(report["findings"][0]["matched_lines"], 2);
    assert_eq!(
        report["findings"][0]["tests"],
        serde_json::json!(["tests/test_a.py::test_slow"])
    );
}

#[test]
fn coloured_rspec_failure_keeps_its_test_name() {
    let log = b"Failures:\n\n\x1b[31m  1) Order belongs to a user\x1b[0m\n     \x1b[31mFailure/Error:\x1b[0m \x1b[31mOrder.create!(user_id: 1)\x1b[0m\n\n     \x1b[31mActiveRecord::InvalidForeignKey:\x1b[0m\n       \x1b[31mPG::ForeignKeyViolation: ERROR:  insert or update on table \"orders\" violates foreign key constraint \"fk_rails_1\"\x1b[0m\n";
    let (code, report, _) = analyze_json(&[("rspec.log", log)]);
    assert_eq!(code, 1);
    let occurrence = &report["findings"][0]["occurrences"][0];
    assert_eq!(occurrence["test"], "Order belongs to a user");
    assert_eq!(occurrence["line"], 6);
    assert_eq!(occurrence["constraint"], "fk_rails_1");
}

#[test]
fn human_report_says_when_a_cascade_has_no_visible_cause() {
    let args = AnalyzeArgs {
        files: vec![corpus_path("go_testify_messages.log")],
        max_examples: 3,
        ..AnalyzeArgs::default()
    };
    let mut out = Vec::new();
    assert_eq!(run_analyze(&args, &mut out, &mut Vec::new()), 1);
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("(1 occurrence, 0 traced to an error above)"),
        "{out}"
    );
    assert!(
        out.contains("       no database error before it in this input: the cause was not logged, or the code caught it\n"),
        "{out}"
    );
}
