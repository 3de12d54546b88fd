//! Statement classification for rollback sandboxes: every `Kind`, the fast path, statement
//! ranges in multi-statement strings, and the rewriting of SQL-level prepared statement names.

// Included by path so these tests build without the crate's lib.rs declaring the module.
#[path = "../src/classify.rs"]
mod classify;

use classify::{
    classify, classify_one, classify_with_parser, database_command, needs_parser, quote_ident,
    rename_prepared, DiscardWhat, Kind, Statement,
};

/// The kinds of every statement of `sql`.
fn kinds(sql: &str) -> Vec<Kind> {
    classify(sql)
        .into_iter()
        .map(|statement| statement.kind)
        .collect()
}

/// The text of every statement of `sql`, cut by its range.
fn texts(sql: &str) -> Vec<&str> {
    classify(sql)
        .into_iter()
        .map(|statement| &sql[statement.range])
        .collect()
}

fn assert_kind(sql: &str, expected: Kind) {
    assert_eq!(kinds(sql), vec![expected.clone()], "classify({sql:?})");
    assert_eq!(classify_one(sql), expected, "classify_one({sql:?})");
}

fn set(name: &str, value: Option<&str>) -> Kind {
    Kind::SetSession {
        name: name.to_string(),
        value: value.map(str::to_string),
    }
}

#[test]
fn begin_in_every_spelling() {
    for sql in [
        "BEGIN",
        "begin;",
        "  Begin  ;  ",
        "BEGIN WORK",
        "BEGIN TRANSACTION",
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
        "START TRANSACTION",
        "/* leading */ -- line\n BEGIN /* trailing */ ; -- after",
    ] {
        assert_kind(sql, Kind::Begin { read_only: None });
    }
    for sql in [
        "begin transaction isolation level repeatable read, read only, deferrable",
        "start transaction read only",
    ] {
        assert_kind(
            sql,
            Kind::Begin {
                read_only: Some(true),
            },
        );
    }
}

#[test]
fn commit_and_rollback_with_and_without_chain() {
    for sql in [
        "COMMIT",
        "commit;",
        "END",
        "end transaction",
        "COMMIT WORK",
        "COMMIT AND NO CHAIN",
    ] {
        assert_kind(sql, Kind::Commit { chain: false });
    }
    for sql in ["commit and chain", "END AND CHAIN"] {
        assert_kind(sql, Kind::Commit { chain: true });
    }
    for sql in [
        "ROLLBACK",
        "rollback work",
        "ABORT",
        "abort transaction",
        "ROLLBACK AND NO CHAIN",
    ] {
        assert_kind(sql, Kind::Rollback { chain: false });
    }
    for sql in ["ROLLBACK AND CHAIN", "abort and chain"] {
        assert_kind(sql, Kind::Rollback { chain: true });
    }
}

#[test]
fn savepoint_names_are_folded_like_identifiers() {
    assert_kind("SAVEPOINT sp1", Kind::Savepoint("sp1".into()));
    assert_kind("savepoint MixedCase", Kind::Savepoint("mixedcase".into()));
    assert_kind(
        "SAVEPOINT \"Quoted \"\"Name\"\"\"",
        Kind::Savepoint("Quoted \"Name\"".into()),
    );
    assert_kind("release x", Kind::Release("x".into()));
    assert_kind("RELEASE SAVEPOINT X", Kind::Release("x".into()));
    assert_kind(
        "rollback to savepoint \"My Sp\"",
        Kind::RollbackTo("My Sp".into()),
    );
    assert_kind("ROLLBACK TO a", Kind::RollbackTo("a".into()));
    assert_kind("ROLLBACK WORK TO SAVEPOINT b", Kind::RollbackTo("b".into()));
    assert_kind("rollback transaction to c", Kind::RollbackTo("c".into()));
}

#[test]
fn two_phase_commit_statements() {
    assert_kind("PREPARE TRANSACTION 'x'", Kind::PrepareTransaction);
    assert_kind("commit prepared 'x'", Kind::CommitPrepared);
    assert_kind("ROLLBACK PREPARED 'x'", Kind::RollbackPrepared);
}

