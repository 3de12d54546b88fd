//! `dbsandbox-diagnose`: names the database failure behind a red build and says how to fix it.
//!
//! `dbsandbox analyze LOG...` streams test logs (plain text with or without ANSI colours, or
//! JUnit XML) through a catalogue of failure classes kept as TOML playbooks, normalises every
//! match to its SQLSTATE or vendor code, attributes it to the test that printed it, and reports
//! the classes ranked with their diagnosis and fix. `dbsandbox explain ID` prints a playbook.
//! The CLI binary flattens [`cli::AnalyzeArgs`] and [`cli::ExplainArgs`] into its subcommands and
//! calls [`run_analyze`] / [`run_explain`]. See `README.md` and `SCHEMA.md` in this crate.

pub mod advice;
pub mod analysis;
pub mod catalogue;
pub mod cli;
pub mod errcodes;
mod junit;
pub mod matcher;
mod prefilter;
pub mod reader;
pub mod report;
mod rules;

pub use cli::{analyze_bytes, run_analyze, run_explain, AnalyzeArgs, ExplainArgs, OutputFormat};
