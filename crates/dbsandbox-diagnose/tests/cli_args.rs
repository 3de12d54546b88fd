//! The clap surface the CLI binary flattens: arguments parse as documented and `--help` carries
//! the description and examples.

use clap::{CommandFactory, Parser, Subcommand};
use dbsandbox_diagnose::cli::{ANALYZE_EXAMPLES, EXPLAIN_EXAMPLES};
use dbsandbox_diagnose::{AnalyzeArgs, ExplainArgs, OutputFormat};

#[derive(Parser)]
#[command(name = "dbsandbox")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(after_help = ANALYZE_EXAMPLES)]
    Analyze(AnalyzeArgs),
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
}

#[test]
fn analyze_arguments_parse() {
    let cli = Cli::try_parse_from([
        "dbsandbox",
        "analyze",
        "a.log",
        "-",
        "--format",
        "json",
        "--max-examples",
        "7",
        "--playbooks",
        "pb",
    ])
    .unwrap();
    let Command::Analyze(args) = cli.command else {
        panic!("not analyze")
    };
    assert_eq!(
        args.files,
        [
            std::path::PathBuf::from("a.log"),
            std::path::PathBuf::from("-")
        ]
    );
    assert_eq!(args.format, OutputFormat::Json);
    assert_eq!(args.max_examples, 7);
    assert_eq!(args.playbooks.as_deref(), Some(std::path::Path::new("pb")));
    let cli = Cli::try_parse_from(["dbsandbox", "analyze"]).unwrap();
    let Command::Analyze(args) = cli.command else {
        panic!("not analyze")
    };
    assert!(args.files.is_empty());
    assert_eq!((args.format, args.max_examples), (OutputFormat::Human, 3));
    assert!(Cli::try_parse_from(["dbsandbox", "analyze", "--format", "xml"]).is_err());
}

#[test]
fn explain_needs_an_id_or_list() {
    assert!(Cli::try_parse_from(["dbsandbox", "explain"]).is_err());
    assert!(Cli::try_parse_from(["dbsandbox", "explain", "--list", "deadlock"]).is_err());
    let cli = Cli::try_parse_from(["dbsandbox", "explain", "--list"]).unwrap();
    let Command::Explain(args) = cli.command else {
        panic!("not explain")
    };
    assert!(args.list);
    let cli = Cli::try_parse_from(["dbsandbox", "explain", "23505", "--format", "json"]).unwrap();
    let Command::Explain(args) = cli.command else {
        panic!("not explain")
    };
    assert_eq!(args.id.as_deref(), Some("23505"));
}

#[test]
fn help_describes_the_command_and_shows_examples() {
    let mut command = Cli::command();
    let analyze = command
        .find_subcommand_mut("analyze")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(
        analyze.contains("Name the database failures in test logs and say how to fix them."),
        "{analyze}"
    );
    assert!(
        analyze.contains("pytest 2>&1 | dbsandbox analyze"),
        "{analyze}"
    );
    assert!(
        analyze.contains("Exit status: 0 no database failure found, 1 findings, 2 bad input"),
        "{analyze}"
    );
    let explain = command
        .find_subcommand_mut("explain")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(explain.contains("dbsandbox explain --list"), "{explain}");
}
