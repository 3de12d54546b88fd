//! Shared helpers for the integration tests: run `analyze` on corpus files in-process and
//! compare its JSON report with exact expectations.

#![allow(dead_code)]

use dbsandbox_diagnose::{analyze_bytes, OutputFormat};
use serde_json::Value;
use std::path::PathBuf;

pub fn corpus_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

pub fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(corpus_path(name)).unwrap_or_else(|e| panic!("reading corpus file {name}: {e}"))
}

/// Exit code, parsed JSON report and stderr of analysing `inputs`.
pub fn analyze_json(inputs: &[(&str, &[u8])]) -> (i32, Value, String) {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = analyze_bytes(inputs, OutputFormat::Json, 10, &mut stdout, &mut stderr);
    let report: Value = serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "report is not JSON ({e}): {}",
            String::from_utf8_lossy(&stdout)
        )
    });
    (code, report, String::from_utf8_lossy(&stderr).into_owned())
}

pub fn analyze_corpus(name: &str) -> (i32, Value, String) {
    let bytes = corpus(name);
    analyze_json(&[(name, &bytes)])
}

/// What the first occurrence of a class must say; `None` means the JSON field must be null.
#[derive(Debug, Default, Clone, Copy)]
pub struct Expect<'a> {
    pub class: &'a str,
    pub count: u64,
    pub line: u64,
    pub test: Option<&'a str>,
    pub code: Option<&'a str>,
    pub constraint: Option<&'a str>,
    pub table: Option<&'a str>,
    pub column: Option<&'a str>,
    pub key_columns: Option<&'a str>,
    pub key_value: Option<&'a str>,
    pub referenced_table: Option<&'a str>,
    pub database: Option<&'a str>,
}

fn text<'v>(value: &'v Value, field: &str) -> Option<&'v str> {
    value.get(field).and_then(Value::as_str)
}

/// Finds a class among findings and consequences.
pub fn class<'v>(report: &'v Value, id: &str) -> Option<&'v Value> {
    report["findings"]
        .as_array()
        .into_iter()
        .chain(report["consequences"].as_array())
        .flatten()
        .find(|f| f["class"] == id)
}

/// Asserts the ranked classes (findings then consequences) are exactly `expected`, in order, and
/// that each matches its expectation in count and first occurrence.
pub fn assert_findings(name: &str, report: &Value, expected: &[Expect<'_>]) {
    let actual: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["consequences"].as_array().unwrap())
        .map(|f| f["class"].as_str().unwrap())
        .collect();
    let wanted: Vec<&str> = expected.iter().map(|e| e.class).collect();
    assert_eq!(actual, wanted, "{name}: classes found");
    for e in expected {
        let finding = class(report, e.class).unwrap();
        assert_eq!(
            finding["count"].as_u64(),
            Some(e.count),
            "{name}: {} count",
            e.class
        );
        let first = &finding["occurrences"][0];
        let context = format!("{name}: first {} occurrence {first}", e.class);
        assert_eq!(first["file"].as_str(), Some(name), "{context}: file");
        assert_eq!(first["line"].as_u64(), Some(e.line), "{context}: line");
        assert_eq!(text(first, "test"), e.test, "{context}: test");
        assert_eq!(text(first, "code"), e.code, "{context}: code");
        assert_eq!(
            text(first, "constraint"),
            e.constraint,
            "{context}: constraint"
        );
        assert_eq!(text(first, "table"), e.table, "{context}: table");
        assert_eq!(text(first, "column"), e.column, "{context}: column");
        assert_eq!(
            first["key"].get("columns").and_then(Value::as_str),
            e.key_columns,
            "{context}: key columns"
        );
        assert_eq!(
            first["key"].get("value").and_then(Value::as_str),
            e.key_value,
            "{context}: key value"
        );
        assert_eq!(
            text(first, "referenced_table"),
            e.referenced_table,
            "{context}: referenced table"
        );
        assert_eq!(text(first, "database"), e.database, "{context}: database");
    }
}

/// Like [`analyze_corpus`], showing up to `max_examples` occurrences per class.
pub fn analyze_corpus_showing(name: &str, max_examples: usize) -> (i32, Value, String) {
    let bytes = corpus(name);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = analyze_bytes(
        &[(name, &bytes)],
        OutputFormat::Json,
        max_examples,
        &mut stdout,
        &mut stderr,
    );
    let report: Value = serde_json::from_slice(&stdout).expect("report is JSON");
    (code, report, String::from_utf8_lossy(&stderr).into_owned())
}

/// Human report of one corpus file.
pub fn analyze_corpus_human(name: &str) -> String {
    let bytes = corpus(name);
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    analyze_bytes(
        &[(name, &bytes)],
        OutputFormat::Human,
        3,
        &mut stdout,
        &mut stderr,
    );
    String::from_utf8_lossy(&stdout).into_owned()
}

/// The classes reported, findings then consequences, in order.
pub fn classes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["consequences"].as_array().unwrap())
        .map(|f| f["class"].as_str().unwrap().to_string())
        .collect()
}

/// `(test, code)` of every occurrence shown for `class`.
pub fn occurrences_of(report: &Value, id: &str) -> Vec<(Option<String>, Option<String>)> {
    class(report, id)
        .map(|f| {
            f["occurrences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    (
                        o["test"].as_str().map(str::to_string),
                        o["code"].as_str().map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
