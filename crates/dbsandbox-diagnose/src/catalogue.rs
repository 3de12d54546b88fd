//! The failure-class catalogue: playbooks as TOML data files.
//!
//! Each playbook names one class of database failure (its id, SQLSTATE and vendor codes, the
//! literal triggers the fast prefilter looks for, the regular expressions that confirm a match and
//! extract details, a diagnosis, fix steps per ecosystem and how to validate the fix). The built-in
//! playbooks live in `playbooks/*.toml` and are compiled in with `include_str!`; users add or
//! override classes with `--playbooks DIR`, where a file with the same `id` replaces the built-in.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The built-in playbook files, in the order they are listed by `explain --list`.
const BUILTIN_PLAYBOOKS: &[(&str, &str)] = &[
    (
        "unique-violation.toml",
        include_str!("../playbooks/unique-violation.toml"),
    ),
    (
        "foreign-key-violation.toml",
        include_str!("../playbooks/foreign-key-violation.toml"),
    ),
    ("deadlock.toml", include_str!("../playbooks/deadlock.toml")),
    (
        "serialization-failure.toml",
        include_str!("../playbooks/serialization-failure.toml"),
    ),
    (
        "lock-timeout.toml",
        include_str!("../playbooks/lock-timeout.toml"),
    ),
    (
        "connection-exhaustion.toml",
        include_str!("../playbooks/connection-exhaustion.toml"),
    ),
    (
        "schema-drift.toml",
        include_str!("../playbooks/schema-drift.toml"),
    ),
    (
        "unmigrated-database.toml",
        include_str!("../playbooks/unmigrated-database.toml"),
    ),
    (
        "database-in-use.toml",
        include_str!("../playbooks/database-in-use.toml"),
    ),
    (
        "pending-trigger-events.toml",
        include_str!("../playbooks/pending-trigger-events.toml"),
    ),
    (
        "statement-timeout.toml",
        include_str!("../playbooks/statement-timeout.toml"),
    ),
    (
        "aborted-transaction.toml",
        include_str!("../playbooks/aborted-transaction.toml"),
    ),
    (
        "leaked-rows-assertion.toml",
        include_str!("../playbooks/leaked-rows-assertion.toml"),
    ),
    (
        "unclassified-database-error.toml",
        include_str!("../playbooks/unclassified-database-error.toml"),
    ),
];

/// The class every database error with no playbook of its own is reported under.
pub const UNCLASSIFIED: &str = "unclassified-database-error";
/// The class a schema-drift 42P01 becomes when the missing table is one the migrations create.
pub const UNMIGRATED: &str = "unmigrated-database";
/// The class that 42P01 comes from before that reclassification.
pub const SCHEMA_DRIFT: &str = "schema-drift";

/// How a class takes part in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A database error in its own right; ranked in the report.
    #[default]
    Primary,
    /// An error caused by an earlier one (25P02); reported pointing at that earlier error.
    Consequence,
    /// A test assertion whose wording suggests leaked rows or assumed IDs; ranked after primaries.
    Assertion,
}

/// One failure class, exactly as written in its TOML file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Stable identifier used by `explain ID` and in JSON output, e.g. `unique-violation`.
    pub id: String,
    /// One-line human title.
    pub title: String,
    #[serde(default)]
    pub kind: Kind,
    /// Normalised codes, `namespace:code`: `sqlstate:23505`, `mysql:1062`, `sqlite:...`, `prisma:P2002`.
    #[serde(default)]
    pub codes: Vec<String>,
    /// Literal substrings; a line is examined in detail only if it contains one of them
    /// (of any playbook). Every pattern example must contain a trigger.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// Regular expressions (Rust `regex` syntax, matched against one ANSI-stripped line).
    /// Named groups `constraint`, `table`, `column`, `columns`, `value` are extracted.
    #[serde(default, rename = "pattern")]
    pub patterns: Vec<Pattern>,
    /// One paragraph: what the class usually means in a test suite.
    pub diagnosis: String,
    #[serde(default)]
    pub fix: Vec<Fix>,
    /// How to check that the fix worked.
    pub validate: String,
    /// Whether giving every test its own database state removes this class (leaked rows,
    /// locks held across tests): the report then names the dbsandbox integration line for the
    /// stack the log comes from, since `dbsandbox run` alone shares one sandbox key.
    #[serde(default)]
    pub isolation: bool,
    /// Lines that look close but must not match this class (checked by the test suite and by
    /// playbook validation).
    #[serde(default)]
    pub near_misses: Vec<String>,
}

