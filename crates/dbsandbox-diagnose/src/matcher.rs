//! The compiled catalogue: turns playbooks into a fast two-stage line matcher.
//!
//! Stage one is a single Aho-Corasick automaton over every literal trigger (class triggers,
//! SQLSTATE codes, test-name headers, DETAIL lines). The reader runs it over whole chunks of the
//! log, so the common case, a line with no trigger, costs a few SIMD instructions and nothing
//! else. Stage two runs only on lines that hit: ANSI escapes are stripped, then a `RegexSet` of
//! every class pattern, the generic SQLSTATE/vendor-code extractors, the test-name rules and the
//! DETAIL rules decide what the line says.

use crate::catalogue::{Kind, Playbook};
pub use crate::prefilter::{Prefilter, PrefilterCursor};
use crate::rules::{compile, TestRule, HEADER_TRIGGERS, SHARED_TRIGGERS};
use aho_corasick::{AhoCorasick, AhoCorasickKind};
use regex::bytes::{Captures, Regex, RegexSet, SetMatches};
use std::collections::HashMap;

/// What a line says about the schema the migrations create (for telling a never-migrated
/// database from schema drift).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationFact {
    /// Django `Applying billing.0001_initial... OK`: tables `billing_*` are created by migrations.
    App(String),
    /// `CREATE TABLE "orders"` printed by a migration run.
    Table(String),
}

/// What a matched line says about the test it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestMarker {
    /// Output from here on belongs to the test this line names, by test rule `rule`; the name is
    /// only extracted ([`Matcher::header_test_name`]) if a failure needs it, because capturing
    /// costs ~200 ns and a verbose log has a header every few lines.
    BeginAt(usize),
    /// Output from here on belongs to this test (pytest `___ t ___`, `=== RUN`, `● a › b`, ...).
    Begin(String),
    /// This line names its own test (pytest `FAILED path::test - message`).
    ThisLine(String),
    /// A section that belongs to no test starts (pytest `short test summary info`).
    End,
}

/// Values pulled out of a line; all optional, because drivers print different subsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub constraint: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    /// Columns of the offending key, as printed: `email` or `tenant_id, email`.
    pub key_columns: Option<String>,
    /// Value of the offending key, as printed: `alice@example.com`.
    pub key_value: Option<String>,
    /// For foreign keys: the table the key refers to, or that still refers to the row.
    pub referenced_table: Option<String>,
    /// For 55006 and connection limits: the database or role named.
    pub database: Option<String>,
}

impl Fields {
    /// Fills the fields that are still empty from `other`; earlier, more specific values win.
    pub fn merge_missing(&mut self, other: &Fields) {
        fn fill(slot: &mut Option<String>, value: &Option<String>) {
            if slot.is_none() {
                slot.clone_from(value);
            }
        }
        fill(&mut self.constraint, &other.constraint);
        fill(&mut self.table, &other.table);
        fill(&mut self.column, &other.column);
        fill(&mut self.key_columns, &other.key_columns);
        fill(&mut self.key_value, &other.key_value);
        fill(&mut self.referenced_table, &other.referenced_table);
        fill(&mut self.database, &other.database);
    }

    fn from_captures(caps: &Captures<'_>) -> Fields {
        let get = |name: &str| {
            caps.name(name)
                .map(|m| clean_identifier(&String::from_utf8_lossy(m.as_bytes())))
                .filter(|s| !s.is_empty())
        };
        Fields {
            constraint: get("constraint"),
            table: get("table"),
            column: get("column"),
            key_columns: get("columns"),
            key_value: caps
                .name("value")
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned()),
            referenced_table: get("ref_table"),
            database: get("database"),
        }
    }
}

/// Strips quoting that drivers put around identifiers (`"users"`, `` `users` ``, `public.users`
/// is kept as printed).
fn clean_identifier(raw: &str) -> String {
    raw.trim()
        .trim_matches(|c| c == '"' || c == '`' || c == '\'')
        .to_string()
}

