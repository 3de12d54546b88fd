//! The built-in, catalogue-independent rules of the line matcher: the literal triggers where codes,
//! test names and DETAIL lines are printed, the test-name rules of each runner, the DETAIL rules
//! and the migration-evidence rules.

use regex::bytes::Regex;

/// Literals that are not tied to one class: where codes, test names and DETAIL lines are
/// printed. Kept short and distinctive because every one of them is searched for in every byte.
pub(crate) const SHARED_TRIGGERS: &[&str] = &[
    // SQLSTATE and vendor codes, however the driver labels them (`SqlState` is in `qlState`).
    "QLSTATE",
    "QLState",
    "qlState",
    "qlstate",
    "QL state",
    // Error objects that print the code alone: `code: '23505'`, `code: "23505"`, `"code":"P2002"`.
    "code: ",
    "\"code\":",
    // Server-side error lines (roots of aborted-transaction cascades), in several locales.
    "ERROR:",
    "FEHLER:",
    "ERREUR",
    "PSQLException",
    "PG::",
    "psycopg",
    "asyncpg",
    // Evidence of which tables the migrations create, and of Django's per-worker clones.
    "Applying ",
    "CREATE TABLE",
    // DETAIL lines with the offending key, and the statement or fields printed with an error.
    "Key (",
    "Schl\u{fc}ssel ",
    "cl\u{e9} \u{ab} (",
    "constraint: '",
    "table: ",
    ": INSERT INTO",
    "[SQL: ",
    "[insert into",
    "[INSERT INTO",
    "constraint [",
    "in relation",
];

/// Literals of test-name headers (`=== RUN`, pytest `___ t ___`, Jest `●`, ...). They are
/// frequent in verbose logs, so a line whose only triggers are these runs only the test-name
/// rules, never the class patterns.
pub(crate) const HEADER_TRIGGERS: &[&str] = &[
    "___ ",
    "FAIL",
    "ERROR ",
    "short test summary",
    "=== ",
    " stdout ----",
    "\u{25cf} ",
    "Failure/Error",
    "<<< ",
    "Results:",
    " \u{bb} ",
];

pub(crate) enum TestRule {
    Begin(Regex),
    ThisLine(Regex),
    End(Regex),
    /// RSpec: the test name is on a `  1) Name` line up to a few lines before `Failure/Error:`.
    BeginFromLinesBefore {
        trigger: Regex,
        name: Regex,
    },
}

pub(crate) fn compile(source: &str) -> Regex {
    // Only used for the fixed expressions below, which the test suite compiles; a typo there is a
    // programming error caught by every test, not an input-dependent failure.
    Regex::new(source).unwrap_or_else(|e| panic!("built-in regex {source:?}: {e}"))
}

/// Test-name rules, in the order they are tried, with the runner each belongs to.
pub(crate) fn test_rules() -> (Vec<TestRule>, Vec<&'static str>) {
    let rules = vec![
        TestRule::End(compile(
            r"^=+ (?:short test summary info|warnings summary|FAILURES|ERRORS) =+\s*$",
        )),
        // Maven Surefire's summary: `[INFO] Results:` ends the per-test sections, and
        // each summary line names its test: `[ERROR]   UserTest.saves:38 » ...`.
        TestRule::End(compile(r"^\[INFO\] Results:\s*$")),
        TestRule::ThisLine(compile(
            "^\\[(?:ERROR|WARNING)\\]\\s+(?P<test>[\\w$]+\\.[\\w$]+)(?::\\d+)? \u{bb} ",
        )),
        TestRule::Begin(compile(r"^_{3,} (?P<test>.+?) _{3,}\s*$")),
        TestRule::ThisLine(compile(r"^(?:FAILED|ERROR) (?P<test>\S+::\S+)(?: - .*)?$")),
        TestRule::Begin(compile(r"^\s*--- FAIL: (?P<test>\S+)")),
        TestRule::Begin(compile(r"^=== (?:RUN|CONT)\s+(?P<test>\S+)")),
        TestRule::Begin(compile(r"^---- (?P<test>\S+) stdout ----")),
        TestRule::Begin(compile("^\\s*\u{25cf} (?P<test>.+?)\\s*$")),
        TestRule::Begin(compile(
            r"^(?:\[ERROR\] )?(?:(?P<method>\w+)\((?P<class>[\w.$]+)\)|(?P<test>[\w.$]+))\s+(?:--? )?Time elapsed:.*<<< (?:ERROR|FAILURE)!",
        )),
        TestRule::Begin(compile(
            r"^(?:ERROR|FAIL): (?P<method>\w+) \((?P<class>[\w.]+)\)",
        )),
        TestRule::Begin(compile(r"^(?P<class>[\w.$]+) > (?P<method>.+?) FAILED\s*$")),
        TestRule::BeginFromLinesBefore {
            trigger: compile(r"^\s*Failure/Error:"),
            name: compile(r"^\s*\d+\) (?P<test>\S.*?)\s*$"),
        },
        // Vitest: ` FAIL  tests/orders.test.ts > orders > lists the seeded orders`.
        TestRule::Begin(compile(
            r"^\s*FAIL  (?:\|\S+\| )?(?P<test>\S+\.(?:test|spec)\.[cm]?[jt]sx? > .+?)\s*$",
        )),
    ];
    let runners = vec![
        "pytest", "surefire", "surefire", "pytest", "pytest", "go", "go", "cargo", "jest",
        "surefire", "unittest", "gradle", "rspec", "vitest",
    ];
    (rules, runners)
}