/// A regular expression that recognises the class in one line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    pub regex: String,
    /// The normalised code this wording implies (`sqlstate:23505`), if it implies one.
    #[serde(default)]
    pub code: Option<String>,
    /// Which driver, ORM or server prints it (free text, shown in JSON as `stack`).
    #[serde(default)]
    pub stack: Option<String>,
    /// Real lines this pattern must match (checked at load time for user playbooks).
    #[serde(default)]
    pub examples: Vec<String>,
}

/// Fix steps for one ecosystem (`dbsandbox`, `python`, `django`, `rails`, `node`, `go`, `java`, `rust`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fix {
    pub ecosystem: String,
    pub steps: Vec<String>,
}

/// A playbook that could not be loaded, with the file it came from.
#[derive(Debug)]
pub struct CatalogueError {
    pub source_name: String,
    pub message: String,
}

impl fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "playbook {}: {}", self.source_name, self.message)
    }
}

impl std::error::Error for CatalogueError {}

/// Parses one playbook file; `source_name` is only used in error messages.
pub fn parse_playbook(source_name: &str, text: &str) -> Result<Playbook, CatalogueError> {
    let playbook: Playbook = toml::from_str(text).map_err(|e| CatalogueError {
        source_name: source_name.to_string(),
        message: e.to_string(),
    })?;
    let fail = |message: String| CatalogueError {
        source_name: source_name.to_string(),
        message,
    };
    if playbook.id.is_empty()
        || !playbook
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(fail(format!(
            "id {:?} must be non-empty and use only letters, digits, '-' and '_'",
            playbook.id
        )));
    }
    if playbook.triggers.iter().any(|t| t.is_empty()) {
        return Err(fail("a trigger is empty; it would match every line".into()));
    }
    if playbook.patterns.is_empty() && playbook.codes.is_empty() {
        return Err(fail(
            "needs at least one [[pattern]] or one code to be recognisable".into(),
        ));
    }
    for code in &playbook.codes {
        if !code.contains(':') {
            return Err(fail(format!(
                "code {code:?} must be written namespace:code, e.g. sqlstate:23505"
            )));
        }
    }
    Ok(playbook)
}

/// The built-in playbooks, parsed. They are checked by the test suite, so a failure here is a
/// packaging bug; it is still reported as an error rather than a panic.
pub fn builtin() -> Result<Vec<Playbook>, CatalogueError> {
    BUILTIN_PLAYBOOKS
        .iter()
        .map(|(name, text)| parse_playbook(name, text))
        .collect()
}

/// Loads every `*.toml` in `dir`, sorted by file name so the result does not depend on the
/// file system's directory order.
pub fn load_dir(dir: &Path) -> Result<Vec<Playbook>, CatalogueError> {
    let read_err = |message: String| CatalogueError {
        source_name: dir.display().to_string(),
        message,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| read_err(format!("cannot read: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| read_err(e.to_string()))?.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| CatalogueError {
                source_name: name.clone(),
                message: format!("cannot read: {e}"),
            })?;
            parse_playbook(&name, &text)
        })
        .collect()
}

/// Built-ins merged with the playbooks of `user_dir`: a user playbook with an existing id
/// replaces it in place, a new id is appended.
pub fn load(user_dir: Option<&Path>) -> Result<Vec<Playbook>, CatalogueError> {
    let mut playbooks = builtin()?;
    if let Some(dir) = user_dir {
        for user in load_dir(dir)? {
            match playbooks.iter_mut().find(|p| p.id == user.id) {
                Some(existing) => *existing = user,
                None => playbooks.push(user),
            }
        }
    }
    Ok(playbooks)
}
