//! Reads a suspect's failure text with the `analyze` machinery (SQLSTATE, constraint, the
//! `DETAIL: Key (col)=(value)` line, count and id assertions) and joins it with the evidence into
//! one sentence, a fix and a reproduction command.

use serde_json::Value;

use crate::model::{FailureReading, Finding, FindingKind, TableEvidence};

/// What `analyze` makes of one failure text, plus the fix it suggests.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub failure: FailureReading,
    /// The analyze class's one-line fix for dbsandbox users, when it has one.
    pub fix: Option<String>,
    /// The key columns and value of a DETAIL line: `("code", "WELCOME10")`.
    pub key: Option<(String, String)>,
    pub table: Option<String>,
}

/// Reads `message` (a test's failure text).
pub fn read_failure(message: &str) -> Reading {
    let mut out = Vec::new();
    let mut err = Vec::new();
    dbsandbox_diagnose::analyze_bytes(
        &[("failure", message.as_bytes())],
        dbsandbox_diagnose::OutputFormat::Json,
        1,
        &mut out,
        &mut err,
    );
    let excerpt = excerpt(message);
    let Ok(doc) = serde_json::from_slice::<Value>(&out) else {
        return Reading {
            failure: FailureReading {
                excerpt,
                ..Default::default()
            },
            ..Default::default()
        };
    };
    // The first primary finding names the database failure; an assertion finding (counts, ids)
    // is the next best.
    let findings = doc["findings"].as_array().cloned().unwrap_or_default();
    let finding = findings
        .iter()
        .find(|f| f["kind"] == "primary")
        .or_else(|| findings.first());
    let Some(finding) = finding else {
        return Reading {
            failure: FailureReading {
                excerpt,
                ..Default::default()
            },
            ..Default::default()
        };
    };
    let occurrence = &finding["occurrences"][0];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let key = occurrence["key"]["columns"]
        .as_str()
        .zip(occurrence["key"]["value"].as_str())
        .map(|(c, v)| (c.to_string(), v.to_string()));
    let code = text(&occurrence["code"]).or_else(|| text(&finding["codes"][0]));
    let fix = finding["integration"]["line"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            finding["fix"]
                .as_array()
                .and_then(|fixes| fixes.iter().find(|f| f["ecosystem"] == "dbsandbox"))
                .and_then(|f| f["steps"][0].as_str())
                .map(str::to_string)
        });
    Reading {
        failure: FailureReading {
            class: text(&finding["class"]),
            sqlstate: code.map(|c| c.trim_start_matches("sqlstate:").to_string()),
            constraint: text(&occurrence["constraint"])
                .or_else(|| text(&finding["constraints"][0])),
            detail: key
                .as_ref()
                .map(|(c, v)| format!("({c})=({v})"))
                .or_else(|| text(&finding["keys"][0])),
            excerpt,
        },
        fix,
        key,
        table: text(&occurrence["table"]).or_else(|| text(&finding["tables"][0])),
    }
}

/// The failure's most telling lines: pytest's `E` lines, else those naming an error or an
/// assertion, else its last lines.
fn excerpt(message: &str) -> String {
    let pytest: Vec<&str> = message
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("E ") || l.starts_with(">  "))
        // pytest's "+  where x = f(…)" lines repeat objects' reprs, not the failure.
        .filter(|l| {
            let l = l.trim_start_matches('E').trim_start();
            !(l.starts_with('+') && l.contains(" where "))
        })
        .take(8)
        .collect();
    let telling: Vec<&str> = message
        .lines()
        .map(str::trim_end)
        .filter(|l| {
            let l = l.trim_start();
            l.starts_with("E ")
                || l.contains("Error")
                || l.contains("error:")
                || l.contains("DETAIL")
                || l.contains("assert")
                || l.contains("Expected")
                || l.contains("Received")
                || l.contains("panicked")
                || l.contains("left:")
                || l.contains("right:")
        })
        .take(8)
        .collect();
    let lines: Vec<&str> = if pytest.iter().any(|l| l.starts_with("E ")) {
        pytest
    } else if telling.is_empty() {
        let all: Vec<&str> = message.lines().collect();
        all[all.len().saturating_sub(6)..].to_vec()
    } else {
        telling
    };
    let mut text = lines.join("\n");
    if text.len() > 1200 {
        let mut cut = 1200;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// `schema.table` without `public.`.
fn short_table(table: &str) -> &str {
    table.strip_prefix("public.").unwrap_or(table)
}

/// One row of evidence as `(col)=(value)`: the columns of the failure's key when the row has
/// them, else the table's key columns.
fn describe_row(row: &Value, table: &TableEvidence, key: Option<&(String, String)>) -> String {
    // An update is {"key", "before", "after"}; other rows are the row itself (whose columns may
    // well be called "key").
    let is_update = row.get("before").is_some() && row.get("after").is_some();
    let row = if is_update {
        match (row.get("key"), row.get("after")) {
            (Some(Value::Object(k)), Some(Value::Object(a))) => {
                let mut merged = k.clone();
                merged.extend(a.clone());
                return describe_row(&Value::Object(merged), table, key);
            }
            _ => row.get("after").unwrap_or(row),
        }
    } else {
        row
    };
    let columns: Vec<String> = match key {
        Some((cols, _)) if cols.split(',').all(|c| row.get(c.trim()).is_some()) => {
            cols.split(',').map(|c| c.trim().to_string()).collect()
        }
        _ => {
            // The key, plus a telling text column or two (a serial id alone says little).
            let mut columns = table.key_columns.clone();
            if let Some(object) = row.as_object() {
                let extra = object
                    .iter()
                    .filter(|(c, v)| v.is_string() && !columns.contains(c))
                    .map(|(c, _)| c.clone())
                    .take(2)
                    .collect::<Vec<_>>();
                columns.extend(extra);
            }
            columns
        }
    };
    let values: Vec<String> = columns
        .iter()
        .map(|c| match row.get(c) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "?".into(),
        })
        .collect();
    format!("({})=({})", columns.join(", "), values.join(", "))
}

