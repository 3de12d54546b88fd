//! The settings a rollback client has for itself only: the shared backend never keeps them
//! between batches (see [`VIRTUAL_SETTINGS`]).

use crate::classify;

/// Settings the shared backend must never keep between batches. It is idle in its transaction
/// after every batch, so a client's `idle_in_transaction_session_timeout` (or a server-wide one)
/// would end the session of every connection of the key; and the next connection's batch starts
/// with the proxy's own SQL (savepoint work, guard), which another client's `statement_timeout`
/// would cancel. A client's value holds inside its own batches (SHOW answers it) and is set back
/// to the backend's default (its startup value, 0, for the first) before each batch ends; a
/// `SET LOCAL` of one of them therefore lasts until the batch's end, not the transaction's.
pub const VIRTUAL_SETTINGS: [&str; 2] =
    ["idle_in_transaction_session_timeout", "statement_timeout"];

/// Whether `name` (lower case) is one of the [`VIRTUAL_SETTINGS`].
pub fn is_virtual_setting(name: &str) -> bool {
    VIRTUAL_SETTINGS.contains(&name)
}

/// SQL setting every [`VIRTUAL_SETTINGS`] back to the backend's default.
pub const ZERO_VIRTUAL_SETTINGS_SQL: &str =
    "SET idle_in_transaction_session_timeout TO DEFAULT; SET statement_timeout TO DEFAULT";

pub(super) fn mentions_virtual_setting(sql: &str) -> bool {
    VIRTUAL_SETTINGS
        .iter()
        .any(|setting| classify::contains_ignore_ascii_case(sql, setting.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zeroing_sql_sets_back_every_virtual_setting() {
        for name in VIRTUAL_SETTINGS {
            assert!(ZERO_VIRTUAL_SETTINGS_SQL.contains(&format!("SET {name} TO DEFAULT")));
        }
        assert_eq!(
            ZERO_VIRTUAL_SETTINGS_SQL.matches("SET ").count(),
            VIRTUAL_SETTINGS.len()
        );
    }
}
