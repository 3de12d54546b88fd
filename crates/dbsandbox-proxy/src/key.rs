//! Sandbox keys: the database name a client puts in its connection string. This module holds the
//! rule a key must follow and the error type a routing decision returns, so the CLI and the proxy
//! agree on both.

use std::fmt;

/// Longest key accepted. Clones are named after keys, and PostgreSQL identifiers stop at 63 bytes,
/// so 48 leaves room for a prefix.
pub const MAX_KEY_LEN: usize = 48;

/// Why a connection could not be routed; sent to the client as a FATAL ErrorResponse.
#[derive(Debug, Clone)]
pub struct RouteError {
    /// Five-character SQLSTATE, e.g. `3D000` (invalid_catalog_name).
    pub sqlstate: &'static str,
    /// Human-readable message shown by the client's driver.
    pub message: String,
}

impl RouteError {
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> Self {
        RouteError {
            sqlstate,
            message: message.into(),
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.sqlstate)
    }
}

impl std::error::Error for RouteError {}

/// Checks that `key` is a valid sandbox key: 1 to 48 characters from `[A-Za-z0-9_-]`.
///
/// Refusals carry SQLSTATE 3D000 (invalid_catalog_name), the code PostgreSQL uses for an unknown
/// database, with a message that states the rule so the user can fix the connection string.
pub fn validate_key(key: &str) -> Result<(), RouteError> {
    let valid_chars = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !key.is_empty() && key.len() <= MAX_KEY_LEN && valid_chars {
        return Ok(());
    }
    // Show the offending key escaped, so control characters or huge names stay readable.
    let mut shown: String = key.chars().take(64).flat_map(char::escape_debug).collect();
    if key.chars().count() > 64 {
        shown.push('…');
    }
    Err(RouteError::new(
        "3D000",
        format!(
            "invalid sandbox key \"{shown}\": the database name is the sandbox key and must be \
             1 to {MAX_KEY_LEN} characters from A-Z, a-z, 0-9, '_' and '-'"
        ),
    ))
}

/// The error for a client's `CREATE DATABASE` or `DROP DATABASE` (SQLSTATE 0A000), in either
/// isolation: what to do instead, in the terms of keys.
pub fn database_command_refused(command: &str, key: &str) -> String {
    format!(
        "{command} is not run through the dbsandbox proxy: every database name is a sandbox key \
         (this connection's is {key}), and a database made on the server would outlive the run \
         unmanaged. Instead of CREATE DATABASE x, connect with dbname=x: a new key gets its own \
         fresh clone of the template. Instead of DROP DATABASE x, release key x (DELETE \
         /v1/sandboxes/x through the API, or SELECT dbsandbox_reset() in a rollback sandbox)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for key in ["a", "gw0", "JEST_WORKER-12", &"x".repeat(48)] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn refuses_everything_else_with_3d000() {
        for key in [
            "",
            "a b",
            "a.b",
            "ключ",
            "a/b",
            "a\"b",
            &"x".repeat(49),
            "a\u{0}",
        ] {
            let err = validate_key(key).unwrap_err();
            assert_eq!(err.sqlstate, "3D000");
            assert!(
                err.message.contains("1 to 48 characters"),
                "{}",
                err.message
            );
        }
    }
}
