//! The messages the rollback engine reads from clients and writes on both sides.
//!
//! postgres-protocol parses backend messages and writes frontend ones, which covers what the engine
//! sends to PostgreSQL; but the engine also has to *read* frontend messages (to rename statements
//! and portals and to classify SQL) and *write* backend messages (the replies it answers itself:
//! CommandComplete for an absorbed COMMIT, ReadyForQuery with the client's own status, …). Those
//! halves are here, each laid out as the protocol documentation says.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::message::frontend;

/// One message from a client, split into the fields the engine acts on. `Other` keeps any
/// message it passes through untouched.
#[derive(Debug, Clone)]
pub enum FrontMsg {
    Query(String),
    Parse {
        name: String,
        sql: String,
        param_types: Vec<u32>,
    },
    /// `rest` is everything after the two names (formats, values, result formats), passed as is.
    Bind {
        portal: String,
        statement: String,
        rest: Bytes,
    },
    Describe {
        portal: bool,
        name: String,
    },
    Execute {
        portal: String,
        max_rows: i32,
    },
    Close {
        portal: bool,
        name: String,
    },
    Sync,
    Flush,
    Terminate,
    /// CopyData, CopyDone, CopyFail, FunctionCall and anything else: the raw message.
    Other {
        tag: u8,
        raw: Bytes,
    },
}

/// A malformed client message (a field runs past the end, a string is not terminated, …).
#[derive(Debug)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed message: {}", self.0)
    }
}

fn cstr(body: &mut Bytes, what: &str) -> Result<String, Malformed> {
    let end = body
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| Malformed(format!("{what} is not terminated")))?;
    // Not necessarily UTF-8: a client encoding such as LATIN9 sends its own bytes.
    let text = super::names::decode_text(&body[..end]);
    body.advance(end + 1);
    Ok(text)
}

fn need(body: &Bytes, n: usize, what: &str) -> Result<(), Malformed> {
    if body.len() < n {
        Err(Malformed(format!("{what} is cut short")))
    } else {
        Ok(())
    }
}

impl FrontMsg {
    /// Parses one complete message (`raw` = tag, length, body).
    pub fn parse(raw: Bytes) -> Result<FrontMsg, Malformed> {
        let tag = raw[0];
        let mut body = raw.slice(5..);
        Ok(match tag {
            b'Q' => FrontMsg::Query(cstr(&mut body, "the query string")?),
            b'P' => {
                let name = cstr(&mut body, "the statement name")?;
                let sql = cstr(&mut body, "the query string")?;
                need(&body, 2, "the parameter count")?;
                let count = body.get_i16();
                if count < 0 {
                    return Err(Malformed("negative parameter count".into()));
                }
                need(&body, 4 * count as usize, "the parameter types")?;
                let param_types = (0..count).map(|_| body.get_u32()).collect();
                FrontMsg::Parse {
                    name,
                    sql,
                    param_types,
                }
            }
            b'B' => {
                let portal = cstr(&mut body, "the portal name")?;
                let statement = cstr(&mut body, "the statement name")?;
                FrontMsg::Bind {
                    portal,
                    statement,
                    rest: body,
                }
            }
            b'D' | b'C' => {
                need(&body, 1, "the describe/close kind")?;
                let kind = body.get_u8();
                let portal = match kind {
                    b'P' => true,
                    b'S' => false,
                    other => return Err(Malformed(format!("unknown describe/close kind {other}"))),
                };
                let name = cstr(&mut body, "the name")?;
                if tag == b'D' {
                    FrontMsg::Describe { portal, name }
                } else {
                    FrontMsg::Close { portal, name }
                }
            }
            b'E' => {
                let portal = cstr(&mut body, "the portal name")?;
                need(&body, 4, "the row limit")?;
                FrontMsg::Execute {
                    portal,
                    max_rows: body.get_i32(),
                }
            }
            b'S' => FrontMsg::Sync,
            b'H' => FrontMsg::Flush,
            b'X' => FrontMsg::Terminate,
            _ => FrontMsg::Other { tag, raw },
        })
    }

