//! The `--html` report: its markup checked directly, then the page opened in a real headless
//! Chromium (the DOM it rendered, and a screenshot), and its size for a 2,000-test × 80-run hunt.
//!
//! The Chromium tests skip with a printed reason only when no browser is installed (`chromium`,
//! `chromium-browser`, `google-chrome` on PATH, or `$CHROMIUM`). Set
//! `FLAKY_REPORT_SCREENSHOT=docs/flaky-report.png` to keep the screenshot of the sample hunt (and
//! its page, as `.html` beside it), `FLAKY_REPORT_WINDOW=1400,2000` for another window size.

use std::path::{Path, PathBuf};
use std::process::Command;

use dbsandbox_flaky::model::{
    BudgetUse, FailureReading, Finding, FindingKind, Hunt, Outcome, Purpose, Run, TableEvidence,
    TestResult, TestSummary, Verdict, SCHEMA,
};
use dbsandbox_flaky::report::html::html_report;
use serde_json::json;

const VICTIM: &str = "tests/test_coupons.py::test_apply_welcome_coupon";
const POLLUTER: &str = "tests/test_coupons.py::test_create_welcome_coupon";
const BRITTLE: &str = "tests/test_orders.py::test_order_total_includes_tax";
const SETTER: &str = "tests/test_settings.py::test_set_default_tax_rate";
const FLAKY: &str = "tests/test_sessions.py::test_token_expires_after_ttl";
const FAILING: &str = "tests/test_reports.py::test_monthly_export";
const SKIPPED: &str = "tests/test_search.py::test_fulltext_ranking";
const HOSTILE: &str = "tests/test_evil.py::test_<script>document.title='pwned'</script>";
/// A row value and a failure text are as untrusted as a test name.
const HOSTILE_VALUE: &str = "</td><img src=x onerror=\"document.title='pwned'\">";

const UNIQUE_FAILURE: &str = "psycopg.errors.UniqueViolation: duplicate key value violates unique constraint \"coupons_code_key\"\nDETAIL:  Key (code)=(WELCOME10) already exists.";
const TAX_FAILURE: &str = "AssertionError: assert Decimal('20.00') == Decimal('24.00')\n +  where Decimal('20.00') = order.total";
const FLAKY_FAILURE: &str = "AssertionError: token expired 1 s early: assert 3599 == 3600";
const EXPORT_FAILURE: &str = "psycopg.errors.UndefinedColumn: column \"exported_at\" does not exist\nLINE 1: SELECT id, exported_at FROM invoices";

/// The suite in declared order: 40 stable tests around the planted ones. The victim runs before
/// its polluter and the brittle test after its state-setter, so the declared order is green but
/// for the failing test.
fn declared(hostile: bool) -> Vec<String> {
    let files = ["test_catalog", "test_users", "test_cart", "test_invoices"];
    let mut tests: Vec<String> = (0..40)
        .map(|i| format!("tests/{}.py::test_case_{i:02}", files[i % files.len()]))
        .collect();
    tests[7] = SKIPPED.into();
    tests.insert(3, VICTIM.into());
    tests.insert(12, POLLUTER.into());
    tests.insert(15, SETTER.into());
    tests.insert(24, BRITTLE.into());
    tests.insert(30, FLAKY.into());
    tests.insert(35, FAILING.into());
    if hostile {
        tests.insert(5, HOSTILE.into());
    }
    tests
}

/// What the planted suite does in `order` (run `index`): the victim fails after its polluter,
/// the brittle test fails without its state-setter, the flaky test fails in runs 2 and 5.
fn outcome(order: &[String], index: usize, test: &str) -> (Outcome, Option<String>) {
    let before = |other: &str| {
        let at = |t: &str| order.iter().position(|x| x == t);
        matches!((at(other), at(test)), (Some(a), Some(b)) if a < b)
    };
    let failed = |message: &str| (Outcome::Failed, Some(message.to_string()));
    match test {
        VICTIM if before(POLLUTER) => failed(UNIQUE_FAILURE),
        BRITTLE if !before(SETTER) => failed(TAX_FAILURE),
        FLAKY if index == 2 || index == 5 => failed(FLAKY_FAILURE),
        HOSTILE => (Outcome::Passed, Some(HOSTILE_VALUE.into())),
        FAILING => failed(EXPORT_FAILURE),
        SKIPPED => (Outcome::Skipped, Some("requires a search server".into())),
        _ => (Outcome::Passed, None),
    }
}

