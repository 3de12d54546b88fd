//! Sending a unit's batch and walking the server's replies against its plan: forwarding the
//! client's, swallowing ours, answering the ones the engine owes, and always ending at a
//! protocol boundary (our own Sync after an extended-protocol error, the COPY failed when its
//! client left), so the key's next cycle finds the server ready.

use super::*;

impl Unit {
    /// Sends what is pending with an internal Sync (closing the guard), walks the replies and
    /// recovers from an error, so that what follows sees the real state.
    pub(super) async fn send_pending(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
    ) -> Result<(), SessionEnd> {
        if self.batch.is_empty() && self.steps.is_empty() {
            return Ok(());
        }
        let walked = self.send(session, backend, BatchEnd::InternalSync).await?;
        self.after_walk(session, backend, &walked).await
    }

    /// Writes the batch and walks the replies. A batch that ends with a Sync (ours or the
    /// client's) first releases the guard.
    pub(super) async fn send(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
        end: BatchEnd,
    ) -> Result<Walked, SessionEnd> {
        if end != BatchEnd::Open {
            self.zero_virtual_setting(backend);
            front::sync(&mut self.batch);
            self.steps.push(if end == BatchEnd::ClientSync {
                Step::Forward(Expect::Ready)
            } else {
                Step::Swallow(Expect::Ready)
            });
        }
        tracing::trace!(steps = ?self.steps, "sending a batch");
        backend.write(&self.batch).await?;
        self.batch.clear();
        let steps = std::mem::take(&mut self.steps);
        let cancellable_from = std::mem::take(&mut self.cancellable_from);
        let mut walked = self.walk(session, backend, steps, cancellable_from).await?;
        if walked.awaiting_sync {
            // The server now ignores everything until a Sync and answers nothing else: ours goes
            // first, whatever failed (the client's statement or one of ours), and the batch is
            // then undone back to its guard.
            let mut sync = BytesMut::new();
            front::sync(&mut sync);
            backend.write(&sync).await?;
            let synced = self
                .walk(session, backend, vec![Step::Swallow(Expect::Ready)], 0)
                .await?;
            walked.backend_status = synced.backend_status;
            walked.awaiting_sync = false;
            self.guard = false;
        }
        if end != BatchEnd::Open {
            self.leave_guard_open(backend, &walked);
        }
        let defined = std::mem::take(&mut self.defined);
        if walked.client_error || walked.internal_error.is_some() || walked.backend_status == b'E' {
            self.forget_uncertain(backend, defined);
        }
        Ok(walked)
    }

    /// After a failed batch: the server skipped what followed the error, so a Parse or Bind the
    /// plan recorded may not have happened, and the server may still hold an older statement or
    /// portal of that name (the shared unnamed statement: another client's). Its Execute could
    /// then start a COPY the proxy did not plan for, and whatever it pipelined behind it would
    /// end the key's session ("unexpected message type during COPY", FATAL 08P01). So they are
    /// treated as possible COPYs (nothing is pipelined behind their Execute) and the unnamed
    /// statement is Parsed again before this client's next use of it.
    fn forget_uncertain(&mut self, backend: &mut Backend, defined: Vec<(bool, String)>) {
        if defined.is_empty() {
            return;
        }
        let client = self.client(backend);
        for (portal, name) in defined {
            let map = if portal {
                &mut client.portals
            } else {
                &mut client.statements
            };
            if let Some(Prepared::Real { copy, .. }) = map.get_mut(&name) {
                *copy = true;
            }
        }
        backend.unnamed_owner = None;
    }

    /// Before a batch's end: the backend gets the [`VIRTUAL_SETTINGS`] back when this client has
    /// a value of its own or any SQL of the key has named the setting (the batch may have set
    /// it: a statement prepared earlier, a function or an SQL PREPARE defined earlier can, with
    /// text that does not name it).
    pub(super) fn zero_virtual_setting(&mut self, backend: &mut Backend) {
        if self.guard && self.may_hold_virtual_setting(backend) {
            front::query(&mut self.batch, ZERO_VIRTUAL_SETTINGS_SQL);
            self.steps.push(Step::Swallow(Expect::UntilReadyNoReady));
            backend.unnamed_owner = None;
        }
    }

    /// After a simple-query COPY, which nothing may follow on the wire until it is over (the
    /// server ends a session that sends a Query during COPY FROM STDIN): the [`VIRTUAL_SETTINGS`] are
    /// set back to 0 in a round trip of its own, unless the batch failed (undoing it undid the
    /// setting too).
    pub(super) async fn zero_virtual_setting_after_copy(
        &mut self,
        backend: &mut Backend,
        walked: &Walked,
    ) -> Result<(), SessionEnd> {
        if self.may_hold_virtual_setting(backend) && walked.backend_status != b'E' {
            backend.run_required(ZERO_VIRTUAL_SETTINGS_SQL).await?;
        }
        Ok(())
    }