#[test]
fn begin_inside_bodies_blocks_and_literals_is_ordinary() {
    for sql in [
        "DO $$ BEGIN PERFORM 1; END $$",
        "do $body$ begin begin raise notice 'x'; exception when others then null; end; commit; end $body$ language plpgsql",
        "DO $outer$ BEGIN EXECUTE $inner$ DO $$ BEGIN NULL; END $$ $inner$; END $outer$",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
        "create or replace function g() returns void as 'begin; commit;' language sql",
        "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); END",
        "SELECT 'BEGIN; COMMIT'",
        "SELECT 'a;b' AS \"BEGIN\"",
        "select $$;begin;$$",
    ] {
        assert_kind(sql, Kind::Ordinary);
    }
}

#[test]
fn not_in_transaction_commands_use_postgresql_names() {
    let cases = [
        ("VACUUM", "VACUUM"),
        ("vacuum full t", "VACUUM"),
        ("VACUUM (ANALYZE, VERBOSE) t", "VACUUM"),
        ("vacuum analyze", "VACUUM"),
        (
            "ALTER DATABASE d SET TABLESPACE ts",
            "ALTER DATABASE SET TABLESPACE",
        ),
        (
            "alter database d with tablespace ts",
            "ALTER DATABASE SET TABLESPACE",
        ),
        (
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "CREATE INDEX CONCURRENTLY",
        ),
        (
            "create unique index concurrently if not exists i on t (a)",
            "CREATE INDEX CONCURRENTLY",
        ),
        ("DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY"),
        ("REINDEX INDEX CONCURRENTLY i", "REINDEX CONCURRENTLY"),
        ("reindex table concurrently t", "REINDEX CONCURRENTLY"),
        ("REINDEX (CONCURRENTLY) TABLE t", "REINDEX CONCURRENTLY"),
        (
            "REINDEX (CONCURRENTLY true) DATABASE d",
            "REINDEX CONCURRENTLY",
        ),
        ("REINDEX SCHEMA public", "REINDEX SCHEMA"),
        ("REINDEX DATABASE d", "REINDEX DATABASE"),
        ("reindex system d", "REINDEX SYSTEM"),
        ("ALTER SYSTEM SET work_mem = '4MB'", "ALTER SYSTEM"),
        ("alter system reset all", "ALTER SYSTEM"),
        (
            "CREATE TABLESPACE ts LOCATION '/tmp/ts'",
            "CREATE TABLESPACE",
        ),
        ("DROP TABLESPACE IF EXISTS ts", "DROP TABLESPACE"),
        (
            "CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p",
            "CREATE SUBSCRIPTION ... WITH (create_slot = true)",
        ),
        (
            "CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p WITH (create_slot)",
            "CREATE SUBSCRIPTION ... WITH (create_slot = true)",
        ),
        (
            "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
            "ALTER SUBSCRIPTION ... REFRESH",
        ),
        (
            "ALTER SUBSCRIPTION s SET PUBLICATION p",
            "ALTER SUBSCRIPTION with refresh",
        ),
        (
            "ALTER SUBSCRIPTION s ADD PUBLICATION p WITH (refresh = on)",
            "ALTER SUBSCRIPTION with refresh",
        ),
        (
            "ALTER SUBSCRIPTION s DROP PUBLICATION p",
            "ALTER SUBSCRIPTION with refresh",
        ),
        ("DROP SUBSCRIPTION s", "DROP SUBSCRIPTION"),
        ("CLUSTER", "CLUSTER"),
        ("cluster verbose", "CLUSTER"),
        (
            "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY",
            "ALTER TABLE ... DETACH CONCURRENTLY",
        ),
    ];
    for (sql, command) in cases {
        assert_kind(sql, Kind::NotInTransaction(command));
    }
}