fn run(index: usize, purpose: Purpose, order: Vec<String>) -> Run {
    let results = order
        .iter()
        .map(|id| {
            let (outcome, message) = outcome(&order, index, id);
            TestResult {
                id: id.clone(),
                outcome,
                message,
            }
        })
        .collect();
    Run {
        index,
        purpose,
        seconds: 0.3 + order.len() as f64 * 0.05,
        key: format!("flaky-7f3a-{index}"),
        order,
        results,
        problem: None,
    }
}

/// A hand-built hunt of a planted pytest suite: 15 runs, a victim with its polluter and the
/// `coupons` row it left, a brittle test with its state-setter, a flaky and a failing test.
fn sample_hunt(hostile: bool) -> Hunt {
    let tests = declared(hostile);
    let shuffle = |seed: u64| dbsandbox_flaky::plan::shuffled(&tests, seed);
    let before = |test: &str, order: &[String]| {
        let mut o: Vec<String> = order.iter().take_while(|t| *t != test).cloned().collect();
        o.push(test.into());
        o
    };
    let reversed: Vec<String> = tests.iter().rev().cloned().collect();
    let victim_bisect = before(VICTIM, &reversed);
    let half: Vec<String> = victim_bisect[victim_bisect.len() / 2..].to_vec();
    let quarter: Vec<String> = half[half.len() / 2..].to_vec();
    let mut orders = vec![
        (Purpose::Declared, tests.clone()),
        (Purpose::Repeat, tests.clone()),
        (Purpose::Reversed, reversed.clone()),
        (Purpose::Shuffled { seed: 42 }, shuffle(42)),
        (Purpose::Shuffled { seed: 43 }, shuffle(43)),
        (Purpose::Shuffled { seed: 44 }, shuffle(44)),
    ];
    let victim = || VICTIM.to_string();
    let brittle = || BRITTLE.to_string();
    orders.extend([
        (Purpose::Alone { test: victim() }, vec![victim()]),
        (Purpose::Bisect { test: victim() }, half),
        (Purpose::Bisect { test: victim() }, quarter),
        (
            Purpose::Confirm { test: victim() },
            vec![POLLUTER.into(), victim()],
        ),
        (Purpose::Alone { test: brittle() }, vec![brittle()]),
        (
            Purpose::Bisect { test: brittle() },
            before(BRITTLE, &tests)[10..].to_vec(),
        ),
        (
            Purpose::Confirm { test: brittle() },
            vec![SETTER.into(), brittle()],
        ),
        (
            Purpose::Alone {
                test: FLAKY.to_string(),
            },
            vec![FLAKY.into()],
        ),
        (
            Purpose::Alone {
                test: FAILING.to_string(),
            },
            vec![FAILING.into()],
        ),
    ]);
    let runs: Vec<Run> = orders
        .into_iter()
        .enumerate()
        .map(|(i, (purpose, order))| run(i + 1, purpose, order))
        .collect();
    let summaries = tests
        .iter()
        .map(|id| {
            let count = |o: Outcome| runs.iter().filter(|r| r.outcome_of(id) == Some(o)).count();
            TestSummary {
                id: id.clone(),
                verdict: match id.as_str() {
                    VICTIM => Verdict::Victim,
                    BRITTLE => Verdict::Brittle,
                    FLAKY => Verdict::Flaky,
                    FAILING => Verdict::Failing,
                    _ => Verdict::Stable,
                },
                passed: count(Outcome::Passed),
                failed: count(Outcome::Failed),
                skipped: count(Outcome::Skipped),
            }
        })
        .collect();
    let runs_of = |test: &str| -> Vec<usize> {
        runs.iter()
            .filter(|r| r.outcome_of(test).is_some())
            .map(|r| r.index)
            .collect()
    };
    let reproduce = |first: &str, then: &str| {
        format!("dbsandbox run --isolation database -- python -m pytest -p dbsandbox_order -p no:randomly {first} {then}")
    };
    let findings = vec![
        Finding {
            kind: FindingKind::Failing,
            test: FAILING.into(),
            polluters: vec![],
            state_setters: vec![],
            evidence: vec![],
            failure: Some(FailureReading {
                class: Some("undefined-column".into()),
                sqlstate: Some("42703".into()),
                constraint: None,
                detail: None,
                excerpt: EXPORT_FAILURE.into(),
            }),
            explanation: format!("{FAILING} fails in every run, also alone on a fresh clone: its own bug, not the order."),
            fix: "Add the missing migration for invoices.exported_at, or fix the query.".into(),
            reproduce: format!("dbsandbox run --isolation database -- python -m pytest {FAILING}"),
            runs: runs_of(FAILING),
            kept_database: None,
        },
        Finding {
            kind: FindingKind::Victim,
            test: VICTIM.into(),
            polluters: vec![POLLUTER.into()],
            state_setters: vec![],
            evidence: vec![TableEvidence {
                table: "public.coupons".into(),
                key_columns: vec!["id".into()],
                inserted: vec![if hostile {
                    json!({"id": 101, "code": "WELCOME10", "percent_off": 10, "expires_at": null, "note": HOSTILE_VALUE})
                } else {
                    json!({"id": 101, "code": "WELCOME10", "percent_off": 10, "expires_at": null})
                }],
                inserted_count: 1,
                ..TableEvidence::default()
            }],
            failure: Some(FailureReading {
                class: Some("unique-violation".into()),
                sqlstate: Some("23505".into()),
                constraint: Some("coupons_code_key".into()),
                detail: Some("(code)=(WELCOME10)".into()),
                excerpt: UNIQUE_FAILURE.into(),
            }),
            explanation: format!("{POLLUTER} left coupons (code)=(WELCOME10); {VICTIM} then failed with 23505 on coupons_code_key (code)=(WELCOME10)."),
            fix: "Give each test its own data: run the suite in rollback sandboxes (dbsandbox run --isolation sandbox), or make the coupon code unique per test.".into(),
            reproduce: reproduce(POLLUTER, VICTIM),
            runs: runs_of(VICTIM),
            kept_database: Some("postgresql://postgres@127.0.0.1:54329/flaky_7f3a_10".into()),
        },
        Finding {
            kind: FindingKind::Brittle,
            test: BRITTLE.into(),
            polluters: vec![],
            state_setters: vec![SETTER.into()],
            evidence: vec![TableEvidence {
                table: "public.settings".into(),
                key_columns: vec!["name".into()],
                inserted: vec![json!({"name": "default_tax_rate", "value": "0.20"})],
                inserted_count: 1,
                updated: vec![json!({"name": "currency", "value": "EUR"})],
                updated_count: 1,
                ..TableEvidence::default()
            }],
            failure: Some(FailureReading {
                class: Some("value-assertion".into()),
                detail: Some("Decimal('20.00') == Decimal('24.00')".into()),
                excerpt: TAX_FAILURE.into(),
                ..FailureReading::default()
            }),
            explanation: format!("{BRITTLE} fails alone; it passes only after {SETTER}, which inserts settings (name)=(default_tax_rate)."),
            fix: "Make the test set up the tax rate it needs (a fixture or the template's seed data).".into(),
            reproduce: format!("dbsandbox run --isolation database -- python -m pytest {BRITTLE}"),
            runs: runs_of(BRITTLE),
            kept_database: None,
        },
        Finding {
            kind: FindingKind::Flaky,
            test: FLAKY.into(),
            polluters: vec![],
            state_setters: vec![],
            evidence: vec![],
            failure: Some(FailureReading {
                excerpt: FLAKY_FAILURE.into(),
                ..FailureReading::default()
            }),
            explanation: format!("{FLAKY} is flaky: it failed in the declared order once and passed in it once (passed 5, failed 2 of 7 runs)."),
            fix: "Freeze the clock in the test instead of comparing against now().".into(),
            reproduce: format!("dbsandbox run --isolation database -- python -m pytest {FLAKY}"),
            runs: runs_of(FLAKY),
            kept_database: None,
        },
    ];
    Hunt {
        schema: SCHEMA.into(),
        runner: "pytest".into(),
        command: vec![
            "python".into(),
            "-m".into(),
            "pytest".into(),
            "tests/".into(),
        ],
        ordering_note: None,
        budget: BudgetUse {
            runs_used: runs.len(),
            max_runs: 6 + 2 * 2 * 9,
            detection_runs: 6,
            seconds: 14.8,
            timeout_seconds: Some(600.0),
            detection_stopped: "nothing new".into(),
            unexplained: vec![],
        },
        runs,
        tests: summaries,
        findings,
    }
}

