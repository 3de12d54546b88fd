//! READ ONLY transactions of the clients. The sandbox's own transaction is read-write, and a
//! savepoint can make what runs inside it read-only but never the reverse; PostgreSQL also ends a
//! subtransaction's read-only mode with the subtransaction, committed or not. So a client's
//! `BEGIN READ ONLY`, `SET TRANSACTION READ ONLY` or `default_transaction_read_only` holds for
//! exactly its own batches: each one sets it inside its guard savepoint (see
//! `Unit::prepare_forward`), and the key's other connections, whose batches come between, stay
//! read-write. Writes then fail with PostgreSQL's own 25006, and `transaction_read_only` reads
//! back `on`.

use super::*;
use crate::classify::{self, Kind};

impl ClientState {
    /// The value of a session setting of the client (as its SET wrote it, quotes removed).
    pub fn setting_value(&self, name: &str) -> Option<String> {
        let set = self.settings.get(name)?;
        match classify::classify_one(set) {
            Kind::SetSession {
                value: Some(value), ..
            } => Some(value.trim().trim_matches('\'').trim().to_string()),
            _ => None,
        }
    }

    /// Whether the client's `default_transaction_read_only` is on.
    fn read_only_by_default(&self) -> bool {
        self.setting_value("default_transaction_read_only")
            .is_some_and(|value| is_true(&value))
    }
}

/// A boolean setting's value as PostgreSQL reads it (any prefix of on/true/yes; 1).
fn is_true(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "on" | "true" | "tru" | "tr" | "t" | "yes" | "ye" | "y" | "1"
    )
}

impl Backend {
    /// The client's transaction is READ ONLY (true) or READ WRITE (false); `None` at BEGIN
    /// without either: its `default_transaction_read_only`. Outside a transaction block
    /// (`SET TRANSACTION` there does nothing in PostgreSQL either) nothing changes.
    pub fn set_read_only(&mut self, id: ClientId, read_only: Option<bool>) {
        if let Some(client) = self.clients.get_mut(&id) {
            if client.status != TxStatus::Idle {
                client.tx_read_only = read_only.unwrap_or_else(|| client.read_only_by_default());
            }
        }
    }

    /// Whether the client's next batch must run read-only: its transaction is, or (outside one)
    /// every statement is, by its `default_transaction_read_only`.
    pub fn batch_read_only(&self, id: ClientId) -> bool {
        self.clients
            .get(&id)
            .is_some_and(|client| match client.status {
                TxStatus::Idle => client.read_only_by_default(),
                TxStatus::InTx | TxStatus::Failed => client.tx_read_only,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_as_postgresql_reads_them() {
        assert!(is_true("on") && is_true("TRUE") && is_true("1") && is_true("yes"));
        assert!(!is_true("off") && !is_true("0") && !is_true("false") && !is_true("no"));
    }
}