/// DETAIL-style rules: facts that belong to the failure printed just before (or on) the line.
pub(crate) fn detail_rules() -> Vec<Regex> {
    vec![
        compile(
            r#"Key \((?P<columns>.*?)\)=\((?P<value>.*)\) (?:already exists|is not present in table "(?P<ref_table>[^"]+)"|is still referenced from table "(?P<ref_table2>[^"]+)")"#,
        ),
        compile(
            "Schl\u{fc}ssel \u{bb}?\\((?P<columns>.*?)\\)=\\((?P<value>.*)\\)\u{ab}? (?:existiert bereits|ist nicht in Tabelle \u{bb}(?P<ref_table>[^\u{ab}]+)\u{ab} vorhanden|wird noch von Tabelle \u{bb}(?P<ref_table2>[^\u{ab}]+)\u{ab} verwiesen)",
        ),
        compile(
            "La cl\u{e9} \u{ab} \\((?P<columns>.*?)\\)=\\((?P<value>.*)\\) \u{bb} (?:existe d\u{e9}j\u{e0}|n'est pas pr\u{e9}sente dans la table \u{ab} (?P<ref_table>[^\u{bb}]+) \u{bb}|est toujours r\u{e9}f\u{e9}renc\u{e9}e \u{e0} partir de la table \u{ab} (?P<ref_table2>[^\u{bb}]+) \u{bb})",
        ),
        // node-postgres error objects print one field per line.
        compile(r"^\s*constraint: '(?P<constraint>[^']+)'"),
        compile(r"^\s*table: '(?P<table>[^']+)'"),
        // sqlx / tokio-postgres print the error struct with Debug: `table: Some("users")`.
        compile(r#"\btable: Some\("(?P<table>[^"]+)"\)"#),
        // The statement an ORM prints under the error: SQLAlchemy `[SQL: INSERT INTO users`,
        // Rails `: INSERT INTO "users"`, Hibernate `[insert into users`.
        compile(r#"^\s*(?:E\s+)?(?::|\[SQL:|SQL \[|\[)\s*(?i:insert into|update|delete from)\s+[`"]?(?P<table>[\w.]+)"#),
        // Spring: `could not execute statement; SQL [n/a]; constraint [users_email_key]`.
        compile(r"constraint \[(?P<constraint>[^\]\s]+)\]"),
        // Deadlock and lock waits: `CONTEXT: while updating tuple (0,1) in relation "accounts"`.
        compile(r#"while (?:updating|locking|inserting|deleting) (?:index )?tuple \([^)]*\) in relation \\?"(?P<table>[^"\\]+)\\?""#),
    ]
}

/// Rules that show which tables the migrations create (see [`crate::matcher::MigrationFact`]).
pub(crate) fn migration_rules() -> Vec<Regex> {
    vec![
        compile(r"^\s*Applying (?P<app>\w+)\.\d{4}_\w+"),
        compile(r#"CREATE TABLE (?:IF NOT EXISTS )?(?:"?\w+"?\.)?"?(?P<table>\w+)"?\s*\("#),
    ]
}
