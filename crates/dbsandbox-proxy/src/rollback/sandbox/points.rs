//! Named reset points of a rollback sandbox: a savepoint under every client's transactions,
//! taken once the set-up that a group of tests shares has run (a test class's or module's
//! fixtures, Django's `setUpTestData`), that a reset rolls back to instead of the template's
//! state. The sequences' values at the point are kept with it, since rolling back does not
//! move a sequence; a plain reset (to the template) drops every point.

use std::collections::BTreeMap;

use super::{baseline_sql, setval_sql, write_counters, Backend, BackendFailure, ClientError};
use super::{TxStatus, SEQUENCE_VALUES_SQL};

/// One named point: its savepoint on the backend, and the SQL that puts the sequences back.
pub(super) struct ResetPoint {
    name: String,
    physical: String,
    restore_sequences: Option<String>,
}

/// Longest point name (PostgreSQL's identifier length, so names read like savepoint names).
const MAX_POINT_NAME: usize = 63;

fn invalid_name(name: &str) -> Option<ClientError> {
    if name.is_empty() || name.len() > MAX_POINT_NAME {
        return Some(ClientError::new(
            "22023",
            format!("a dbsandbox reset point needs a name of 1 to {MAX_POINT_NAME} bytes"),
        ));
    }
    None
}

impl Backend {
    /// Takes the reset point `name` here, or moves it here if it exists (points taken after it
    /// are then dropped: they stood on top of it). Refused while any connection of the key is
    /// inside a transaction block: the point is a state every connection sees, and a client's
    /// later COMMIT would otherwise release it.
    pub async fn take_point(
        &mut self,
        name: &str,
    ) -> Result<Result<(), ClientError>, BackendFailure> {
        if let Some(error) = invalid_name(name) {
            return Ok(Err(error));
        }
        self.collapse_released();
        let in_block = self
            .clients
            .values()
            .any(|c| c.status != TxStatus::Idle || c.begin_pending);
        if in_block || !self.stack.is_empty() {
            return Ok(Err(ClientError::new(
                "25001",
                "dbsandbox_snapshot cannot run while a connection of the key is inside a \
                 transaction block: take the reset point once the shared set-up has committed",
            )));
        }
        self.flush_pending().await?;
        let mut sql = String::new();
        if let Some(at) = self.points.iter().position(|p| p.name == name) {
            sql.push_str(&format!("RELEASE SAVEPOINT {}; ", self.points[at].physical));
            self.points.truncate(at);
        }
        self.next_savepoint += 1;
        let physical = format!("dbsb_point_{}", self.next_savepoint);
        sql.push_str(&format!("SAVEPOINT {physical}; {SEQUENCE_VALUES_SQL}"));
        let what = format!("taking the reset point \"{name}\"");
        let rows = self.run_or_break(&sql, &what).await?;
        self.points.push(ResetPoint {
            name: name.to_string(),
            physical,
            restore_sequences: setval_sql(&rows),
        });
        Ok(Ok(()))
    }

    /// Rolls the sandbox back to the reset point `name` (points taken after it are dropped),
    /// as [`Backend::reset`] rolls it back to the template.
    pub async fn reset_to_point(
        &mut self,
        name: &str,
    ) -> Result<Result<(), ClientError>, BackendFailure> {
        let Some(at) = self.points.iter().position(|p| p.name == name) else {
            let taken = self.point_names();
            return Ok(Err(ClientError::new(
                "42704",
                format!(
                    "dbsandbox reset point \"{name}\" does not exist (points now: {}); take it \
                     with SELECT dbsandbox_snapshot('{name}'); a reset to the template drops \
                     every point",
                    if taken.is_empty() {
                        "none".to_string()
                    } else {
                        taken.join(", ")
                    }
                ),
            )));
        };
        let point = &self.points[at];
        let mut sql = format!("ROLLBACK TO SAVEPOINT {}; ", point.physical);
        if let Some(restore) = &point.restore_sequences {
            sql.push_str(restore);
            sql.push_str("; ");
        }
        sql.push_str(super::RESET_SESSION_SQL);
        sql.push_str(&baseline_sql(&self.user_tables));
        // The rollback ends the guard savepoint too.
        self.guard_left_open = false;
        let what = format!("resetting the sandbox to point \"{name}\"");
        let rows = self.run_or_break(&sql, &what).await?;
        self.points.truncate(at + 1);
        self.start_afresh(rows, false);
        Ok(Ok(()))
    }

    /// After a rollback to the template or to a point: no savepoint of any client is left, the
    /// backend's settings are the startup ones, and each client's transaction block (if it was
    /// in one) goes on, empty: a connection of a test that is reset between two statements of
    /// its transaction must not find itself outside the block it opened. `to_template`: every
    /// temporary object is gone too (a point keeps those made before it).
    pub(super) fn start_afresh(&mut self, baseline: Vec<Vec<Option<String>>>, to_template: bool) {
        self.write_baseline = write_counters(baseline);
        self.stack.clear();
        self.pending_ops.clear();
        self.applied = Some(BTreeMap::new());
        // The rollback may have undone constraints the cached checks name.
        self.deferred_checks = None;
        self.ddl_since_reset = false;
        self.needs_reset = false;
        for client in self.clients.values_mut() {
            client.begin_pending = client.status == TxStatus::InTx;
            client.tx_may_write = false;
            client.pending_notifies.clear();
            if to_template {
                client.temp_objects.clear();
            }
        }
    }

    /// The names of the reset points, oldest first.
    pub fn point_names(&self) -> Vec<String> {
        self.points.iter().map(|p| p.name.clone()).collect()
    }
}