    /// Whether the backend may hold one of the [`VIRTUAL_SETTINGS`] after this client's batch:
    /// the client has a value of its own, or some SQL of the key named one.
    fn may_hold_virtual_setting(&self, backend: &Backend) -> bool {
        backend.virtual_setting_seen
            || backend.clients.get(&self.id).is_some_and(|c| {
                VIRTUAL_SETTINGS
                    .iter()
                    .any(|name| c.settings.contains_key(*name))
            })
    }

    /// The batch's guard stays open for the next batch to release, unless the batch failed (then
    /// recovery rolls back to it and releases it).
    pub(super) fn leave_guard_open(&mut self, backend: &mut Backend, walked: &Walked) {
        if std::mem::take(&mut self.guard) && walked.backend_status != b'E' {
            backend.guard_left_open = true;
        }
    }

    /// After a batch: undo a failed one (back to its guard), note the client's error.
    pub(super) async fn after_walk(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
        walked: &Walked,
    ) -> Result<(), SessionEnd> {
        if let Some(internal) = &walked.internal_error {
            tracing::warn!(key = %session.sandbox.key, "internal statement failed: {internal}");
        }
        if walked.backend_status == b'E' {
            self.guard = false;
            backend.recover(&session.sandbox.counters).await?;
            // A rollback to the guard also undid settings made in the batch.
            backend.invalidate_settings();
        }
        if walked.client_error {
            self.skipping = true;
        }
        self.settle_notifications(backend, walked);
        Ok(())
    }

    /// Client Sync: the end of an extended-protocol sequence.
    pub(super) async fn sync(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
    ) -> Result<(), SessionEnd> {
        // Answer it ourselves only when the server has nothing of this sequence (after a Flush
        // the guard is open there and the server waits for this Sync). A sequence that failed
        // here (skipping) still sends what was planned for the server before the error: our
        // leading SQL is among it (savepoint work recorded as done), and the replies to the
        // client's messages before the error come before the error, as in PostgreSQL.
        if self.batch.is_empty() && self.steps.is_empty() && !self.guard {
            self.skipping = false;
            self.end_portals_if_idle(backend);
            let status = self.status(backend).byte();
            self.synthetic(|b| back::ready_for_query(b, status));
            self.flush_synthetic();
            return Ok(());
        }
        self.queue_implicit_commit_checks(backend).await?;
        let walked = self.send(session, backend, BatchEnd::ClientSync).await?;
        self.after_walk(session, backend, &walked).await?;
        self.skipping = false;
        self.end_portals_if_idle(backend);
        Ok(())
    }

    /// An autocommit sequence that may have written ends in an implicit COMMIT: its deferred
    /// checks go before the end of the batch.
    async fn queue_implicit_commit_checks(
        &mut self,
        backend: &mut Backend,
    ) -> Result<(), SessionEnd> {
        if std::mem::take(&mut self.autocommit_writes)
            && self.guard
            && self.status(backend) == TxStatus::Idle
        {
            if let Some(checks) = self.deferred_checks_sql(backend, false, true).await? {
                self.queue_autocommit_checks(&checks);
                backend.unnamed_owner = None; // a simple Query drops the unnamed statement
            }
        }
        Ok(())
    }

    /// Gives the key's turn up in the middle of the client's sequence (see [`super::super::turn`]):
    /// the batch is closed with our own Sync, its guard released as at any batch's end, so the
    /// next connection's batch finds the server at a boundary; the client's next messages start
    /// a batch of their own. What PostgreSQL does at the end of an autocommit sequence (its
    /// implicit COMMIT's deferred checks) happens now, so another connection's statements never
    /// answer for this one's writes; and these writes are then kept even if a later statement of
    /// the same sequence fails (README: rollback sandbox differences).
    pub(super) async fn pause(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
    ) -> Result<(), SessionEnd> {
        self.queue_implicit_commit_checks(backend).await?;
        self.finish(session, backend).await
    }

    /// Client Flush: send what we have and forward the replies it produces.
    pub(super) async fn flush(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
    ) -> Result<(), SessionEnd> {
        if self.batch.is_empty() {
            self.flush_synthetic();
            return Ok(());
        }
        front::flush(&mut self.batch);
        let walked = self.send(session, backend, BatchEnd::Open).await?;
        self.after_walk(session, backend, &walked).await
    }

