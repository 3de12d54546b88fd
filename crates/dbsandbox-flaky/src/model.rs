//! The hunt's data: tests, runs, verdicts, findings and evidence, serialised as the
//! `dbsandbox.flaky/v1` JSON document (see `SCHEMA.md` in this crate).

use serde::{Deserialize, Serialize};

/// The JSON document's schema name; fields are only ever added under it.
pub const SCHEMA: &str = "dbsandbox.flaky/v1";

/// A test's full id, as its runner names it (`tests/test_a.py::test_x`, `src/a.test.js::suite > x`).
pub type TestId = String;

/// What one test did in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
    /// Asked for but not reported by the runner (the run crashed, timed out, or filtered it out).
    Missing,
}

impl Outcome {
    pub fn failed(self) -> bool {
        self == Outcome::Failed
    }
    pub fn passed(self) -> bool {
        self == Outcome::Passed
    }
}

/// One test's result in one run, with the runner's failure text when it failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestResult {
    pub id: TestId,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why a run was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Purpose {
    /// The suite in the order it declares.
    Declared,
    /// The declared order once more: tells non-determinism from order dependence.
    Repeat,
    Reversed,
    Shuffled {
        seed: u64,
    },
    /// One suspect on its own.
    Alone {
        test: TestId,
    },
    /// A delta-debugging step: a subset of the tests that ran before `test`, then `test`.
    Bisect {
        test: TestId,
    },
    /// The culprit, then the suspect, with the culprit's leftovers recorded in between.
    Confirm {
        test: TestId,
    },
    /// The failures of a CI run (`--failed-from`), each alone.
    Retry {
        test: TestId,
    },
}

impl Purpose {
    /// Detection runs order the whole suite; the others serve one suspect.
    pub fn is_detection(&self) -> bool {
        matches!(
            self,
            Purpose::Declared | Purpose::Repeat | Purpose::Reversed | Purpose::Shuffled { .. }
        )
    }

    pub fn label(&self) -> String {
        match self {
            Purpose::Declared => "declared order".into(),
            Purpose::Repeat => "declared order again".into(),
            Purpose::Reversed => "reversed order".into(),
            Purpose::Shuffled { seed } => format!("shuffle (seed {seed})"),
            Purpose::Alone { .. } => "alone".into(),
            Purpose::Bisect { .. } => "bisection step".into(),
            Purpose::Confirm { .. } => "confirmation".into(),
            Purpose::Retry { .. } => "retry in a fresh clone".into(),
        }
    }
}

/// One execution of (part of) the suite on a fresh clone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// 1-based, in the order the runs were made.
    pub index: usize,
    #[serde(flatten)]
    pub purpose: Purpose,
    /// The tests asked for, in the order asked for.
    pub order: Vec<TestId>,
    pub results: Vec<TestResult>,
    pub seconds: f64,
    /// The sandbox key the run used (its own fresh clone).
    pub key: String,
    /// Set when the runner itself failed (exit status with no results, a timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Run {
    pub fn outcome_of(&self, test: &str) -> Option<Outcome> {
        self.results
            .iter()
            .find(|r| r.id == test)
            .map(|r| r.outcome)
    }

    pub fn failed(&self, test: &str) -> bool {
        self.outcome_of(test) == Some(Outcome::Failed)
    }

    pub fn passed(&self, test: &str) -> bool {
        self.outcome_of(test) == Some(Outcome::Passed)
    }

    pub fn message_of(&self, test: &str) -> Option<&str> {
        self.results
            .iter()
            .find(|r| r.id == test)
            .and_then(|r| r.message.as_deref())
    }

    /// The tests this run ran before `test`.
    pub fn before(&self, test: &str) -> Vec<TestId> {
        self.order
            .iter()
            .take_while(|t| t.as_str() != test)
            .cloned()
            .collect()
    }
}

/// A test's verdict over the whole hunt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Passes alone and fails after some other test (its polluter).
    Victim,
    /// Fails alone and passes after some other test (its state-setter).
    Brittle,
    /// Differs between identical orders, or in a way no order explains.
    Flaky,
    /// Fails every time, also alone.
    Failing,
    Stable,
}

/// A test's line in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestSummary {
    pub id: TestId,
    pub verdict: Verdict,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// What a culprit left in the database at its end, per table: what the suspect then met.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableEvidence {
    /// `schema.table`.
    pub table: String,
    /// The table's key columns (its primary key, or every column when it has none).
    pub key_columns: Vec<String>,
    /// Rows the culprit left that the template does not have.
    pub inserted: Vec<serde_json::Value>,
    /// Template rows the culprit changed: their keys, with the new values.
    pub updated: Vec<serde_json::Value>,
    /// Template (seed) rows the culprit deleted.
    pub deleted: Vec<serde_json::Value>,
    /// Counts before the lists were cut short (at most a few rows are listed).
    pub inserted_count: usize,
    pub updated_count: usize,
    pub deleted_count: usize,
}

impl TableEvidence {
    pub fn is_empty(&self) -> bool {
        self.inserted_count == 0 && self.updated_count == 0 && self.deleted_count == 0
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Victim,
    Brittle,
    Flaky,
    Failing,
}

/// The database failure behind a suspect's failure text, as `analyze` reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReading {
    /// The analyze class (`unique-violation`, `row-count-assertion`, …) when one matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// `(code)=(WELCOME10)` from a DETAIL line, or the values an assertion compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The first lines of the failure text.
    pub excerpt: String,
}

/// One explained problem: a victim and its polluters, a brittle test and its state-setters, a
/// flaky or a failing test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub test: TestId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub polluters: Vec<TestId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_setters: Vec<TestId>,
    /// What the culprit(s) left behind (victims) or set up (brittle tests), table by table.
    pub evidence: Vec<TableEvidence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureReading>,
    /// One sentence joining the evidence and the failure.
    pub explanation: String,
    pub fix: String,
    /// A shell command that reproduces it on a fresh database: the culprit, then the test.
    pub reproduce: String,
    /// The runs that decided this finding (indices into `runs`).
    pub runs: Vec<usize>,
    /// The connection string of the clone kept by `--keep-failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_database: Option<String>,
}

/// How much of the budget the hunt used, and why it stopped detecting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BudgetUse {
    pub runs_used: usize,
    pub max_runs: usize,
    pub detection_runs: usize,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Why detection stopped: `budget`, `timeout`, `nothing new`, `failed-from`.
    pub detection_stopped: String,
    /// Suspects left unexplained because the budget ran out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unexplained: Vec<TestId>,
}

/// The whole hunt: the `--format json` document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hunt {
    pub schema: String,
    pub runner: String,
    pub command: Vec<String>,
    /// Where the runner cannot order: what it orders instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering_note: Option<String>,
    pub runs: Vec<Run>,
    pub tests: Vec<TestSummary>,
    pub findings: Vec<Finding>,
    pub budget: BudgetUse,
}
