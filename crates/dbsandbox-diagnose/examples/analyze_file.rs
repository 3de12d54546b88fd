//! A stand-alone `analyze` / `explain` front end over the library, used by the benchmark
//! (`bench/diagnose/run.sh`) and for trying the crate before the main CLI wires it in.
//!
//! `cargo run --release -p dbsandbox-diagnose --example analyze_file -- analyze build.log`

use clap::{Parser, Subcommand};
use dbsandbox_diagnose::{cli, AnalyzeArgs, ExplainArgs};

#[derive(Parser)]
#[command(name = "dbsandbox-diagnose")]
struct Command {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    #[command(after_help = cli::ANALYZE_EXAMPLES)]
    Analyze(AnalyzeArgs),
    #[command(after_help = cli::EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
    /// Print the prefilter's literal triggers, one per line (for `grep -F -f`).
    Triggers,
}

fn main() {
    let command = Command::parse();
    let stdout = std::io::stdout();
    let mut stdout = std::io::BufWriter::new(stdout.lock());
    let mut stderr = std::io::stderr();
    let code = match &command.action {
        Action::Analyze(args) => cli::run_analyze(args, &mut stdout, &mut stderr),
        Action::Explain(args) => cli::run_explain(args, &mut stdout, &mut stderr),
        Action::Triggers => match dbsandbox_diagnose::matcher::Matcher::load(None) {
            Ok(matcher) => {
                use std::io::Write;
                for trigger in matcher.triggers() {
                    let _ = writeln!(stdout, "{trigger}");
                }
                0
            }
            Err(e) => {
                eprintln!("{e}");
                2
            }
        },
    };
    drop(stdout);
    std::process::exit(code);
}
