//! Message framing for the steady-state relay. PostgreSQL messages after startup are a tag byte, a
//! big-endian i32 length that counts itself, and a body. The relay reads large chunks into one
//! reusable buffer and asks the [`Framer`] how much of it can be forwarded: every complete header
//! is validated, and bodies (including the unfinished tail of a long message such as a big
//! DataRow or CopyData) pass straight through, so nothing is ever buffered whole and the only
//! bytes held back are an incomplete 5-byte header. Knowing where each message starts is what
//! lets later layers (rollback virtualisation) act on individual messages.

use postgres_protocol::message::backend::Header;
use std::fmt;

/// A framing violation: the peer sent a length the protocol does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A length below 4 (the length field counts itself), or one that is not a valid i32.
    LengthTooShort { tag: u8, len: i64 },
    /// A length above the configured maximum.
    LengthTooLong { tag: u8, len: usize, max: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::LengthTooShort { tag, len } => write!(
                f,
                "invalid message length {len} for message type {}: a length must be at least 4",
                printable_tag(*tag)
            ),
            FrameError::LengthTooLong { tag, len, max } => write!(
                f,
                "message of type {} is {len} bytes long, more than the proxy's limit of {max} bytes",
                printable_tag(*tag)
            ),
        }
    }
}

fn printable_tag(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        format!("0x{tag:02x}")
    }
}

/// How much of a buffer may be forwarded, and whether the stream ended at a stop message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Bytes from the start of the buffer that are safe to forward now.
    pub forward: usize,
    /// The forwarded bytes end with a complete message whose tag was the framer's stop tag.
    pub stopped: bool,
}

/// Tracks message boundaries across reads for one direction of a connection.
#[derive(Debug)]
pub struct Framer {
    /// Body bytes of the current message not yet seen.
    body_remaining: usize,
    /// Largest allowed value of the length field.
    max_len: usize,
    /// Scanning stops after a complete message with this tag (Terminate, from clients).
    stop_tag: Option<u8>,
    /// Set while the body of a stop message is still arriving.
    in_stop_message: bool,
    /// Whether ReadyForQuery messages are counted (the backend direction).
    track_ready: bool,
    /// A ReadyForQuery header was seen and its status byte has not arrived yet.
    status_pending: bool,
    ready_count: u64,
    last_ready_status: u8,
}

impl Framer {
    pub fn new(max_len: usize, stop_tag: Option<u8>) -> Self {
        Framer {
            body_remaining: 0,
            max_len,
            stop_tag,
            in_stop_message: false,
            track_ready: false,
            status_pending: false,
            ready_count: 0,
            last_ready_status: 0,
        }
    }

    /// Also counts the ReadyForQuery messages scanned, and keeps the last one's status.
    pub fn tracking_ready(mut self) -> Self {
        self.track_ready = true;
        self
    }

    /// ReadyForQuery messages scanned so far (when tracking), and the last one's status byte.
    pub fn ready(&self) -> (u64, u8) {
        (self.ready_count, self.last_ready_status)
    }

    /// Bytes of the current message's body still to come (0 at a boundary).
    pub fn body_remaining(&self) -> usize {
        self.body_remaining
    }

    /// True when the bytes forwarded so far end exactly at a message boundary.
    pub fn at_boundary(&self) -> bool {
        self.body_remaining == 0
    }

