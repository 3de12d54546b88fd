//! `--html FILE`: the hunt as one self-contained page that works offline — a header with the
//! budget and the verdicts, the findings ranked (explanation, culprits, failure, the rows the
//! culprit left behind, fix, reproduction command), the polluter → victim graph (inline SVG) and
//! the tests × runs matrix.
//!
//! Everything is rendered here, server-side: the page reads without JavaScript. The small inline
//! script only adds copy buttons and a filter. Every text from the hunt (test ids, failure texts,
//! row values) is untrusted and goes through [`esc`].

mod graph;
mod matrix;

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::{
    FailureReading, Finding, FindingKind, Hunt, Purpose, Run, TableEvidence, Verdict,
};

const STYLE: &str = include_str!("html/style.css");
const SCRIPT: &str = include_str!("html/script.js");

/// The whole page.
pub fn html_report(hunt: &Hunt) -> String {
    let findings = ranked(&hunt.findings);
    let mut page = String::with_capacity(64 * 1024);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        page,
        "<title>dbsandbox flaky: {} finding{} ({})</title>",
        findings.len(),
        plural(findings.len()),
        esc(&hunt.runner)
    );
    let _ = writeln!(
        page,
        "<style>\n{STYLE}{}</style>\n</head>\n<body>",
        matrix::style(hunt)
    );
    header(&mut page, hunt);
    page.push_str("<main>\n");
    findings_section(&mut page, &findings, &hunt.runs);
    graph::section(&mut page, &findings);
    matrix::section(&mut page, hunt);
    page.push_str("</main>\n<footer>Made by <code>dbsandbox flaky</code> · schema <code>");
    page.push_str(&esc(&hunt.schema));
    page.push_str("</code> · every run on a fresh clone of the template</footer>\n");
    let _ = writeln!(page, "<script>\n{SCRIPT}</script>\n</body>\n</html>");
    page
}

/// Findings in report order: victims, brittle, flaky, failing (the kinds' order), keeping the
/// hunt's order within a kind.
fn ranked(findings: &[Finding]) -> Vec<&Finding> {
    let mut out: Vec<&Finding> = findings.iter().collect();
    out.sort_by_key(|f| f.kind);
    out
}

/// Escapes text for an HTML text node or a quoted attribute value; drops terminal colour codes
/// and control characters a runner may have written.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{1b}' => {
                // CSI sequences (`ESC [ … final`), e.g. pytest's colours.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The first line of a failure text with something in it, cut to `max` characters.
pub(crate) fn message_head(message: &str, max: usize) -> String {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    cut(line, max)
}

pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A run's column label: `3 reversed`, `7 shuffle 42`, `12 bisect`.
pub(crate) fn short_purpose(purpose: &Purpose) -> String {
    match purpose {
        Purpose::Declared => "declared".into(),
        Purpose::Repeat => "repeat".into(),
        Purpose::Reversed => "reversed".into(),
        Purpose::Shuffled { seed } => format!("shuffle {seed}"),
        Purpose::Alone { .. } => "alone".into(),
        Purpose::Bisect { .. } => "bisect".into(),
        Purpose::Confirm { .. } => "confirm".into(),
        Purpose::Retry { .. } => "retry".into(),
    }
}

pub(crate) fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Victim => "victim",
        Verdict::Brittle => "brittle",
        Verdict::Flaky => "flaky",
        Verdict::Failing => "failing",
        Verdict::Stable => "stable",
    }
}

pub(crate) fn kind_name(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::Victim => "victim",
        FindingKind::Brittle => "brittle",
        FindingKind::Flaky => "flaky",
        FindingKind::Failing => "failing",
    }
}