/// One class recognised on a line.
#[derive(Debug, Clone)]
pub struct ClassHit {
    /// Index into [`Matcher::playbooks`].
    pub playbook: usize,
    /// Which pattern matched (index over all patterns), `None` if only a printed code did.
    pub pattern: Option<usize>,
    /// Normalised code (`sqlstate:23505`), from the line if it prints one, else implied by the wording.
    pub code: Option<String>,
    pub stack: Option<String>,
    pub fields: Fields,
}

/// Everything stage two found on one line.
#[derive(Debug, Default)]
pub struct LineFacts {
    pub classes: Vec<ClassHit>,
    pub test: Option<TestMarker>,
    /// DETAIL-style facts that belong to the failure printed just before (or on) this line.
    pub detail: Option<Fields>,
    /// The line reports some database error, catalogued or not (a candidate cascade root).
    pub is_database_error: bool,
    /// The test runner whose header rule matched (`pytest`, `jest`, `go`, ...).
    pub runner: Option<&'static str>,
    pub migration: Option<MigrationFact>,
}

struct CompiledPattern {
    playbook: usize,
    regex: Regex,
    code: Option<String>,
    stack: Option<String>,
}

/// Where a printed code comes from: the code itself, or a driver exception named after it.
enum CodeSource {
    Code,
    ExceptionName,
}

/// The catalogue compiled for matching. Build once per run; matching never allocates for lines
/// that do not hit.
pub struct Matcher {
    pub playbooks: Vec<Playbook>,
    triggers: Vec<String>,
    prefilter: Prefilter,
    /// Every trigger except the test-name headers: a hit line without one of these can only
    /// be a test-name header.
    non_header_triggers: AhoCorasick,
    /// The test rules alone, for header-only lines.
    test_set: RegexSet,
    /// Every per-line expression in one set, so a hit line is scanned once to learn which of
    /// them can match: class patterns, then code extractors, the database-error rule, the test
    /// rules and the detail rules (see the `*_base` offsets).
    line_set: RegexSet,
    code_base: usize,
    test_base: usize,
    detail_base: usize,
    class_patterns: Vec<CompiledPattern>,
    code_to_playbook: HashMap<String, usize>,
    /// Every playbook that claims a code, in catalogue order (55006 is claimed by two).
    claimants: HashMap<String, Vec<usize>>,
    code_extractors: Vec<(CodeSource, Regex)>,
    /// The runner each test rule belongs to, by rule index.
    test_rule_runners: Vec<&'static str>,
    migration_base: usize,
    migration_rules: Vec<Regex>,
    pub unclassified: Option<usize>,
    pub schema_drift: Option<usize>,
    pub unmigrated: Option<usize>,
    mysql_code: Regex,
    database_error: Regex,
    test_rules: Vec<TestRule>,
    detail_rules: Vec<Regex>,
}

/// Lazy-DFA cache of the line set (it grows only as far as the lines need).
const LINE_SET_DFA_BYTES: usize = 24 << 20;

/// A playbook whose regex does not compile, or whose examples do not match: reported to the user
/// rather than silently never matching.
#[derive(Debug)]
pub struct MatcherError(pub String);

impl std::fmt::Display for MatcherError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MatcherError {}