    /// The client left in the middle of a sequence: close what is open on the backend.
    pub(super) async fn finish(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
    ) -> Result<(), SessionEnd> {
        self.notifications.abandon();
        if !self.batch.is_empty() || self.guard {
            let walked = self.send(session, backend, BatchEnd::InternalSync).await?;
            self.after_walk(session, backend, &walked).await?;
        }
        Ok(())
    }

    /// Moves trailing synthetic steps (no backend replies pending) to the output.
    pub(super) fn flush_synthetic(&mut self) {
        if self.steps.iter().all(|s| matches!(s, Step::Synthetic(_))) {
            for step in std::mem::take(&mut self.steps) {
                if let Step::Synthetic(bytes) = step {
                    self.out.extend_from_slice(&bytes);
                }
            }
        }
    }

    /// Reads the backend's replies for `steps`, forwarding, swallowing and synthesising.
    /// `cancellable_from`: the first step after our leading SQL.
    pub(super) async fn walk(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
        steps: Vec<Step>,
        cancellable_from: usize,
    ) -> Result<Walked, SessionEnd> {
        let mut walked = Walked {
            backend_status: b'I',
            ..Walked::default()
        };
        // The server skips messages after an error until Sync.
        let mut ignoring = false;
        // The client's unnamed statement as the server holds it after this walk's unnamed
        // Parses (None: none walked yet), and whether the last of them was skipped.
        let mut server_unnamed: Option<Option<UnnamedStatement>> = None;
        let mut unnamed_parse_skipped = false;
        let mut skipped_any = false;
        // After our leading SQL (answered at once: see `prepare_forward`) and up to the client's
        // last step, the server may be running the client's statements, and what it runs else
        // is inside the guard: only then may a cancel be sent.
        let last_forward = steps.iter().rposition(|s| matches!(s, Step::Forward(_)));
        for (index, step) in steps.into_iter().enumerate() {
            let cancellable =
                index >= cancellable_from && last_forward.is_some_and(|last| index <= last);
            let check = matches!(step, Step::Check(_));
            let (forward, expect) = match step {
                Step::Synthetic(bytes) => {
                    if !ignoring {
                        self.out.extend_from_slice(&bytes);
                    }
                    continue;
                }
                Step::Forward(expect) => (true, expect),
                Step::Swallow(expect) | Step::Check(expect) => (false, expect),
            };
            let unnamed_parse = (expect == Expect::ParseUnnamed)
                .then(|| self.unnamed_parses.pop_front())
                .flatten();
            if ignoring && expect != Expect::Ready {
                skipped_any = true;
                if let Some(parse) = unnamed_parse {
                    // The server kept the unnamed statement it had.
                    let kept = server_unnamed.take().unwrap_or(parse.before);
                    server_unnamed = Some(kept);
                    unnamed_parse_skipped = true;
                }
                // Skipped by the server: a simple Query among them still owes its client a
                // ReadyForQuery (the error it gets in its place is already out).
                if forward && expect == Expect::UntilReady {
                    let status = self.status(backend).byte();
                    back::ready_for_query(&mut self.out, status);
                }
                continue;
            }
            let mut described = false;
            loop {
                let message = session.next_reply(backend, cancellable).await?;
                tracing::trace!(tag = %(message.tag as char), forward, ?expect, "backend message");
                match message.tag {
                    // Asynchronous messages: notices and parameter changes belong to whoever's
                    // statement caused them; notifications never come (LISTEN is emulated), but
                    // pg_notify() sends its own as a notice (see `pg_notify`).
                    b'N' if self.notifications.receive(message.body()) => continue,
                    b'N' | b'S' => {
                        let own_name = message.tag == b'S'
                            && reports_sandbox_name(message.body(), &session.sandbox.key);
                        if forward && !own_name {
                            extend_in_client_view(&mut self.out, &message.raw);
                        }
                        continue;
                    }
                    b'A' => continue,
                    b'E' => {
                        if crate::rollback::messages::is_fatal(message.body()) {
                            // The server ends the session (terminated): the client sees why, as
                            // in PostgreSQL, whoever's statement ran.
                            extend_in_client_view(&mut self.out, &message.raw);
                            session.fatal_forwarded = true;
                        } else if check && walked.client_error {
                            // Our check behind the client's failed statement: it did not run
                            // (25P02), and the client has its error already.
                        } else if (forward || check) && walked.internal_error.is_none() {
                            if check {
                                deferred::error_without_context(&mut self.out, &message.raw);
                            } else {
                                let hinted = temp_objects::shared_temp_schema_hint(
                                    backend,
                                    self.id,
                                    &session.sandbox.key,
                                    &message.raw,
                                );
                                extend_in_client_view(
                                    &mut self.out,
                                    hinted.as_deref().unwrap_or(&message.raw),
                                );
                            }
                            walked.client_error = true;
                            backend.client_failed(self.id);
                            if expect == Expect::ParseUnnamed {
                                self.client(backend).last_unnamed_parse = None;
                                backend.unnamed_owner = None;
                                server_unnamed = Some(None);
                                unnamed_parse_skipped = false;
                            }
                        } else if !walked.client_error {
                            // One of our statements failed (after a client's error our guard
                            // release fails too, 25P02: expected). The client's statements after
                            // it do not run; the client gets the reason in their place, and the
                            // batch is undone like a failed one.
                            let (code, text) =
                                crate::rollback::messages::error_fields(message.body());
                            tracing::warn!(key = %session.sandbox.key, "internal statement failed: {text} ({code})");
                            report_bookkeeping_failure(
                                &mut self.out,
                                &session.sandbox.key,
                                (&code, &text),
                                &message.raw,
                            );
                            walked.internal_error = Some(format!("{text} ({code})"));
                            walked.client_error = true;
                            backend.client_failed(self.id);
                        }
                        match expect {
                            Expect::UntilReady | Expect::UntilReadyNoReady | Expect::Ready => {
                                continue
                            }
                            _ => {
                                ignoring = true;
                                break;
                            }
                        }
                    }
                    b'Z' => {
                        walked.backend_status = message.raw[5];
                        if forward && expect != Expect::UntilReadyNoReady {
                            let status = self.status(backend).byte();
                            back::ready_for_query(&mut self.out, status);
                        }
                        if matches!(
                            expect,
                            Expect::Ready | Expect::UntilReady | Expect::UntilReadyNoReady
                        ) {
                            ignoring = false;
                            break;
                        }
                        return Err(SessionEnd::Backend(format!(
                            "the server sent ReadyForQuery while the proxy expected {expect:?}"
                        )));
                    }
                    b'G' | b'W' => {
                        // COPY FROM STDIN: the client sends the data now.
                        if forward {
                            self.out.extend_from_slice(&message.raw);
                            session.write_out(&mut self.out).await?;
                            self.relay_copy_in(session, backend).await?;
                            walked.copied_in = true;
                        }
                        continue;
                    }
                    tag => {
                        if forward {
                            self.out.extend_from_slice(&message.raw);
                            if self.out.len() > 256 * 1024 {
                                session.write_out(&mut self.out).await?;
                            }
                        }
                        if let Some(parse) = unnamed_parse.as_ref().filter(|_| tag == b'1') {
                            server_unnamed = Some(Some(parse.parsed.clone()));
                            unnamed_parse_skipped = false;
                        }
                        let done = match expect {
                            Expect::One | Expect::ParseUnnamed => true,
                            Expect::DescribeStatement => {
                                if tag == b't' && !described {
                                    described = true;
                                    false
                                } else {
                                    true
                                }
                            }
                            Expect::DescribePortal => true,
                            Expect::Execute => matches!(tag, b'C' | b'I' | b's'),
                            Expect::UntilReady | Expect::UntilReadyNoReady | Expect::Ready => false,
                        };
                        if done {
                            break;
                        }
                    }
                }
            }
        }
        if unnamed_parse_skipped {
            if let Some(kept) = server_unnamed {
                self.client(backend).last_unnamed_parse = kept;
            }
        }
        if skipped_any {
            // A skipped Parse (the client's, or ours restoring its unnamed statement) left the
            // server's unnamed statement as it was: whose it is, is not known.
            backend.unnamed_owner = None;
        }
        walked.awaiting_sync = ignoring;
        Ok(walked)
    }

