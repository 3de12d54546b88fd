//! A client that terminates its own backend. Every connection of a rollback key is given the
//! shared backend's process id (so `conn.info.backend_pid` matches `pg_backend_pid()`), so a
//! client running `SELECT pg_terminate_backend(<its own pid>)` would end the session of every
//! connection of the key and break the key, where PostgreSQL ends only that client's session
//! (drivers' test suites do this to test broken connections; psycopg's then loses its
//! session-wide service connection and 171 later tests with it). That statement, in its usual
//! forms (the pid as a literal, a parameter or `pg_backend_pid()`), ends only the client's own
//! connection with PostgreSQL's FATAL 57P01; its open transaction is rolled back as the
//! server's would be. Any other way of terminating the shared backend still breaks the key.

use super::*;

/// The argument of a statement that is exactly `SELECT pg_terminate_backend(<arg>)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TerminateArg {
    OwnPid,
    Literal(i32),
    FirstParameter,
}

fn terminate_call(sql: &str) -> Option<TerminateArg> {
    let compact: String = sql
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    let compact = compact.trim_end_matches(';');
    let call = compact.strip_prefix("select")?;
    let call = call.strip_prefix("pg_catalog.").unwrap_or(call);
    let arg = call
        .strip_prefix("pg_terminate_backend(")?
        .strip_suffix(')')?;
    let arg = arg.split("::").next()?;
    match arg {
        "pg_backend_pid()" | "pg_catalog.pg_backend_pid()" => Some(TerminateArg::OwnPid),
        "$1" => Some(TerminateArg::FirstParameter),
        n => n.parse().ok().map(TerminateArg::Literal),
    }
}

/// Whether the statement mentions `pg_terminate_backend` (then its SQL is kept for Bind).
pub(super) fn mentions_terminate(sql: &str) -> bool {
    classify::contains_ignore_ascii_case(sql, b"pg_terminate_backend")
}

/// The first parameter of a Bind (after its names) as an integer, in text or binary format.
fn first_parameter(rest: &[u8]) -> Option<i64> {
    let read_i16 = |at: usize| Some(i16::from_be_bytes([*rest.get(at)?, *rest.get(at + 1)?]));
    let formats = read_i16(0)?.max(0) as usize;
    let binary = formats > 0 && read_i16(2)? == 1;
    let params_at = 2 + 2 * formats;
    if read_i16(params_at)? < 1 {
        return None;
    }
    let len_at = params_at + 2;
    let len = i32::from_be_bytes(rest.get(len_at..len_at + 4)?.try_into().ok()?);
    let value = rest.get(len_at + 4..len_at + 4 + usize::try_from(len).ok()?)?;
    if binary {
        match value.len() {
            2 => Some(i16::from_be_bytes(value.try_into().ok()?) as i64),
            4 => Some(i32::from_be_bytes(value.try_into().ok()?) as i64),
            8 => Some(i64::from_be_bytes(value.try_into().ok()?)),
            _ => None,
        }
    } else {
        std::str::from_utf8(value).ok()?.trim().parse().ok()
    }
}

/// How a client that terminated its own backend ends, as PostgreSQL ends it.
fn own_termination() -> SessionEnd {
    SessionEnd::Fatal {
        sqlstate: "57P01",
        message: "terminating connection due to administrator command".into(),
    }
}

/// A simple Query that terminates the client's own (the shared) backend.
pub(super) fn check_query(sandbox: &Sandbox, sql: &str) -> Result<(), SessionEnd> {
    let Some((shared_pid, _)) = sandbox.backend_key else {
        return Ok(());
    };
    match terminate_call(sql) {
        Some(TerminateArg::OwnPid) => Err(own_termination()),
        Some(TerminateArg::Literal(pid)) if pid == shared_pid => Err(own_termination()),
        _ => Ok(()),
    }
}

/// A Bind of a statement that terminates the client's own backend.
pub(super) fn check_bind(sandbox: &Sandbox, sql: &str, rest: &[u8]) -> Result<(), SessionEnd> {
    let Some((shared_pid, _)) = sandbox.backend_key else {
        return Ok(());
    };
    match terminate_call(sql) {
        Some(TerminateArg::FirstParameter) if first_parameter(rest) == Some(shared_pid as i64) => {
            Err(own_termination())
        }
        Some(TerminateArg::FirstParameter) => Ok(()),
        _ => check_query(sandbox, sql),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_forms_are_recognised() {
        assert_eq!(
            terminate_call("select pg_terminate_backend(pg_backend_pid())"),
            Some(TerminateArg::OwnPid)
        );
        assert_eq!(
            terminate_call("SELECT pg_catalog.pg_terminate_backend( $1 );"),
            Some(TerminateArg::FirstParameter)
        );
        assert_eq!(
            terminate_call("select pg_terminate_backend(42)"),
            Some(TerminateArg::Literal(42))
        );
        assert_eq!(
            terminate_call("select pg_terminate_backend(pid) from pg_stat_activity"),
            None
        );
    }

    #[test]
    fn the_first_parameter_is_read_in_text_and_binary() {
        // no format codes (text), one parameter "123"
        let text = [0, 0, 0, 1, 0, 0, 0, 3, b'1', b'2', b'3', 0, 0];
        assert_eq!(first_parameter(&text), Some(123));
        // one format code (binary), one int4 parameter 7
        let binary = [0, 1, 0, 1, 0, 1, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0];
        assert_eq!(first_parameter(&binary), Some(7));
    }
}
