//! Turns matched lines into findings: test attribution, echo merging, DETAIL enrichment and
//! aborted-transaction cascades, with memory bounded whatever the size of the log.
//!
//! The reader calls [`Collector::observe`] for every line that passed the prefilter, in log
//! order. The collector keeps, per input, the test the output currently belongs to and the last
//! database error (the root a later 25P02 points to); per class it keeps counts, the first few
//! occurrences and bounded sets of the tests, constraints, tables and keys involved.

use crate::catalogue::Kind;
use crate::matcher::{Fields, LineFacts, Matcher, MigrationFact, TestMarker};
use std::collections::VecDeque;

/// Distinct values kept per class and kind (tests, constraints, ...); further ones are only counted.
pub const DISTINCT_LIMIT: usize = 50;
/// Longest excerpt kept of a line, in characters.
pub const EXCERPT_CHARS: usize = 240;
/// A repeat of the same class without a known test is an echo of the same failure (a chained
/// exception, a DETAIL, the ORM re-raising the driver error) if it is at most this many lines on.
const ECHO_WINDOW_LINES: u64 = 12;
/// Within one test, a repeat of the same class this close is an echo too (long tracebacks put
/// the driver error and the ORM's re-raise far apart); further away it is a second failure,
/// unless a summary line names the test.
const TEST_ECHO_WINDOW_LINES: u64 = 200;
/// DETAIL lines and node-postgres fields belong to the failure printed at most this many lines before.
const DETAIL_WINDOW_LINES: u64 = 24;
/// Distinct failures per class remembered for echo merging.
const ECHO_MEMORY: usize = 16;

/// Where one failure was seen.
#[derive(Debug, Clone)]
pub struct Occurrence {
    pub input: usize,
    /// The pattern that matched, for telling a re-print from a different failure.
    pub pattern: Option<usize>,
    pub line: u64,
    pub test: Option<String>,
    /// The test was named by a runner's summary line (pytest `FAILED t - ...`, Surefire's
    /// `Results:`) or by a JUnit `<testcase>`: a repeat there is the same failure however far
    /// from the first print it is.
    pub test_from_summary: bool,
    pub code: Option<String>,
    pub stack: Option<String>,
    pub fields: Fields,
    pub excerpt: String,
    /// For consequences (25P02): the error before it that aborted the transaction.
    pub caused_by: Option<Cause>,
}

/// The error a consequence points to.
#[derive(Debug, Clone)]
pub struct Cause {
    /// Playbook index, or `None` for a database error the catalogue does not name.
    pub playbook: Option<usize>,
    pub input: usize,
    pub line: u64,
    pub test: Option<String>,
    pub excerpt: String,
}

/// A set of distinct strings that stops growing at [`DISTINCT_LIMIT`] and counts the overflow.
#[derive(Debug, Clone, Default)]
pub struct BoundedSet {
    pub values: Vec<String>,
    pub overflow: u64,
}

impl BoundedSet {
    pub fn insert(&mut self, value: &str) {
        if self.values.iter().any(|v| v == value) {
            return;
        }
        if self.values.len() < DISTINCT_LIMIT {
            self.values.push(value.to_string());
        } else {
            self.overflow += 1;
        }
    }

    fn replace(&mut self, old: &str, new: &str) {
        if self.values.iter().any(|v| v == new) {
            self.values.retain(|v| v != old);
        } else if let Some(slot) = self.values.iter_mut().find(|v| *v == old) {
            *slot = new.to_string();
        } else {
            self.insert(new);
        }
    }
}

/// Everything known about one class after the scan.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Distinct failures after merging echoes.
    pub count: u64,
    /// Matched lines, echoes included.
    pub lines: u64,
    /// The first occurrences, at most `max_examples`.
    pub examples: Vec<Occurrence>,
    pub tests: BoundedSet,
    pub codes: BoundedSet,
    pub constraints: BoundedSet,
    pub tables: BoundedSet,
    /// `(columns)=(value)` pairs, as PostgreSQL prints them.
    pub keys: BoundedSet,
    /// Aborted-transaction errors (25P02) that point back to a failure of this class.
    pub consequences: u64,
    /// Distinct failures with a test name (including ones a later echo named).
    pub attributed: u64,
    /// Distinct failures per code (at most [`DISTINCT_LIMIT`] codes).
    pub code_counts: Vec<(String, u64)>,
    /// Why occurrences were recorded under this class rather than the one their wording names
    /// (unmigrated-database: the line showing the migrations create the table).
    pub evidence: BoundedSet,
}