    /// Forwards the client's COPY data until CopyDone or CopyFail.
    pub(super) async fn relay_copy_in(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
    ) -> Result<(), SessionEnd> {
        let mut pending = BytesMut::new();
        loop {
            let message = match session.next_message().await {
                Ok(message) => message,
                Err(end) => {
                    // The client left (or broke the protocol) mid-COPY: the server reads only
                    // COPY messages now, so the COPY is failed first; the walk then goes on to
                    // a boundary, and the session ends after the cycle.
                    let mut fail = BytesMut::new();
                    front::copy_fail(&mut fail, "the client's connection ended during COPY");
                    front::flush(&mut fail);
                    backend.write(&fail).await?;
                    session.gone = true;
                    session.deferred_end = Some(end);
                    return Ok(());
                }
            };
            let tag = message[0];
            tracing::trace!(tag = %(tag as char), len = message.len(), "copy data from the client");
            if !matches!(tag, b'd' | b'c' | b'f' | b'H' | b'S') {
                // PostgreSQL ends the session of a client that sends anything else during COPY
                // FROM STDIN (ERROR, then FATAL: protocol synchronization lost). Forwarded, it
                // would end the key's shared session, so this client's session ends instead:
                // the COPY is failed, the cycle goes on to a boundary, nothing more of the
                // client runs.
                back::error(
                    &mut self.out,
                    "08P01",
                    &format!("unexpected message type 0x{tag:02X} during COPY from stdin"),
                );
                session.write_out(&mut self.out).await?;
                let mut fail = BytesMut::new();
                front::copy_fail(&mut fail, "the client broke the protocol during COPY");
                front::flush(&mut fail);
                backend.write(&fail).await?;
                session.gone = true;
                // The COPY is over once the server reads the CopyFail: nothing to cancel.
                session.cancel_sent = true;
                session.buf.clear();
                session.deferred_end = Some(SessionEnd::Protocol(
                    "terminating connection because protocol synchronization was lost".into(),
                ));
                return Ok(());
            }
            pending.extend_from_slice(&message);
            if matches!(tag, b'c' | b'f') {
                // In the extended protocol the server keeps CommandComplete in its buffer until a
                // Sync or Flush; the client's Sync is held back (see `copy_in_done`), so flush.
                front::flush(&mut pending);
            }
            if pending.len() > 64 * 1024 || matches!(tag, b'c' | b'f') {
                backend.write(&pending).await?;
                pending.clear();
            }
            if matches!(tag, b'c' | b'f') {
                return Ok(());
            }
        }
    }
}

