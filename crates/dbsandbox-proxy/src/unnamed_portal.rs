//! Keeps a pass-through client from executing a *stale* unnamed portal, which crashes
//! PostgreSQL 15 (signal 11, and with it every session of every key on the server).
//!
//! A simple Query runs in the unnamed portal. When it fails inside a transaction block, that
//! portal is left behind, marked failed, until the block ends, while its statement list and
//! query text lived in memory the next message frees. An Execute of `""` that no Bind has
//! replaced then reads freed memory (`exec_execute_message` looks at `portal->stmts`). The
//! protocol says a Query destroys the unnamed portal, so a client cannot rely on it: dbsandbox
//! sends such an Execute (and a Describe or Close of the portal) to a portal name that does not
//! exist, and the server answers 34000 "portal … does not exist" instead of crashing.
//!
//! The left-behind portal only exists while the session is in a failed transaction block and a
//! later Bind `""` can fail without replacing it, so a request for `""` is also redirected when
//! the last ReadyForQuery said failed ('E'), or one is still due, unless a Bind `""` came earlier
//! in the same batch (then either the Bind replaced the portal, or it failed and the server skips
//! the rest of the batch). Drivers bind and execute the unnamed portal in one batch, so what they
//! do is never touched.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};

/// The portal name a redirected request names instead of `""`: no client-chosen portal name
/// is likely to be this, and the server's error then says what happened.
pub const REDIRECTED_PORTAL: &str = "dbsandbox: no unnamed portal since the last Query";

/// What one connection's messages tell about its unnamed portal. Atomics because the client
/// and backend halves of the relay update it from two futures of one task.
#[derive(Debug, Default)]
pub struct UnnamedPortalWatch {
    /// A simple Query was sent after the last Bind of the unnamed portal.
    query_since_bind: AtomicBool,
    /// A Bind of the unnamed portal was sent since the last Sync.
    bound_in_batch: AtomicBool,
    /// Queries, Syncs and FunctionCalls sent: each is answered by one ReadyForQuery.
    ready_due: AtomicU64,
    /// ReadyForQuery messages received, and the status the last one gave.
    ready_seen: AtomicU64,
    last_status: AtomicU8,
}

impl UnnamedPortalWatch {
    /// Notes a client message (`tag`, its body) on its way to the server; for an Execute,
    /// Describe or Close of the unnamed portal, says whether it must be redirected.
    pub fn client_message(&self, tag: u8, body: &[u8]) -> bool {
        match tag {
            b'Q' => {
                self.query_since_bind.store(true, Relaxed);
                self.ready_due.fetch_add(1, Relaxed);
            }
            b'F' => {
                self.ready_due.fetch_add(1, Relaxed);
            }
            b'S' => {
                self.bound_in_batch.store(false, Relaxed);
                self.ready_due.fetch_add(1, Relaxed);
            }
            b'B' if body.first() == Some(&0) => {
                self.query_since_bind.store(false, Relaxed);
                self.bound_in_batch.store(true, Relaxed);
            }
            b'E' if body.first() == Some(&0) => return self.may_be_stale(),
            b'D' | b'C' if body.starts_with(b"P\0") => return self.may_be_stale(),
            _ => {}
        }
        false
    }

    /// Notes a ReadyForQuery from the server with its transaction status.
    pub fn ready_for_query(&self, status: u8) {
        self.last_status.store(status, Relaxed);
        self.ready_seen.fetch_add(1, Relaxed);
    }

    fn may_be_stale(&self) -> bool {
        if self.query_since_bind.load(Relaxed) {
            return true;
        }
        if self.bound_in_batch.load(Relaxed) {
            return false;
        }
        let failed = self.last_status.load(Relaxed) == b'E';
        let awaiting = self.ready_due.load(Relaxed) > self.ready_seen.load(Relaxed);
        failed || awaiting
    }
}

/// `message` (a whole Execute, Describe or Close of the unnamed portal) naming
/// [`REDIRECTED_PORTAL`] instead.
pub fn redirected(message: &[u8]) -> Vec<u8> {
    let tag = message[0];
    let body = &message[5..];
    let (prefix, rest) = match tag {
        b'E' => (&[][..], &body[1..]),
        _ => (&body[..1], &body[2..]),
    };
    let mut out = Vec::with_capacity(message.len() + REDIRECTED_PORTAL.len());
    out.push(tag);
    let len = 4 + prefix.len() + REDIRECTED_PORTAL.len() + 1 + rest.len();
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(prefix);
    out.extend_from_slice(REDIRECTED_PORTAL.as_bytes());
    out.push(0);
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn an_execute_after_a_query_is_redirected_until_the_next_bind() {
        let watch = UnnamedPortalWatch::default();
        assert!(
            !watch.client_message(b'E', b"\0\0\0\0\0"),
            "nothing sent yet"
        );
        watch.client_message(b'Q', b"begin; select 1/0\0");
        watch.ready_for_query(b'E');
        assert!(watch.client_message(b'E', b"\0\0\0\0\0"));
        assert!(watch.client_message(b'D', b"P\0"));
        assert!(watch.client_message(b'C', b"P\0"));
        assert!(
            !watch.client_message(b'D', b"S\0"),
            "a statement is not a portal"
        );
        assert!(!watch.client_message(b'E', b"named\0\0\0\0\0"));
        watch.client_message(b'B', b"\0\0\0\0\0\0\0\0");
        assert!(
            !watch.client_message(b'E', b"\0\0\0\0\0"),
            "bound in this batch"
        );
    }

    #[test]
    fn a_bind_in_an_earlier_batch_counts_only_outside_a_failed_block() {
        let watch = UnnamedPortalWatch::default();
        watch.client_message(b'B', b"\0\0\0\0\0\0\0\0");
        watch.client_message(b'S', b"");
        assert!(
            watch.client_message(b'E', b"\0\0\0\0\0"),
            "its ReadyForQuery is due"
        );
        watch.ready_for_query(b'T');
        assert!(!watch.client_message(b'E', b"\0\0\0\0\0"));
        watch.client_message(b'S', b"");
        watch.ready_for_query(b'E');
        assert!(
            watch.client_message(b'E', b"\0\0\0\0\0"),
            "the Bind may have failed"
        );
    }

    #[test]
    fn redirected_messages_keep_everything_but_the_name() {
        let execute = frame(b'E', b"\0\0\0\0\x07");
        let mut want = REDIRECTED_PORTAL.as_bytes().to_vec();
        want.extend_from_slice(b"\0\0\0\0\x07");
        assert_eq!(redirected(&execute), frame(b'E', &want));
        let describe = frame(b'D', b"P\0");
        let mut want = b"P".to_vec();
        want.extend_from_slice(REDIRECTED_PORTAL.as_bytes());
        want.push(0);
        assert_eq!(redirected(&describe), frame(b'D', &want));
    }
}
