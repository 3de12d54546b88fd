//! The protocol fuzzer's parts: a seeded PRNG, frontend message builders (well-formed and
//! malformed), and a raw client that reads backend messages with a per-read timeout and checks
//! their framing, so the fuzzer itself never hangs and notices a proxy that sends nonsense.
//! The session scripts that combine them are in `scenarios`.

#![allow(dead_code)]

pub mod checks;
pub mod corpus;
pub mod scenarios;
pub mod sql;

use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SplitMix64: small, seedable, good enough to explore; the same seed gives the same scripts.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Random bytes, up to `max_len` of them (at least one).
    pub fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = 1 + self.below(max_len);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Index into `weights` chosen in proportion to them.
    pub fn weighted(&mut self, weights: &[usize]) -> usize {
        let mut roll = self.below(weights.iter().sum());
        for (index, weight) in weights.iter().enumerate() {
            if roll < *weight {
                return index;
            }
            roll -= weight;
        }
        unreachable!()
    }
}

/// A tagged frontend message with a correct length.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The same message with its length field replaced by `length`.
pub fn with_length(mut message: Vec<u8>, length: u32) -> Vec<u8> {
    message[1..5].copy_from_slice(&length.to_be_bytes());
    message
}

pub fn cstr(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

/// An untagged startup-phase packet: length, then `code` (a protocol version or a request
/// code), then `body`.
pub fn untagged(code: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32 + 8).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub const PROTOCOL_3_0: u32 = 196_608;
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;

pub fn startup(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in params {
        cstr(&mut body, name);
        cstr(&mut body, value);
    }
    body.push(0);
    untagged(version, &body)
}

pub fn cancel_request(pid: u32, secret: u32) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    body.extend_from_slice(&secret.to_be_bytes());
    untagged(CANCEL_REQUEST, &body)
}

pub fn query(sql: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, sql);
    frame(b'Q', &body)
}

pub fn parse(name: &str, sql: &str, param_types: &[u32]) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, name);
    cstr(&mut body, sql);
    body.extend_from_slice(&(param_types.len() as u16).to_be_bytes());
    for oid in param_types {
        body.extend_from_slice(&oid.to_be_bytes());
    }
    frame(b'P', &body)
}

/// Bind with text parameters (`None` is NULL) and the given result format codes.
pub fn bind(portal: &str, statement: &str, params: &[Option<&[u8]>], formats: &[u16]) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    cstr(&mut body, statement);
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&(params.len() as u16).to_be_bytes());
    for param in params {
        match param {
            Some(value) => {
                body.extend_from_slice(&(value.len() as u32).to_be_bytes());
                body.extend_from_slice(value);
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body.extend_from_slice(&(formats.len() as u16).to_be_bytes());
    for format in formats {
        body.extend_from_slice(&format.to_be_bytes());
    }
    frame(b'B', &body)
}

/// Describe or Close of a statement (`b'S'`) or portal (`b'P'`); `tag` is `b'D'` or `b'C'`.
pub fn named(tag: u8, kind: u8, name: &str) -> Vec<u8> {
    let mut body = vec![kind];
    cstr(&mut body, name);
    frame(tag, &body)
}

pub fn execute(portal: &str, max_rows: u32) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, portal);
    body.extend_from_slice(&max_rows.to_be_bytes());
    frame(b'E', &body)
}

pub fn sync() -> Vec<u8> {
    frame(b'S', &[])
}

pub fn flush() -> Vec<u8> {
    frame(b'H', &[])
}

pub fn terminate() -> Vec<u8> {
    frame(b'X', &[])
}

pub fn copy_data(data: &[u8]) -> Vec<u8> {
    frame(b'd', data)
}

pub fn copy_done() -> Vec<u8> {
    frame(b'c', &[])
}

pub fn copy_fail(reason: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, reason);
    frame(b'f', &body)
}

/// FunctionCall of `oid` with text arguments and a text result.
pub fn function_call(oid: u32, args: &[&[u8]]) -> Vec<u8> {
    let mut body = oid.to_be_bytes().to_vec();
    body.extend_from_slice(&0u16.to_be_bytes());
    body.extend_from_slice(&(args.len() as u16).to_be_bytes());
    for arg in args {
        body.extend_from_slice(&(arg.len() as u32).to_be_bytes());
        body.extend_from_slice(arg);
    }
    body.extend_from_slice(&0u16.to_be_bytes());
    frame(b'F', &body)
}