/// The client's error in place of its statements when one of our statements in its batch failed
/// (`raw`: the server's ErrorResponse, whose SQLSTATE and message are `error`). A cancel (57014: the client's own `statement_timeout`, or
/// a `pg_cancel_backend` of the key's backend) that lands on our statement instead of the
/// client's reaches the client as the server's cancel, as PostgreSQL reports a cancelled
/// statement; any other failure is ours, named as such (XX000).
fn report_bookkeeping_failure(out: &mut BytesMut, key: &str, error: (&str, &str), raw: &[u8]) {
    let (code, text) = error;
    if code == crate::rollback::messages::QUERY_CANCELED {
        out.extend_from_slice(raw);
        return;
    }
    let message = format!(
        "dbsandbox could not run its own bookkeeping statement for this connection of key {key}: \
         {text} ({code}); the statement was not run"
    );
    back::error(out, "XX000", &message);
}

/// Appends a server's message for the client, an error or notice naming its statements and
/// portals by the client's own names.
fn extend_in_client_view(out: &mut BytesMut, raw: &[u8]) {
    match names::client_view(raw) {
        Some(rewritten) if raw[0] != b'S' => out.extend_from_slice(&rewritten),
        _ => out.extend_from_slice(raw),
    }
}

/// Whether a ParameterStatus body reports the backend's own `application_name` (the sandbox's
/// name, back after a rolled-back batch undid a client's setting of it): the client never set
/// that name, and its own value comes back with its next batch's settings.
fn reports_sandbox_name(body: &[u8], key: &str) -> bool {
    let mut fields = body.split(|&b| b == 0);
    fields.next() == Some(b"application_name".as_slice())
        && fields.next() == Some(format!("dbsandbox sandbox {key}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the walk hands over: the server's ErrorResponse, read back into (code, text).
    fn report(code: &str, text: &str) -> (BytesMut, BytesMut) {
        let mut raw = BytesMut::new();
        back::error(&mut raw, code, text);
        let (code, text) = crate::rollback::messages::error_fields(&raw[5..]);
        let mut out = BytesMut::new();
        report_bookkeeping_failure(&mut out, "k1", (&code, &text), &raw);
        (raw, out)
    }

    #[test]
    fn a_cancel_of_our_statement_reaches_the_client_as_the_servers_cancel() {
        let (raw, out) = report("57014", "canceling statement due to statement timeout");
        assert_eq!(&out[..], &raw[..]);
    }

    #[test]
    fn any_other_failure_of_our_statement_is_named_as_ours() {
        let (_, out) = report("22021", "invalid byte sequence for encoding \"UTF8\": 0xff");
        let (code, text) = crate::rollback::messages::error_fields(&out[5..]);
        assert_eq!(code, "XX000");
        assert!(
            text.starts_with("dbsandbox could not run its own bookkeeping statement")
                && text.contains("key k1")
                && text.contains("invalid byte sequence for encoding \"UTF8\": 0xff (22021)"),
            "{text}"
        );
    }
}