impl Matcher {
    pub fn new(playbooks: Vec<Playbook>) -> Result<Matcher, MatcherError> {
        let mut triggers: Vec<String> = SHARED_TRIGGERS.iter().map(|s| s.to_string()).collect();
        let mut class_patterns = Vec::new();
        let mut code_to_playbook = HashMap::new();
        let mut claimants: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, playbook) in playbooks.iter().enumerate() {
            triggers.extend(playbook.triggers.iter().cloned());
            for code in &playbook.codes {
                if playbook.id == crate::catalogue::UNMIGRATED {
                    // Reached only by reclassifying schema-drift, never by the code alone.
                    continue;
                }
                code_to_playbook.entry(code.clone()).or_insert(index);
                claimants.entry(code.clone()).or_default().push(index);
            }
            for pattern in &playbook.patterns {
                let regex = Regex::new(&pattern.regex).map_err(|e| {
                    MatcherError(format!(
                        "playbook {}: pattern {:?}: {e}",
                        playbook.id, pattern.regex
                    ))
                })?;
                class_patterns.push(CompiledPattern {
                    playbook: index,
                    regex,
                    code: pattern.code.clone(),
                    stack: pattern.stack.clone(),
                });
            }
        }
        triggers.sort();
        triggers.dedup();
        let non_header_triggers = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::DFA))
            .build(&triggers)
            .map_err(|e| MatcherError(format!("building the trigger automaton: {e}")))?;
        triggers.extend(HEADER_TRIGGERS.iter().map(|s| s.to_string()));
        triggers.sort();
        triggers.dedup();
        let prefilter = Prefilter::new(&triggers)?;
        let index_of = |id: &str| playbooks.iter().position(|p| p.id == id);
        let unclassified = index_of(crate::catalogue::UNCLASSIFIED);
        let schema_drift = index_of(crate::catalogue::SCHEMA_DRIFT);
        let unmigrated = index_of(crate::catalogue::UNMIGRATED);
        let (test_rules, test_rule_runners) = crate::rules::test_rules();
        let matcher = Matcher {
            unclassified,
            schema_drift,
            unmigrated,
            claimants,
            migration_base: 0,
            migration_rules: crate::rules::migration_rules(),
            test_rule_runners,
            playbooks,
            triggers,
            prefilter,
            non_header_triggers,
            test_set: RegexSet::empty(),
            line_set: RegexSet::empty(),
            code_base: 0,
            test_base: 0,
            detail_base: 0,
            class_patterns,
            code_to_playbook,
            code_extractors: vec![
                // (SQLSTATE 23505), SQLSTATE[23505], SQLSTATE: 23505, SQLState: 23505, sqlstate='23505'
                (
                    CodeSource::Code,
                    compile(r#"(?i:sql ?state)\]?["']?\s*[:=\[(]?\s*["']?([0-9A-Z]{5})\b"#),
                ),
                // node-postgres / TypeORM / Prisma dumps: code: '23505', "code":"P2002"
                (
                    CodeSource::Code,
                    compile(r#"\b(?:code|pgcode)["']?\s*[:=]\s*["']([0-9A-Z]{5})["']"#),
                ),
                // tokio-postgres / sqlx Debug output: `code: SqlState(E34000)`.
                (CodeSource::Code, compile(r"SqlState\(E([0-9A-Z]{5})\)")),
                // Exceptions named after the condition: psycopg `errors.InvalidCursorName`,
                // ruby-pg `PG::InvalidCursorName`, asyncpg `exceptions.InvalidCursorNameError`.
                (
                    CodeSource::ExceptionName,
                    compile(
                        r"(?:psycopg2?\.errors\.|\bPG::|asyncpg\.exceptions\.)([A-Z][A-Za-z0-9_]*)",
                    ),
                ),
            ],
            // go-sql-driver `Error 1062 (23000):`, mysql CLI `ERROR 1062 (23000)`,
            // Connector/J `Error Code: 1062`, node mysql2 `errno: 1062`.
            mysql_code: compile(r"\b(?:Error|ERROR|Error Code|errno):? ?(1\d{3}|2\d{3}|3\d{3})\b"),
            database_error: compile(
                r#"(?:^|[\s:(\]])(?:ERROR|FEHLER|ERREUR|FATAL|SCHWER) ?:\s+\S|SQLSTATE|(?i:sql ?state)|psycopg2?\.errors\.\w+|\bPG::[A-Z]\w+|asyncpg\.exceptions\.\w+|PSQLException|\bpq: |\bdb error: |error returned from database|(?:Integrity|Operational|Programming|Data|Internal)Error\b"#,
            ),
            test_rules,
            detail_rules: crate::rules::detail_rules(),
        };
        let mut matcher = matcher;
        matcher.build_line_set()?;
        matcher.check_examples()?;
        Ok(matcher)
    }

    fn build_line_set(&mut self) -> Result<(), MatcherError> {
        let mut sources: Vec<String> = self
            .class_patterns
            .iter()
            .map(|p| p.regex.as_str().to_string())
            .collect();
        self.code_base = sources.len();
        sources.extend(
            self.code_extractors
                .iter()
                .map(|(_, r)| r.as_str().to_string()),
        );
        sources.push(self.mysql_code.as_str().to_string());
        sources.push(self.database_error.as_str().to_string());
        self.test_base = sources.len();
        for rule in &self.test_rules {
            let regex = match rule {
                TestRule::Begin(r) | TestRule::ThisLine(r) | TestRule::End(r) => r,
                TestRule::BeginFromLinesBefore { trigger, .. } => trigger,
            };
            sources.push(regex.as_str().to_string());
        }
        self.test_set = RegexSet::new(&sources[self.test_base..])
            .map_err(|e| MatcherError(format!("building the test-rule set: {e}")))?;
        self.detail_base = sources.len();
        sources.extend(self.detail_rules.iter().map(|r| r.as_str().to_string()));
        self.migration_base = sources.len();
        sources.extend(self.migration_rules.iter().map(|r| r.as_str().to_string()));
        // The set of every pattern outgrows the lazy DFA's default 2 MiB cache on the lines it
        // sees, and a set whose cache keeps filling falls back to the PikeVM, ~20x slower.
        self.line_set = regex::bytes::RegexSetBuilder::new(&sources)
            .dfa_size_limit(LINE_SET_DFA_BYTES)
            .build()
            .map_err(|e| MatcherError(format!("building the pattern set: {e}")))?;
        Ok(())
    }

    /// Builds the matcher for the built-in catalogue merged with an optional user directory.
    pub fn load(user_dir: Option<&std::path::Path>) -> Result<Matcher, MatcherError> {
        let playbooks =
            crate::catalogue::load(user_dir).map_err(|e| MatcherError(e.to_string()))?;
        Matcher::new(playbooks)
    }

    /// Every example of every pattern must pass the prefilter and be recognised as its own
    /// class, and no near-miss may be recognised as it: a user playbook that would silently never
    /// fire is rejected with a message that says which line failed.
    fn check_examples(&self) -> Result<(), MatcherError> {
        for (index, playbook) in self.playbooks.iter().enumerate() {
            for pattern in &playbook.patterns {
                for example in &pattern.examples {
                    if !self.non_header_triggers.is_match(example.as_bytes()) {
                        return Err(MatcherError(format!(
                            "playbook {}: example {example:?} contains none of the triggers, so the fast scan would never look at it; add a trigger it contains",
                            playbook.id
                        )));
                    }
                    let facts = self.analyze_line(example.as_bytes(), b"");
                    if !facts.classes.iter().any(|c| c.playbook == index) {
                        return Err(MatcherError(format!(
                            "playbook {}: example {example:?} is not matched by any of its patterns",
                            playbook.id
                        )));
                    }
                }
            }
            for near_miss in &playbook.near_misses {
                let facts = self.analyze_line(near_miss.as_bytes(), b"");
                if facts.classes.iter().any(|c| c.playbook == index) {
                    return Err(MatcherError(format!(
                        "playbook {}: near-miss {near_miss:?} is matched, but must not be",
                        playbook.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// The literal prefilter; the reader runs it over whole chunks.
    pub fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }

    /// How many distinct literal triggers the prefilter searches for.
    pub fn trigger_count(&self) -> usize {
        self.triggers.len()
    }

    /// The literal triggers, for benchmarks that compare against `grep -F` with the same set.
    pub fn triggers(&self) -> &[String] {
        &self.triggers
    }

    /// Stage two: what one line (ANSI escapes already stripped, no trailing newline) says.
    /// `before` is the text preceding the line in the same chunk, for rules that look back.
    pub fn analyze_line(&self, line: &[u8], before: &[u8]) -> LineFacts {
        let mut facts = LineFacts::default();
        if !self.non_header_triggers.is_match(line) {
            // Only a test-name header can be on this line: skip the class patterns.
            let matched = self.test_set.matches(line);
            if matched.matched_any() {
                (facts.test, facts.runner) =
                    self.test_marker(line, before, &|i| matched.matched(i));
            }
            return facts;
        }
        let matched = self.line_set.matches(line);
        if !matched.matched_any() {
            return facts;
        }
        let mut seen_playbooks: Vec<usize> = Vec::new();
        for pattern_index in matched.iter().take_while(|&i| i < self.code_base) {
            let pattern = &self.class_patterns[pattern_index];
            if seen_playbooks.contains(&pattern.playbook) {
                // First pattern of a class wins, but later ones may still add fields.
                if let Some(caps) = pattern.regex.captures(line) {
                    let extra = Fields::from_captures(&caps);
                    if let Some(hit) = facts
                        .classes
                        .iter_mut()
                        .find(|h| h.playbook == pattern.playbook)
                    {
                        hit.fields.merge_missing(&extra);
                    }
                }
                continue;
            }
            let fields = pattern
                .regex
                .captures(line)
                .map(|caps| Fields::from_captures(&caps))
                .unwrap_or_default();
            seen_playbooks.push(pattern.playbook);
            facts.classes.push(ClassHit {
                playbook: pattern.playbook,
                pattern: Some(pattern_index),
                code: pattern.code.clone(),
                stack: pattern.stack.clone(),
                fields,
            });
        }
        let extractors = self.code_extractors.len() + 1;
        let prints_code = (self.code_base..self.code_base + extractors).any(|i| matched.matched(i));
        let codes = if prints_code {
            self.codes_printed(line)
        } else {
            Vec::new()
        };
        let table = crate::errcodes::table();
        for code in codes {
            let claims = |hit: &ClassHit| {
                hit.code.as_deref() == Some(code.as_str())
                    || self.playbooks[hit.playbook].codes.contains(&code)
            };
            if let Some(hit) = facts.classes.iter_mut().find(|h| claims(h)) {
                // The printed code is more exact than the one implied by the wording; a message
                // pattern (55006 `pending trigger events`) beats the code's first claimant.
                hit.code = Some(code);
                continue;
            }
            if let Some(&playbook) = self.code_to_playbook.get(&code) {
                facts.classes.push(ClassHit {
                    playbook,
                    pattern: None,
                    code: Some(code),
                    stack: None,
                    fields: Fields::default(),
                });
                continue;
            }
            let Some(bare) = code.strip_prefix("sqlstate:") else {
                continue;
            };
            if !table.is_error_code(bare) {
                continue;
            }
            // An SQLSTATE no playbook claims is still a database error: never silent about it.
            facts.is_database_error = true;
            let already = facts
                .classes
                .iter()
                .any(|h| Some(h.playbook) == self.unclassified && h.code.is_some());
            if let (Some(unclassified), false) = (self.unclassified, already) {
                match facts
                    .classes
                    .iter_mut()
                    .find(|h| h.playbook == unclassified)
                {
                    Some(hit) => hit.code = Some(code),
                    None => facts.classes.push(ClassHit {
                        playbook: unclassified,
                        pattern: None,
                        code: Some(code),
                        stack: None,
                        fields: Fields::default(),
                    }),
                }
            }
        }
        if facts.classes.is_empty() && matched.matched(self.code_base + extractors) {
            // A server error line without a code (`psql: ERROR:  value too long ...`, an ORM's
            // wrapper): still a finding when the server's wording says which SQLSTATE it is.
            if let (Some(unclassified), Some(code)) =
                (self.unclassified, crate::errcodes::code_from_message(line))
            {
                facts.classes.push(ClassHit {
                    playbook: unclassified,
                    pattern: None,
                    code: Some(format!("sqlstate:{code}")),
                    stack: None,
                    fields: Fields::default(),
                });
            }
        }
        // A line a catalogued class explains is not also an unclassified error.
        if let Some(unclassified) = self.unclassified {
            if facts.classes.iter().any(|h| {
                h.playbook != unclassified && self.playbooks[h.playbook].kind != Kind::Assertion
            }) {
                facts.classes.retain(|h| h.playbook != unclassified);
            }
            if let Some(hit) = facts
                .classes
                .iter_mut()
                .find(|h| h.playbook == unclassified && h.code.is_none())
            {
                // The driver printed the message only: the server's wording names the code.
                hit.code =
                    crate::errcodes::code_from_message(line).map(|code| format!("sqlstate:{code}"));
            }
        }
        facts.is_database_error |= facts
            .classes
            .iter()
            .any(|h| self.playbooks[h.playbook].kind != Kind::Assertion)
            || matched.matched(self.code_base + extractors);
        facts.migration = self.migration_fact(line, &matched);
        (facts.test, facts.runner) =
            self.test_marker(line, before, &|i| matched.matched(self.test_base + i));
        facts.detail = self.detail(line, &matched);
        facts
    }

    /// Codes the line prints explicitly, normalised to `namespace:code`.
    fn codes_printed(&self, line: &[u8]) -> Vec<String> {
        let mut codes = Vec::new();
        for (source, extractor) in &self.code_extractors {
            for caps in extractor.captures_iter(line) {
                let mut raw = String::from_utf8_lossy(&caps[1]).into_owned();
                if let CodeSource::ExceptionName = source {
                    match crate::errcodes::table().by_exception_name(&raw) {
                        Some(state) => raw = state.code.to_string(),
                        None => continue,
                    }
                }
                // Prisma's codes are P1000-P6999; P0000-P0004 are PL/pgSQL's SQLSTATEs.
                let is_prisma = raw.len() == 5
                    && raw.starts_with('P')
                    && !raw.starts_with("P0")
                    && raw[1..].bytes().all(|b| b.is_ascii_digit());
                let code = if is_prisma {
                    format!("prisma:{raw}")
                } else {
                    format!("sqlstate:{raw}")
                };
                if !codes.contains(&code) {
                    codes.push(code);
                }
            }
        }
        for caps in self.mysql_code.captures_iter(line) {
            let code = format!("mysql:{}", String::from_utf8_lossy(&caps[1]));
            // Only codes a playbook claims: `Error 1234` is too common a phrase otherwise.
            if self.code_to_playbook.contains_key(&code) && !codes.contains(&code) {
                codes.push(code);
            }
        }
        codes
    }

    /// `candidate(i)`: whether test rule `i` can match (from a regex set pass over the line).
    fn test_marker(
        &self,
        line: &[u8],
        before: &[u8],
        candidate: &dyn Fn(usize) -> bool,
    ) -> (Option<TestMarker>, Option<&'static str>) {
        for (index, rule) in self.test_rules.iter().enumerate() {
            if !candidate(index) {
                continue;
            }
            let runner = self.test_rule_runners.get(index).copied();
            let marker = self.test_rule_marker(index, rule, line, before);
            if marker.is_some() {
                return (marker, runner);
            }
        }
        (None, None)
    }

    fn test_rule_marker(
        &self,
        index: usize,
        rule: &TestRule,
        line: &[u8],
        before: &[u8],
    ) -> Option<TestMarker> {
        match rule {
            TestRule::End(regex) => {
                if regex.is_match(line) {
                    return Some(TestMarker::End);
                }
            }
            TestRule::Begin(regex) => {
                if regex.is_match(line) {
                    return Some(TestMarker::BeginAt(index));
                }
            }
            TestRule::ThisLine(regex) => {
                if let Some(caps) = regex.captures(line) {
                    return test_name(&caps).map(TestMarker::ThisLine);
                }
            }
            TestRule::BeginFromLinesBefore { trigger, name } => {
                if trigger.is_match(line) {
                    // The block still has its colours; RSpec paints the `1) name` line.
                    let found = last_lines(before, 3).into_iter().find_map(|previous| {
                        let previous = crate::reader::strip_ansi(previous);
                        name.captures(&previous).and_then(|c| test_name(&c))
                    });
                    if let Some(found) = found {
                        return Some(TestMarker::Begin(found));
                    }
                }
            }
        }
        None
    }

    /// Which tables the migrations create, from a migration run's output.
    fn migration_fact(&self, line: &[u8], matched: &SetMatches) -> Option<MigrationFact> {
        let text = |caps: &Captures<'_>, name: &str| {
            caps.name(name)
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
        };
        for (index, rule) in self.migration_rules.iter().enumerate() {
            if !matched.matched(self.migration_base + index) {
                continue;
            }
            let Some(caps) = rule.captures(line) else {
                continue;
            };
            if let Some(app) = text(&caps, "app") {
                return Some(MigrationFact::App(app));
            }
            if let Some(table) = text(&caps, "table") {
                return Some(MigrationFact::Table(table));
            }
        }
        None
    }

    /// Every playbook that claims `code`, in catalogue order.
    pub fn claimants(&self, code: &str) -> &[usize] {
        self.claimants.get(code).map_or(&[], Vec::as_slice)
    }

    /// The test named by a header line that [`TestMarker::BeginAt`] reported for `rule`.
    pub fn header_test_name(&self, rule: usize, line: &[u8]) -> Option<String> {
        match self.test_rules.get(rule) {
            Some(TestRule::Begin(regex)) => regex.captures(line).and_then(|c| test_name(&c)),
            _ => None,
        }
    }

    fn detail(&self, line: &[u8], matched: &SetMatches) -> Option<Fields> {
        let mut found: Option<Fields> = None;
        for (index, rule) in self.detail_rules.iter().enumerate() {
            if !matched.matched(self.detail_base + index) {
                continue;
            }
            if let Some(caps) = rule.captures(line) {
                let mut fields = Fields::from_captures(&caps);
                if fields.referenced_table.is_none() {
                    fields.referenced_table = caps
                        .name("ref_table2")
                        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned());
                }
                match found.as_mut() {
                    Some(existing) => existing.merge_missing(&fields),
                    None => found = Some(fields),
                }
            }
        }
        found
    }

    /// Whether playbook `playbook` is a primary, consequence or assertion class.
    pub fn kind_of(&self, playbook: usize) -> Kind {
        self.playbooks[playbook].kind
    }
}

fn test_name(caps: &Captures<'_>) -> Option<String> {
    let text = |name: &str| {
        caps.name(name)
            .map(|m| String::from_utf8_lossy(m.as_bytes()).trim().to_string())
    };
    if let Some(test) = text("test").filter(|t| !t.is_empty()) {
        return Some(test);
    }
    match (text("class"), text("method")) {
        // Python 3.11+ unittest prints `test_x (pkg.Class.test_x)`: the method is already there.
        (Some(class), Some(method)) if class.ends_with(&format!(".{method}")) => Some(class),
        (Some(class), Some(method)) => Some(format!("{class}.{method}")),
        _ => None,
    }
}

/// Up to `count` complete lines at the end of `before`, nearest first, ANSI-stripped.
fn last_lines(before: &[u8], count: usize) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut end = before.len();
    if end > 0 && before[end - 1] == b'\n' {
        end -= 1;
    }
    while lines.len() < count && end > 0 {
        let start = memchr::memrchr(b'\n', &before[..end]).map_or(0, |i| i + 1);
        lines.push(trim_cr(&before[start..end]));
        if start == 0 {
            break;
        }
        end = start - 1;
    }
    lines
}

pub(crate) fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
