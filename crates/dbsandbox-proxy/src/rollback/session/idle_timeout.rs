//! A client's own `idle_in_transaction_session_timeout`. The shared backend must never keep it
//! (it is idle in its transaction between every batch: see [`VIRTUAL_SETTINGS`]), so the proxy
//! keeps the promise itself: a client that stays idle inside its transaction (or its failed one)
//! longer than its setting has its session ended with PostgreSQL's FATAL 25P03, its transaction
//! rolled back; the key and its other connections go on.

use std::time::Duration;

use super::*;

const SETTING: &str = "idle_in_transaction_session_timeout";

/// How a client that stayed idle in its transaction too long ends, as PostgreSQL ends it.
pub(super) fn timed_out() -> SessionEnd {
    SessionEnd::Fatal {
        sqlstate: "25P03",
        message: "terminating connection due to idle-in-transaction timeout".into(),
    }
}

/// How long the client may stay idle now before its session ends: `None` when it is not in a
/// transaction or has no timeout of its own.
pub(super) fn idle_limit(backend: &Backend, id: ClientId) -> Option<Duration> {
    let client = backend.clients.get(&id)?;
    if client.status == TxStatus::Idle {
        return None;
    }
    parse_milliseconds(&client.setting_value(SETTING)?)
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

/// A time setting's value as PostgreSQL reads it (no unit: milliseconds).
fn parse_milliseconds(value: &str) -> Option<u64> {
    let value = value.trim();
    let digits = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let number: f64 = value[..digits].parse().ok()?;
    let scale = match value[digits..].trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some((number * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_with_their_units() {
        assert_eq!(parse_milliseconds("100"), Some(100));
        assert_eq!(parse_milliseconds("1s"), Some(1_000));
        assert_eq!(parse_milliseconds("2min"), Some(120_000));
        assert_eq!(parse_milliseconds(" 0 "), Some(0));
        assert_eq!(parse_milliseconds("1.5s"), Some(1_500));
        assert_eq!(parse_milliseconds("soon"), None);
    }
}