#[derive(Debug, Clone)]
struct Recent {
    playbook: usize,
    pattern: Option<usize>,
    code: Option<String>,
    line: u64,
    test: Option<String>,
    fields: Fields,
    /// Index into the class's `examples`, when this occurrence is kept there.
    example: Option<usize>,
}

#[derive(Debug, Default)]
struct InputState {
    current_test: Option<String>,
    /// The last header line, not yet parsed: `(test rule, line)`. Resolved into
    /// `current_test` only when a failure needs the name.
    pending_header: Option<usize>,
    pending_header_line: Vec<u8>,
    /// The last few distinct failures per class, for echo merging (pytest prints a failure in
    /// its section and again in the summary, after other tests' sections).
    last_of_class: Vec<VecDeque<Recent>>,
    /// The occurrence that DETAIL lines enrich.
    recent: Option<Recent>,
    /// The last database error that was not itself a consequence: what a 25P02 points to.
    root: Option<Cause>,
    /// Tables the migrations in this input create, by Django app label or by name, with the
    /// line that showed it.
    migrated_apps: Vec<(String, u64)>,
    created_tables: Vec<(String, u64)>,
}

/// Collects findings from all inputs of one run.
pub struct Collector<'m> {
    matcher: &'m Matcher,
    max_examples: usize,
    pub tallies: Vec<Tally>,
    /// 25P02 whose cause is an uncatalogued error, or that has no error before it at all.
    pub unexplained_consequence_count: u64,
    /// Per input: the test runner its test-name lines belong to, first one seen.
    pub runners: Vec<Option<&'static str>>,
    /// Per input: distinct database errors (primary classes) and how many a test is named for.
    pub input_errors: Vec<(u64, u64)>,
    states: Vec<InputState>,
}

impl<'m> Collector<'m> {
    pub fn new(matcher: &'m Matcher, max_examples: usize) -> Collector<'m> {
        Collector {
            matcher,
            max_examples,
            tallies: vec![Tally::default(); matcher.playbooks.len()],
            unexplained_consequence_count: 0,
            runners: Vec::new(),
            input_errors: Vec::new(),
            states: Vec::new(),
        }
    }

    pub fn matcher(&self) -> &'m Matcher {
        self.matcher
    }

    fn state(&mut self, input: usize) -> &mut InputState {
        while self.states.len() <= input {
            self.states.push(InputState {
                last_of_class: vec![VecDeque::new(); self.matcher.playbooks.len()],
                ..InputState::default()
            });
        }
        &mut self.states[input]
    }

