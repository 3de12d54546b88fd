//! The steady-state relay between a client and its backend once startup is done. Each direction
//! reads large chunks into one reusable buffer, lets the [`Framer`] validate every message header
//! in it, and forwards everything framed with a single write: one read and one write system call
//! per batch, however many messages it holds, and no allocation per message. COPY, the extended
//! protocol and pipelined requests pass untouched because nothing is reordered or held back
//! except an incomplete 5-byte header, and a Query or Parse until it is complete: the one
//! statement the relay does not pass on is a client's CREATE or DROP DATABASE ([`ClientGuard`]),
//! and the one portal it renames is a stale unnamed one ([`crate::unnamed_portal`]).

use crate::framing::{FrameError, Framer};
use crate::stats::Counters;
use crate::unnamed_portal::{self, UnnamedPortalWatch};
use bytes::{Buf, BytesMut};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Initial buffer per direction. Results flow in big bursts, requests are small.
pub const CLIENT_BUF_SIZE: usize = 16 * 1024;
pub const BACKEND_BUF_SIZE: usize = 64 * 1024;
/// A read is only issued with at least this much free space, so reads stay large.
const MIN_READ_SPACE: usize = 8 * 1024;

/// Message tag of Terminate, sent by a client that closes politely.
const TERMINATE: u8 = b'X';

/// How a relay ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The client sent Terminate, which was forwarded.
    ClientTerminated,
    /// The client closed its socket; `at_boundary` says whether between messages.
    ClientClosed { at_boundary: bool },
    /// The backend closed its socket (server shutdown, pg_terminate_backend, FATAL error).
    BackendClosed,
}

#[derive(Debug)]
pub enum RelayError {
    Io(io::Error),
    /// The client sent a malformed or oversized message; it must be told and disconnected.
    ClientProtocol(FrameError),
    /// The backend sent a malformed message; nothing sensible can be relayed after it.
    BackendProtocol(FrameError),
}

enum PumpEnd {
    Stopped,
    Eof { at_boundary: bool },
}

enum PumpError {
    Io(io::Error),
    Frame(FrameError),
}

/// Moves framed bytes from `reader` to `writer` until end of stream or the framer's stop message.
/// Anything already in `buf` (bytes read during startup) goes first.
async fn pump<R, W>(
    reader: &mut R,
    writer: &mut W,
    buf: &mut BytesMut,
    framer: &mut Framer,
    relayed_bytes: &AtomicU64,
    guard: Option<&ClientGuard>,
    ready_sink: Option<&UnnamedPortalWatch>,
) -> Result<PumpEnd, PumpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        if !buf.is_empty() {
            let ready = match guard {
                Some(guard) => guard.inspect(buf, framer.body_remaining()),
                None => buf.len(),
            };
            let seen_before = framer.ready().0;
            let scan = framer.scan(&buf[..ready]).map_err(PumpError::Frame)?;
            if let Some(sink) = ready_sink {
                let (seen, status) = framer.ready();
                for _ in seen_before..seen {
                    sink.ready_for_query(status);
                }
            }
            if scan.forward > 0 {
                writer
                    .write_all(&buf[..scan.forward])
                    .await
                    .map_err(PumpError::Io)?;
                buf.advance(scan.forward);
                relayed_bytes.fetch_add(scan.forward as u64, Relaxed);
            }
            if scan.stopped {
                return Ok(PumpEnd::Stopped);
            }
        }
        if buf.capacity() - buf.len() < MIN_READ_SPACE {
            // Everything but a partial header was forwarded, so this reuses the allocation.
            buf.reserve(MIN_READ_SPACE);
        }
        if reader.read_buf(buf).await.map_err(PumpError::Io)? == 0 {
            return Ok(PumpEnd::Eof {
                at_boundary: framer.at_boundary() && buf.is_empty(),
            });
        }
    }
}

/// Relays both directions until either side ends.
///
/// `client_buf` and `backend_buf` may already hold bytes read during startup. On return the
/// halves are free again, so the caller can still write a final message to either side.
#[allow(clippy::too_many_arguments)]
pub async fn relay<CR, CW, BR, BW>(
    client_read: &mut CR,
    client_write: &mut CW,
    backend_read: &mut BR,
    backend_write: &mut BW,
    client_buf: &mut BytesMut,
    backend_buf: &mut BytesMut,
    guard: &ClientGuard,
    counters: &Counters,
) -> Result<RelayEnd, RelayError>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
{
    let mut client_framer = Framer::new(guard.max_message_bytes, Some(TERMINATE));
    // Backend messages are trusted for size (a DataRow may legally approach 1 GB) and streamed.
    let mut backend_framer = Framer::new(usize::MAX, None).tracking_ready();
    if client_buf.capacity() < CLIENT_BUF_SIZE {
        client_buf.reserve(CLIENT_BUF_SIZE);
    }
    if backend_buf.capacity() < BACKEND_BUF_SIZE {
        backend_buf.reserve(BACKEND_BUF_SIZE);
    }
    let to_backend = pump(
        client_read,
        backend_write,
        client_buf,
        &mut client_framer,
        &counters.bytes_from_clients,
        Some(guard),
        None,
    );
    let to_client = pump(
        backend_read,
        client_write,
        backend_buf,
        &mut backend_framer,
        &counters.bytes_to_clients,
        None,
        Some(&guard.unnamed_portal),
    );
    tokio::select! {
        end = to_backend => match end {
            Ok(PumpEnd::Stopped) => Ok(RelayEnd::ClientTerminated),
            Ok(PumpEnd::Eof { at_boundary }) => Ok(RelayEnd::ClientClosed { at_boundary }),
            Err(PumpError::Io(e)) => Err(RelayError::Io(e)),
            Err(PumpError::Frame(e)) => Err(RelayError::ClientProtocol(e)),
        },
        end = to_client => match end {
            Ok(_) => Ok(RelayEnd::BackendClosed),
            Err(PumpError::Io(e)) => Err(RelayError::Io(e)),
            Err(PumpError::Frame(e)) => Err(RelayError::BackendProtocol(e)),
        },
    }
}