/// "left coupons (code)=(WELCOME10)", "deleted products (id)=(3)", "advanced users_id_seq 3 → 4".
fn describe_evidence(evidence: &[TableEvidence], reading: &Reading) -> Option<String> {
    // The table the failure names comes first.
    let mut tables: Vec<&TableEvidence> = evidence.iter().filter(|t| !t.is_empty()).collect();
    if let Some(named) = &reading.table {
        tables.sort_by_key(|t| short_table(&t.table) != short_table(named));
    }
    // A sequence that moved is the story only when no row is (an assumed id): with rows, the
    // ids they took are noise.
    let is_sequence = |t: &&TableEvidence| {
        t.key_columns.is_empty()
            && t.inserted_count == 0
            && t.deleted_count == 0
            && t.updated
                .first()
                .is_some_and(|u| u.get("before").is_some() && u.get("key").is_none())
    };
    if tables.iter().any(|t| !is_sequence(t)) {
        tables.retain(|t| !is_sequence(t));
    }
    let mut parts = Vec::new();
    for table in tables.iter().take(3) {
        let name = short_table(&table.table);
        if let Some(row) = table.inserted.first() {
            let more = table.inserted_count.saturating_sub(1);
            parts.push(format!(
                "left {name} {}{}",
                describe_row(row, table, reading.key.as_ref()),
                if more > 0 {
                    format!(" and {more} more row(s)")
                } else {
                    String::new()
                }
            ));
        } else if let Some(row) = table.deleted.first() {
            parts.push(format!(
                "deleted {name} {}",
                describe_row(row, table, reading.key.as_ref())
            ));
        } else if let Some(row) = table.updated.first() {
            match (row.get("before"), row.get("after")) {
                (Some(b), Some(a)) if b.is_number() || a.is_number() => {
                    let from = if b.is_null() {
                        "its start".to_string()
                    } else {
                        b.to_string()
                    };
                    parts.push(format!("advanced {name} from {from} to {a}"))
                }
                _ => parts.push(format!(
                    "changed {name} {}",
                    describe_row(row, table, reading.key.as_ref())
                )),
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The failure as a clause: "failed with 23505 on coupons_code_key (code)=(WELCOME10)".
fn describe_failure(reading: &Reading) -> String {
    let f = &reading.failure;
    let mut text = String::from("failed");
    if let Some(code) = &f.sqlstate {
        text.push_str(&format!(" with {code}"));
    } else if let Some(class) = &f.class {
        text.push_str(&format!(" ({class})"));
    }
    if let Some(constraint) = &f.constraint {
        text.push_str(&format!(" on {constraint}"));
    }
    if let Some(detail) = &f.detail {
        text.push_str(&format!(" {detail}"));
    }
    if f.sqlstate.is_none() {
        // An assertion: its own line says what was compared ("assert 5 == 4").
        let assertion = f
            .excerpt
            .lines()
            .map(|l| l.trim_start_matches("E ").trim())
            .find(|l| {
                l.starts_with("assert")
                    || l.starts_with("AssertionError")
                    || l.starts_with("Expected")
                    || l.contains("left:")
            });
        if let Some(line) = assertion {
            let line: String = line.chars().take(100).collect();
            text.push_str(&format!(": {line}"));
        }
    }
    text
}

/// Fills a finding's failure, explanation, fix and reproduction command.
pub fn complete(
    finding: &mut Finding,
    evidence: Vec<TableEvidence>,
    message: Option<&str>,
    reproduce: String,
) {
    let reading = message.map(read_failure).unwrap_or_default();
    let culprits = match finding.kind {
        FindingKind::Victim => finding.polluters.join(" and "),
        _ => finding.state_setters.join(" and "),
    };
    let left = describe_evidence(&evidence, &reading);
    finding.explanation = match finding.kind {
        FindingKind::Victim => format!(
            "{culprits} {}; {} then {} (it passes alone and on a fresh database)",
            left.unwrap_or_else(|| "ran before it".into()),
            finding.test,
            describe_failure(&reading)
        ),
        FindingKind::Brittle => {
            let how = describe_failure(&reading);
            let how = how
                .trim_start_matches("failed")
                .trim_start_matches(':')
                .trim();
            format!(
                "{} fails alone{} and passes after {culprits}, which {}: it depends on state \
                 another test sets up",
                finding.test,
                if how.is_empty() {
                    String::new()
                } else {
                    format!(" ({how})")
                },
                left.unwrap_or_else(|| "runs before it".into()),
            )
        }
        _ => std::mem::take(&mut finding.explanation),
    };
    finding.fix = match finding.kind {
        FindingKind::Victim => format!(
            "Isolate each test's writes: {} Or give the test its own data (unique values, no \
             assumed ids or counts).",
            reading.fix.clone().unwrap_or_else(|| {
                "run the suite on rollback sandboxes (one key per test, reset between tests: \
                 the pytest plugin, @dbsandbox/node or #[dbsandbox::test])."
                    .into()
            })
        ),
        FindingKind::Brittle => format!(
            "Make {} create what it needs itself (a fixture or its own setup) instead of relying \
             on {culprits} running first.",
            finding.test
        ),
        FindingKind::Flaky => "Not order-dependent: look for timing, randomness, the clock or \
             unordered results (ORDER BY) in the test; rerunning it alone shows it."
            .into(),
        FindingKind::Failing => "It fails on a fresh database by itself: fix the test or the \
             code under test; order has nothing to do with it."
            .into(),
    };
    finding.failure = message.map(|_| reading.failure);
    finding.evidence = evidence;
    finding.reproduce = reproduce;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn joins_the_evidence_and_the_failure() {
        let message = "E   psycopg.errors.UniqueViolation: duplicate key value violates unique \
                       constraint \"coupons_code_key\"\nE   DETAIL:  Key (code)=(WELCOME10) already exists.";
        let mut finding = Finding {
            kind: FindingKind::Victim,
            test: "tests/test_a.py::test_apply".into(),
            polluters: vec!["tests/test_b.py::test_create".into()],
            state_setters: vec![],
            evidence: vec![],
            failure: None,
            explanation: String::new(),
            fix: String::new(),
            reproduce: String::new(),
            runs: vec![],
            kept_database: None,
        };
        let evidence = vec![TableEvidence {
            table: "public.coupons".into(),
            key_columns: vec!["id".into()],
            inserted: vec![json!({"id": 7, "code": "WELCOME10"})],
            inserted_count: 1,
            ..Default::default()
        }];
        complete(&mut finding, evidence, Some(message), "x".into());
        assert_eq!(
            finding.explanation,
            "tests/test_b.py::test_create left coupons (code)=(WELCOME10); \
             tests/test_a.py::test_apply then failed with 23505 on coupons_code_key \
             (code)=(WELCOME10) (it passes alone and on a fresh database)"
        );
        let failure = finding.failure.unwrap();
        assert_eq!(failure.class.as_deref(), Some("unique-violation"));
        assert!(failure.excerpt.contains("DETAIL"), "{}", failure.excerpt);
    }

    #[test]
    fn brittle_tests_name_the_row_their_setter_left_and_the_assertion() {
        let mut finding = Finding {
            kind: FindingKind::Brittle,
            test: "t::banner".into(),
            polluters: vec![],
            state_setters: vec!["t::enable".into()],
            evidence: vec![],
            failure: None,
            explanation: String::new(),
            fix: String::new(),
            reproduce: String::new(),
            runs: vec![],
            kept_database: None,
        };
        // A settings table whose key column is called "key".
        let evidence = vec![TableEvidence {
            table: "public.settings".into(),
            key_columns: vec!["key".into()],
            inserted: vec![json!({"key": "feature_x", "value": "on"})],
            inserted_count: 1,
            ..Default::default()
        }];
        let message = "    def test_banner(db):\n>       assert row is not None\nE       assert None is not None\n";
        complete(&mut finding, evidence, Some(message), "x".into());
        assert_eq!(
            finding.explanation,
            "t::banner fails alone (assert None is not None) and passes after t::enable, which \
             left settings (key, value)=(feature_x, on): it depends on state another test sets up"
        );
    }
}