pub fn password(text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    cstr(&mut body, text);
    frame(b'p', &body)
}

/// Every tag a backend may send (PostgreSQL 15 protocol 3.0).
const BACKEND_TAGS: &[u8] = b"123ACDEGHIKNRSTVWZcdnstv";
/// Largest backend message the fuzzer's queries can provoke (a 1 MB `repeat` row).
const MAX_BACKEND_MESSAGE: usize = 8 << 20;

/// What one read from the proxy gave.
#[derive(Debug)]
pub enum Received {
    Message {
        tag: u8,
        body: BytesMut,
    },
    Closed,
    TimedOut,
    /// The proxy sent bytes that are not a valid backend message.
    Malformed(String),
}

/// A raw client connection; every read gives up after `read_timeout`.
pub struct Wire {
    stream: TcpStream,
    buf: BytesMut,
    pub read_timeout: Duration,
    /// Frontend messages written (what the fuzzer's budget counts).
    pub sent: u64,
    pub broken: bool,
}

impl Wire {
    pub async fn open(addr: SocketAddr, read_timeout: Duration) -> Option<Wire> {
        let stream = tokio::time::timeout(read_timeout, TcpStream::connect(addr))
            .await
            .ok()?
            .ok()?;
        stream.set_nodelay(true).ok()?;
        Some(Wire {
            stream,
            buf: BytesMut::with_capacity(4096),
            read_timeout,
            sent: 0,
            broken: false,
        })
    }

    /// Writes `messages` (each counted as one message) in one write; false once the proxy has
    /// gone away.
    pub async fn send(&mut self, messages: &[Vec<u8>]) -> bool {
        if self.broken {
            return false;
        }
        let bytes: Vec<u8> = messages.concat();
        self.sent += messages.len() as u64;
        let written = tokio::time::timeout(self.read_timeout, self.stream.write_all(&bytes)).await;
        if !matches!(written, Ok(Ok(()))) {
            self.broken = true;
        }
        !self.broken
    }

    /// The single-byte answer to SSLRequest / GSSENCRequest.
    pub async fn read_byte(&mut self) -> Received {
        if self.buf.is_empty() {
            if let Some(received) = self.fill().await {
                return received;
            }
        }
        let byte = self.buf.get_u8();
        Received::Message {
            tag: byte,
            body: BytesMut::new(),
        }
    }

    /// Reads more bytes; `Some` when the read failed, closed or timed out.
    async fn fill(&mut self) -> Option<Received> {
        match tokio::time::timeout(self.read_timeout, self.stream.read_buf(&mut self.buf)).await {
            Err(_) => Some(Received::TimedOut),
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.broken = true;
                Some(Received::Closed)
            }
            Ok(Ok(_)) => None,
        }
    }

    pub async fn recv(&mut self) -> Received {
        loop {
            if self.buf.len() >= 5 {
                let tag = self.buf[0];
                let length = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if !BACKEND_TAGS.contains(&tag) {
                    self.broken = true;
                    return Received::Malformed(format!(
                        "unknown backend message tag {tag:#04x} (length field {length})"
                    ));
                }
                if !(4..=MAX_BACKEND_MESSAGE).contains(&length) {
                    self.broken = true;
                    return Received::Malformed(format!(
                        "backend message {:?} with length field {length}",
                        tag as char
                    ));
                }
                if self.buf.len() > length {
                    let mut message = self.buf.split_to(length + 1);
                    message.advance(5);
                    return Received::Message { tag, body: message };
                }
            }
            if let Some(received) = self.fill().await {
                return received;
            }
        }
    }

    /// Closes the socket at once (the proxy sees EOF, possibly mid-message).
    pub async fn hang_up(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// SQLSTATE of an ErrorResponse body.
pub fn error_code(body: &[u8]) -> String {
    error_field(body, b'C')
}

/// The message text of an ErrorResponse body.
pub fn error_message(body: &[u8]) -> String {
    error_field(body, b'M')
}

fn error_field(body: &[u8], wanted: u8) -> String {
    for field in body.split(|b| *b == 0) {
        if let Some((&tag, value)) = field.split_first() {
            if tag == wanted {
                return String::from_utf8_lossy(value).into_owned();
            }
        }
    }
    String::new()
}
