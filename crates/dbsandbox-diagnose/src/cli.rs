//! Command-line surface of `dbsandbox analyze` and `dbsandbox explain`: the clap argument
//! structs the CLI binary flattens into its subcommands, and the functions that run them against
//! any writer and return the exit code, so the binary stays a thin shell and tests need no process.

use crate::analysis::Collector;
use crate::catalogue::Kind;
use crate::matcher::Matcher;
use crate::reader::{self, ScanOutcome};
use crate::report;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Exit code: the inputs were read and show no database failure.
pub const EXIT_CLEAN: i32 = 0;
/// Exit code: at least one database failure class was found.
pub const EXIT_FINDINGS: i32 = 1;
/// Exit code: bad input or usage (a file missing, empty, binary; an invalid playbook; unknown id).
pub const EXIT_BAD_INPUT: i32 = 2;

/// Examples for `dbsandbox analyze --help` (the CLI passes this as `after_help`).
pub const ANALYZE_EXAMPLES: &str = "\
Examples:
  dbsandbox analyze build.log                      # ranked report of database failures
  dbsandbox analyze target/surefire-reports/*.xml  # JUnit XML: failures attributed to test cases
  pytest 2>&1 | dbsandbox analyze                  # read stdin
  dbsandbox analyze --format json ci.log | jq '.findings[].class'
  dbsandbox analyze --playbooks ./playbooks ci.log # add or override failure classes

Exit status: 0 no database failure found, 1 findings, 2 bad input (missing, empty or binary
file, invalid playbook).";

/// Examples for `dbsandbox explain --help`.
pub const EXPLAIN_EXAMPLES: &str = "\
Examples:
  dbsandbox explain --list                 # every failure class with its codes
  dbsandbox explain unique-violation       # diagnosis, fix per ecosystem, how to validate
  dbsandbox explain 23505                  # look a class up by SQLSTATE or vendor code
  dbsandbox explain --format json deadlock";

/// Output format of both commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// A report for people.
    #[default]
    Human,
    /// One JSON document (schema `dbsandbox.analyze/v1.1`, see the crate's SCHEMA.md).
    Json,
}

/// Name the database failures in test logs and say how to fix them.
///
/// Reads plain-text logs (ANSI colours are fine) and JUnit XML, recognised by content, in one
/// streaming pass. Every match is normalised to its SQLSTATE or vendor error code, so the same
/// failure is recognised whatever driver, ORM, language or server locale printed it. Findings are
/// ranked by count and shown with file:line, test name, constraint, table and key.
///
/// Example: `pytest 2>&1 | dbsandbox analyze` or `dbsandbox analyze --format json build.log`.
/// Exit status: 0 nothing found, 1 findings, 2 bad input.
#[derive(Args, Debug, Clone, Default)]
pub struct AnalyzeArgs {
    /// Log files or JUnit XML files to read; `-` or none reads standard input.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,

    /// Directory of extra playbooks (*.toml); a playbook whose id exists replaces the built-in.
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,

    /// How many occurrences to show per class (the rest are counted).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_examples: usize,
}

/// Print a failure class's full playbook, or list the classes.
///
/// A class is named by its id (`unique-violation`) or by any of its codes (`23505`,
/// `sqlstate:23505`, `mysql:1062`, `P2002`).
///
/// Example: `dbsandbox explain unique-violation` or `dbsandbox explain --list`.
#[derive(Args, Debug, Clone, Default)]
pub struct ExplainArgs {
    /// Class id or code to explain.
    #[arg(value_name = "ID", required_unless_present = "list")]
    pub id: Option<String>,

    /// List all classes with their codes.
    #[arg(long, conflicts_with = "id")]
    pub list: bool,

    /// Directory of extra playbooks (*.toml), as for `analyze`.
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub format: OutputFormat,
}

/// Runs `analyze`; returns the exit code. Never panics on input: every problem becomes a message
/// on `stderr` and exit code 2.
pub fn run_analyze(args: &AnalyzeArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let matcher = match Matcher::load(args.playbooks.as_deref()) {
        Ok(matcher) => matcher,
        Err(e) => {
            let _ = writeln!(stderr, "dbsandbox analyze: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let mut collector = Collector::new(&matcher, args.max_examples.max(1));
    let use_stdin =
        args.files.is_empty() || (args.files.len() == 1 && args.files[0].as_os_str() == "-");
    let mut names = Vec::new();
    let mut outcomes: Vec<ScanOutcome> = Vec::new();
    if use_stdin {
        names.push("<stdin>".to_string());
        outcomes.push(reader::scan(std::io::stdin().lock(), &mut collector, 0));
    } else {
        for (index, path) in args.files.iter().enumerate() {
            let is_stdin = path.as_os_str() == "-";
            names.push(if is_stdin {
                "<stdin>".to_string()
            } else {
                path.display().to_string()
            });
            let outcome = if is_stdin {
                reader::scan(std::io::stdin().lock(), &mut collector, index)
            } else {
                match std::fs::File::open(path) {
                    Ok(file) => reader::scan(file, &mut collector, index),
                    Err(e) => ScanOutcome {
                        problem: Some(reader::InputProblem::Unreadable(e.to_string())),
                        ..ScanOutcome::default()
                    },
                }
            };
            outcomes.push(outcome);
        }
    }
    finish(&collector, &names, &outcomes, args.format, stdout, stderr)
}

/// Analyses in-memory inputs `(name, bytes)`: the same path as files, for tests, fuzzing and
/// embedding.
pub fn analyze_bytes(
    inputs: &[(&str, &[u8])],
    format: OutputFormat,
    max_examples: usize,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    // Compiling the catalogue dominates the cost of small inputs; tests and the fuzzer call
    // this thousands of times, so the built-in matcher is compiled once per process.
    static BUILTIN: OnceLock<Result<Matcher, String>> = OnceLock::new();
    let matcher = match BUILTIN.get_or_init(|| Matcher::load(None).map_err(|e| e.to_string())) {
        Ok(matcher) => matcher,
        Err(e) => {
            let _ = writeln!(stderr, "dbsandbox analyze: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let mut collector = Collector::new(matcher, max_examples.max(1));
    let mut names = Vec::new();
    let mut outcomes = Vec::new();
    for (index, (name, bytes)) in inputs.iter().enumerate() {
        names.push(name.to_string());
        outcomes.push(reader::scan(*bytes, &mut collector, index));
    }
    finish(&collector, &names, &outcomes, format, stdout, stderr)
}

fn finish(
    collector: &Collector<'_>,
    names: &[String],
    outcomes: &[ScanOutcome],
    format: OutputFormat,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let mut report = report::build(collector, names, outcomes);
    let bad_input = outcomes.iter().any(|o| o.problem.is_some());
    for (name, outcome) in names.iter().zip(outcomes) {
        if let Some(problem) = &outcome.problem {
            let _ = writeln!(stderr, "dbsandbox analyze: {name}: {problem}");
        }
        for warning in &outcome.warnings {
            let _ = writeln!(stderr, "dbsandbox analyze: {name}: warning: {warning}");
        }
    }
    // Bad input wins over findings: a script must not mistake a wrong path for a verdict.
    report.exit_code = if bad_input {
        EXIT_BAD_INPUT
    } else if collector.has_findings() {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    };
    let written = match format {
        OutputFormat::Human => report::write_human(&report, stdout),
        OutputFormat::Json => serde_json::to_writer_pretty(&mut *stdout, &report)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(stdout)),
    };
    if let Err(e) = written {
        let _ = writeln!(stderr, "dbsandbox analyze: cannot write the report: {e}");
        return EXIT_BAD_INPUT;
    }
    report.exit_code
}

/// Runs `explain`; returns the exit code (0, or 2 for an unknown id or invalid playbooks).
pub fn run_explain(args: &ExplainArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let playbooks = match crate::catalogue::load(args.playbooks.as_deref()) {
        Ok(playbooks) => playbooks,
        Err(e) => {
            let _ = writeln!(stderr, "dbsandbox explain: {e}");
            return EXIT_BAD_INPUT;
        }
    };
    let written = if args.list || args.id.is_none() {
        match args.format {
            OutputFormat::Json => {
                let list: Vec<serde_json::Value> = playbooks
                    .iter()
                    .map(|p| serde_json::json!({"id": p.id, "title": p.title, "kind": p.kind, "codes": p.codes}))
                    .collect();
                serde_json::to_writer_pretty(&mut *stdout, &list)
                    .map_err(std::io::Error::from)
                    .and_then(|()| writeln!(stdout))
            }
            OutputFormat::Human => (|| {
                let width = playbooks.iter().map(|p| p.id.len()).max().unwrap_or(0);
                for playbook in &playbooks {
                    let marker = match playbook.kind {
                        Kind::Consequence => " (consequence)",
                        Kind::Assertion => " (assertion)",
                        Kind::Primary => "",
                    };
                    writeln!(stdout, "{:width$}  {}{marker}", playbook.id, playbook.title)?;
                    if !playbook.codes.is_empty() {
                        writeln!(
                            stdout,
                            "{:width$}  codes: {}",
                            "",
                            playbook.codes.join(", ")
                        )?;
                    }
                }
                Ok(())
            })(),
        }
    } else {
        let wanted = args.id.as_deref().unwrap_or_default();
        let sqlstate = sqlstate_of(wanted);
        let playbook = find_playbook(&playbooks, wanted).or_else(|| {
            // Any SQLSTATE of PostgreSQL's table is known: the catch-all class covers it.
            sqlstate.and_then(|_| {
                playbooks
                    .iter()
                    .find(|p| p.id == crate::catalogue::UNCLASSIFIED)
            })
        });
        if let (Some(code), OutputFormat::Human) = (sqlstate, args.format) {
            let wanted_code = format!("sqlstate:{}", code.code);
            let claimants: Vec<&str> = playbooks
                .iter()
                .filter(|p| p.codes.contains(&wanted_code) && p.id != crate::catalogue::UNMIGRATED)
                .map(|p| p.id.as_str())
                .collect();
            if claimants.len() > 1 {
                let _ = writeln!(
                    stdout,
                    "Classes for this code, told apart by the message: {} (the first is shown)",
                    claimants.join(", ")
                );
            }
            if let Err(e) = write_sqlstate(code, stdout) {
                let _ = writeln!(stderr, "dbsandbox explain: cannot write: {e}");
                return EXIT_BAD_INPUT;
            }
        }
        let Some(playbook) = playbook else {
            let _ = writeln!(
                stderr,
                "dbsandbox explain: no failure class {wanted:?}; `dbsandbox explain --list` shows them all"
            );
            return EXIT_BAD_INPUT;
        };
        match args.format {
            OutputFormat::Json => serde_json::to_writer_pretty(&mut *stdout, playbook)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(stdout)),
            OutputFormat::Human => report::write_playbook(playbook, stdout),
        }
    };
    match written {
        Ok(()) => EXIT_CLEAN,
        Err(e) => {
            let _ = writeln!(stderr, "dbsandbox explain: cannot write: {e}");
            EXIT_BAD_INPUT
        }
    }
}

/// The SQLSTATE `wanted` names (`34000`, `sqlstate:34000`), if it is in PostgreSQL's table.
fn sqlstate_of(wanted: &str) -> Option<&'static crate::errcodes::SqlState> {
    let bare = wanted.strip_prefix("sqlstate:").unwrap_or(wanted);
    crate::errcodes::table().lookup(&bare.to_ascii_uppercase())
}

fn write_sqlstate(state: &crate::errcodes::SqlState, out: &mut dyn Write) -> std::io::Result<()> {
    let table = crate::errcodes::table();
    writeln!(
        out,
        "SQLSTATE {} {} \u{2014} class {} \u{201c}{}\u{201d}",
        state.code, state.condition, state.class, state.class_title
    )?;
    writeln!(
        out,
        "Driver names: psycopg `errors.{}`, ruby-pg `PG::{}`, asyncpg `{}Error`",
        state.python_name,
        state.python_name.trim_end_matches('_'),
        state
            .python_name
            .trim_end_matches('_')
            .trim_end_matches("Error")
    )?;
    if let Some(note) = table.class_note(state.class) {
        writeln!(out, "In a test suite: {note}")?;
    }
    writeln!(out)
}

/// Finds a class by id, or by a code with or without its namespace (`23505`, `mysql:1062`).
fn find_playbook<'p>(
    playbooks: &'p [crate::catalogue::Playbook],
    wanted: &str,
) -> Option<&'p crate::catalogue::Playbook> {
    let wanted_lower = wanted.to_ascii_lowercase();
    playbooks.iter().find(|p| p.id == wanted_lower).or_else(|| {
        playbooks.iter().find(|p| {
            p.codes.iter().any(|code| {
                code.eq_ignore_ascii_case(wanted)
                    || code
                        .split_once(':')
                        .is_some_and(|(_, bare)| bare.eq_ignore_ascii_case(wanted))
            })
        })
    })
}
