//! The statements of a unit the engine answers itself or runs one at a time: transaction
//! control, LISTEN/NOTIFY, DISCARD, DEALLOCATE, the in-band control statements (reset, reset
//! points), and a simple Query split around them.

use super::*;

impl Unit {
    /// A statement the engine answers itself. `simple`: part of a simple Query (the caller
    /// writes ReadyForQuery).
    pub(super) async fn virtual_statement(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
        kind: &Kind,
        simple: bool,
    ) -> Result<(), SessionEnd> {
        let sandbox = Arc::clone(&session.sandbox);
        sandbox.counters.statements.fetch_add(1, Relaxed);
        if self.status(backend) == TxStatus::Failed && !allowed_when_failed(kind) {
            self.fail(backend, &aborted());
            return Ok(());
        }
        let committing = matches!(kind, Kind::Commit { .. })
            && self.status(backend) == TxStatus::InTx
            && backend.has_tx_base(self.id)
            && self.client(backend).tx_may_write;
        if committing && self.commit_checks_failed(session, backend).await? {
            return Ok(());
        }
        let result: Result<String, ClientError> = match kind {
            Kind::Begin { .. } | Kind::Commit { .. } | Kind::Rollback { .. } | Kind::Savepoint(_) | Kind::Release(_) | Kind::RollbackTo(_) => {
                match backend.transaction_control(self.id, kind, &sandbox.counters) {
                    Ok((tag, warning)) => {
                        if let Some((code, text)) = warning {
                            self.synthetic(|b| back::warning(b, code, text));
                        }
                        Ok(tag.to_string())
                    }
                    Err(e) => Err(e),
                }
            }
            Kind::PrepareTransaction | Kind::CommitPrepared | Kind::RollbackPrepared => Err(ClientError::new(
                "0A000",
                format!(
                    "two-phase commit is not available in a dbsandbox rollback sandbox (every connection of key {} shares one \
                     transaction that is never committed); use database isolation for this key: connect with \
                     options=-c dbsandbox.isolation=database",
                    sandbox.key
                ),
            )),
            Kind::DatabaseCommand(command) => Err(ClientError::new(
                "0A000",
                crate::key::database_command_refused(command, &sandbox.key),
            )),
            Kind::NotInTransaction(command) => Err(ClientError::new(
                "25001",
                format!(
                    "{command} cannot run inside a transaction block, and every connection of dbsandbox key {} runs inside the \
                     sandbox's transaction; use database isolation for this key (a whole database, real commits): connect with \
                     options=-c dbsandbox.isolation=database",
                    sandbox.key
                ),
            )),
            Kind::SetTransaction { read_only } => {
                if self.status(backend) == TxStatus::Idle {
                    self.synthetic(|b| {
                        back::warning(b, "25P01", "SET TRANSACTION can only be used in transaction blocks")
                    });
                } else if read_only.is_some() {
                    backend.set_read_only(self.id, *read_only);
                }
                Ok("SET".into())
            }
            Kind::Listen(channel) => {
                self.client(backend).listens.insert(channel.clone());
                Ok("LISTEN".into())
            }
            Kind::Unlisten(channel) => {
                let client = self.client(backend);
                match channel {
                    Some(channel) => {
                        client.listens.remove(channel);
                    }
                    None => client.listens.clear(),
                }
                Ok("UNLISTEN".into())
            }
            Kind::Notify { channel, payload } => {
                backend.notify(self.id, channel, payload.as_deref().unwrap_or(""));
                Ok("NOTIFY".into())
            }
            Kind::Discard(DiscardWhat::All) => {
                if self.status(backend) != TxStatus::Idle {
                    Err(ClientError::new("25001", "DISCARD ALL cannot run inside a transaction block"))
                } else {
                    self.discard_all(backend);
                    Ok("DISCARD ALL".into())
                }
            }
            Kind::Deallocate(None) => {
                // Every named statement of the connection, the protocol's too, as in PostgreSQL.
                let client = self.client(backend);
                let mut names = std::mem::take(&mut client.sql_prepared);
                let named: Vec<String> =
                    client.statements.keys().filter(|n| !n.is_empty()).cloned().collect();
                for name in named {
                    if let Some(Prepared::Real { .. }) = client.statements.remove(&name) {
                        names.insert(name);
                    }
                }
                for name in &names {
                    backend.queue_close(self.id, name);
                }
                Ok("DEALLOCATE ALL".into())
            }
            Kind::SandboxReset => {
                backend.reset().await?;
                // The rollback ended a guard this unit left open after a Flush.
                self.guard = false;
                sandbox.counters.resets.fetch_add(1, Relaxed);
                Ok(self.control_row(kind, simple))
            }
            Kind::SandboxResetTo(point) => match backend.reset_to_point(point).await? {
                Ok(()) => {
                    self.guard = false;
                    sandbox.counters.resets.fetch_add(1, Relaxed);
                    Ok(self.control_row(kind, simple))
                }
                Err(e) => Err(e),
            },
            // A guard savepoint this unit left open (after a Flush) would, once released,
            // take the point with it.
            Kind::SandboxSnapshot(_) if self.guard => Err(ClientError::new(
                "25001",
                "dbsandbox_snapshot must not share an extended-protocol batch with other \
                 statements: send it after a Sync",
            )),
            Kind::SandboxSnapshot(point) => match backend.take_point(point).await? {
                Ok(()) => Ok(self.control_row(kind, simple)),
                Err(e) => Err(e),
            },
            _ => Err(ClientError::new("XX000", "dbsandbox: statement kind handled elsewhere")),
        };
        match result {
            Ok(tag) => self.synthetic(|b| back::command_complete(b, &tag)),
            Err(error) => self.fail(backend, &error),
        }
        Ok(())
    }