    /// Records what one line said. `forced_test` is the JUnit `<testcase>` the text belongs to,
    /// which overrides anything the text itself suggests.
    pub fn observe(
        &mut self,
        input: usize,
        line: u64,
        text: &[u8],
        facts: LineFacts,
        forced_test: Option<&str>,
    ) {
        let mut line_test: Option<String> = None;
        if let Some(runner) = facts.runner {
            self.note_runner(input, runner);
        }
        if let Some(fact) = &facts.migration {
            let state = self.state(input);
            let remember = |list: &mut Vec<(String, u64)>, name: &str| {
                if list.len() < DISTINCT_LIMIT && !list.iter().any(|(n, _)| n == name) {
                    list.push((name.to_string(), line));
                }
            };
            match fact {
                MigrationFact::App(app) => remember(&mut state.migrated_apps, app),
                MigrationFact::Table(table) => remember(&mut state.created_tables, table),
            }
        }
        {
            let state = self.state(input);
            match facts.test {
                Some(TestMarker::BeginAt(rule)) => {
                    state.current_test = None;
                    state.pending_header = Some(rule);
                    state.pending_header_line.clear();
                    state.pending_header_line.extend_from_slice(text);
                }
                Some(TestMarker::Begin(name)) => {
                    state.pending_header = None;
                    state.current_test = Some(name);
                }
                Some(TestMarker::ThisLine(name)) => line_test = Some(name),
                Some(TestMarker::End) => {
                    state.pending_header = None;
                    state.current_test = None;
                }
                None => {}
            }
        }
        if let Some(full) = &line_test {
            // pytest's summary (`FAILED path::test - ...`) qualifies the name its section header
            // gave; failures whose summary line matched no class (an unclassified error's
            // wrapper message) take the qualified name here.
            self.qualify_test_names(full);
        }
        if facts.classes.is_empty() && facts.detail.is_none() && !facts.is_database_error {
            // A header or other non-failure line: nothing else to record.
            return;
        }
        let test_from_summary = forced_test.is_some() || line_test.is_some();
        let test = match forced_test {
            Some(forced) => Some(forced.to_string()),
            None => line_test.or_else(|| self.current_test(input)),
        };

        // A DETAIL on its own line belongs to the failure just before it; one on the same line as
        // a failure (node-postgres dumps, Debug structs) belongs to that failure only.
        if let Some(detail) = facts.detail.as_ref().filter(|_| facts.classes.is_empty()) {
            self.enrich_recent(input, line, test.as_deref(), detail);
        }

        let had_classes = !facts.classes.is_empty();
        let mut recorded_root = false;
        for mut hit in facts.classes {
            let mut fields = hit.fields;
            if let Some(detail) = &facts.detail {
                fields.merge_missing(detail);
            }
            self.choose_claimant(
                input,
                line,
                test.as_deref(),
                &mut hit.playbook,
                &hit.code,
                hit.pattern,
            );
            if let Some(evidence) = self.migrated_evidence(input, hit.playbook, &fields) {
                if let Some(unmigrated) = self.matcher.unmigrated {
                    hit.playbook = unmigrated;
                    self.tallies[unmigrated].evidence.insert(&evidence);
                }
            }
            if Some(hit.playbook) == self.matcher.unclassified
                && hit.code.is_none()
                && self.follows_database_error(input, line, test.as_deref())
            {
                // A driver's code-less wrapper or stack frame of the error just printed.
                continue;
            }
            let kind = self.matcher.kind_of(hit.playbook);
            let occurrence = Occurrence {
                input,
                pattern: hit.pattern,
                line,
                test: test.clone(),
                test_from_summary,
                code: hit.code,
                stack: hit.stack,
                fields,
                excerpt: excerpt(text),
                caused_by: None,
            };
            let is_new = self.record(hit.playbook, kind, occurrence);
            if kind == Kind::Primary && is_new && !recorded_root {
                recorded_root = true;
                let state = self.state(input);
                state.root = Some(Cause {
                    playbook: Some(hit.playbook),
                    input,
                    line,
                    test: test.clone(),
                    excerpt: excerpt(text),
                });
            }
        }

        if facts.is_database_error && !had_classes {
            // An uncatalogued error becomes the root only if it is not the echo of the last one.
            let state = self.state(input);
            let is_echo = state.root.as_ref().is_some_and(|root| {
                line.saturating_sub(root.line) <= ECHO_WINDOW_LINES
                    && same_test(root.test.as_deref(), test.as_deref())
            });
            if !is_echo {
                state.root = Some(Cause {
                    playbook: None,
                    input,
                    line,
                    test: test.clone(),
                    excerpt: excerpt(text),
                });
            }
        }
    }

    fn input_errors_mut(&mut self, input: usize) -> &mut (u64, u64) {
        if self.input_errors.len() <= input {
            self.input_errors.resize(input + 1, (0, 0));
        }
        &mut self.input_errors[input]
    }

    /// Records the test runner of `input` (the first one seen wins).
    pub fn note_runner(&mut self, input: usize, runner: &'static str) {
        if self.runners.len() <= input {
            self.runners.resize(input + 1, None);
        }
        self.runners[input].get_or_insert(runner);
    }

    /// Whether a database error was printed just before this line, in the same test.
    fn follows_database_error(&mut self, input: usize, line: u64, test: Option<&str>) -> bool {
        let state = self.state(input);
        state.root.as_ref().is_some_and(|root| {
            line.saturating_sub(root.line) <= ECHO_WINDOW_LINES
                && same_test(root.test.as_deref(), test)
        })
    }

