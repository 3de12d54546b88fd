//! The analysis result as a serialisable report (`--format json`, schema in `SCHEMA.md`) and its
//! human rendering: classes ranked by how often they occurred, each with its first occurrences,
//! the details that point at the cause, the diagnosis and the fix.

use crate::analysis::{same_test, BoundedSet, Cause, Collector, Occurrence, Tally};
use crate::catalogue::{Fix, Kind, Playbook};
use crate::reader::ScanOutcome;
use serde::Serialize;
use std::io::{self, Write};

/// Version tag of the JSON document; bumped on any incompatible change.
pub const SCHEMA_ID: &str = "dbsandbox.analyze/v1.1";

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub exit_code: i32,
    pub inputs: Vec<InputReport>,
    pub findings: Vec<Finding>,
    pub consequences: Vec<Consequence>,
    /// v1.1: how many database errors were found and how many of them a test is named for.
    pub attribution: Attribution,
}

#[derive(Debug, Serialize)]
pub struct Attribution {
    /// Distinct database errors (primary findings), all inputs.
    pub database_errors: u64,
    /// Of them, those with a test name.
    pub attributed_to_tests: u64,
    /// A sentence for people when some or all are not attributed; null when all are.
    pub note: Option<String>,
}

/// v1.1: one SQLSTATE seen in a finding, with what PostgreSQL's table says about it.
#[derive(Debug, Serialize)]
pub struct SqlStateReport {
    /// `sqlstate:34000`.
    pub code: String,
    /// `invalid_cursor_name`, or null for a code not in the table.
    pub condition: Option<String>,
    /// `34`.
    pub class: String,
    /// `Invalid Cursor Name`, or null for an unknown class.
    pub class_title: Option<String>,
    pub count: u64,
    /// What errors of this class usually mean in a test suite.
    pub note: Option<String>,
}

/// v1.1: the dbsandbox integration line that gives this log's runner per-test isolation.
#[derive(Debug, Serialize)]
pub struct IntegrationReport {
    /// The runner it is for (`pytest`, `jest`, ..., `any`).
    pub runner: String,
    pub name: String,
    pub line: String,
    /// Why `dbsandbox run -- <cmd>` alone does not fix it.
    pub not_enough: String,
}