/// `4.2 s`, `3 min 05 s`, `1 h 02 min`.
fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (seconds / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

fn header(page: &mut String, hunt: &Hunt) {
    let budget = &hunt.budget;
    let command = hunt
        .command
        .iter()
        .map(|a| shell_word(a))
        .collect::<Vec<_>>()
        .join(" ");
    page.push_str("<header class=\"top\">\n<div class=\"title\"><h1><span class=\"brand\">dbsandbox</span> flaky</h1>");
    let _ = write!(
        page,
        "<input id=\"filter\" type=\"search\" placeholder=\"Filter tests…\" aria-label=\"Filter tests\" hidden></div>\n<p class=\"command\"><code>{}</code></p>\n<dl class=\"facts\">",
        esc(&command)
    );
    let mut fact = |name: &str, value: String| {
        let _ = write!(page, "<div><dt>{name}</dt><dd>{value}</dd></div>");
    };
    fact("runner", esc(&hunt.runner));
    fact(
        "runs",
        format!(
            "{} <span class=\"muted\">of {} budget</span>",
            budget.runs_used, budget.max_runs
        ),
    );
    let stopped = if budget.detection_stopped.is_empty() {
        String::new()
    } else {
        format!(
            " <span class=\"muted\">· stopped: {}</span>",
            esc(&budget.detection_stopped)
        )
    };
    fact(
        "detection",
        format!(
            "{} run{}{stopped}",
            budget.detection_runs,
            plural(budget.detection_runs)
        ),
    );
    fact(
        "wall time",
        match budget.timeout_seconds {
            Some(t) => format!(
                "{} <span class=\"muted\">of {}</span>",
                duration(budget.seconds),
                duration(t)
            ),
            None => duration(budget.seconds),
        },
    );
    fact("tests", hunt.tests.len().to_string());
    page.push_str("</dl>\n<ul class=\"verdicts\">");
    let mut counts: BTreeMap<Verdict, usize> = BTreeMap::new();
    for test in &hunt.tests {
        *counts.entry(test.verdict).or_default() += 1;
    }
    for verdict in [
        Verdict::Victim,
        Verdict::Brittle,
        Verdict::Flaky,
        Verdict::Failing,
        Verdict::Stable,
    ] {
        let n = counts.get(&verdict).copied().unwrap_or(0);
        let name = verdict_name(verdict);
        let _ = write!(
            page,
            "<li class=\"chip {name}{}\" data-verdict=\"{name}\"><b>{n}</b> {name}</li>",
            if n == 0 { " zero" } else { "" }
        );
    }
    page.push_str("</ul>\n");
    if let Some(note) = &hunt.ordering_note {
        let _ = writeln!(page, "<p class=\"note\"><b>Ordering:</b> {}</p>", esc(note));
    }
    if !budget.unexplained.is_empty() {
        let ids: Vec<String> = budget
            .unexplained
            .iter()
            .map(|t| format!("<code>{}</code>", esc(t)))
            .collect();
        let _ = writeln!(
            page,
            "<p class=\"note warn\"><b>Left unexplained</b> (budget ran out): {}</p>",
            ids.join(", ")
        );
    }
    page.push_str("<nav><a href=\"#findings\">Findings</a><a href=\"#graph\">Polluters → victims</a><a href=\"#matrix\">Tests × runs</a></nav>\n</header>\n");
}

/// Quotes an argument for display the way a POSIX shell would need it.
fn shell_word(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

fn findings_section(page: &mut String, findings: &[&Finding], runs: &[Run]) {
    page.push_str("<section id=\"findings\">\n<h2>Findings</h2>\n");
    if findings.is_empty() {
        page.push_str(
            "<p class=\"empty\">Nothing found: every test passed in every order tried.</p>\n",
        );
    }
    for (n, finding) in findings.iter().enumerate() {
        finding_card(page, n + 1, finding, runs);
    }
    page.push_str("</section>\n");
}

/// The anchor of the `n`th finding (1-based, report order), shared with the graph.
pub(crate) fn finding_anchor(n: usize) -> String {
    format!("finding-{n}")
}

fn finding_card(page: &mut String, n: usize, finding: &Finding, runs: &[Run]) {
    let kind = kind_name(finding.kind);
    let mut searchable = vec![finding.test.as_str()];
    searchable.extend(finding.polluters.iter().map(String::as_str));
    searchable.extend(finding.state_setters.iter().map(String::as_str));
    let _ = write!(
        page,
        "<article class=\"finding {kind}\" id=\"{}\" data-test=\"{}\" data-search=\"{}\">\n<header><span class=\"badge {kind}\">{kind}</span><h3><code>{}</code></h3>",
        finding_anchor(n),
        esc(&finding.test),
        esc(&searchable.join("\n")),
        esc(&finding.test)
    );
    if !finding.runs.is_empty() {
        let runs: Vec<String> = finding
            .runs
            .iter()
            .map(|&i| {
                let failed = runs.iter().any(|r| r.index == i && r.failed(&finding.test));
                let (class, what) = if failed {
                    (" class=\"failed\"", "failed")
                } else {
                    ("", "did not fail")
                };
                format!("<a href=\"#run-{i}\"{class} title=\"run {i}: {what}\">{i}</a>")
            })
            .collect();
        let _ = write!(
            page,
            "<span class=\"runs\">run{} {}</span>",
            plural(runs.len()),
            runs.join(" ")
        );
    }
    page.push_str("</header>\n");
    if !finding.explanation.is_empty() {
        let _ = writeln!(
            page,
            "<p class=\"explanation\">{}</p>",
            esc(&finding.explanation)
        );
    }
    culprits(page, "Polluter", "polluter", &finding.polluters);
    culprits(page, "State-setter", "setter", &finding.state_setters);
    if let Some(failure) = &finding.failure {
        failure_block(page, failure);
    }
    evidence_block(page, finding);
    if !finding.fix.is_empty() {
        let _ = writeln!(
            page,
            "<p class=\"fix\"><b>Fix</b> {}</p>",
            esc(&finding.fix)
        );
    }
    if !finding.reproduce.is_empty() {
        let _ = writeln!(
            page,
            "<div class=\"reproduce\"><div class=\"label\">Reproduce on a fresh database<button type=\"button\" class=\"copy\" data-copy=\"repro-{n}\" hidden>Copy</button></div><pre><code id=\"repro-{n}\">{}</code></pre></div>",
            esc(&finding.reproduce)
        );
    }
    if let Some(url) = &finding.kept_database {
        let _ = writeln!(
            page,
            "<p class=\"kept\"><b>Kept clone</b> <code>{}</code></p>",
            esc(url)
        );
    }
    page.push_str("</article>\n");
}

fn culprits(page: &mut String, title: &str, class: &str, tests: &[String]) {
    if tests.is_empty() {
        return;
    }
    let _ = write!(
        page,
        "<div class=\"culprits {class}\"><span class=\"label\">{title}{}</span><ul>",
        plural(tests.len())
    );
    for test in tests {
        let _ = write!(page, "<li><code>{}</code></li>", esc(test));
    }
    page.push_str("</ul></div>\n");
}

fn failure_block(page: &mut String, failure: &FailureReading) {
    page.push_str("<div class=\"failure\"><dl class=\"reading\">");
    let fields = [
        ("SQLSTATE", &failure.sqlstate),
        ("constraint", &failure.constraint),
        ("detail", &failure.detail),
        ("class", &failure.class),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            let _ = write!(
                page,
                "<div><dt>{name}</dt><dd><code>{}</code></dd></div>",
                esc(value)
            );
        }
    }
    page.push_str("</dl>");
    if !failure.excerpt.is_empty() {
        let _ = write!(
            page,
            "<pre class=\"excerpt\">{}</pre>",
            esc(&failure.excerpt)
        );
    }
    page.push_str("</div>\n");
}

fn evidence_block(page: &mut String, finding: &Finding) {
    let tables: Vec<&TableEvidence> = finding.evidence.iter().filter(|t| !t.is_empty()).collect();
    let who = match finding.kind {
        FindingKind::Victim => "What the polluter left behind",
        FindingKind::Brittle => "What the state-setter set up",
        _ => return,
    };
    let _ = write!(page, "<div class=\"evidence\"><h4>{who}</h4>");
    if tables.is_empty() {
        page.push_str("<p class=\"muted\">No committed rows were recorded.</p>");
    }
    for table in tables {
        let _ = write!(
            page,
            "<section class=\"table-evidence\" data-table=\"{}\"><h5><code>{}</code>",
            esc(&table.table),
            esc(&table.table)
        );
        if !table.key_columns.is_empty() {
            let _ = write!(
                page,
                " <span class=\"muted\">key ({})</span>",
                esc(&table.key_columns.join(", "))
            );
        }
        page.push_str("</h5>");
        rows_table(
            page,
            table,
            "inserted",
            &table.inserted,
            table.inserted_count,
        );
        rows_table(page, table, "updated", &table.updated, table.updated_count);
        rows_table(page, table, "deleted", &table.deleted, table.deleted_count);
        page.push_str("</section>");
    }
    page.push_str("</div>\n");
}

/// One change list (inserted, updated or deleted rows) as a small table of its columns: the key
/// columns first, then the others as the rows name them.
fn rows_table(
    page: &mut String,
    table: &TableEvidence,
    change: &str,
    rows: &[serde_json::Value],
    count: usize,
) {
    let count = count.max(rows.len());
    if count == 0 {
        return;
    }
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        match row.as_object() {
            Some(object) => {
                for name in object.keys() {
                    if !columns.contains(name) {
                        columns.push(name.clone());
                    }
                }
            }
            None if !columns.iter().any(|c| c == "value") => columns.push("value".into()),
            None => {}
        }
    }
    columns.sort_by_key(|c| {
        table
            .key_columns
            .iter()
            .position(|k| k == c)
            .unwrap_or(usize::MAX)
    });
    let shown = if rows.len() < count {
        format!(" <span class=\"muted\">({} shown)</span>", rows.len())
    } else {
        String::new()
    };
    let _ = write!(
        page,
        "<table class=\"rows {change}\" data-table=\"{}\" data-change=\"{change}\"><caption><span class=\"change {change}\">{change}</span> {count} row{}{shown}</caption>",
        esc(&table.table),
        plural(count)
    );
    if !rows.is_empty() {
        page.push_str("<thead><tr>");
        for column in &columns {
            let key = table.key_columns.contains(column);
            let _ = write!(
                page,
                "<th{}>{}</th>",
                if key { " class=\"key\"" } else { "" },
                esc(column)
            );
        }
        page.push_str("</tr></thead><tbody>");
        for row in rows {
            page.push_str("<tr>");
            for column in &columns {
                let value = match row.as_object() {
                    Some(object) => object.get(column),
                    None if column == "value" => Some(row),
                    None => None,
                };
                cell(page, value);
            }
            page.push_str("</tr>");
        }
        page.push_str("</tbody>");
    }
    page.push_str("</table>");
}

fn cell(page: &mut String, value: Option<&serde_json::Value>) {
    use serde_json::Value;
    match value {
        None => page.push_str("<td class=\"absent\"></td>"),
        Some(Value::Null) => page.push_str("<td class=\"null\">NULL</td>"),
        Some(Value::String(s)) => {
            let _ = write!(page, "<td>{}</td>", esc(&cut(s, 200)));
        }
        Some(Value::Number(n)) => {
            let _ = write!(page, "<td class=\"num\">{n}</td>");
        }
        Some(other) => {
            let _ = write!(page, "<td>{}</td>", esc(&cut(&other.to_string(), 200)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_terminal_codes() {
        assert_eq!(
            esc("<script>alert(\"x\" & 'y')</script>"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(esc("\u{1b}[31mred\u{1b}[0m\u{0}!"), "red!");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("tests/a.py::t"), "tests/a.py::t");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("a b"), "'a b'");
    }

    #[test]
    fn message_head_is_the_first_line_with_text() {
        assert_eq!(message_head("\n  \nE  boom\nmore", 80), "E  boom");
        assert_eq!(message_head("abcdef", 4), "abc…");
    }
}