fn failures_of(hunt: &Hunt, test: &str) -> usize {
    hunt.runs.iter().filter(|r| r.failed(test)).count()
}

/// The `<tr>` of `test` in the matrix, as markup.
fn matrix_row<'a>(html: &'a str, escaped_test: &str) -> &'a str {
    let marker = format!("data-test=\"{escaped_test}\"><th class=\"test\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no matrix row for {escaped_test}"));
    let end = start + html[start..].find("</tr>").expect("row ends");
    &html[start..end]
}

/// The number of failed cells in each row, from a page (ours or the browser's DOM).
fn assert_matrix(html: &str, hunt: &Hunt) {
    let expected = [(VICTIM, 7), (BRITTLE, 2), (FLAKY, 2), (FAILING, 7)];
    for (test, fails) in expected {
        assert_eq!(failures_of(hunt, test), fails, "the sample hunt for {test}");
        let row = matrix_row(html, test);
        assert_eq!(
            row.matches("<td class=\"f\"").count(),
            fails,
            "failed cells of {test} in {row}"
        );
        assert_eq!(
            row.matches("<td class=").count(),
            hunt.runs.len(),
            "one cell per run for {test}"
        );
    }
    assert_eq!(
        html.matches("<td class=\"f\"").count(),
        18,
        "no other failed cells"
    );
    let row = matrix_row(html, VICTIM);
    assert!(
        row.contains("duplicate key value violates unique constraint"),
        "a failed cell's tooltip has the failure's first line: {row}"
    );
    let row = matrix_row(html, SKIPPED);
    assert_eq!(row.matches("<td class=\"s\"").count(), 8, "{row}");
}

