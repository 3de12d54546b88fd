//! The tests × runs matrix: one row per test (the ones that are not stable first), one column per
//! run, each cell coloured by what the test did in that run.
//!
//! Stable rows are behind a CSS-only toggle. When there are so many of them that one cell each
//! would make the page heavy (2,000 tests × 80 runs), each stable row is one summary cell instead:
//! a stable row has no failure to point at, so its counts say everything.

use std::collections::HashMap;
use std::fmt::Write;

use super::{esc, message_head, plural, short_purpose, verdict_name};
use crate::model::{Hunt, Outcome, Purpose, Run, TestSummary, Verdict};

/// Stable rows get one cell per run up to this many cells in all; beyond it, a summary cell each.
const STABLE_CELLS_LIMIT: usize = 40_000;
/// Characters of a failure's first line in a cell's tooltip.
const TOOLTIP_CHARS: usize = 140;

/// What one test did in one run, as a cell's class.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    Passed,
    Failed,
    Skipped,
    /// Asked for, not reported (the run crashed or timed out).
    Missing,
    /// Not in the run's order.
    NotRun,
}

impl Cell {
    fn class(self) -> &'static str {
        match self {
            Cell::Passed => "p",
            Cell::Failed => "f",
            Cell::Skipped => "s",
            Cell::Missing => "m",
            Cell::NotRun => "n",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Cell::Passed => "passed",
            Cell::Failed => "failed",
            Cell::Skipped => "skipped",
            Cell::Missing => "not reported",
            Cell::NotRun => "not run",
        }
    }
}

/// One run, indexed for lookups by test id.
struct RunIndex<'a> {
    run: &'a Run,
    results: HashMap<&'a str, (Outcome, Option<&'a str>)>,
    asked: std::collections::HashSet<&'a str>,
}

impl<'a> RunIndex<'a> {
    fn new(run: &'a Run) -> Self {
        RunIndex {
            run,
            results: run
                .results
                .iter()
                .map(|r| (r.id.as_str(), (r.outcome, r.message.as_deref())))
                .collect(),
            asked: run.order.iter().map(String::as_str).collect(),
        }
    }

    fn cell(&self, test: &str) -> (Cell, Option<&'a str>) {
        match self.results.get(test) {
            Some((Outcome::Passed, _)) => (Cell::Passed, None),
            Some((Outcome::Failed, message)) => (Cell::Failed, *message),
            Some((Outcome::Skipped, message)) => (Cell::Skipped, *message),
            Some((Outcome::Missing, message)) => (Cell::Missing, *message),
            None if self.asked.contains(test) => (Cell::Missing, None),
            None => (Cell::NotRun, None),
        }
    }
}

pub(super) fn section(page: &mut String, hunt: &Hunt) {
    let runs: Vec<RunIndex> = hunt.runs.iter().map(RunIndex::new).collect();
    let mut unstable: Vec<(usize, &TestSummary)> = hunt
        .tests
        .iter()
        .enumerate()
        .filter(|(_, t)| t.verdict != Verdict::Stable)
        .collect();
    unstable.sort_by_key(|(i, t)| (t.verdict, *i));
    let stable: Vec<&TestSummary> = hunt
        .tests
        .iter()
        .filter(|t| t.verdict == Verdict::Stable)
        .collect();
    let columns = runs.len();

    page.push_str("<section id=\"matrix\">\n<h2>Tests × runs</h2>\n");
    let _ = writeln!(
        page,
        "<p class=\"lead\">{} test{} with a failure in some run, {} stable test{} (collapsed below). Columns are runs, in the order they were made; hover a cell for the failure.</p>",
        unstable.len(),
        plural(unstable.len()),
        stable.len(),
        plural(stable.len())
    );
    page.push_str("<ul class=\"legend\">");
    for cell in [
        Cell::Passed,
        Cell::Failed,
        Cell::Skipped,
        Cell::Missing,
        Cell::NotRun,
    ] {
        let _ = write!(
            page,
            "<li><i class=\"sw {}\"></i>{}</li>",
            cell.class(),
            cell.word()
        );
    }
    page.push_str("<li><i class=\"sw det\"></i>detection run</li><li><i class=\"sw exp\"></i>explanation run (alone, bisect, confirm)</li></ul>\n");
    page.push_str("<input type=\"checkbox\" id=\"show-stable\" class=\"toggle\">\n<div class=\"matrix-wrap\"><table class=\"matrix\">");

    let detection = detection_runs(hunt);
    page.push_str("<colgroup><col class=\"tests\">");
    if detection > 0 {
        let _ = write!(page, "<col span=\"{detection}\" class=\"det\">");
    }
    if columns > detection {
        let _ = write!(page, "<col span=\"{}\" class=\"exp\">", columns - detection);
    }
    page.push_str("</colgroup>\n<thead><tr><th class=\"corner\">test</th>");
    for index in &runs {
        run_header(page, index.run);
    }
    page.push_str("</tr></thead>\n<tbody class=\"unstable\">\n");
    for (_, test) in &unstable {
        row(page, test, &runs, true);
    }
    if unstable.is_empty() {
        let _ = writeln!(
            page,
            "<tr><td class=\"none\" colspan=\"{}\">No test failed in any run.</td></tr>",
            columns + 1
        );
    }
    page.push_str("</tbody>\n");
    if !stable.is_empty() {
        let _ = writeln!(
            page,
            "<tbody class=\"stable-toggle\"><tr><th colspan=\"{}\"><label for=\"show-stable\"><span class=\"show\">▸ Show</span><span class=\"hide\">▾ Hide</span> {} stable test{} <span class=\"muted\">(no failure in any run)</span></label></th></tr></tbody>",
            columns + 1,
            stable.len(),
            plural(stable.len())
        );
        page.push_str("<tbody class=\"stable\">\n");
        let full = stable.len() * columns <= STABLE_CELLS_LIMIT;
        for test in &stable {
            if full {
                row(page, test, &runs, false);
            } else {
                summary_row(page, test, &runs);
            }
        }
        page.push_str("</tbody>\n");
    }
    page.push_str("</table></div>\n</section>\n");
}