/// After a client vanished mid-session, a Terminate lets the backend end cleanly instead of
/// logging "unexpected EOF on client connection". Best effort: the backend may be gone too.
pub async fn terminate_backend<W: AsyncWrite + Unpin>(backend_write: &mut W) {
    let mut msg = BytesMut::with_capacity(5);
    postgres_protocol::message::frontend::terminate(&mut msg);
    let _ = backend_write.write_all(&msg).await;
    let _ = backend_write.shutdown().await;
}

/// What the relay checks in a client's messages: a Query's or Parse's CREATE or DROP DATABASE
/// is replaced by a statement that fails with [`crate::key::database_command_refused`], so the
/// server itself reports the error where it would have reported its own, and the protocol's
/// state (skipping to Sync, transaction status) stays the server's; a request for a stale
/// unnamed portal names one that does not exist ([`crate::unnamed_portal`]).
pub struct ClientGuard {
    pub key: String,
    pub max_message_bytes: usize,
    pub unnamed_portal: UnnamedPortalWatch,
}

impl ClientGuard {
    /// Rewrites refused statements among the complete messages of `buf` (which starts
    /// `body_remaining` bytes before the next message header) and returns how much of it may be
    /// framed and forwarded now: all, or up to a Query or Parse that is not complete yet.
    fn inspect(&self, buf: &mut BytesMut, body_remaining: usize) -> usize {
        let mut pos = body_remaining;
        while pos + 5 <= buf.len() {
            let tag = buf[pos];
            let len = i32::from_be_bytes([buf[pos + 1], buf[pos + 2], buf[pos + 3], buf[pos + 4]]);
            let Ok(len) = usize::try_from(len) else {
                break; // the framer reports it
            };
            if len < 4 || len > self.max_message_bytes {
                break;
            }
            let end = pos + 1 + len;
            let whole_needed = matches!(tag, b'Q' | b'P' | b'E' | b'D' | b'C');
            // A Bind's first body byte says whether it binds the unnamed portal.
            let needed = if whole_needed { end } else { end.min(pos + 6) };
            if needed > buf.len() {
                return pos;
            }
            let redirect = self
                .unnamed_portal
                .client_message(tag, &buf[pos + 5..needed]);
            if redirect {
                let replacement = unnamed_portal::redirected(&buf[pos..end]);
                let rest = buf.split_off(end);
                buf.truncate(pos);
                buf.extend_from_slice(&replacement);
                pos = buf.len();
                buf.extend_from_slice(&rest);
                continue;
            }
            if tag != b'Q' && tag != b'P' {
                pos = end;
                continue;
            }
            if let Some(replacement) = self.replacement(tag, &buf[pos + 5..end]) {
                let rest = buf.split_off(end);
                buf.truncate(pos);
                buf.extend_from_slice(&replacement);
                pos = buf.len();
                buf.extend_from_slice(&rest);
            } else {
                pos = end;
            }
        }
        buf.len()
    }

    /// The message to send instead of a Query or Parse (`body` without its header), if it
    /// holds a refused statement.
    fn replacement(&self, tag: u8, body: &[u8]) -> Option<BytesMut> {
        let nul = |from: usize| body[from..].iter().position(|&b| b == 0).map(|i| from + i);
        let (name, sql) = if tag == b'Q' {
            (None, &body[..nul(0)?])
        } else {
            let name_end = nul(0)?;
            let sql_end = nul(name_end + 1)?;
            (Some(&body[..name_end]), &body[name_end + 1..sql_end])
        };
        let command = crate::classify::database_command(std::str::from_utf8(sql).ok()?)?;
        let message = crate::key::database_command_refused(command, &self.key).replace('\'', "''");
        let failing = format!(
            "DO $dbsandbox$ BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = '{message}'; \
             END $dbsandbox$"
        );
        let mut out = BytesMut::new();
        match name {
            None => postgres_protocol::message::frontend::query(&failing, &mut out).ok()?,
            Some(name) => {
                let name = std::str::from_utf8(name).ok()?;
                postgres_protocol::message::frontend::parse(name, &failing, [], &mut out).ok()?
            }
        }
        Some(out)
    }
}