#[test]
fn create_and_drop_database_are_database_commands() {
    for (sql, command) in [
        ("CREATE DATABASE x", "CREATE DATABASE"),
        ("create database x template template0", "CREATE DATABASE"),
        ("DROP DATABASE x", "DROP DATABASE"),
        ("drop database if exists x with (force)", "DROP DATABASE"),
    ] {
        assert_kind(sql, Kind::DatabaseCommand(command));
        assert_eq!(database_command(sql), Some(command), "{sql}");
    }
    assert_eq!(
        database_command("SELECT 1; CREATE DATABASE \"test_x_1\" WITH TEMPLATE \"test_x\""),
        Some("CREATE DATABASE")
    );
    for sql in [
        "SELECT 'create database x'",
        "CREATE TABLE database (id int)",
        "ALTER DATABASE d SET work_mem = '4MB'",
        "select datname from pg_database",
        "CREATE DATABASE", // does not parse: the server says so
    ] {
        assert_eq!(database_command(sql), None, "{sql}");
    }
}

#[test]
fn look_alikes_that_can_run_in_a_transaction_are_ordinary() {
    for sql in [
        "ANALYZE",
        "analyze t",
        "CHECKPOINT",
        "CREATE INDEX i ON t (a)",
        "DROP INDEX i",
        "REINDEX TABLE t",
        "REINDEX INDEX i",
        "REINDEX (CONCURRENTLY false) TABLE t",
        "ALTER DATABASE d SET work_mem = '4MB'",
        "ALTER DATABASE d CONNECTION LIMIT 5",
        "ALTER TABLESPACE ts SET (seq_page_cost = 1)",
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p WITH (connect = false)",
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=x' PUBLICATION p WITH (create_slot = false)",
        "ALTER SUBSCRIPTION s SET PUBLICATION p WITH (refresh = false)",
        "ALTER SUBSCRIPTION s DISABLE",
        "CLUSTER t USING t_pkey",
        "ALTER TABLE p DETACH PARTITION p1",
        "ALTER TYPE e ADD VALUE 'b'",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY mv",
        "LOCK TABLE t",
        "DECLARE c CURSOR FOR SELECT 1",
    ] {
        assert_kind(sql, Kind::Ordinary);
    }
}

#[test]
fn listen_unlisten_notify() {
    assert_kind("LISTEN jobs", Kind::Listen("jobs".into()));
    assert_kind(
        "listen \"Mixed Channel\"",
        Kind::Listen("Mixed Channel".into()),
    );
    assert_kind("UNLISTEN jobs", Kind::Unlisten(Some("jobs".into())));
    assert_kind("unlisten *", Kind::Unlisten(None));
    assert_kind(
        "NOTIFY jobs",
        Kind::Notify {
            channel: "jobs".into(),
            payload: None,
        },
    );
    assert_kind(
        "notify Jobs, 'it''s; done'",
        Kind::Notify {
            channel: "jobs".into(),
            payload: Some("it's; done".into()),
        },
    );
    // `pg_notify()` is a function call, forwarded: the templates' pg_notify reports it to the
    // proxy (rollback/session/pg_notify.rs).
    assert_kind("SELECT pg_notify('jobs', 'x')", Kind::Ordinary);
}

#[test]
fn discard() {
    assert_kind("DISCARD ALL", Kind::Discard(DiscardWhat::All));
    assert_kind("discard plans", Kind::Discard(DiscardWhat::Plans));
    assert_kind("Discard Sequences", Kind::Discard(DiscardWhat::Sequences));
    assert_kind("DISCARD TEMP", Kind::Discard(DiscardWhat::Temp));
    assert_kind("discard temporary", Kind::Discard(DiscardWhat::Temp));
}