    /// Scans `data`, which starts where the previous scan's forwarded bytes ended.
    pub fn scan(&mut self, data: &[u8]) -> Result<Scan, FrameError> {
        let mut pos = 0;
        loop {
            if self.status_pending && pos < data.len() {
                self.status_pending = false;
                self.last_ready_status = data[pos];
                self.ready_count += 1;
            }
            if self.body_remaining > 0 {
                let take = self.body_remaining.min(data.len() - pos);
                pos += take;
                self.body_remaining -= take;
                if self.body_remaining > 0 {
                    break;
                }
            }
            if self.in_stop_message {
                self.in_stop_message = false;
                return Ok(Scan {
                    forward: pos,
                    stopped: true,
                });
            }
            let header = match Header::parse(&data[pos..]) {
                Ok(Some(header)) => header,
                Ok(None) => break,
                Err(_) => {
                    let len = i32::from_be_bytes([
                        data[pos + 1],
                        data[pos + 2],
                        data[pos + 3],
                        data[pos + 4],
                    ]);
                    return Err(FrameError::LengthTooShort {
                        tag: data[pos],
                        len: len.into(),
                    });
                }
            };
            // Header::parse guarantees len >= 4, so the cast is lossless.
            let len = header.len() as usize;
            if len > self.max_len {
                return Err(FrameError::LengthTooLong {
                    tag: header.tag(),
                    len,
                    max: self.max_len,
                });
            }
            pos += 5;
            self.body_remaining = len - 4;
            if Some(header.tag()) == self.stop_tag {
                self.in_stop_message = true;
            }
            if self.track_ready && header.tag() == b'Z' && len == 5 {
                self.status_pending = true;
            }
        }
        Ok(Scan {
            forward: pos,
            stopped: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn ready_for_query_statuses_are_counted_even_when_split_across_reads() {
        let mut framer = Framer::new(usize::MAX, None).tracking_ready();
        let mut stream = msg(b'C', b"SELECT 1\0");
        stream.extend(msg(b'Z', b"T"));
        stream.extend(msg(b'Z', b"E"));
        // Cut just before the second status byte.
        let cut = stream.len() - 1;
        let first = framer.scan(&stream[..cut]).unwrap();
        assert_eq!(framer.ready(), (1, b'T'));
        framer.scan(&stream[first.forward..]).unwrap();
        assert_eq!(framer.ready(), (2, b'E'));
        let mut untracked = Framer::new(usize::MAX, None);
        untracked.scan(&stream).unwrap();
        assert_eq!(untracked.ready().0, 0);
    }

    #[test]
    fn forwards_complete_messages_and_holds_back_partial_headers() {
        let mut framer = Framer::new(1 << 20, None);
        let mut data = msg(b'Q', b"select 1\0");
        data.extend(msg(b'S', b""));
        data.extend_from_slice(&[b'Q', 0, 0]);
        let scan = framer.scan(&data).unwrap();
        assert_eq!(scan.forward, data.len() - 3);
        assert!(!scan.stopped);
        assert!(framer.at_boundary());
    }

    #[test]
    fn passes_partial_bodies_through_and_resumes() {
        let mut framer = Framer::new(1 << 20, None);
        let data = msg(b'd', &[7u8; 100]);
        assert_eq!(framer.scan(&data[..50]).unwrap().forward, 50);
        assert!(!framer.at_boundary());
        assert_eq!(framer.scan(&data[50..]).unwrap().forward, data.len() - 50);
        assert!(framer.at_boundary());
    }

    #[test]
    fn stops_after_the_stop_message() {
        let mut framer = Framer::new(1 << 20, Some(b'X'));
        let mut data = msg(b'Q', b"x\0");
        let first = data.len();
        data.extend(msg(b'X', b""));
        data.extend(msg(b'Q', b"y\0"));
        let scan = framer.scan(&data).unwrap();
        assert_eq!(scan.forward, first + 5);
        assert!(scan.stopped);
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut framer = Framer::new(100, None);
        assert_eq!(
            framer.scan(&[b'Q', 0, 0, 0, 3]).unwrap_err(),
            FrameError::LengthTooShort { tag: b'Q', len: 3 }
        );
        let mut framer = Framer::new(100, None);
        assert_eq!(
            framer.scan(&[b'Q', 0xff, 0xff, 0xff, 0xff]).unwrap_err(),
            FrameError::LengthTooShort { tag: b'Q', len: -1 }
        );
        let mut framer = Framer::new(100, None);
        assert_eq!(
            framer.scan(&[b'Q', 0, 0, 0, 101]).unwrap_err(),
            FrameError::LengthTooLong {
                tag: b'Q',
                len: 101,
                max: 100
            }
        );
    }
}
