//! The client's side of startup: reading the untagged startup packets (SSLRequest, GSSENCRequest,
//! CancelRequest, StartupMessage), validating them the way PostgreSQL does, and authenticating the
//! client to the proxy (trust, or an MD5 password challenge with a fresh random salt).
//! postgres-protocol only writes frontend messages, so reading them is done here, with the same
//! limits PostgreSQL applies (a startup packet is 8 to 10000 bytes).

use crate::server::ClientAuth;
use crate::wire::{self, PROTOCOL_VIOLATION};
use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::md5_hash;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// PostgreSQL's MAX_STARTUP_PACKET_LENGTH.
const MAX_STARTUP_PACKET: usize = 10_000;
/// Bound on a PasswordMessage; an MD5 answer is 36 bytes, so this is generous.
const MAX_PASSWORD_MESSAGE: usize = 1024;

/// An unpredictable 64-bit value for salts and cancel secrets, without an RNG dependency: std's
/// `RandomState` is seeded from the OS once per thread and SipHash of a counter and the clock
/// under that seed cannot be guessed by a client.
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(now);
    hasher.finish()
}

/// Why startup ended without a session.
#[derive(Debug)]
pub enum StartupError {
    /// The client went away; nothing to say to it.
    Closed,
    Io(io::Error),
    /// Close without a word, as PostgreSQL does for a startup packet of an impossible length or
    /// one cut short (it only logs them, COMMERROR): a client that sent such bytes is not
    /// speaking the protocol, or is a driver hanging up early (node-postgres sends Terminate
    /// before its startup packet when `end()` follows `connect()` at once), and an ErrorResponse
    /// would reach it as a crash. The reason is logged.
    Dropped(String),
    /// Refuse the client with a FATAL ErrorResponse.
    Refuse {
        sqlstate: &'static str,
        message: String,
    },
}

impl StartupError {
    pub fn refuse(sqlstate: &'static str, message: impl Into<String>) -> Self {
        StartupError::Refuse {
            sqlstate,
            message: message.into(),
        }
    }

    #[cfg(test)]
    pub fn is_protocol_violation(&self) -> bool {
        matches!(self, StartupError::Refuse { sqlstate, .. } if *sqlstate == PROTOCOL_VIOLATION)
            || matches!(self, StartupError::Dropped(_))
    }
}

impl From<io::Error> for StartupError {
    fn from(e: io::Error) -> Self {
        StartupError::Io(e)
    }
}

/// One untagged packet a client may send before the session starts.
#[derive(Debug, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel {
        process_id: i32,
        secret_key: i32,
    },
    Startup {
        /// Minor version asked for; the proxy speaks 3.0 and negotiates down.
        minor_version: u16,
        params: Vec<(String, String)>,
    },
}