#[test]
fn session_set_and_reset() {
    assert_kind("SET x = 1", set("x", Some("1")));
    assert_kind(
        "set search_path to a, \"B\", public",
        set("search_path", Some("a, \"B\", public")),
    );
    assert_kind(
        "SET SESSION statement_timeout = '5s'",
        set("statement_timeout", Some("'5s'")),
    );
    assert_kind(
        "SET \"TimeZone\" TO 'UTC' -- utc",
        set("timezone", Some("'UTC'")),
    );
    assert_kind(
        "SET application_name = 'my app';",
        set("application_name", Some("'my app'")),
    );
    assert_kind("SET myapp.user_id = 42", set("myapp.user_id", Some("42")));
    assert_kind(
        "SET TIME ZONE 'Europe/Paris'",
        set("timezone", Some("'Europe/Paris'")),
    );
    assert_kind("SET NAMES 'UTF8'", set("client_encoding", Some("'UTF8'")));
    assert_kind("SET SCHEMA 'app'", set("search_path", Some("'app'")));
    assert_kind("SET ROLE alice", set("role", Some("alice")));
    assert_kind(
        "SET SESSION AUTHORIZATION bob",
        set("session_authorization", Some("bob")),
    );
    assert_kind("SET work_mem TO DEFAULT", set("work_mem", None));
    assert_kind("SET TIME ZONE LOCAL", set("timezone", None));
    assert_kind("RESET search_path", set("search_path", None));
    assert_kind("reset Role", set("role", None));
    assert_kind("RESET ALL", Kind::ResetAll);
}

#[test]
fn set_transaction_keeps_its_read_only_mode_and_answers_the_rest_itself() {
    assert_kind(
        "set transaction read only",
        Kind::SetTransactionReadOnly(true),
    );
    assert_kind(
        "SET TRANSACTION READ WRITE",
        Kind::SetTransactionReadOnly(false),
    );
    assert_kind(
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        Kind::SetTransaction { read_only: None },
    );
    assert_kind(
        "set transaction isolation level repeatable read, read only",
        Kind::SetTransaction {
            read_only: Some(true),
        },
    );
    assert_kind(
        "SET TRANSACTION NOT DEFERRABLE",
        Kind::SetTransaction { read_only: None },
    );
    assert_kind(
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE",
        Kind::Begin {
            read_only: Some(true),
        },
    );
    assert_kind(
        "start transaction read write",
        Kind::Begin {
            read_only: Some(false),
        },
    );
}

#[test]
fn transaction_scoped_set_is_set_local() {
    for sql in [
        "SET LOCAL work_mem = '1MB'",
        "set local search_path to a",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'",
    ] {
        assert_kind(sql, Kind::SetLocal);
    }
}

#[test]
fn sql_level_prepared_statements() {
    assert_kind("PREPARE s1 AS SELECT 1", Kind::Prepare("s1".into()));
    assert_kind(
        "prepare S2 (int, text) as select $1, $2",
        Kind::Prepare("s2".into()),
    );
    assert_kind(
        "PREPARE \"Q\" AS INSERT INTO t VALUES ($1)",
        Kind::Prepare("Q".into()),
    );
    assert_kind("EXECUTE s1", Kind::Execute("s1".into()));
    assert_kind("execute S2 (1, 'x')", Kind::Execute("s2".into()));
    assert_kind("DEALLOCATE s1", Kind::Deallocate(Some("s1".into())));
    assert_kind("deallocate prepare s1", Kind::Deallocate(Some("s1".into())));
    assert_kind("DEALLOCATE ALL", Kind::Deallocate(None));
    assert_kind("DEALLOCATE PREPARE ALL", Kind::Deallocate(None));
}

#[test]
fn sandbox_reset_in_any_spelling() {
    for sql in [
        "SELECT dbsandbox_reset()",
        "select dbsandbox_reset();",
        "SELECT  DBSANDBOX_RESET ( ) ;",
        "\n\tSeLeCt\n dbsandbox_reset()\n;\n",
        "/* fixture */ SELECT dbsandbox_reset() -- reset",
        "SELECT \"dbsandbox_reset\"()",
    ] {
        assert!(needs_parser(sql), "{sql:?} must reach the parser");
        assert_kind(sql, Kind::SandboxReset);
    }
}

