//! The client side of a rollback session while its cycle holds the key's backend: replies are
//! written to a client that may have left (then they are dropped and its running query is
//! cancelled, but the cycle runs to a protocol boundary so the key's next cycle finds the server
//! ready), and the client's socket is watched while the server works, so a client that leaves
//! mid-query does not keep the key's other connections waiting.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::sandbox::{Backend, BackendMsg};
use super::session::{ClientSession, SessionEnd};
use bytes::BytesMut;

impl ClientSession<'_> {
    /// Writes replies to the client; a client that left only has them dropped.
    pub(super) async fn write_out(&mut self, out: &mut BytesMut) -> Result<(), SessionEnd> {
        if !out.is_empty() && !self.gone && self.writer.write_all(out).await.is_err() {
            self.client_left().await;
        }
        out.clear();
        Ok(())
    }

    /// The next message from the server, watching the client meanwhile: what it pipelines is
    /// kept for its next units, and if it leaves, its running query is cancelled.
    pub(super) async fn next_reply(
        &mut self,
        backend: &mut Backend,
    ) -> Result<BackendMsg, SessionEnd> {
        loop {
            // Past the bound the client is not read (the check in take_unit then ends it).
            let watch = !self.gone && self.buf.len() <= self.max_pending_bytes;
            tokio::select! {
                biased;
                message = backend.read() => return Ok(message?),
                read = self.reader.read_buf(&mut self.buf), if watch => {
                    if matches!(read, Ok(0) | Err(_)) {
                        self.client_left().await;
                    }
                }
            }
        }
    }

    /// The client's socket is gone: drop its replies from now on and cancel what runs for it.
    /// The cancel is awaited (the server has the signal when it returns), so it cannot hit a
    /// statement sent after this one: PostgreSQL drops a cancel that arrives between commands.
    async fn client_left(&mut self) {
        if std::mem::replace(&mut self.gone, true) {
            return;
        }
        let sandbox = std::sync::Arc::clone(&self.sandbox);
        if let Some((process_id, secret_key)) = sandbox.backend_key {
            tracing::debug!(key = %sandbox.key, "client left during its cycle: cancelling its query");
            if let Err(e) = crate::backend::send_cancel(&sandbox.addr, process_id, secret_key).await
            {
                tracing::warn!(key = %sandbox.key, "cancelling a departed client's query failed: {e}");
            }
        }
    }
}