    /// The one-row answer of an in-band control statement (its RowDescription too when part of
    /// a simple Query); returns the command tag.
    pub(super) fn control_row(&mut self, kind: &Kind, simple: bool) -> String {
        let column = control_column(kind).unwrap_or("dbsandbox_reset");
        if simple {
            self.synthetic(|b| back::row_description_text(b, &[column]));
        }
        self.synthetic(|b| back::data_row_text(b, &["ok"]));
        "SELECT 1".into()
    }

    /// DISCARD ALL for this client only: its statements, settings and LISTENs.
    pub(super) fn discard_all(&mut self, backend: &mut Backend) {
        let id = self.id;
        let client = self.client(backend);
        let mut names: Vec<String> = client
            .statements
            .iter()
            .filter(|(_, p)| matches!(p, Prepared::Real { .. }))
            .map(|(n, _)| n.clone())
            .collect();
        names.extend(client.sql_prepared.iter().cloned());
        client.statements.clear();
        client.portals.clear();
        client.sql_prepared.clear();
        client.listens.clear();
        client.last_unnamed_parse = None;
        backend.record_reset_all(id);
        for name in &names {
            backend.queue_close(id, name);
        }
    }

    /// A simple Query: one batch when every statement is forwarded as is, else one statement at
    /// a time (virtual ones answered here), stopping at the first error, with one ReadyForQuery.
    pub(super) async fn simple_query(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
        sql: &str,
    ) -> Result<(), SessionEnd> {
        let statements = classify::classify(sql);
        if statements.is_empty() {
            let status = self.status(backend).byte();
            self.synthetic(|b| {
                b.extend_from_slice(&[b'I', 0, 0, 0, 4]);
                back::ready_for_query(b, status);
            });
            return Ok(());
        }
        let cursors = &mut self.client(backend).cursors;
        for statement in &statements {
            cursors.note_sql(&sql[statement.range.clone()], None);
        }
        let failed = self.status(backend) == TxStatus::Failed;
        let all_forwarded = statements.iter().all(|s| !is_virtual(&s.kind));
        if all_forwarded
            && !failed
            && (statements.len() == 1 || !statements.iter().any(|s| changes_settings(&s.kind)))
        {
            let text = self.renamed(backend, sql, &statements);
            let copies = statements.iter().any(|s| is_copy(&sql[s.range.clone()]));
            let schema_changes = statements
                .iter()
                .any(|s| deferred::may_change_schema(&sql[s.range.clone()]));
            // An autocommit statement's implicit COMMIT runs the deferred checks, pipelined
            // behind it: the client's ReadyForQuery then comes after them.
            let writes = copies
                || statements
                    .iter()
                    .any(|s| deferred::may_queue_deferred_checks(&sql[s.range.clone()]));
            if writes && self.status(backend) == TxStatus::InTx {
                self.client(backend).tx_may_write = true;
            }
            let checks = if self.status(backend) == TxStatus::Idle && !copies && writes {
                self.deferred_checks_sql(backend, schema_changes, false)
                    .await?
            } else {
                None
            };
            if schema_changes {
                backend.schema_may_change();
            }
            self.prepare_forward(backend);
            backend.virtual_setting_seen |= mentions_virtual_setting(&text);
            front::query(&mut self.batch, &text);
            self.steps.push(Step::Forward(if checks.is_some() {
                Expect::UntilReadyNoReady
            } else {
                Expect::UntilReady
            }));
            if let Some(checks) = &checks {
                self.queue_autocommit_checks(checks);
            }
            if !copies {
                self.zero_virtual_setting(backend);
            }
            session
                .sandbox
                .counters
                .statements
                .fetch_add(statements.len() as u64, Relaxed);
            // The Query's own ReadyForQuery ends the batch: no Sync of ours is needed (and
            // nothing follows a COPY before it is over).
            let walked = self.send(session, backend, BatchEnd::Open).await?;
            self.leave_guard_open(backend, &walked);
            let client_error = walked.client_error;
            self.after_walk(session, backend, &walked).await?;
            if copies {
                self.zero_virtual_setting_after_copy(backend, &walked)
                    .await?;
            }
            if !client_error {
                if let [only] = statements.as_slice() {
                    self.record_simple_setting(backend, &only.kind, &text);
                }
            }
            if checks.is_some() {
                let status = self.status(backend).byte();
                self.synthetic(|b| back::ready_for_query(b, status));
            }
            if !client_error && !self.skipping {
                self.record_session_effects(backend, &text).await?;
            }
            self.skipping = false;
            self.end_portals_if_idle(backend);
            return Ok(());
        }
        // One statement at a time.
        for statement in &statements {
            let text = &sql[statement.range.clone()];
            if is_virtual(&statement.kind) {
                self.virtual_statement(session, backend, &statement.kind, true)
                    .await?;
                self.flush_synthetic();
            } else if self.status(backend) == TxStatus::Failed {
                self.fail(backend, &aborted());
            } else {
                let renamed = self.renamed(backend, text, &classify::classify(text));
                if deferred::may_change_schema(&renamed) {
                    backend.schema_may_change();
                }
                if self.status(backend) == TxStatus::InTx
                    && (is_copy(&renamed) || deferred::may_queue_deferred_checks(&renamed))
                {
                    self.client(backend).tx_may_write = true;
                }
                self.prepare_forward(backend);
                backend.virtual_setting_seen |= mentions_virtual_setting(&renamed);
                front::query(&mut self.batch, &renamed);
                self.steps.push(Step::Forward(Expect::UntilReadyNoReady));
                session.sandbox.counters.statements.fetch_add(1, Relaxed);
                // The server ignores a Sync that arrives during a COPY: the Query's own
                // ReadyForQuery ends a COPY's batch.
                let copy = is_copy(&renamed);
                let end = if copy {
                    BatchEnd::Open
                } else {
                    BatchEnd::InternalSync
                };
                let walked = self.send(session, backend, end).await?;
                if copy {
                    self.leave_guard_open(backend, &walked);
                }
                let client_error = walked.client_error;
                self.after_walk(session, backend, &walked).await?;
                if copy {
                    self.zero_virtual_setting_after_copy(backend, &walked)
                        .await?;
                }
                if !client_error {
                    self.record_simple_setting(backend, &statement.kind, &renamed);
                    self.record_session_effects(backend, &renamed).await?;
                }
            }
            if self.skipping || session.gone {
                break;
            }
        }
        self.skipping = false;
        self.end_portals_if_idle(backend);
        let status = self.status(backend).byte();
        self.synthetic(|b| back::ready_for_query(b, status));
        Ok(())
    }

