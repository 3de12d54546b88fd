//! What the report says beyond the playbook text, from what this log shows: which test runner and
//! ecosystem it comes from, the dbsandbox integration line that gives that runner per-test
//! isolation (`data/integrations.toml`), and notes that depend on the log (no DETAIL line was
//! printed, no test was named, the SQLSTATE class of an unclassified error).

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

const INTEGRATIONS_TOML: &str = include_str!("../data/integrations.toml");

/// One runner's integration line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    /// `pytest`, `unittest` (Django's runner), `jest`, `vitest`, `node`, `cargo`, `go`, `rspec`,
    /// `surefire`, `gradle`, or `any`.
    pub runner: String,
    /// The playbook fix ecosystem the runner belongs to (`python`, `node`, ...).
    pub ecosystem: String,
    /// The integration's name (`pytest-dbsandbox`, `@dbsandbox/node`, `in-band reset`).
    pub name: String,
    pub line: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Integrations {
    shared_key_warning: String,
    integration: Vec<Integration>,
}

fn integrations() -> &'static Integrations {
    static DATA: OnceLock<Integrations> = OnceLock::new();
    DATA.get_or_init(|| {
        // Compiled-in data checked by the test suite; a parse error is a packaging bug.
        toml::from_str(INTEGRATIONS_TOML).unwrap_or_else(|e| panic!("data/integrations.toml: {e}"))
    })
}

/// Why `dbsandbox run` alone is not the fix.
pub fn shared_key_warning() -> &'static str {
    &integrations().shared_key_warning
}

/// The integration for a runner, falling back to the runner-neutral in-band reset.
pub fn integration_for(runner: Option<&str>, ecosystem: Option<&str>) -> &'static Integration {
    let all = &integrations().integration;
    runner
        .and_then(|r| all.iter().find(|i| i.runner == r))
        .or_else(|| ecosystem.and_then(|e| all.iter().find(|i| i.ecosystem == e)))
        .or_else(|| all.iter().find(|i| i.runner == "any"))
        .unwrap_or(&all[0])
}

/// Every integration, for tests and `explain`.
pub fn all_integrations() -> &'static [Integration] {
    &integrations().integration
}

/// The playbook fix ecosystem of a runner.
pub fn ecosystem_of_runner(runner: &str) -> Option<&'static str> {
    integrations()
        .integration
        .iter()
        .find(|i| i.runner == runner)
        .map(|i| i.ecosystem.as_str())
}

/// How to see the key of a unique or foreign-key violation when the log printed no DETAIL line.
pub fn missing_detail_note(ecosystem: Option<&str>) -> String {
    let how = match ecosystem {
        Some("node") => "node-postgres and knex print only the message: log `err.detail` (and `err.constraint`, `err.table`) in the test or the app's error handler",
        Some("python") => "print `e.diag.message_detail` (psycopg) or let the traceback show the chained driver error",
        Some("go") => "print `pgErr.Detail` (pgx: `errors.As(err, &pgErr)` with `*pgconn.PgError`; lib/pq: `err.(*pq.Error).Detail`)",
        Some("rust") => "print the error with `{:?}` (sqlx `PgDatabaseError` and tokio-postgres `DbError` carry `detail`)",
        Some("java") => "log `((PSQLException) e).getServerErrorMessage().getDetail()`",
        Some("rails") => "ruby-pg prints DETAIL with the message; check the log level that cut it",
        _ => "log the driver error's detail field (`err.detail`, `e.diag.message_detail`, `pgErr.Detail`)",
    };
    format!(
        "This log has no DETAIL line, so the conflicting key is not known: {how}, or set `log_min_error_statement = error` on the server to see the statement. The constraint and table names above still say where to look."
    )
}

/// Which runner wrote a test name, from its shape, when no header line said so (JUnit XML).
pub fn runner_from_test_name(test: &str) -> Option<&'static str> {
    if test.contains(".py::") {
        Some("pytest")
    } else if test.contains('\u{203a}') {
        Some("jest")
    } else if test.contains(".test.ts > ") || test.contains(".test.js > ") {
        Some("vitest")
    } else if test.starts_with("Test") && !test.contains('.') && !test.contains(' ') {
        Some("go")
    } else if test.contains("::tests::") || test.starts_with("tests::") {
        Some("cargo")
    } else {
        None
    }
}
