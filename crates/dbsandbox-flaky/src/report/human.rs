//! The ranked report for people: findings first (victims and brittle tests with their culprits,
//! the evidence, the fix and a command that reproduces each), then what ran.

use std::fmt::Write as _;

use crate::model::{FindingKind, Hunt, TableEvidence, Verdict};

/// The whole human report.
pub fn human_report(hunt: &Hunt) -> String {
    let mut out = String::new();
    let count = |v: Verdict| hunt.tests.iter().filter(|t| t.verdict == v).count();
    let _ = writeln!(
        out,
        "dbsandbox flaky: {} in {} tests · {} runs ({} detection) · {:.1} s",
        plural(hunt.findings.len(), "finding"),
        hunt.tests.len(),
        hunt.budget.runs_used,
        hunt.budget.detection_runs,
        hunt.budget.seconds
    );
    let _ = writeln!(
        out,
        "  {} victim, {} brittle, {} flaky, {} failing, {} stable · runner {}",
        count(Verdict::Victim),
        count(Verdict::Brittle),
        count(Verdict::Flaky),
        count(Verdict::Failing),
        count(Verdict::Stable),
        hunt.runner
    );
    if let Some(note) = &hunt.ordering_note {
        let _ = writeln!(out, "  order: {note}");
    }
    for (i, finding) in hunt.findings.iter().enumerate() {
        let label = match finding.kind {
            FindingKind::Victim => "VICTIM",
            FindingKind::Brittle => "BRITTLE",
            FindingKind::Flaky => "FLAKY",
            FindingKind::Failing => "FAILING",
        };
        let _ = writeln!(out, "\n{}. {label}  {}", i + 1, finding.test);
        for polluter in &finding.polluters {
            let _ = writeln!(out, "   polluted by   {polluter}");
        }
        for setter in &finding.state_setters {
            let _ = writeln!(out, "   needs first   {setter}");
        }
        let _ = writeln!(out, "   {}", finding.explanation);
        if let Some(failure) = &finding.failure {
            for line in failure.excerpt.lines().take(4) {
                let _ = writeln!(out, "   │ {}", line.trim());
            }
        }
        for table in finding.evidence.iter().filter(|t| !t.is_empty()).take(6) {
            let _ = writeln!(out, "   evidence      {}", evidence_line(table));
        }
        let _ = writeln!(out, "   fix           {}", finding.fix);
        if !finding.reproduce.is_empty() {
            let _ = writeln!(out, "   reproduce     {}", finding.reproduce);
        }
        if let Some(url) = &finding.kept_database {
            let _ = writeln!(out, "   kept clone    {url}");
        }
    }
    if !hunt.budget.unexplained.is_empty() {
        let _ = writeln!(
            out,
            "\nNot explained (budget or time ran out): {}",
            hunt.budget.unexplained.join(", ")
        );
    }
    if hunt.findings.is_empty() {
        let _ = writeln!(
            out,
            "\nNo order-dependent or flaky test found in {} (detection stopped: {}).",
            plural(hunt.budget.runs_used, "run"),
            hunt.budget.detection_stopped
        );
    }
    out
}

/// "coupons: +1 row (id, code)=(7, WELCOME10); −1 seed row".
fn evidence_line(table: &TableEvidence) -> String {
    let name = table.table.strip_prefix("public.").unwrap_or(&table.table);
    let mut parts = Vec::new();
    if table.inserted_count > 0 {
        let first = table
            .inserted
            .first()
            .map(|r| format!(" e.g. {}", compact(r)))
            .unwrap_or_default();
        parts.push(format!("+{}{first}", plural(table.inserted_count, "row")));
    }
    if table.updated_count > 0 {
        let first = table
            .updated
            .first()
            .map(|r| format!(" e.g. {}", compact(r)))
            .unwrap_or_default();
        parts.push(format!(
            "~{} changed{first}",
            plural(table.updated_count, "row")
        ));
    }
    if table.deleted_count > 0 {
        let first = table
            .deleted
            .first()
            .map(|r| format!(" e.g. {}", compact(r)))
            .unwrap_or_default();
        parts.push(format!(
            "−{} deleted{first}",
            plural(table.deleted_count, "row")
        ));
    }
    format!("{name}: {}", parts.join("; "))
}

/// A row on one line, cut at 120 characters.
fn compact(row: &serde_json::Value) -> String {
    let mut text = row.to_string();
    if text.chars().count() > 120 {
        text = text.chars().take(119).collect::<String>() + "…";
    }
    text
}

fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}