    /// Ends a unit of work: the client waits for ReadyForQuery (or, for Flush, for what it flushed).
    pub fn ends_unit(&self) -> bool {
        matches!(
            self,
            FrontMsg::Sync | FrontMsg::Query(_) | FrontMsg::Flush | FrontMsg::Terminate
        ) || matches!(self, FrontMsg::Other { tag: b'F', .. })
    }
}

/// Writers for the frontend messages the engine sends with renamed statements and portals.
pub mod front {
    use super::super::names::put_text as put_cstr;
    use super::*;
    use crate::wire::put_message as framed;

    pub fn query(buf: &mut BytesMut, sql: &str) {
        framed(buf, b'Q', |b| put_cstr(b, sql));
    }

    pub fn parse(buf: &mut BytesMut, name: &str, sql: &str, param_types: &[u32]) {
        framed(buf, b'P', |b| {
            put_cstr(b, name);
            put_cstr(b, sql);
            b.put_i16(param_types.len() as i16);
            for oid in param_types {
                b.put_u32(*oid);
            }
        });
    }

    pub fn bind(buf: &mut BytesMut, portal: &str, statement: &str, rest: &[u8]) {
        framed(buf, b'B', |b| {
            put_cstr(b, portal);
            put_cstr(b, statement);
            b.put_slice(rest);
        });
    }

    /// Bind without parameters or result formats.
    pub fn bind_plain(buf: &mut BytesMut, portal: &str, statement: &str) {
        bind(buf, portal, statement, &[0, 0, 0, 0, 0, 0]);
    }

    pub fn describe(buf: &mut BytesMut, portal: bool, name: &str) {
        framed(buf, b'D', |b| {
            b.put_u8(if portal { b'P' } else { b'S' });
            put_cstr(b, name);
        });
    }

    pub fn execute(buf: &mut BytesMut, portal: &str, max_rows: i32) {
        framed(buf, b'E', |b| {
            put_cstr(b, portal);
            b.put_i32(max_rows);
        });
    }

    pub fn close(buf: &mut BytesMut, portal: bool, name: &str) {
        framed(buf, b'C', |b| {
            b.put_u8(if portal { b'P' } else { b'S' });
            put_cstr(b, name);
        });
    }

    pub fn sync(buf: &mut BytesMut) {
        frontend::sync(buf);
    }

    pub fn copy_fail(buf: &mut BytesMut, reason: &str) {
        framed(buf, b'f', |b| put_cstr(b, reason));
    }

    pub fn flush(buf: &mut BytesMut) {
        frontend::flush(buf);
    }
}

/// Writers for the backend messages the engine answers itself.
pub mod back {
    use super::super::names;
    use super::*;
    use crate::wire::{put_cstr, put_message as framed};

    pub fn command_complete(buf: &mut BytesMut, tag: &str) {
        framed(buf, b'C', |b| put_cstr(b, tag));
    }

    pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
        framed(buf, b'Z', |b| b.put_u8(status));
    }

    pub fn parse_complete(buf: &mut BytesMut) {
        framed(buf, b'1', |_| {});
    }

    pub fn bind_complete(buf: &mut BytesMut) {
        framed(buf, b'2', |_| {});
    }

    pub fn close_complete(buf: &mut BytesMut) {
        framed(buf, b'3', |_| {});
    }

    pub fn no_data(buf: &mut BytesMut) {
        framed(buf, b'n', |_| {});
    }

    pub fn parameter_description(buf: &mut BytesMut, types: &[u32]) {
        framed(buf, b't', |b| {
            b.put_i16(types.len() as i16);
            for oid in types {
                b.put_u32(*oid);
            }
        });
    }

    pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
        framed(buf, b'S', |b| {
            put_cstr(b, name);
            put_cstr(b, value);
        });
    }

    /// RowDescription of text columns.
    pub fn row_description_text(buf: &mut BytesMut, columns: &[&str]) {
        framed(buf, b'T', |b| {
            b.put_i16(columns.len() as i16);
            for column in columns {
                put_cstr(b, column);
                b.put_i32(0); // table oid
                b.put_i16(0); // column number
                b.put_u32(25); // text
                b.put_i16(-1); // variable length
                b.put_i32(-1); // no type modifier
                b.put_i16(0); // text format
            }
        });
    }

    pub fn data_row_text(buf: &mut BytesMut, values: &[&str]) {
        framed(buf, b'D', |b| {
            b.put_i16(values.len() as i16);
            for value in values {
                b.put_i32(value.len() as i32);
                b.put_slice(value.as_bytes());
            }
        });
    }

    /// A NotificationResponse. Channel and payload are text from [`super::names::decode_text`]
    /// (the sender's bytes, whatever its client encoding), written back byte for byte.
    pub fn notification(buf: &mut BytesMut, process_id: i32, channel: &str, payload: &str) {
        framed(buf, b'A', |b| {
            b.put_i32(process_id);
            names::put_text(b, channel);
            names::put_text(b, payload);
        });
    }

    /// An ErrorResponse (`error` true) or NoticeResponse with severity, SQLSTATE and message.
    pub fn error_or_notice(
        buf: &mut BytesMut,
        error: bool,
        severity: &str,
        sqlstate: &str,
        message: &str,
    ) {
        framed(buf, if error { b'E' } else { b'N' }, |b| {
            for (field, value) in [
                (b'S', severity),
                (b'V', severity),
                (b'C', sqlstate),
                (b'M', message),
            ] {
                b.put_u8(field);
                put_cstr(b, value);
            }
            b.put_u8(0);
        });
    }

    pub fn error(buf: &mut BytesMut, sqlstate: &str, message: &str) {
        error_or_notice(buf, true, "ERROR", sqlstate, message);
    }

    pub fn warning(buf: &mut BytesMut, sqlstate: &str, message: &str) {
        error_or_notice(buf, false, "WARNING", sqlstate, message);
    }
}

/// SQLSTATE `query_canceled`: a cancel request or `statement_timeout` stopped a statement.
pub const QUERY_CANCELED: &str = "57014";

/// The fields of an ErrorResponse or NoticeResponse body (after tag and length), as (type,
/// value) pairs in order; a field missing its terminator (a body cut short) is not one.
pub fn response_fields(body: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut rest = body;
    std::iter::from_fn(move || {
        let (&field, tail) = rest.split_first()?;
        if field == 0 {
            return None;
        }
        let end = tail.iter().position(|&b| b == 0)?;
        rest = &tail[end + 1..];
        Some((field, &tail[..end]))
    })
}

/// Reads the SQLSTATE and message of an ErrorResponse body (after tag and length).
pub fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    for (field, value) in response_fields(body) {
        match field {
            b'C' => code = String::from_utf8_lossy(value).into_owned(),
            b'M' => message = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
    }
    (code, message)
}

/// Whether an ErrorResponse body (after tag and length) is FATAL or PANIC: the server closes
/// the connection after it.
pub fn is_fatal(body: &[u8]) -> bool {
    response_fields(body)
        .find(|(field, _)| *field == b'V' || *field == b'S')
        .is_some_and(|(_, severity)| matches!(severity, b"FATAL" | b"PANIC"))
}

/// An ErrorResponse or NoticeResponse (whole message) with the fields `keep` accepts, each field
/// of `set` in place of the one of its type (after them if there was none).
pub fn with_fields(raw: &[u8], keep: impl Fn(u8) -> bool, set: &[(u8, &[u8])]) -> BytesMut {
    let mut fields = BytesMut::new();
    let mut put = |field: u8, value: &[u8]| {
        fields.put_u8(field);
        fields.put_slice(value);
        fields.put_u8(0);
    };
    let mut placed = Vec::new();
    for (field, value) in response_fields(raw.get(5..).unwrap_or_default()) {
        match set.iter().find(|(replaced, _)| *replaced == field) {
            Some(&(_, new_value)) => {
                put(field, new_value);
                placed.push(field);
            }
            None if keep(field) => put(field, value),
            None => {}
        }
    }
    for &(field, value) in set.iter().filter(|(field, _)| !placed.contains(field)) {
        put(field, value);
    }
    fields.put_u8(0);
    let mut out = BytesMut::with_capacity(fields.len() + 5);
    out.put_u8(raw.first().copied().unwrap_or(b'E'));
    out.put_i32(fields.len() as i32 + 4);
    out.put_slice(&fields);
    out
}