#[test]
fn sandbox_reset_look_alikes_are_ordinary() {
    for sql in [
        "SELECT dbsandbox_reset() AS x",
        "SELECT dbsandbox_reset(1)",
        "SELECT dbsandbox_reset(), 1",
        "SELECT dbsandbox_reset() FROM t",
        "SELECT public.dbsandbox_reset()",
        "SELECT 'dbsandbox_reset()'",
        "SELECT \"DBSANDBOX_RESET\"()",
    ] {
        assert_kind(sql, Kind::Ordinary);
    }
}

#[test]
fn named_reset_points_take_one_string_literal() {
    assert_kind(
        "SELECT dbsandbox_snapshot('class set-up')",
        Kind::SandboxSnapshot("class set-up".into()),
    );
    assert_kind(
        "select DBSANDBOX_RESET('class set-up');",
        Kind::SandboxResetTo("class set-up".into()),
    );
    for sql in [
        "SELECT dbsandbox_snapshot()",
        "SELECT dbsandbox_snapshot('a', 'b')",
        "SELECT dbsandbox_snapshot(name) FROM points",
        "SELECT dbsandbox_reset($1)",
        "SELECT dbsandbox_snapshot('a') AS point",
    ] {
        assert_kind(sql, Kind::Ordinary);
    }
}

#[test]
fn multi_statement_strings_have_exact_ranges() {
    let sql = "BEGIN; INSERT INTO t VALUES (1); COMMIT;";
    assert_eq!(
        classify(sql),
        vec![
            Statement {
                kind: Kind::Begin { read_only: None },
                range: 0..5
            },
            Statement {
                kind: Kind::Ordinary,
                range: 7..31
            },
            Statement {
                kind: Kind::Commit { chain: false },
                range: 33..39
            },
        ]
    );
    assert_eq!(texts(sql), ["BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"]);

    let sql = "  /* c */ begin -- x\n ;  select 1 -- y";
    assert_eq!(
        classify(sql),
        vec![
            Statement {
                kind: Kind::Begin { read_only: None },
                range: 10..15
            },
            Statement {
                kind: Kind::Ordinary,
                range: 25..33
            },
        ]
    );

    let sql = "select 1; select 2";
    assert_eq!(kinds(sql), [Kind::Ordinary, Kind::Ordinary]);
    assert_eq!(texts(sql), ["select 1", "select 2"]);

    let sql = "SAVEPOINT a;SELECT 'x;y' /* ; */;RELEASE a;;; ROLLBACK TO \"A b\"; LISTEN c; SELECT dbsandbox_reset()";
    assert_eq!(
        kinds(sql),
        [
            Kind::Savepoint("a".into()),
            Kind::Ordinary,
            Kind::Release("a".into()),
            Kind::RollbackTo("A b".into()),
            Kind::Listen("c".into()),
            Kind::SandboxReset,
        ]
    );
    assert_eq!(
        texts(sql),
        [
            "SAVEPOINT a",
            "SELECT 'x;y'",
            "RELEASE a",
            "ROLLBACK TO \"A b\"",
            "LISTEN c",
            "SELECT dbsandbox_reset()"
        ]
    );

    // `;` inside a BEGIN ATOMIC body does not end the statement.
    let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; commit and chain";
    assert_eq!(kinds(sql), [Kind::Ordinary, Kind::Commit { chain: true }]);
    assert_eq!(
        texts(sql),
        [
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
            "commit and chain"
        ]
    );

    // Comments between tokens stay inside the range; byte offsets hold with non-ASCII text.
    let sql = "SELECT 'é' /* ü */ , 2 ; DO $x$ BEGIN END $x$ ; set x = 'ß'";
    assert_eq!(
        texts(sql),
        [
            "SELECT 'é' /* ü */ , 2",
            "DO $x$ BEGIN END $x$",
            "set x = 'ß'"
        ]
    );
    assert_eq!(kinds(sql)[2], set("x", Some("'ß'")));
}

