//! Fuzz target for the reader: any bytes, as a plain log or (when they sniff as XML) JUnit,
//! through the whole analyze path including the JSON report. It must never panic, and the
//! report must always be valid JSON with an exit code of 0, 1 or 2.
#![no_main]

use dbsandbox_diagnose::{analyze_bytes, OutputFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = analyze_bytes(
        &[("fuzz", data)],
        OutputFormat::Json,
        3,
        &mut stdout,
        &mut stderr,
    );
    assert!((0..=2).contains(&code));
    let report: serde_json::Value = serde_json::from_slice(&stdout).expect("report is JSON");
    assert_eq!(report["exit_code"], code);
});
