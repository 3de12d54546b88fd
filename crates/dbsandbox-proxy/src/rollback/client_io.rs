//! The client side of a rollback session while its cycle holds the key's backend: replies are
//! written to a client that may have left (then they are dropped and its running query is
//! cancelled, but the cycle runs to a protocol boundary so the key's next cycle finds the server
//! ready), the client's socket is watched while the server works, so a client that leaves
//! mid-query does not keep the key's other connections waiting, and the cancels the client asks
//! for are sent when they can only hit its own statements.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::sandbox::{Backend, BackendMsg};
use super::session::{ClientSession, SessionEnd};
use bytes::BytesMut;

impl ClientSession<'_> {
    /// Writes replies to the client; a client that left only has them dropped.
    pub(super) async fn write_out(&mut self, out: &mut BytesMut) -> Result<(), SessionEnd> {
        if !out.is_empty() && !self.gone && self.writer.write_all(out).await.is_err() {
            self.gone = true;
        }
        out.clear();
        Ok(())
    }

    /// Notifications waiting for the client go out before the ReadyForQuery that ends `out`, as
    /// PostgreSQL sends them before it reports itself idle: a connection's own NOTIFY in
    /// autocommit is seen by its driver before the statement returns (psycopg's
    /// test_notify_handlers), not later in a separate write.
    pub(super) fn notifications_before_ready(&mut self, out: &mut BytesMut) {
        let len = out.len();
        let ends_ready = len >= 6
            && out[len - 6..len - 1] == [b'Z', 0, 0, 0, 5]
            && matches!(out[len - 1], b'I' | b'T' | b'E');
        let Some(inbox) = self.inbox.as_mut().filter(|_| ends_ready) else {
            return;
        };
        let mut pending = BytesMut::new();
        while let Ok(message) = inbox.try_recv() {
            pending.extend_from_slice(&message);
        }
        if !pending.is_empty() {
            let ready = out.split_off(len - 6);
            out.extend_from_slice(&pending);
            out.extend_from_slice(&ready);
        }
    }

    /// The next message from the server, watching the client meanwhile: what it pipelines is
    /// kept for its next units, and if it leaves, its running statement is cancelled.
    /// `cancellable`: the server may be running the client's own statements and nothing of ours
    /// that a late cancel could break (see [`super::cancels`]); only then is a cancel sent, the
    /// departed client's or one the client asked for.
    pub(super) async fn next_reply(
        &mut self,
        backend: &mut Backend,
        cancellable: bool,
    ) -> Result<BackendMsg, SessionEnd> {
        let sandbox = std::sync::Arc::clone(&self.sandbox);
        loop {
            if cancellable && self.gone && !self.cancel_sent {
                self.cancel_sent = true;
                tracing::debug!(key = %sandbox.key, "client left during its cycle: cancelling its query");
                self.cancel_running().await;
            } else if cancellable && sandbox.cancels.take() {
                tracing::debug!(key = %sandbox.key, "cancelling a client's query at its request");
                self.cancel_running().await;
            }
            // Past the bound the client is not read (the check in take_unit then ends it).
            let watch = !self.gone && self.buf.len() <= self.max_pending_bytes;
            tokio::select! {
                biased;
                message = backend.read() => return Ok(message?),
                read = self.reader.read_buf(&mut self.buf), if watch => {
                    if matches!(read, Ok(0) | Err(_)) {
                        self.gone = true;
                    }
                }
                () = sandbox.cancels.requested(), if cancellable => {}
            }
        }
    }

    /// Cancels the client's running statement. The cancel is awaited (the server has the signal
    /// when it returns), so it cannot reach a batch sent after this one: PostgreSQL drops a
    /// pending cancel when it reads its next message from the socket.
    async fn cancel_running(&mut self) {
        let sandbox = std::sync::Arc::clone(&self.sandbox);
        if let Some((process_id, secret_key)) = sandbox.backend_key {
            if let Err(e) = crate::backend::send_cancel(&sandbox.addr, process_id, secret_key).await
            {
                tracing::warn!(key = %sandbox.key, "cancelling a client's query failed: {e}");
            }
        }
    }
}