/// Quotes a string literal for SQL.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(build: impl FnOnce(&mut BytesMut)) -> FrontMsg {
        let mut buf = BytesMut::new();
        build(&mut buf);
        FrontMsg::parse(buf.freeze()).unwrap()
    }

    #[test]
    fn frontend_messages_round_trip() {
        match roundtrip(|b| front::parse(b, "s1", "select $1", &[23])) {
            FrontMsg::Parse {
                name,
                sql,
                param_types,
            } => {
                assert_eq!(
                    (name.as_str(), sql.as_str(), param_types),
                    ("s1", "select $1", vec![23])
                );
            }
            other => panic!("{other:?}"),
        }
        match roundtrip(|b| front::bind(b, "p", "s1", &[1, 2, 3])) {
            FrontMsg::Bind {
                portal,
                statement,
                rest,
            } => {
                assert_eq!(
                    (portal.as_str(), statement.as_str(), &rest[..]),
                    ("p", "s1", &[1u8, 2, 3][..])
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            roundtrip(|b| front::execute(b, "p", 10)),
            FrontMsg::Execute { max_rows: 10, .. }
        ));
        assert!(matches!(
            roundtrip(|b| front::close(b, true, "p")),
            FrontMsg::Close { portal: true, .. }
        ));
        assert!(matches!(
            roundtrip(|b| front::describe(b, false, "s")),
            FrontMsg::Describe { portal: false, .. }
        ));
        assert!(matches!(roundtrip(front::sync), FrontMsg::Sync));
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        for raw in [
            &b"P\0\0\0\x06ab"[..],
            b"E\0\0\0\x06p\0",
            b"D\0\0\0\x06Xy\0",
            b"P\0\0\0\x0ba\0b\0\xff\xff",
        ] {
            assert!(
                FrontMsg::parse(Bytes::copy_from_slice(raw)).is_err(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn error_fields_are_read() {
        let mut buf = BytesMut::new();
        back::error(&mut buf, "23505", "duplicate key");
        assert_eq!(
            error_fields(&buf[5..]),
            ("23505".to_string(), "duplicate key".to_string())
        );
        assert!(!is_fatal(&buf[5..]));
        let mut fatal = BytesMut::new();
        back::error_or_notice(&mut fatal, true, "FATAL", "57P01", "terminating connection");
        assert!(is_fatal(&fatal[5..]));
        // A body cut short: its unterminated field is not read.
        let cut: Vec<_> = response_fields(b"SERROR\0C2350").collect();
        assert_eq!(cut, [(b'S', &b"ERROR"[..])]);
    }

    #[test]
    fn fields_are_dropped_replaced_and_added_in_a_well_framed_message() {
        let mut buf = BytesMut::new();
        back::error(&mut buf, "42P07", "relation \"person\" already exists");
        let hinted = with_fields(
            &buf,
            |field| field != b'V',
            &[(b'H', b"a hint"), (b'S', b"FATAL")],
        );
        assert_eq!(hinted[0], b'E');
        assert_eq!(
            i32::from_be_bytes(hinted[1..5].try_into().unwrap()) as usize,
            hinted.len() - 1
        );
        let fields: Vec<_> = response_fields(&hinted[5..]).collect();
        assert_eq!(
            fields,
            [
                (b'S', &b"FATAL"[..]),
                (b'C', &b"42P07"[..]),
                (b'M', &b"relation \"person\" already exists"[..]),
                (b'H', &b"a hint"[..]),
            ]
        );
    }
}