fn assert_evidence(html: &str) {
    let start = html
        .find("<table class=\"rows inserted\" data-table=\"public.coupons\"")
        .expect("the coupons evidence table");
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    for needle in [
        "<th class=\"key\">id</th>",
        "<th>code</th>",
        "<td>WELCOME10</td>",
        "<td class=\"num\">101</td>",
        "<td class=\"null\">NULL</td>",
    ] {
        assert!(table.contains(needle), "{needle} in {table}");
    }
    assert!(html.contains("data-table=\"public.settings\" data-change=\"updated\""));
}

#[test]
fn the_page_has_every_section_and_escapes_test_names() {
    let hunt = sample_hunt(true);
    let html = html_report(&hunt);
    for section in [
        "<header class=\"top\">",
        "<section id=\"findings\">",
        "<section id=\"graph\">",
        "<section id=\"matrix\">",
        "<svg class=\"graph\"",
    ] {
        assert!(html.contains(section), "{section}");
    }
    // Header: runner, command, runs of the budget, wall time, verdict counts.
    assert!(html.contains("<dt>runner</dt><dd>pytest</dd>"));
    assert!(html.contains("<code>python -m pytest tests/</code>"));
    assert!(html.contains("<dt>runs</dt><dd>15 <span class=\"muted\">of 42 budget</span>"));
    assert!(
        html.contains("<dd>14.8 s <span class=\"muted\">of 600 s</span>")
            || html.contains("14.8 s <span class=\"muted\">of 10 min 00 s</span>")
    );
    assert!(html.contains("data-verdict=\"stable\"><b>43</b> stable"));
    assert!(html.contains("data-verdict=\"victim\"><b>1</b> victim"));
    // Findings ranked: victim, brittle, flaky, failing, whatever the hunt's order.
    let at = |needle: &str| html.find(needle).unwrap_or_else(|| panic!("{needle}"));
    assert!(at("class=\"finding victim\"") < at("class=\"finding brittle\""));
    assert!(at("class=\"finding brittle\"") < at("class=\"finding flaky\""));
    assert!(at("class=\"finding flaky\"") < at("class=\"finding failing\""));
    assert!(html.contains("<dt>SQLSTATE</dt><dd><code>23505</code>"));
    assert!(html.contains("<dt>constraint</dt><dd><code>coupons_code_key</code>"));
    assert!(html.contains("<dt>detail</dt><dd><code>(code)=(WELCOME10)</code>"));
    assert!(html.contains("DETAIL:  Key (code)=(WELCOME10) already exists."));
    assert!(html.contains(&format!("<div class=\"culprits polluter\"><span class=\"label\">Polluter</span><ul><li><code>{POLLUTER}</code>")));
    assert!(html.contains(&format!("<div class=\"culprits setter\"><span class=\"label\">State-setter</span><ul><li><code>{SETTER}</code>")));
    assert!(html.contains(&format!("<code id=\"repro-1\">dbsandbox run --isolation database -- python -m pytest -p dbsandbox_order -p no:randomly {POLLUTER} {VICTIM}</code>")));
    assert!(html.contains("data-copy=\"repro-1\""));
    assert_evidence(&html);
    assert_matrix(&html, &hunt);
    // The graph: one polluter edge labelled coupons, one dashed state-setter edge.
    assert_eq!(html.matches("<path class=\"edge polluter\"").count(), 1);
    assert_eq!(html.matches("<path class=\"edge setter\"").count(), 1);
    assert!(html.contains(">public.coupons</text>"));
    assert!(html.contains(">public.settings</text>"));
    // Run columns are labelled with their index and purpose.
    for label in [
        "3 reversed",
        "4 shuffle 42",
        "8 bisect",
        "10 confirm",
        "7 alone",
    ] {
        assert!(html.contains(&format!("<span>{label}</span>")), "{label}");
    }
    // The hostile name is text everywhere, never markup.
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(html.contains("test_&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(!html.contains("<script>document"));
    assert!(!html.contains("<img"), "a row value is text");
    assert!(html.contains(
        "<td>&lt;/td&gt;&lt;img src=x onerror=&quot;document.title=&#39;pwned&#39;&quot;&gt;</td>"
    ));
    // Self-contained: nothing to fetch, so it works offline.
    let html = html_report(&sample_hunt(false));
    for reference in ["<link", " src=", "@import", "url(http", "https://", "//cdn"] {
        assert!(!html.contains(reference), "{reference} in the page");
    }
    assert_eq!(html.matches("http://").count(), 1, "only the SVG namespace");
}

#[test]
fn a_hunt_without_findings_still_renders() {
    let mut hunt = sample_hunt(false);
    hunt.findings.clear();
    for test in &mut hunt.tests {
        test.verdict = Verdict::Stable;
    }
    let html = html_report(&hunt);
    assert!(html.contains("Nothing found"));
    assert!(html.contains("No polluter or state-setter was found."));
    assert!(html.contains("No test failed in any run."));
}

/// 2,000 tests × 80 runs (10 whole-suite runs, 70 bisection steps over halves of it), 5 victims
/// with multi-line failures.
fn big_hunt() -> Hunt {
    let tests: Vec<String> = (0..2000)
        .map(|i| {
            format!(
                "tests/suite_{:02}/test_module_{:03}.py::test_behaviour_number_{i:04}",
                i % 37,
                i % 211
            )
        })
        .collect();
    let victims: Vec<&String> = tests.iter().step_by(401).take(5).collect();
    let traceback = format!(
        "{UNIQUE_FAILURE}\n{}",
        "    at some/frame.py:123 in helper\n".repeat(20)
    );
    let make_run = |index: usize, purpose: Purpose, order: Vec<String>| {
        let results = order
            .iter()
            .map(|id| {
                let fails = victims.contains(&id) && index.is_multiple_of(3);
                TestResult {
                    id: id.clone(),
                    outcome: if fails {
                        Outcome::Failed
                    } else {
                        Outcome::Passed
                    },
                    message: fails.then(|| traceback.clone()),
                }
            })
            .collect();
        Run {
            index,
            purpose,
            seconds: 31.0,
            key: format!("k{index}"),
            order,
            results,
            problem: None,
        }
    };
    let mut runs = Vec::new();
    for index in 1..=80 {
        let (purpose, order) = if index <= 10 {
            (
                Purpose::Shuffled { seed: index as u64 },
                dbsandbox_flaky::plan::shuffled(&tests, index as u64),
            )
        } else {
            let victim = victims[index % 5].clone();
            let mut order: Vec<String> = tests.iter().skip(index % 2).step_by(2).cloned().collect();
            order.push(victim.clone());
            (Purpose::Bisect { test: victim }, order)
        };
        runs.push(make_run(index, purpose, order));
    }
    let mut counts: std::collections::HashMap<&str, (usize, usize)> = Default::default();
    for result in runs.iter().flat_map(|r| &r.results) {
        let count = counts.entry(result.id.as_str()).or_default();
        match result.outcome {
            Outcome::Passed => count.0 += 1,
            _ => count.1 += 1,
        }
    }
    let summaries: Vec<TestSummary> = tests
        .iter()
        .map(|id| TestSummary {
            id: id.clone(),
            verdict: if victims.contains(&id) {
                Verdict::Victim
            } else {
                Verdict::Stable
            },
            passed: counts[id.as_str()].0,
            failed: counts[id.as_str()].1,
            skipped: 0,
        })
        .collect();
    let findings = victims
        .iter()
        .map(|v| Finding {
            kind: FindingKind::Victim,
            test: (*v).clone(),
            polluters: vec![tests[7].clone(), tests[8].clone()],
            state_setters: vec![],
            evidence: vec![TableEvidence {
                table: "public.users".into(),
                key_columns: vec!["id".into()],
                inserted: (0..5)
                    .map(|i| json!({"id": i, "email": format!("u{i}@example.com")}))
                    .collect(),
                inserted_count: 40,
                ..TableEvidence::default()
            }],
            failure: Some(FailureReading {
                excerpt: traceback.clone(),
                ..FailureReading::default()
            }),
            explanation: "left users rows".into(),
            fix: "use rollback sandboxes".into(),
            reproduce: format!("pytest {} {v}", tests[7]),
            runs: (1..=80).collect(),
            kept_database: None,
        })
        .collect();
    Hunt {
        schema: SCHEMA.into(),
        runner: "pytest".into(),
        command: vec!["pytest".into()],
        ordering_note: None,
        runs,
        tests: summaries,
        findings,
        budget: BudgetUse {
            runs_used: 80,
            max_runs: 150,
            detection_runs: 10,
            seconds: 2480.0,
            ..BudgetUse::default()
        },
    }
}

/// A row for each of the big hunt's tests, a cell per run for its victims.
fn assert_big_page(html: &str, hunt: &Hunt) {
    let rows: std::collections::HashSet<&str> = html
        .split("<tr class=\"v-")
        .skip(1)
        .filter_map(|row| row.split("data-test=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(rows.len(), 2000);
    assert!(
        hunt.tests.iter().all(|t| rows.contains(t.id.as_str())),
        "a row per test"
    );
    for victim in hunt.findings.iter().map(|f| &f.test) {
        let row = matrix_row(html, victim);
        assert_eq!(
            row.matches("<td class=").count(),
            80,
            "a cell per run for a victim"
        );
    }
    assert!(html.contains("1995 stable tests"));
}

#[test]
fn a_two_thousand_test_hunt_stays_under_two_megabytes() {
    let hunt = big_hunt();
    let html = html_report(&hunt);
    println!("2,000 tests × 80 runs: {} bytes", html.len());
    assert!(html.len() < 2_000_000, "{} bytes", html.len());
    assert_big_page(&html, &hunt);
}

fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

fn chromium(browser: &Path, profile: &Path, args: &[&str], page: &Path) -> std::process::Output {
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .args(["--no-first-run", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn chromium_renders_the_matrix_and_the_evidence() {
    let Some(browser) = find_chromium() else {
        println!("SKIPPED: no chromium found (chromium, chromium-browser, google-chrome on PATH, or $CHROMIUM)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hunt = sample_hunt(true);
    let page = dir.path().join("hostile.html");
    std::fs::write(&page, html_report(&hunt)).unwrap();
    let output = chromium(
        &browser,
        &dir.path().join("profile"),
        &["--dump-dom"],
        &page,
    );
    let dom = String::from_utf8(output.stdout).expect("utf-8 DOM");
    assert!(
        dom.contains("<section id=\"matrix\">"),
        "the browser's DOM: {dom:.2000}"
    );
    assert_matrix(&dom, &hunt);
    assert_evidence(&dom);
    // The inline script ran (it reveals the copy buttons), the hostile test name did not.
    assert!(
        dom.contains("<button type=\"button\" class=\"copy\" data-copy=\"repro-1\">Copy</button>"),
        "copy buttons shown by the script"
    );
    assert!(
        !dom.contains("pwned</title>"),
        "the hostile name's script ran"
    );
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the page's own script element"
    );
    assert!(!dom.contains("<img"), "a row value is text");
    assert!(dom.contains("test_&lt;script&gt;document.title='pwned'&lt;/script&gt;"));
}

#[test]
fn chromium_renders_the_two_thousand_test_page() {
    let Some(browser) = find_chromium() else {
        println!("SKIPPED: no chromium found (chromium, chromium-browser, google-chrome on PATH, or $CHROMIUM)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hunt = big_hunt();
    let page = dir.path().join("big.html");
    std::fs::write(&page, html_report(&hunt)).unwrap();
    let output = chromium(
        &browser,
        &dir.path().join("profile"),
        &["--dump-dom"],
        &page,
    );
    let dom = String::from_utf8(output.stdout).expect("utf-8 DOM");
    assert_big_page(&dom, &hunt);
}

#[test]
fn chromium_takes_a_screenshot_of_the_report() {
    let Some(browser) = find_chromium() else {
        println!("SKIPPED: no chromium found (chromium, chromium-browser, google-chrome on PATH, or $CHROMIUM)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html_report(&sample_hunt(false))).unwrap();
    let png = dir.path().join("report.png");
    let size = std::env::var("FLAKY_REPORT_WINDOW").unwrap_or_else(|_| "1400,1000".into());
    chromium(
        &browser,
        &dir.path().join("profile"),
        &[
            &format!("--screenshot={}", png.display()),
            &format!("--window-size={size}"),
        ],
        &page,
    );
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width >= 1000 && height >= 700, "{width}×{height}");
    // A blank or failed page compresses to a few kB; the report's text and colours do not.
    assert!(bytes.len() > 40_000, "{} bytes", bytes.len());
    if let Some(keep) = std::env::var_os("FLAKY_REPORT_SCREENSHOT") {
        std::fs::copy(&png, &keep).unwrap();
        std::fs::copy(&page, Path::new(&keep).with_extension("html")).unwrap();
    }
}