#[test]
fn trailing_semicolon_and_comment() {
    for sql in [
        "SELECT 1; -- done",
        "SELECT 1 ; /* done */",
        "SELECT 1 -- done",
        "SELECT 1;\n\n",
    ] {
        let statements = classify(sql);
        assert_eq!(statements.len(), 1, "{sql:?}");
        assert_eq!(statements[0].kind, Kind::Ordinary);
        assert_eq!(&sql[statements[0].range.clone()], "SELECT 1", "{sql:?}");
    }
}

#[test]
fn a_syntax_error_is_one_ordinary_statement() {
    let sql = "BEGIN; SELEC 1; COMMIT";
    assert_eq!(
        classify(sql),
        vec![Statement {
            kind: Kind::Ordinary,
            range: 0..sql.len()
        }]
    );
    assert_eq!(classify_one("COMMIT garbage"), Kind::Ordinary);
    assert_eq!(kinds("/* unterminated comment"), [Kind::Ordinary]);
    assert_eq!(kinds("SELECT 'unterminated"), [Kind::Ordinary]);
    assert_eq!(kinds("select 1\0"), [Kind::Ordinary]);
}

#[test]
fn empty_strings_have_no_statement() {
    for sql in [
        "",
        "   ",
        ";",
        " ; ;",
        "-- only a comment",
        "/* a /* nested */ comment */\n-- and more\n",
    ] {
        assert_eq!(classify(sql), Vec::new(), "{sql:?}");
        assert_eq!(classify_one(sql), Kind::Ordinary, "{sql:?}");
    }
}

#[test]
fn classify_one_with_several_statements_is_ordinary() {
    assert_eq!(classify_one("BEGIN; SELECT 1"), Kind::Ordinary);
    assert_eq!(classify_one("BEGIN"), Kind::Begin { read_only: None });
}

#[test]
fn fast_path_skips_the_parser_for_single_ordinary_statements() {
    for sql in [
        "SELECT 1",
        "insert into t values (1)",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
        "  UPDATE t SET a = 1 WHERE id = 2 ;  \n",
        "delete from t",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "VALUES (1)",
        "TABLE t",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "COPY t FROM STDIN",
        "EXPLAIN SELECT 1",
        "SHOW search_path",
        "/* leading comment */ SELECT 1",
        "-- leading\nselect(1)",
        "select*from t",
        "SELECT 1 -- trailing comment",
        "SELECT 1 /* inner */ + 1 /* sqlcommenter='x' */",
        "SELECT 1; -- done",
        "SELECT ';', '--', '/*', 'it''s'",
        "SELECT \"a;b\" FROM \"t\"\"x\"",
        "SELECT * FROM t WHERE a = $1 AND b$c = $2",
        "SELECT E'no backslash'",
        "select 'é', 'ü' -- ß",
    ] {
        assert!(!needs_parser(sql), "{sql:?} should take the fast path");
        assert_eq!(kinds(sql), [Kind::Ordinary], "{sql:?}");
        // Same answer, range included, as the real parser gives.
        assert_eq!(classify(sql), classify_with_parser(sql), "{sql:?}");
    }
}

#[test]
fn everything_else_needs_the_parser() {
    for sql in [
        "select 1; select 2",
        "SELECT dbsandbox_reset()",
        "select * from dbsandbox_stats",
        "begin",
        "set x = 1",
        "SELECT 1; -- done\n SELECT 2",
        "SELECT 'a;b'; DELETE FROM t",
        "SELECT E'it\\'s'",
        "SELECT 'c:\\dir'",
        "SELECT $$;$$",
        "SELECT $tag$x$tag$",
        "SELECT 'unterminated",
        "SELECT \"unterminated",
        "SELECT 1 /* unterminated",
        "selectx",
        "select_1",
        "(SELECT 1)",
        "DO $$ BEGIN END $$",
        "",
        "-- nothing",
    ] {
        assert!(needs_parser(sql), "{sql:?} should need the parser");
    }
}

