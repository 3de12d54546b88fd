//! Database evidence: what a culprit left in its clone, compared with an untouched clone of the
//! same template (being built: the comparison finds nothing yet).

use crate::model::TableEvidence;

/// Every difference between the `baseline` clone and `clone`, at most `limit` rows listed per table.
pub async fn left_behind(
    _baseline_url: &str,
    _clone_url: &str,
    _limit: usize,
) -> anyhow::Result<Vec<TableEvidence>> {
    Ok(Vec::new())
}