/// The detection runs come first; the runs that explain suspects follow.
fn detection_runs(hunt: &Hunt) -> usize {
    hunt.runs
        .iter()
        .take_while(|r| r.purpose.is_detection())
        .count()
}

/// The page's one rule that depends on the hunt: a line between the detection runs and the runs
/// that explain suspects.
pub(super) fn style(hunt: &Hunt) -> String {
    let detection = detection_runs(hunt);
    if detection == 0 || detection == hunt.runs.len() {
        return String::new();
    }
    format!(
        "table.matrix tr > :nth-child({}) {{ box-shadow: inset 2px 0 #b9a6f3; }}\n",
        detection + 2
    )
}

fn run_header(page: &mut String, run: &Run) {
    let mut title = format!("run {} · {}", run.index, run.purpose.label());
    match &run.purpose {
        Purpose::Alone { test }
        | Purpose::Bisect { test }
        | Purpose::Confirm { test }
        | Purpose::Retry { test } => {
            let _ = write!(title, " for {test}");
        }
        _ => {}
    }
    let _ = write!(
        title,
        " · {} test{} · {:.1} s",
        run.order.len(),
        plural(run.order.len()),
        run.seconds
    );
    if let Some(problem) = &run.problem {
        let _ = write!(title, " · {}", message_head(problem, TOOLTIP_CHARS));
    }
    let class = if run.purpose.is_detection() {
        "det"
    } else {
        "exp"
    };
    let _ = write!(
        page,
        "<th class=\"run {class}{}\" id=\"run-{}\" title=\"{}\"><span>{}{} {}</span></th>",
        if run.problem.is_some() {
            " problem"
        } else {
            ""
        },
        run.index,
        esc(&title),
        if run.problem.is_some() { "⚠ " } else { "" },
        run.index,
        esc(&short_purpose(&run.purpose))
    );
}

fn row_head(page: &mut String, test: &TestSummary) {
    let verdict = verdict_name(test.verdict);
    let ran = test.passed + test.failed + test.skipped;
    let _ = write!(
        page,
        "<tr class=\"v-{verdict}\" data-test=\"{id}\"><th class=\"test\" title=\"{id} · {verdict} · failed {} of {ran}\"><span class=\"count\">{}/{ran}</span><i class=\"dot {verdict}\"></i><code>{id}</code></th>",
        test.failed,
        test.failed,
        id = esc(&test.id),
    );
}

/// One cell per run; failure tooltips only where `tooltips` (the non-stable rows: a stable row's
/// skips say little and would weigh a lot).
fn row(page: &mut String, test: &TestSummary, runs: &[RunIndex], tooltips: bool) {
    row_head(page, test);
    for index in runs {
        let (cell, message) = index.cell(&test.id);
        if cell == Cell::Passed || cell == Cell::NotRun || !tooltips {
            let _ = write!(page, "<td class=\"{}\"></td>", cell.class());
            continue;
        }
        let mut title = format!(
            "#{} {}: {}",
            index.run.index,
            short_purpose(&index.run.purpose),
            cell.word()
        );
        if let Some(message) = message {
            let _ = write!(title, " — {}", message_head(message, TOOLTIP_CHARS));
        }
        let _ = write!(
            page,
            "<td class=\"{}\" title=\"{}\"></td>",
            cell.class(),
            esc(&title)
        );
    }
    page.push_str("</tr>\n");
}

fn summary_row(page: &mut String, test: &TestSummary, runs: &[RunIndex]) {
    row_head(page, test);
    let not_run = runs
        .iter()
        .filter(|r| r.cell(&test.id).0 == Cell::NotRun)
        .count();
    let _ = writeln!(
        page,
        "<td class=\"summary\" colspan=\"{}\">passed {} · skipped {} · not run {not_run}</td></tr>",
        runs.len(),
        test.passed,
        test.skipped
    );
}