    /// A code printed on its own (no wording) that several classes claim (55006: database in
    /// use, pending trigger events) belongs to the failure just printed if that is one of them.
    fn choose_claimant(
        &mut self,
        input: usize,
        line: u64,
        test: Option<&str>,
        playbook: &mut usize,
        code: &Option<String>,
        pattern: Option<usize>,
    ) {
        let (Some(code), None) = (code, pattern) else {
            return;
        };
        let claimants = self.matcher.claimants(code);
        if claimants.len() < 2 {
            return;
        }
        let state = self.state(input);
        if let Some(recent) = &state.recent {
            if claimants.contains(&recent.playbook)
                && line.saturating_sub(recent.line) <= ECHO_WINDOW_LINES
                && same_test(recent.test.as_deref(), test)
            {
                *playbook = recent.playbook;
            }
        }
    }

    /// For a missing relation (schema-drift 42P01): the line of this input that shows the
    /// migrations create it, if any; then the database was never migrated, not drifted.
    fn migrated_evidence(
        &mut self,
        input: usize,
        playbook: usize,
        fields: &Fields,
    ) -> Option<String> {
        if Some(playbook) != self.matcher.schema_drift || fields.column.is_some() {
            return None;
        }
        let table = fields.table.as_deref()?;
        let bare = table.rsplit('.').next().unwrap_or(table);
        let state = self.state(input);
        if let Some((_, line)) = state.created_tables.iter().find(|(t, _)| t == bare) {
            return Some(format!(
                "the migrations create {bare} (CREATE TABLE at line {line})"
            ));
        }
        if let Some((app, line)) = state.migrated_apps.iter().find(|(app, _)| {
            bare.strip_prefix(app.as_str())
                .is_some_and(|rest| rest.starts_with('_'))
        }) {
            return Some(format!(
                "the migrations create {bare} (Django app {app}, migrated at line {line})"
            ));
        }
        const MIGRATION_MADE: &[&str] = &[
            "django_migrations",
            "django_content_type",
            "django_session",
            "django_admin_log",
            "django_site",
            "auth_user",
            "auth_group",
            "auth_permission",
            "schema_migrations",
            "ar_internal_metadata",
            "knex_migrations",
            "knex_migrations_lock",
            "_prisma_migrations",
            "flyway_schema_history",
            "databasechangelog",
            "_sqlx_migrations",
            "goose_db_version",
            "alembic_version",
        ];
        if MIGRATION_MADE.contains(&bare)
            || bare.starts_with("auth_user_")
            || bare.starts_with("auth_group_")
        {
            return Some(format!("{bare} is created by the framework's migrations"));
        }
        None
    }

    fn qualify_test_names(&mut self, full: &str) {
        for tally in &mut self.tallies {
            let shorter: Vec<String> = tally
                .tests
                .values
                .iter()
                .filter(|t| t.len() < full.len() && same_test(Some(t), Some(full)))
                .cloned()
                .collect();
            for short in shorter {
                tally.tests.replace(&short, full);
                for example in &mut tally.examples {
                    if example.test.as_deref() == Some(short.as_str()) {
                        example.test = Some(full.to_string());
                    }
                }
            }
        }
    }

    /// The test the output of `input` currently belongs to, parsing a pending header first.
    fn current_test(&mut self, input: usize) -> Option<String> {
        let matcher = self.matcher;
        let state = self.state(input);
        if let Some(rule) = state.pending_header.take() {
            state.current_test = matcher.header_test_name(rule, &state.pending_header_line);
        }
        state.current_test.clone()
    }

