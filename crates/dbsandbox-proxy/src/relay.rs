//! The steady-state relay between a client and its backend once startup is done. Each direction
//! reads large chunks into one reusable buffer, lets the [`Framer`] validate every message header
//! in it, and forwards everything framed with a single write: one read and one write system call
//! per batch, however many messages it holds, and no allocation per message. COPY, the extended
//! protocol and pipelined requests pass untouched because nothing is reordered or held back
//! except an incomplete 5-byte header.

use crate::framing::{FrameError, Framer};
use crate::stats::Counters;
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
) -> Result<PumpEnd, PumpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        if !buf.is_empty() {
            let scan = framer.scan(buf).map_err(PumpError::Frame)?;
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
    max_message_bytes: usize,
    counters: &Counters,
) -> Result<RelayEnd, RelayError>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
{
    let mut client_framer = Framer::new(max_message_bytes, Some(TERMINATE));
    // Backend messages are trusted for size (a DataRow may legally approach 1 GB) and streamed.
    let mut backend_framer = Framer::new(usize::MAX, None);
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
    );
    let to_client = pump(
        backend_read,
        client_write,
        backend_buf,
        &mut backend_framer,
        &counters.bytes_to_clients,
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
