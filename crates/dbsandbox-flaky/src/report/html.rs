//! The HTML report (being built: a bare page for now).

use crate::model::Hunt;

/// The hunt as one self-contained page.
pub fn html_report(hunt: &Hunt) -> String {
    format!(
        "<!doctype html><title>dbsandbox flaky</title><p>{} findings</p>",
        hunt.findings.len()
    )
}