#[derive(Debug, Serialize)]
pub struct InputReport {
    pub name: String,
    /// `text`, `junit`, or null when the input could not be read.
    pub format: Option<&'static str>,
    pub bytes: u64,
    pub lines: u64,
    pub warnings: Vec<String>,
    /// Why the input could not be analysed (empty, binary, unreadable); null if it was.
    pub error: Option<String>,
    /// v1.1: distinct database errors in this input, and how many of them a test is named for.
    pub database_errors: u64,
    pub attributed_to_tests: u64,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub rank: usize,
    pub class: String,
    pub title: String,
    /// `primary` or `assertion`.
    pub kind: Kind,
    /// Distinct failures, after merging the echoes of one failure (chained exceptions, summaries).
    pub count: u64,
    /// Matched lines, echoes included.
    pub matched_lines: u64,
    /// Codes observed, normalised: `sqlstate:23505`, `mysql:1062`, `prisma:P2002`, `sqlite:...`.
    pub codes: Vec<String>,
    pub tests: Vec<String>,
    pub tests_omitted: u64,
    pub constraints: Vec<String>,
    pub tables: Vec<String>,
    pub keys: Vec<String>,
    pub occurrences: Vec<OccurrenceReport>,
    pub occurrences_omitted: u64,
    /// Aborted-transaction errors (25P02) later in the same input that this class caused.
    pub consequences: u64,
    pub diagnosis: String,
    pub fix: Vec<Fix>,
    pub validate: String,
    pub explain: String,
    /// v1.1: the test runner the log comes from (`pytest`, `unittest`, `jest`, `vitest`,
    /// `rspec`, `go`, `cargo`, `surefire`, `gradle`), or null.
    pub runner: Option<String>,
    /// v1.1: for classes that per-test isolation removes, the integration line for that runner.
    pub integration: Option<IntegrationReport>,
    /// v1.1: every SQLSTATE of the finding with its condition name and class.
    pub sqlstates: Vec<SqlStateReport>,
    /// v1.1: remarks that depend on this log (no DETAIL line, no test named, why the class).
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct OccurrenceReport {
    pub file: String,
    pub line: u64,
    pub test: Option<String>,
    pub code: Option<String>,
    pub stack: Option<String>,
    pub constraint: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    pub key: Option<KeyReport>,
    pub referenced_table: Option<String>,
    pub database: Option<String>,
    pub excerpt: String,
    /// v1.1: the SQLSTATE's condition name (`invalid_cursor_name`) and class (`34`,
    /// `Invalid Cursor Name`), null without an SQLSTATE.
    pub condition: Option<String>,
    pub sqlstate_class: Option<String>,
    pub sqlstate_class_title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<CauseReport>,
}

#[derive(Debug, Serialize)]
pub struct KeyReport {
    /// Key columns as printed (`email`, `tenant_id, email`); null when only the value is known
    /// (MySQL's `Duplicate entry 'x' for key 'users.email'` names the index, not the columns).
    pub columns: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CauseReport {
    /// Class id of the causing error, or null if the catalogue does not name it.
    pub class: Option<String>,
    pub file: String,
    pub line: u64,
    pub test: Option<String>,
    pub excerpt: String,
}

#[derive(Debug, Serialize)]
pub struct Consequence {
    pub class: String,
    pub title: String,
    pub count: u64,
    /// How many of them point to a catalogued class (see that finding's `consequences`).
    pub explained: u64,
    pub occurrences: Vec<OccurrenceReport>,
    pub occurrences_omitted: u64,
    pub diagnosis: String,
    pub explain: String,
}

fn names(set: &BoundedSet) -> (Vec<String>, u64) {
    (set.values.clone(), set.overflow)
}

fn cause_report(cause: &Cause, collector: &Collector<'_>, inputs: &[String]) -> CauseReport {
    let playbooks = &collector.matcher().playbooks;
    // The cause was recorded under the name known at the time (pytest's section header says
    // `test_x`); if the summary later qualified it (`tests/a.py::test_x`), report that.
    let test = cause.test.as_ref().map(|known| {
        cause
            .playbook
            .and_then(|p| {
                collector.tallies[p]
                    .tests
                    .values
                    .iter()
                    .filter(|t| t.len() > known.len() && same_test(Some(t), Some(known)))
                    .max_by_key(|t| t.len())
            })
            .unwrap_or(known)
            .clone()
    });
    CauseReport {
        class: cause.playbook.map(|p| playbooks[p].id.clone()),
        file: inputs.get(cause.input).cloned().unwrap_or_default(),
        line: cause.line,
        test,
        excerpt: cause.excerpt.clone(),
    }
}

fn occurrence_report(
    o: &Occurrence,
    collector: &Collector<'_>,
    inputs: &[String],
) -> OccurrenceReport {
    let table = crate::errcodes::table();
    let bare = o.code.as_deref().and_then(|c| c.strip_prefix("sqlstate:"));
    let class = bare.and_then(|c| c.get(..2));
    OccurrenceReport {
        condition: bare
            .and_then(|c| table.lookup(c))
            .map(|s| s.condition.to_string()),
        sqlstate_class: class.map(str::to_string),
        sqlstate_class_title: class.and_then(|c| table.class_title(c)).map(str::to_string),
        file: inputs.get(o.input).cloned().unwrap_or_default(),
        line: o.line,
        test: o.test.clone(),
        code: o.code.clone(),
        stack: o.stack.clone(),
        constraint: o.fields.constraint.clone(),
        table: o.fields.table.clone(),
        column: o.fields.column.clone(),
        key: (o.fields.key_columns.is_some() || o.fields.key_value.is_some()).then(|| KeyReport {
            columns: o.fields.key_columns.clone(),
            value: o.fields.key_value.clone(),
        }),
        referenced_table: o.fields.referenced_table.clone(),
        database: o.fields.database.clone(),
        excerpt: o.excerpt.clone(),
        caused_by: o
            .caused_by
            .as_ref()
            .map(|c| cause_report(c, collector, inputs)),
    }
}

/// Builds the report; `exit_code` is decided by the caller from findings and input problems.
pub fn build(
    collector: &Collector<'_>,
    names_of_inputs: &[String],
    outcomes: &[ScanOutcome],
) -> Report {
    let playbooks = &collector.matcher().playbooks;
    let mut order: Vec<usize> = (0..playbooks.len())
        .filter(|&i| collector.tallies[i].count > 0 && playbooks[i].kind != Kind::Consequence)
        .collect();
    let first_seen = |i: usize| {
        collector.tallies[i]
            .examples
            .first()
            .map_or((usize::MAX, u64::MAX), |o| (o.input, o.line))
    };
    // Primary errors before assertions; then the most frequent; ties by first appearance.
    order.sort_by_key(|&i| {
        (
            playbooks[i].kind == Kind::Assertion,
            std::cmp::Reverse(collector.tallies[i].count),
            first_seen(i),
        )
    });
    let findings = order
        .iter()
        .enumerate()
        .map(|(rank, &i)| {
            let playbook = &playbooks[i];
            let tally = &collector.tallies[i];
            let (tests, tests_omitted) = names(&tally.tests);
            let runner = finding_runner(collector, tally);
            let ecosystem = runner
                .and_then(crate::advice::ecosystem_of_runner)
                .or_else(|| guess_ecosystem_of(playbooks, tally));
            let integration = (playbook.isolation
                && (playbook.id != crate::catalogue::UNCLASSIFIED || shared_state_classes(tally)))
            .then(|| {
                let chosen = crate::advice::integration_for(runner, ecosystem);
                IntegrationReport {
                    runner: chosen.runner.clone(),
                    name: chosen.name.clone(),
                    line: chosen.line.clone(),
                    not_enough: crate::advice::shared_key_warning().to_string(),
                }
            });
            let notes = finding_notes(playbook, tally, ecosystem);
            Finding {
                runner: runner.map(str::to_string),
                integration,
                sqlstates: sqlstate_reports(tally),
                notes,
                rank: rank + 1,
                class: playbook.id.clone(),
                title: playbook.title.clone(),
                kind: playbook.kind,
                count: tally.count,
                matched_lines: tally.lines,
                codes: tally.codes.values.clone(),
                tests,
                tests_omitted,
                constraints: tally.constraints.values.clone(),
                tables: tally.tables.values.clone(),
                keys: tally.keys.values.clone(),
                occurrences: tally
                    .examples
                    .iter()
                    .map(|o| occurrence_report(o, collector, names_of_inputs))
                    .collect(),
                occurrences_omitted: tally.count - tally.examples.len() as u64,
                consequences: tally.consequences,
                diagnosis: playbook.diagnosis.trim().to_string(),
                fix: playbook.fix.clone(),
                validate: playbook.validate.trim().to_string(),
                explain: format!("dbsandbox explain {}", playbook.id),
            }
        })
        .collect();
    let consequences = (0..playbooks.len())
        .filter(|&i| collector.tallies[i].count > 0 && playbooks[i].kind == Kind::Consequence)
        .map(|i| {
            let playbook = &playbooks[i];
            let tally = &collector.tallies[i];
            Consequence {
                class: playbook.id.clone(),
                title: playbook.title.clone(),
                count: tally.count,
                explained: tally
                    .count
                    .saturating_sub(collector.unexplained_consequence_count),
                occurrences: tally
                    .examples
                    .iter()
                    .map(|o| occurrence_report(o, collector, names_of_inputs))
                    .collect(),
                occurrences_omitted: tally.count - tally.examples.len() as u64,
                diagnosis: playbook.diagnosis.trim().to_string(),
                explain: format!("dbsandbox explain {}", playbook.id),
            }
        })
        .collect();
    let inputs = names_of_inputs
        .iter()
        .zip(outcomes)
        .enumerate()
        .map(|(index, (name, outcome))| InputReport {
            database_errors: collector.input_errors.get(index).map_or(0, |c| c.0),
            attributed_to_tests: collector.input_errors.get(index).map_or(0, |c| c.1),
            name: name.clone(),
            format: outcome.format.map(|f| f.name()),
            bytes: outcome.bytes,
            lines: outcome.lines,
            warnings: outcome.warnings.clone(),
            error: outcome.problem.as_ref().map(|p| p.to_string()),
        })
        .collect();
    let primaries = || {
        (0..playbooks.len())
            .filter(|&i| playbooks[i].kind == Kind::Primary)
            .map(|i| &collector.tallies[i])
    };
    let database_errors: u64 = primaries().map(|t| t.count).sum();
    let attributed: u64 = primaries().map(|t| t.attributed).sum();
    let silent_inputs: Vec<String> = names_of_inputs
        .iter()
        .zip(&collector.input_errors)
        .filter(|(_, (errors, attributed))| *errors > 0 && *attributed == 0)
        .map(|(name, _)| name.clone())
        .collect();
    let note = (database_errors > attributed).then(|| {
        if attributed > 0 && !silent_inputs.is_empty() {
            return format!(
                "{} of {database_errors} database errors are not attributed to a test; in {} none is (printed outside any test's output: set-up, migrations, the app's own log, or a runner that prints no test names).",
                database_errors - attributed,
                silent_inputs.join(", ")
            );
        }
        if attributed == 0 {
            let which = if database_errors == 1 {
                "The database error is not".to_string()
            } else {
                format!("None of the {database_errors} database errors is")
            };
            format!(
                "{which} attributed to a test: the log has no test-name line this analyzer knows (pytest, unittest, Jest, Vitest, RSpec, go test, cargo test, Surefire, Gradle, JUnit XML) near them, so they happened outside tests (set-up, migrations, a fixture, the app's own log) or the runner was quiet; rerun verbosely (`-v`, `--verbose`) or give `analyze` the JUnit XML."
            )
        } else {
            format!(
                "{} of {} database errors are not attributed to a test (printed outside a test's output: set-up, teardown, the app's own log).",
                database_errors - attributed,
                database_errors
            )
        }
    });
    Report {
        schema: SCHEMA_ID,
        exit_code: 0,
        inputs,
        findings,
        consequences,
        attribution: Attribution {
            database_errors,
            attributed_to_tests: attributed,
            note,
        },
    }
}

/// The runner of the inputs a finding's occurrences come from, else the one its test names
/// suggest.
fn finding_runner(collector: &Collector<'_>, tally: &Tally) -> Option<&'static str> {
    tally
        .examples
        .iter()
        .find_map(|o| collector.runners.get(o.input).copied().flatten())
        .or_else(|| {
            tally
                .tests
                .values
                .iter()
                .find_map(|t| crate::advice::runner_from_test_name(t))
        })
}

fn guess_ecosystem_of(playbooks: &[Playbook], tally: &Tally) -> Option<&'static str> {
    let _ = playbooks;
    tally.examples.iter().find_map(|o| {
        let stack = o.stack.as_deref()?;
        BY_STACK
            .iter()
            .find(|(key, _)| stack.contains(key))
            .map(|(_, ecosystem)| *ecosystem)
    })
}

/// Whether an unclassified finding has a code of a class that state shared between tests can
/// cause (data left by another test, a session or transaction another test left open); disk
/// full, a server shutdown or an internal error are not cured by per-test isolation.
fn shared_state_classes(tally: &Tally) -> bool {
    const SHARED_STATE: &[&str] = &["21", "23", "24", "25", "26", "34", "3B", "40", "55"];
    tally.code_counts.iter().any(|(code, _)| {
        code.strip_prefix("sqlstate:")
            .and_then(|c| c.get(..2))
            .is_some_and(|class| SHARED_STATE.contains(&class))
    })
}

fn sqlstate_reports(tally: &Tally) -> Vec<SqlStateReport> {
    let table = crate::errcodes::table();
    tally
        .code_counts
        .iter()
        .filter_map(|(code, count)| {
            let bare = code.strip_prefix("sqlstate:")?;
            let class = bare.get(..2)?.to_string();
            Some(SqlStateReport {
                code: code.clone(),
                condition: table.lookup(bare).map(|s| s.condition.to_string()),
                class_title: table.class_title(&class).map(str::to_string),
                note: table.class_note(&class).map(str::to_string),
                class,
                count: *count,
            })
        })
        .collect()
}

fn finding_notes(playbook: &Playbook, tally: &Tally, ecosystem: Option<&str>) -> Vec<String> {
    let mut notes = Vec::new();
    let keyed = matches!(
        playbook.id.as_str(),
        "unique-violation" | "foreign-key-violation"
    );
    if keyed && tally.keys.values.is_empty() {
        notes.push(crate::advice::missing_detail_note(ecosystem));
    }
    for evidence in &tally.evidence.values {
        notes.push(format!(
            "Not schema drift: {evidence}, yet the database the test used lacks it, so it was never migrated or was cloned from an empty template."
        ));
    }
    if tally.count > 0 && tally.tests.values.is_empty() && playbook.kind != Kind::Assertion {
        notes.push(
            "No test is named for these errors: they were printed outside any test's output (set-up, migrations, the app's log), or the runner printed no test names.".to_string(),
        );
    }
    notes
}

fn location(file: &str, line: u64) -> String {
    format!("{file}:{line}")
}

fn write_occurrence(out: &mut dyn Write, o: &OccurrenceReport) -> io::Result<()> {
    let mut header = format!("   - {}", location(&o.file, o.line));
    if let Some(test) = &o.test {
        header.push_str(&format!("  test {test}"));
    }
    if let Some(code) = &o.code {
        header.push_str(&format!("  [{code}]"));
    }
    writeln!(out, "{header}")?;
    writeln!(out, "       {}", o.excerpt)?;
    let mut details = Vec::new();
    if let Some(constraint) = &o.constraint {
        details.push(format!("constraint {constraint}"));
    }
    if let Some(table) = &o.table {
        details.push(format!("table {table}"));
    }
    if let Some(column) = &o.column {
        details.push(format!("column {column}"));
    }
    if let Some(key) = &o.key {
        let columns = key.columns.as_deref().unwrap_or("?");
        match &key.value {
            Some(value) => details.push(format!("key ({columns})=({value})")),
            None => details.push(format!("key ({columns})")),
        }
    }
    if let Some(referenced) = &o.referenced_table {
        details.push(format!("referenced table {referenced}"));
    }
    if let Some(database) = &o.database {
        details.push(format!("database {database}"));
    }
    if !details.is_empty() {
        writeln!(out, "       {}", details.join(" \u{b7} "))?;
    }
    if let Some(cause) = &o.caused_by {
        let class = cause.class.as_deref().unwrap_or("uncatalogued error");
        writeln!(
            out,
            "       caused by {class} at {}: {}",
            location(&cause.file, cause.line),
            cause.excerpt
        )?;
    }
    Ok(())
}

fn plural(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// Writes the ranked human report.
pub fn write_human(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    let analysed: Vec<&InputReport> = report.inputs.iter().filter(|i| i.error.is_none()).collect();
    let lines: u64 = analysed.iter().map(|i| i.lines).sum();
    if report.findings.is_empty() && report.consequences.is_empty() {
        writeln!(
            out,
            "No database failure found in {} ({}).",
            plural(analysed.len() as u64, "input", "inputs"),
            plural(lines, "line", "lines")
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{} in {} ({}):",
        plural(
            report.findings.len() as u64,
            "database failure class",
            "database failure classes"
        ),
        plural(analysed.len() as u64, "input", "inputs"),
        plural(lines, "line", "lines")
    )?;
    if let Some(note) = &report.attribution.note {
        writeln!(out, "Note: {note}")?;
    }
    for finding in &report.findings {
        writeln!(out)?;
        let codes = if finding.codes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", finding.codes.join(", "))
        };
        let tests = if finding.tests.is_empty() {
            String::new()
        } else {
            format!(
                " in {}",
                plural(
                    finding.tests.len() as u64 + finding.tests_omitted,
                    "test",
                    "tests"
                )
            )
        };
        writeln!(
            out,
            "{}. {} \u{2014} {}{codes}",
            finding.rank, finding.class, finding.title
        )?;
        writeln!(
            out,
            "   {}{tests}",
            plural(finding.count, "occurrence", "occurrences")
        )?;
        for (label, values) in [
            ("constraints", &finding.constraints),
            ("tables", &finding.tables),
            ("keys", &finding.keys),
            ("tests", &finding.tests),
        ] {
            if !values.is_empty() {
                let shown: Vec<&str> = values.iter().take(5).map(String::as_str).collect();
                let more = if values.len() > 5 {
                    format!(" (+{} more)", values.len() - 5)
                } else {
                    String::new()
                };
                writeln!(out, "   {label}: {}{more}", shown.join(", "))?;
            }
        }
        for occurrence in &finding.occurrences {
            write_occurrence(out, occurrence)?;
        }
        if finding.occurrences_omitted > 0 {
            writeln!(
                out,
                "   - \u{2026} and {} more",
                finding.occurrences_omitted
            )?;
        }
        if finding.consequences > 0 {
            writeln!(
                out,
                "   It aborted the transaction: {} later failed with 25P02 (current transaction is aborted).",
                plural(finding.consequences, "statement", "statements")
            )?;
        }
        writeln!(out, "   Why: {}", one_paragraph(&finding.diagnosis))?;
        // The dbsandbox remedy, then the one for the ecosystem the log comes from.
        let ecosystem = finding
            .runner
            .as_deref()
            .and_then(crate::advice::ecosystem_of_runner)
            .or_else(|| guess_ecosystem(finding));
        let shown_fixes: Vec<&Fix> = finding
            .fix
            .iter()
            .filter(|f| f.ecosystem == "dbsandbox")
            .chain(
                finding
                    .fix
                    .iter()
                    .filter(|f| Some(f.ecosystem.as_str()) == ecosystem),
            )
            .take(2)
            .collect();
        for state in &finding.sqlstates {
            let condition = state
                .condition
                .as_deref()
                .unwrap_or("not in PostgreSQL's table");
            let title = state.class_title.as_deref().unwrap_or("unknown class");
            writeln!(
                out,
                "   SQLSTATE {} {condition} \u{2014} class {} \u{201c}{title}\u{201d} ({})",
                state.code.trim_start_matches("sqlstate:"),
                state.class,
                plural(state.count, "occurrence", "occurrences")
            )?;
            if finding.class == crate::catalogue::UNCLASSIFIED {
                if let Some(note) = &state.note {
                    writeln!(out, "     {note}")?;
                }
            }
        }
        for note in &finding.notes {
            writeln!(out, "   Note: {note}")?;
        }
        for fix in shown_fixes {
            if let Some(step) = fix.steps.first() {
                writeln!(out, "   Fix ({}): {}", fix.ecosystem, one_paragraph(step))?;
            }
        }
        if let Some(integration) = &finding.integration {
            writeln!(
                out,
                "   The one line ({}, {}): {}",
                integration.runner, integration.name, integration.line
            )?;
            writeln!(out, "   Not enough: {}", integration.not_enough)?;
        }
        writeln!(out, "   Full playbook: {}", finding.explain)?;
    }
    for consequence in &report.consequences {
        writeln!(out)?;
        writeln!(
            out,
            "Consequence: {} \u{2014} {} ({}, {} traced to an error above)",
            consequence.class,
            consequence.title,
            plural(consequence.count, "occurrence", "occurrences"),
            consequence.explained
        )?;
        for occurrence in &consequence.occurrences {
            write_occurrence(out, occurrence)?;
            if occurrence.caused_by.is_none() {
                writeln!(
                    out,
                    "       no database error before it in this input: the cause was not logged, or the code caught it"
                )?;
            }
        }
        if consequence.occurrences_omitted > 0 {
            writeln!(
                out,
                "   - \u{2026} and {} more",
                consequence.occurrences_omitted
            )?;
        }
        writeln!(out, "   Why: {}", one_paragraph(&consequence.diagnosis))?;
        writeln!(out, "   Full playbook: {}", consequence.explain)?;
    }
    Ok(())
}

const BY_STACK: &[(&str, &str)] = &[
    ("django", "python"),
    ("psycopg", "python"),
    ("sqlalchemy", "python"),
    ("pytest", "python"),
    ("unittest", "python"),
    ("rails", "rails"),
    ("ruby-pg", "rails"),
    ("rspec", "rails"),
    ("prisma", "node"),
    ("sequelize", "node"),
    ("knex", "node"),
    ("jest", "node"),
    ("testify", "go"),
    ("hikaricp", "java"),
    ("spring", "java"),
    ("sqlx", "rust"),
    ("rust", "rust"),
    ("tokio-postgres", "rust"),
    ("lib/pq", "go"),
    ("jdbc", "java"),
];

/// Which ecosystem's fix to show, from the stacks that matched and the shape of test names.
fn guess_ecosystem(finding: &Finding) -> Option<&'static str> {
    for occurrence in &finding.occurrences {
        if let Some(stack) = &occurrence.stack {
            if let Some((_, ecosystem)) = BY_STACK.iter().find(|(key, _)| stack.contains(key)) {
                return Some(ecosystem);
            }
        }
        if let Some(test) = &occurrence.test {
            let ecosystem = if test.contains(".py::") || test.starts_with("tests.") {
                "python"
            } else if test.contains('\u{203a}') {
                "node"
            } else if test.starts_with("Test") && !test.contains('.') {
                "go"
            } else if test.contains("::tests::") || test.starts_with("tests::") {
                "rust"
            } else if test.starts_with("com.") || test.starts_with("org.") {
                "java"
            } else {
                continue;
            };
            return Some(ecosystem);
        }
    }
    None
}

/// Joins a multi-line TOML paragraph into one line for the compact report.
fn one_paragraph(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `explain ID`: the whole playbook, for humans.
pub fn write_playbook(playbook: &Playbook, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{} \u{2014} {}", playbook.id, playbook.title)?;
    if !playbook.codes.is_empty() {
        writeln!(out, "Codes: {}", playbook.codes.join(", "))?;
    }
    writeln!(
        out,
        "Kind: {}",
        match playbook.kind {
            Kind::Primary => "primary (a database error)",
            Kind::Consequence => "consequence (reported pointing at the error before it)",
            Kind::Assertion =>
                "assertion (a test assertion that suggests leaked rows or assumed IDs)",
        }
    )?;
    writeln!(out)?;
    writeln!(out, "Diagnosis")?;
    writeln!(out, "  {}", one_paragraph(&playbook.diagnosis))?;
    writeln!(out)?;
    writeln!(out, "Fix")?;
    for fix in &playbook.fix {
        writeln!(out, "  {}:", fix.ecosystem)?;
        for step in &fix.steps {
            writeln!(out, "    - {}", one_paragraph(step))?;
        }
    }
    if playbook.isolation {
        writeln!(out, "  dbsandbox, the one line per test runner:")?;
        for integration in crate::advice::all_integrations() {
            writeln!(
                out,
                "    - {} ({}): {}",
                integration.runner, integration.name, integration.line
            )?;
        }
        writeln!(out, "    {}", crate::advice::shared_key_warning())?;
    }
    writeln!(out)?;
    writeln!(out, "Validate the fix")?;
    writeln!(out, "  {}", one_paragraph(&playbook.validate))?;
    if !playbook.patterns.is_empty() {
        writeln!(out)?;
        writeln!(out, "Recognised wordings")?;
        for pattern in &playbook.patterns {
            let stack = pattern.stack.as_deref().unwrap_or("any");
            match pattern.examples.first() {
                Some(example) => writeln!(out, "  {stack}: {example}")?,
                None => writeln!(out, "  {stack}: /{}/", pattern.regex)?,
            }
        }
    }
    Ok(())
}