    /// At the end of a Query or a Sync: a client outside a transaction block has ended its
    /// (implicit) transaction, and its portals end with it, as in PostgreSQL.
    pub(super) fn end_portals_if_idle(&mut self, backend: &mut Backend) {
        if self.status(backend) == TxStatus::Idle {
            let id = self.id;
            for name in names::portals_ending(id, self.client(backend), false) {
                backend.queue_portal_close(name);
            }
        }
    }

    /// The query text with SQL-level prepared statement names made private to this client (and
    /// `pg_prepared_statements` showing only its own).
    pub(super) fn renamed(
        &mut self,
        backend: &mut Backend,
        sql: &str,
        statements: &[classify::Statement],
    ) -> String {
        let id = self.id;
        if !statements.iter().any(|s| {
            matches!(
                s.kind,
                Kind::Prepare(_) | Kind::Execute(_) | Kind::Deallocate(Some(_))
            )
        }) {
            let text = names::scope_prepared_view(sql, id).unwrap_or_else(|| sql.to_string());
            return super::super::copy_freeze::without_freeze(&text).unwrap_or(text);
        }
        let mut text = String::with_capacity(sql.len() + 16);
        let mut last = 0;
        for statement in statements {
            text.push_str(&sql[last..statement.range.start]);
            let part = &sql[statement.range.clone()];
            match &statement.kind {
                Kind::Prepare(name) | Kind::Execute(name) | Kind::Deallocate(Some(name)) => {
                    if matches!(statement.kind, Kind::Prepare(_)) {
                        self.client(backend).sql_prepared.insert(name.clone());
                    }
                    if matches!(statement.kind, Kind::Deallocate(_)) {
                        self.client(backend).sql_prepared.remove(name);
                    }
                    text.push_str(
                        &classify::rename_prepared(part, &|n| statement_name(id, n))
                            .unwrap_or_else(|| part.to_string()),
                    );
                }
                _ => text.push_str(part),
            }
            last = statement.range.end;
        }
        text.push_str(&sql[last..]);
        let text = names::scope_prepared_view(&text, id).unwrap_or(text);
        super::super::copy_freeze::without_freeze(&text).unwrap_or(text)
    }

    /// After a SET/RESET that succeeded: the client's settings and the backend's agree on it.
    pub(super) fn record_simple_setting(&mut self, backend: &mut Backend, kind: &Kind, text: &str) {
        match kind {
            Kind::SetSession { name, value } => {
                backend.record_setting(
                    self.id,
                    name,
                    value
                        .as_ref()
                        .map(|_| text.trim().trim_end_matches(';').to_string()),
                );
            }
            Kind::ResetAll => backend.record_reset_all(self.id),
            Kind::SetLocal => backend.note_set_local(self.id),
            Kind::SetTransactionReadOnly(read_only) => {
                backend.note_set_local(self.id);
                backend.set_read_only(self.id, Some(*read_only));
            }
            _ => {}
        }
    }
}
