//! The crate's error type.

use std::fmt;

/// What can go wrong talking to the dbsandbox daemon.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The daemon answered with an error body `{"error": {"code", "message"}}` (or a bare
    /// non-2xx status, whose `code` is then `http_<status>`).
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error code: `bad_request`, `invalid_key`, `unauthorized`, `not_found`,
        /// `key_in_use`, `unavailable`, `internal`.
        code: String,
        /// The daemon's explanation.
        message: String,
    },
    /// The daemon could not be found or started (binary missing, `serve --detach` failed, …).
    Daemon(String),
    /// Talking to the daemon failed: connection refused, timeout, malformed HTTP or JSON.
    Http(String),
    /// An argument was refused before any request was made (e.g. an invalid key).
    InvalidArgument(String),
}

impl Error {
    /// The API error code (`key_in_use`, `not_found`, …) when the daemon sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api {
                status,
                code,
                message,
            } => write!(f, "dbsandbox daemon: {code} (HTTP {status}): {message}"),
            Error::Daemon(m) => write!(f, "dbsandbox daemon: {m}"),
            Error::Http(m) => write!(f, "dbsandbox API: {m}"),
            Error::InvalidArgument(m) => write!(f, "dbsandbox: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