    /// Adds one occurrence; returns whether it is a new failure (not an echo of an earlier one).
    fn record(&mut self, playbook: usize, kind: Kind, mut occurrence: Occurrence) -> bool {
        let input = occurrence.input;
        let line = occurrence.line;
        let unclassified = Some(playbook) == self.matcher.unclassified;
        let echo_of = self.state(input).last_of_class[playbook]
            .iter()
            .rposition(|previous| is_echo(previous, &occurrence, unclassified));
        if let Some(position) = echo_of {
            let previous = self.state(input).last_of_class[playbook][position].clone();
            let tally = &mut self.tallies[playbook];
            tally.lines += 1;
            // The echo may be better qualified (pytest's summary names the file) or carry fields.
            let mut merged = previous.clone();
            merged.fields.merge_missing(&occurrence.fields);
            let better_name = match (&previous.test, &occurrence.test) {
                (Some(old), Some(new)) if new.len() > old.len() => {
                    Some((Some(old.clone()), new.clone()))
                }
                (None, Some(new)) => Some((None, new.clone())),
                _ => None,
            };
            if previous.test.is_none() && occurrence.test.is_some() {
                tally.attributed += 1;
                if kind == Kind::Primary {
                    self.input_errors_mut(input).1 += 1;
                }
            }
            let tally = &mut self.tallies[playbook];
            if let Some((old, new)) = &better_name {
                match old {
                    Some(old) => tally.tests.replace(old, new),
                    None => tally.tests.insert(new),
                }
                merged.test = Some(new.clone());
            }
            if let Some(example) = merged.example.and_then(|i| tally.examples.get_mut(i)) {
                example.fields.merge_missing(&occurrence.fields);
                if let Some((_, new)) = &better_name {
                    example.test = Some(new.clone());
                }
                if example.code.is_none() {
                    example.code.clone_from(&occurrence.code);
                }
            }
            if let (None, Some(code)) = (&previous.code, &occurrence.code) {
                // The code printed after the message (node-postgres' error dump) counts for
                // the failure the message started.
                bump_code(tally, code);
                merged.code = Some(code.clone());
            }
            note_fields(tally, &merged.fields);
            if let Some(code) = &occurrence.code {
                tally.codes.insert(code);
            }
            let state = self.state(input);
            state.last_of_class[playbook][position] = merged.clone();
            state.recent = Some(Recent { line, ..merged });
            return false;
        }

        if kind == Kind::Consequence {
            let root = self.state(input).root.clone();
            match root.as_ref().and_then(|r| r.playbook) {
                Some(cause_class) => self.tallies[cause_class].consequences += 1,
                None => self.unexplained_consequence_count += 1,
            }
            occurrence.caused_by = root;
        }

        if kind == Kind::Primary {
            let counts = self.input_errors_mut(input);
            counts.0 += 1;
            counts.1 += u64::from(occurrence.test.is_some());
        }
        let max_examples = self.max_examples;
        let tally = &mut self.tallies[playbook];
        tally.count += 1;
        tally.lines += 1;
        if let Some(test) = &occurrence.test {
            tally.tests.insert(test);
            tally.attributed += 1;
        }
        if let Some(code) = &occurrence.code {
            tally.codes.insert(code);
        }
        note_fields(tally, &occurrence.fields);
        let example = if tally.examples.len() < max_examples {
            tally.examples.push(occurrence.clone());
            Some(tally.examples.len() - 1)
        } else {
            None
        };
        if let Some(code) = &occurrence.code {
            bump_code(tally, code);
        }
        let recent = Recent {
            playbook,
            pattern: occurrence.pattern,
            code: occurrence.code.clone(),
            line,
            test: occurrence.test.clone(),
            fields: occurrence.fields.clone(),
            example,
        };
        let state = self.state(input);
        let memory = &mut state.last_of_class[playbook];
        if memory.len() == ECHO_MEMORY {
            memory.pop_front();
        }
        memory.push_back(recent.clone());
        state.recent = Some(recent);
        true
    }

    /// A DETAIL line (or node-postgres field) adds the key, constraint or table to the failure
    /// printed just before it.
    fn enrich_recent(&mut self, input: usize, line: u64, test: Option<&str>, detail: &Fields) {
        let Some(mut recent) = self.state(input).recent.clone() else {
            return;
        };
        if line.saturating_sub(recent.line) > DETAIL_WINDOW_LINES
            || !same_test(recent.test.as_deref(), test)
        {
            return;
        }
        recent.fields.merge_missing(detail);
        let tally = &mut self.tallies[recent.playbook];
        if let Some(example) = recent.example.and_then(|i| tally.examples.get_mut(i)) {
            example.fields.merge_missing(detail);
        }
        note_fields(tally, &recent.fields);
        let state = self.state(input);
        if let Some(remembered) = state.last_of_class[recent.playbook]
            .iter_mut()
            .rev()
            .find(|r| {
                r.example == recent.example && same_test(r.test.as_deref(), recent.test.as_deref())
            })
        {
            remembered.fields.merge_missing(detail);
        }
        state.recent = Some(recent);
    }

