//! The analysis result as a serialisable report (`--format json`, schema in `SCHEMA.md`) and its
//! human rendering: classes ranked by how often they occurred, each with its first occurrences,
//! the details that point at the cause, the diagnosis and the fix.

use crate::analysis::{same_test, BoundedSet, Cause, Collector, Occurrence};
use crate::catalogue::{Fix, Kind, Playbook};
use crate::reader::ScanOutcome;
use serde::Serialize;
use std::io::{self, Write};

/// Version tag of the JSON document; bumped on any incompatible change.
pub const SCHEMA_ID: &str = "dbsandbox.analyze/v1";

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub exit_code: i32,
    pub inputs: Vec<InputReport>,
    pub findings: Vec<Finding>,
    pub consequences: Vec<Consequence>,
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
    OccurrenceReport {
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
            Finding {
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
        .map(|(name, outcome)| InputReport {
            name: name.clone(),
            format: outcome.format.map(|f| f.name()),
            bytes: outcome.bytes,
            lines: outcome.lines,
            warnings: outcome.warnings.clone(),
            error: outcome.problem.as_ref().map(|p| p.to_string()),
        })
        .collect();
    Report {
        schema: SCHEMA_ID,
        exit_code: 0,
        inputs,
        findings,
        consequences,
    }
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
        let ecosystem = guess_ecosystem(finding);
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
        for fix in shown_fixes {
            if let Some(step) = fix.steps.first() {
                writeln!(out, "   Fix ({}): {}", fix.ecosystem, one_paragraph(step))?;
            }
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

/// Which ecosystem's fix to show, from the stacks that matched and the shape of test names.
fn guess_ecosystem(finding: &Finding) -> Option<&'static str> {
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
    ];
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