/// Reads until `buf` holds at least `n` bytes. Returns false on end of stream.
pub async fn fill<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    n: usize,
) -> io::Result<bool> {
    if buf.len() < n {
        buf.reserve(n - buf.len());
    }
    while buf.len() < n {
        if stream.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Reads and decodes one startup packet. Bytes the client sent after it stay in `buf`.
pub async fn read_startup_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<StartupPacket, StartupError> {
    if !fill(stream, buf, 4).await? {
        return Err(StartupError::Closed);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len = match usize::try_from(len) {
        Ok(len) if (8..=MAX_STARTUP_PACKET).contains(&len) => len,
        _ => {
            return Err(StartupError::Dropped(format!(
                "invalid length of startup packet: {len} (a startup packet is 8 to \
                 {MAX_STARTUP_PACKET} bytes; is this client speaking the PostgreSQL protocol?)"
            )))
        }
    };
    if !fill(stream, buf, len).await? {
        return Err(StartupError::Dropped("incomplete startup packet".into()));
    }
    let mut packet = buf.split_to(len);
    packet.advance(4);
    decode_startup_packet(packet)
}

fn decode_startup_packet(mut packet: BytesMut) -> Result<StartupPacket, StartupError> {
    let code = packet.get_i32();
    match (code, packet.len()) {
        (wire::SSL_REQUEST_CODE, 0) => return Ok(StartupPacket::SslRequest),
        (wire::GSSENC_REQUEST_CODE, 0) => return Ok(StartupPacket::GssEncRequest),
        (wire::CANCEL_REQUEST_CODE, 8) => {
            return Ok(StartupPacket::Cancel {
                process_id: packet.get_i32(),
                secret_key: packet.get_i32(),
            })
        }
        _ => {}
    }
    let major = (code as u32) >> 16;
    let minor = (code as u32 & 0xffff) as u16;
    match major {
        3 => {}
        1 | 2 => {
            return Err(StartupError::refuse(
                "0A000",
                format!("unsupported frontend protocol {major}.{minor}: server supports 3.0"),
            ))
        }
        _ => {
            return Err(StartupError::refuse(
                PROTOCOL_VIOLATION,
                format!("invalid startup packet: unknown request code {code}"),
            ))
        }
    }
    Ok(StartupPacket::Startup {
        minor_version: minor,
        params: decode_params(&packet)?,
    })
}

/// Decodes `name\0value\0...\0`.
fn decode_params(mut body: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let layout_error = || {
        StartupError::refuse(
            PROTOCOL_VIOLATION,
            "invalid startup packet layout: expected name/value pairs of UTF-8 strings, \
             each NUL-terminated, and a final NUL",
        )
    };
    let next_cstr = |body: &mut &[u8]| -> Result<String, StartupError> {
        let end = body.iter().position(|&b| b == 0).ok_or_else(layout_error)?;
        let s = std::str::from_utf8(&body[..end]).map_err(|_| layout_error())?;
        let s = s.to_owned();
        *body = &body[end + 1..];
        Ok(s)
    };
    let mut params = Vec::new();
    loop {
        let name = next_cstr(&mut body)?;
        if name.is_empty() {
            if !body.is_empty() {
                return Err(layout_error());
            }
            return Ok(params);
        }
        let value = next_cstr(&mut body)?;
        params.push((name, value));
    }
}

/// Authenticates the client to the proxy itself.
pub async fn authenticate_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    auth: &ClientAuth,
    user: &str,
) -> Result<(), StartupError> {
    let password = match auth {
        ClientAuth::Trust => return Ok(()),
        ClientAuth::Password(password) => password,
    };
    let salt = random_u64().to_be_bytes();
    let salt = [salt[0], salt[1], salt[2], salt[3]];
    let mut out = BytesMut::with_capacity(16);
    wire::authentication_md5_password(&mut out, salt);
    stream.write_all(&out).await?;

    // A client that has no password closes here to ask its user (psql does); that is not an error.
    if !fill(stream, buf, 5).await? {
        return Err(StartupError::Closed);
    }
    let tag = buf[0];
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if tag != b'p' {
        return Err(StartupError::refuse(
            PROTOCOL_VIOLATION,
            format!("expected a password response, got message type 0x{tag:02x}"),
        ));
    }
    let len = match usize::try_from(len) {
        Ok(len) if (5..=MAX_PASSWORD_MESSAGE).contains(&len) => len,
        _ => {
            return Err(StartupError::refuse(
                PROTOCOL_VIOLATION,
                format!("invalid password message length {len}"),
            ))
        }
    };
    if !fill(stream, buf, len + 1).await? {
        return Err(StartupError::Closed);
    }
    let message = buf.split_to(len + 1);
    let answer = &message[5..];
    let answer = answer.strip_suffix(&[0]).unwrap_or(answer);
    let expected = md5_hash(user.as_bytes(), password.as_bytes(), salt);
    if constant_time_eq(answer, expected.as_bytes()) {
        Ok(())
    } else {
        Err(StartupError::refuse(
            "28P01",
            format!("password authentication failed for user \"{user}\""),
        ))
    }
}

/// Compares without an early exit, so response timing does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: i32, body: &[u8]) -> BytesMut {
        let mut p = BytesMut::new();
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn decodes_a_startup_message() {
        let decoded =
            decode_startup_packet(packet(wire::PROTOCOL_3_0, b"user\0bob\0database\0k1\0\0"))
                .unwrap();
        assert_eq!(
            decoded,
            StartupPacket::Startup {
                minor_version: 0,
                params: vec![
                    ("user".into(), "bob".into()),
                    ("database".into(), "k1".into())
                ]
            }
        );
    }

    #[test]
    fn refuses_bad_layouts_as_protocol_violations() {
        for body in [
            &b"user\0bob\0"[..],
            b"user\0bob",
            b"user\0bob\0\0extra",
            b"\xff\0x\0\0",
        ] {
            let err = decode_startup_packet(packet(wire::PROTOCOL_3_0, body)).unwrap_err();
            assert!(err.is_protocol_violation(), "{body:?}: {err:?}");
        }
        let err = decode_startup_packet(packet(0x1234_5678, b"")).unwrap_err();
        assert!(err.is_protocol_violation());
    }

    #[test]
    fn decodes_special_requests() {
        assert_eq!(
            decode_startup_packet(packet(wire::SSL_REQUEST_CODE, b"")).unwrap(),
            StartupPacket::SslRequest
        );
        let mut cancel = Vec::new();
        cancel.extend_from_slice(&5i32.to_be_bytes());
        cancel.extend_from_slice(&(-6i32).to_be_bytes());
        assert_eq!(
            decode_startup_packet(packet(wire::CANCEL_REQUEST_CODE, &cancel)).unwrap(),
            StartupPacket::Cancel {
                process_id: 5,
                secret_key: -6
            }
        );
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