    /// Called when an input ends, so state never leaks from one file into the next.
    pub fn end_input(&mut self, input: usize) {
        let state = self.state(input);
        state.current_test = None;
        state.pending_header = None;
        state.recent = None;
        state.root = None;
        state.migrated_apps.clear();
        state.created_tables.clear();
    }

    /// Whether anything at all was found.
    pub fn has_findings(&self) -> bool {
        self.tallies.iter().any(|t| t.count > 0)
    }
}

fn bump_code(tally: &mut Tally, code: &str) {
    let known = tally.code_counts.len();
    match tally.code_counts.iter_mut().find(|(c, _)| c == code) {
        Some((_, count)) => *count += 1,
        None if known < DISTINCT_LIMIT => tally.code_counts.push((code.to_string(), 1)),
        None => {}
    }
}

fn note_fields(tally: &mut Tally, fields: &Fields) {
    if let Some(constraint) = &fields.constraint {
        tally.constraints.insert(constraint);
    }
    if let Some(table) = &fields.table {
        tally.tables.insert(table);
    }
    match (&fields.key_columns, &fields.key_value) {
        (Some(columns), Some(value)) => tally.keys.insert(&format!("({columns})=({value})")),
        (Some(columns), None) => tally.keys.insert(&format!("({columns})")),
        (None, Some(value)) => tally.keys.insert(&format!("=({value})")),
        (None, None) => {}
    }
}

fn is_echo(previous: &Recent, next: &Occurrence, unclassified: bool) -> bool {
    let near = next.line.saturating_sub(previous.line) <= ECHO_WINDOW_LINES;
    // Application logs (Hibernate's SqlExceptionHelper, a server log) often print the error just
    // before the runner's header names the test: a nearby unattributed line is the same failure.
    let adopted_by_test = previous.test.is_none() && next.test.is_some() && near;
    if !adopted_by_test && !same_test(previous.test.as_deref(), next.test.as_deref()) {
        return false;
    }
    if previous.test.is_none() && !near {
        return false;
    }
    let near_in_test = next.line.saturating_sub(previous.line) <= TEST_ECHO_WINDOW_LINES;
    if previous.test.is_some() && !near_in_test && !next.test_from_summary {
        return false;
    }
    // Without a test name, only a re-print of the same wording nearby is an echo (a chained
    // exception); two different wordings are two failures (two psql attempts in a script).
    let both_unattributed = previous.test.is_none() && next.test.is_none();
    if both_unattributed
        && previous.pattern.is_some()
        && next.pattern.is_some()
        && previous.pattern != next.pattern
    {
        return false;
    }
    let conflicts =
        |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(x), Some(y)) if x != y);
    // Within the unclassified class, two codes are two different errors.
    if unclassified && conflicts(&previous.code, &next.code) {
        return false;
    }
    let (a, b) = (&previous.fields, &next.fields);
    !(conflicts(&a.constraint, &b.constraint)
        || conflicts(&a.key_value, &b.key_value)
        || conflicts(&a.table, &b.table)
        || conflicts(&a.database, &b.database))
}

/// Two test names denote the same test if one is a qualified form of the other: pytest prints
/// `test_signup` in its section header and `tests/test_users.py::test_signup` in the summary.
pub fn same_test(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let segments = |s: &str| -> Vec<String> {
                s.split(['.', ':', '/', '\u{203a}', '>', ' '])
                    .filter(|p| !p.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let (a, b) = (segments(a), segments(b));
            let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
            !short.is_empty() && long.ends_with(&short)
        }
        _ => false,
    }
}

/// A printable, bounded excerpt of a line: lossy UTF-8, control characters dropped.
pub fn excerpt(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut out = String::new();
    for (count, c) in text.trim().chars().enumerate() {
        if count == EXCERPT_CHARS {
            out.push('\u{2026}');
            break;
        }
        match c {
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