#[test]
fn fast_path_and_parser_agree_on_ranges() {
    for sql in [
        "SELECT 1",
        "  SELECT 1 ;  ",
        "/* a */ -- b\n INSERT INTO t VALUES (1);",
        "select abalance from pgbench_accounts where aid = 42",
        "SELECT 1 -- done",
        "SELECT 1 ; /* done */ -- really",
        "SELECT 'x;y' /* ; */ , \"q\"\"q\" -- c\n /* d */",
        "SELECT a$b, $1 /* x */ FROM t\t\n",
        "/* a */ select 'é' -- ü",
    ] {
        assert!(!needs_parser(sql), "{sql:?}");
        assert_eq!(classify(sql), classify_with_parser(sql), "{sql:?}");
    }
}

#[test]
fn rename_prepared_rewrites_only_the_name() {
    // A plain name keeps its spelling behind the prefix (removing the prefix gives the client's
    // text back); a quoted one stays quoted.
    let rename = |name: &str| format!("c7_{name}");
    assert_eq!(
        rename_prepared("PREPARE s1 (int) AS SELECT $1 /* s1 */", &rename).as_deref(),
        Some("PREPARE c7_s1 (int) AS SELECT $1 /* s1 */")
    );
    assert_eq!(
        rename_prepared("/* hi */ prepare S1 as select 's1'", &rename).as_deref(),
        Some("/* hi */ prepare c7_S1 as select 's1'")
    );
    assert_eq!(
        rename_prepared("EXECUTE \"My\"\"Stmt\"(1, 'a')", &rename).as_deref(),
        Some("EXECUTE \"c7_My\"\"Stmt\"(1, 'a')")
    );
    assert_eq!(
        rename_prepared("execute s1", &rename).as_deref(),
        Some("execute c7_s1")
    );
    assert_eq!(
        rename_prepared("DEALLOCATE s1", &rename).as_deref(),
        Some("DEALLOCATE c7_s1")
    );
    assert_eq!(
        rename_prepared("deallocate prepare s1;", &rename).as_deref(),
        Some("deallocate prepare c7_s1;")
    );
    // `prepare` is an unreserved keyword, so it can be a statement's name.
    assert_eq!(
        rename_prepared("DEALLOCATE prepare", &rename).as_deref(),
        Some("DEALLOCATE c7_prepare")
    );
    assert_eq!(rename_prepared("DEALLOCATE ALL", &rename), None);
    assert_eq!(rename_prepared("DEALLOCATE PREPARE ALL", &rename), None);
    assert_eq!(rename_prepared("PREPARE TRANSACTION 'x'", &rename), None);
    assert_eq!(rename_prepared("SELECT 1", &rename), None);
    assert_eq!(
        rename_prepared("PREPARE s1 AS SELECT 1; EXECUTE s1", &rename),
        None
    );
}

#[test]
fn quote_ident_always_quotes() {
    assert_eq!(quote_ident("s1"), "\"s1\"");
    assert_eq!(quote_ident("My \"x\""), "\"My \"\"x\"\"\"");
    assert_eq!(quote_ident(""), "\"\"");
}

/// Time per `classify` call on the fast path and through the parser:
/// `cargo test --release -p dbsandbox-proxy --test classify -- --ignored --nocapture`.
#[test]
#[ignore]
fn timings() {
    fn time(sql: &str) {
        let iterations = 200_000;
        for _ in 0..1_000 {
            std::hint::black_box(classify(std::hint::black_box(sql)));
        }
        let started = std::time::Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(classify(std::hint::black_box(sql)));
        }
        let per_call = started.elapsed() / iterations;
        println!("{per_call:>10.2?} per classify({sql:?})");
    }
    time("SELECT abalance FROM pgbench_accounts WHERE aid = 42");
    time("SELECT abalance FROM pgbench_accounts WHERE aid = 42 /* app=x */");
    time("BEGIN");
    time("COMMIT");
    time("SELECT dbsandbox_reset()");
    time("BEGIN; UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 42; COMMIT;");
}
