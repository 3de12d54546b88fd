//! The wire to the sandbox's server: reading and writing its messages, SQL the proxy makes up
//! (answered within a bounded time), and how a lost connection is noticed and explained (the
//! server's last FATAL rather than "broken pipe"), so a key never waits on a reply that cannot
//! come.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::messages::front;
use super::{data_row_texts, Backend, BackendFailure, BackendMsg, GUARD};

/// Longest wait for the answer to SQL the proxy made up (savepoint work, recovery, reset): they
/// take milliseconds, so a server that does not answer is treated as lost (the key is marked
/// broken with this reason) rather than waited on for ever.
const INTERNAL_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Backend {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), BackendFailure> {
        if let Err(e) = self.writer.write_all(bytes).await {
            return Err(self.failure(e).await);
        }
        Ok(())
    }

    /// Marks the sandbox broken. A server that terminated the session (57P01) is reported with
    /// that SQLSTATE, as PostgreSQL reports it to a terminated session's client.
    pub fn break_with(&self, reason: &str) {
        let sqlstate = match &self.last_fatal {
            Some((code, _)) if code == "57P01" => "57P01",
            _ => "08006",
        };
        self.broken.set(&self.key, sqlstate, reason);
    }

    fn note_fatal(&mut self, raw: &[u8]) {
        if raw.first() == Some(&b'E')
            && raw.len() > 5
            && super::super::messages::is_fatal(&raw[5..])
        {
            let (code, message) = super::super::messages::error_fields(&raw[5..]);
            self.last_fatal = Some((code, message));
        }
    }

    /// Notes the FATAL errors among the whole messages buffered, without consuming them.
    fn note_buffered_fatals(&mut self) {
        let buffered = self.rbuf.clone();
        let mut rest = &buffered[..];
        while rest.len() >= 5 {
            let len = i32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]).max(4) as usize + 1;
            if rest.len() < len {
                break;
            }
            self.note_fatal(&rest[..len]);
            rest = &rest[len..];
        }
    }

    /// Why the server connection is gone, in the words of the server's last FATAL when it sent one.
    fn closed(&mut self) -> BackendFailure {
        self.note_buffered_fatals();
        BackendFailure(match &self.last_fatal {
            Some((code, message)) => {
                format!("the sandbox's server ended its session: {message} ({code})")
            }
            None => "the sandbox's server closed the connection".into(),
        })
    }

    /// After a failed write: the server usually said why before it closed (a FATAL waiting in
    /// the socket), which is a better reason than "broken pipe".
    async fn failure(&mut self, error: std::io::Error) -> BackendFailure {
        let drained = tokio::time::timeout(std::time::Duration::from_millis(500), async {
            while matches!(self.reader.read_buf(&mut self.rbuf).await, Ok(n) if n > 0) {}
        })
        .await;
        self.note_buffered_fatals();
        if drained.is_ok() || self.last_fatal.is_some() {
            return self.closed();
        }
        BackendFailure::from(error)
    }

    /// Notices a server connection that died while no cycle ran (a terminated backend, a server
    /// timeout): reads what the server sent meanwhile, without waiting for more.
    pub async fn probe(&mut self) -> Result<(), BackendFailure> {
        loop {
            // Polled once, never waited on (a timer, even of zero, would yield for a tick).
            let read = {
                let mut read = std::pin::pin!(self.reader.read_buf(&mut self.rbuf));
                std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(std::future::Future::poll(read.as_mut(), cx))
                })
                .await
            };
            match read {
                // The server closes right after a FATAL (its socket may not be closed yet).
                std::task::Poll::Pending => {
                    self.note_buffered_fatals();
                    return match self.last_fatal {
                        Some(_) => Err(self.closed()),
                        None => Ok(()),
                    };
                }
                std::task::Poll::Ready(Ok(0)) => return Err(self.closed()),
                std::task::Poll::Ready(Ok(_)) => continue,
                std::task::Poll::Ready(Err(e)) => return Err(self.failure(e).await),
            }
        }
    }

    /// Reads the next whole message.
    pub async fn read(&mut self) -> Result<BackendMsg, BackendFailure> {
        loop {
            if self.rbuf.len() >= 5 {
                let len =
                    i32::from_be_bytes([self.rbuf[1], self.rbuf[2], self.rbuf[3], self.rbuf[4]]);
                if len < 4 {
                    return Err(BackendFailure(format!(
                        "the server sent a message with length {len}"
                    )));
                }
                let total = len as usize + 1;
                if self.rbuf.len() >= total {
                    let raw = self.rbuf.split_to(total).freeze();
                    self.note_fatal(&raw);
                    return Ok(BackendMsg { tag: raw[0], raw });
                }
                self.rbuf.reserve(total - self.rbuf.len());
            }
            match self.reader.read_buf(&mut self.rbuf).await {
                Ok(0) => return Err(self.closed()),
                Ok(_) => {}
                Err(e) => return Err(self.failure(e).await),
            }
        }
    }

    /// Reads the replies to SQL the proxy made up until ReadyForQuery, within
    /// [`INTERNAL_REPLY_TIMEOUT`]: the rows, and the first error as "message (SQLSTATE)".
    pub(super) async fn read_internal(
        &mut self,
        what: &str,
    ) -> Result<(Vec<Vec<Option<String>>>, Option<String>), BackendFailure> {
        let (rows, error) = self.read_internal_raw(what).await?;
        Ok((rows, error.map(|raw| error_text(&raw))))
    }

    /// [`Backend::read_internal`], with the first ErrorResponse whole.
    async fn read_internal_raw(
        &mut self,
        what: &str,
    ) -> Result<(Vec<Vec<Option<String>>>, Option<Bytes>), BackendFailure> {
        let replies = tokio::time::timeout(INTERNAL_REPLY_TIMEOUT, async {
            let mut rows = Vec::new();
            let mut error = None;
            loop {
                let msg = self.read().await?;
                match msg.tag {
                    b'D' => rows.push(data_row_texts(msg.body())),
                    b'E' => {
                        error.get_or_insert(msg.raw);
                    }
                    b'Z' => return Ok((rows, error)),
                    _ => {}
                }
            }
        })
        .await;
        replies.unwrap_or_else(|_| {
            Err(BackendFailure(format!(
                "the sandbox's server did not answer dbsandbox's own statement within {} s \
                 ({what}); the connection to it was given up",
                INTERNAL_REPLY_TIMEOUT.as_secs()
            )))
        })
    }

    /// Runs SQL we made up (one simple Query) and returns its rows as text, or the server's error.
    pub async fn run_internal(
        &mut self,
        sql: &str,
    ) -> Result<Result<Vec<Vec<Option<String>>>, String>, BackendFailure> {
        Ok(self
            .run_internal_raw(sql)
            .await?
            .map_err(|raw| error_text(&raw)))
    }

    /// [`Backend::run_internal`], with the server's ErrorResponse whole.
    pub async fn run_internal_raw(
        &mut self,
        sql: &str,
    ) -> Result<Result<Vec<Vec<Option<String>>>, Bytes>, BackendFailure> {
        let mut out = BytesMut::new();
        if std::mem::take(&mut self.guard_left_open) {
            front::query(&mut out, &format!("RELEASE SAVEPOINT {GUARD}; {sql}"));
        } else {
            front::query(&mut out, sql);
        }
        self.write(&out).await?;
        self.unnamed_owner = None; // a simple Query drops the unnamed statement
        let (rows, error) = self.read_internal_raw(sql).await?;
        Ok(match error {
            Some(e) => Err(e),
            None => Ok(rows),
        })
    }

    /// Runs internal SQL, and once more if a cancel hit it (57014): one the proxy did not send
    /// (a client's `pg_cancel_backend` of the shared backend) may land on anything. The SQL must
    /// be safe to run again after a failure part way (a reset, a recovery, a SET); SQL that is
    /// not fails again and is reported.
    pub async fn run_internal_retrying(
        &mut self,
        sql: &str,
    ) -> Result<Result<Vec<Vec<Option<String>>>, String>, BackendFailure> {
        match self.run_internal(sql).await? {
            Err(e) if e.ends_with(&format!("({})", crate::rollback::messages::QUERY_CANCELED)) => {
                tracing::warn!(key = %self.key, "dbsandbox's own statement was cancelled; running it again: {e}");
                self.run_internal(sql).await
            }
            done => Ok(done),
        }
    }

    /// Runs internal SQL (retried once if cancelled) and returns its rows; a failure breaks the
    /// sandbox with "`what` failed: <error>".
    pub async fn run_or_break(
        &mut self,
        sql: &str,
        what: &str,
    ) -> Result<Vec<Vec<Option<String>>>, BackendFailure> {
        match self.run_internal_retrying(sql).await? {
            Ok(rows) => Ok(rows),
            Err(e) => {
                let failure = format!("{what} failed: {e}");
                self.break_with(&failure);
                Err(BackendFailure(failure))
            }
        }
    }

    /// Runs internal SQL that must succeed; a failure breaks the sandbox.
    pub async fn run_required(&mut self, sql: &str) -> Result<(), BackendFailure> {
        match self.run_internal_retrying(sql).await? {
            Ok(_) => Ok(()),
            Err(e) => {
                let failure = format!("internal statement failed: {e} (statement: {sql})");
                self.break_with(&failure);
                Err(BackendFailure(failure))
            }
        }
    }
}

/// An ErrorResponse (whole message) as "message (SQLSTATE)".
fn error_text(raw: &[u8]) -> String {
    let (code, message) = super::super::messages::error_fields(raw.get(5..).unwrap_or_default());
    format!("{message} ({code})")
}
