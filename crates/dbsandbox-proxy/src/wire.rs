//! Server-side messages the proxy itself writes to clients. postgres-protocol only writes the
//! frontend half of the protocol (it is a client library), so the handful of backend messages the
//! proxy originates (errors, authentication requests, its own cancel key) are written here, each
//! exactly as the protocol documentation lays it out.

use bytes::{BufMut, BytesMut};

/// Protocol code of a StartupMessage for protocol 3.0.
pub const PROTOCOL_3_0: i32 = 0x0003_0000;
/// Request codes that replace the protocol version in special startup packets.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;

/// SQLSTATE for a protocol violation (malformed or oversized message).
pub const PROTOCOL_VIOLATION: &str = "08P01";

/// Appends `tag`, a length placeholder, whatever `body` writes, then fixes up the length.
pub(crate) fn put_message(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let len_at = buf.len();
    buf.put_i32(0);
    body(buf);
    // Messages written here are tiny (bounded strings), far below i32::MAX.
    let len = (buf.len() - len_at) as i32;
    buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Writes a C string, dropping interior NULs (they would cut the field short on the client).
pub(crate) fn put_cstr(buf: &mut BytesMut, s: &str) {
    buf.extend(s.bytes().filter(|&b| b != 0));
    buf.put_u8(0);
}

/// Severity of an error the proxy sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The session ends after this message.
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "FATAL",
        }
    }
}

/// Appends an ErrorResponse with severity, SQLSTATE and message fields.
pub fn error_response(buf: &mut BytesMut, severity: Severity, sqlstate: &str, message: &str) {
    put_message(buf, b'E', |buf| {
        buf.put_u8(b'S');
        put_cstr(buf, severity.as_str());
        // 'V' is the non-localised severity that modern drivers prefer.
        buf.put_u8(b'V');
        put_cstr(buf, severity.as_str());
        buf.put_u8(b'C');
        put_cstr(buf, sqlstate);
        buf.put_u8(b'M');
        put_cstr(buf, message);
        buf.put_u8(0);
    });
}

/// Builds a FATAL ErrorResponse as a fresh buffer.
pub fn fatal(sqlstate: &str, message: &str) -> BytesMut {
    let mut buf = BytesMut::with_capacity(64 + message.len());
    error_response(&mut buf, Severity::Fatal, sqlstate, message);
    buf
}

pub fn authentication_ok(buf: &mut BytesMut) {
    put_message(buf, b'R', |buf| buf.put_i32(0));
}

pub fn authentication_md5_password(buf: &mut BytesMut, salt: [u8; 4]) {
    put_message(buf, b'R', |buf| {
        buf.put_i32(5);
        buf.put_slice(&salt);
    });
}

pub fn backend_key_data(buf: &mut BytesMut, process_id: i32, secret_key: i32) {
    put_message(buf, b'K', |buf| {
        buf.put_i32(process_id);
        buf.put_i32(secret_key);
    });
}

/// Tells a client asking for protocol 3.x (x > 0) or `_pq_.` options that we speak 3.0 and do not
/// know those options, as PostgreSQL itself does.
pub fn negotiate_protocol_version(buf: &mut BytesMut, unrecognized: &[&str]) {
    put_message(buf, b'v', |buf| {
        buf.put_i32(PROTOCOL_3_0);
        buf.put_i32(unrecognized.len() as i32);
        for option in unrecognized {
            put_cstr(buf, option);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::backend::Message;

    #[test]
    fn error_response_is_framed_as_postgres_protocol_expects() {
        let mut buf = fatal("08P01", "bad\0message");
        let expected_body = b"SFATAL\0VFATAL\0C08P01\0Mbadmessage\0\0";
        assert_eq!(&buf[5..], expected_body);
        assert!(matches!(
            Message::parse(&mut buf).unwrap(),
            Some(Message::ErrorResponse(_))
        ));
        assert!(buf.is_empty());
    }
}
