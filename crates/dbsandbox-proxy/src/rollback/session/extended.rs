//! One frontend message of a unit, planned: Parse, Bind, Describe, Execute, Close and
//! FunctionCall go into the batch with the client's names made private and the replies to
//! expect, simple Queries to [`Unit::simple_query`], and the virtual statements a prepared or
//! bound name stands for are answered by the engine.

use super::*;

impl Unit {
    /// Plans one message of the unit (Sync, Flush and Terminate are the cycle's).
    pub(super) async fn handle(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
        message: FrontMsg,
    ) -> Result<(), SessionEnd> {
        if self.skipping {
            return Ok(());
        }
        let failed = self.status(backend) == TxStatus::Failed;
        match message {
            FrontMsg::Query(sql) => {
                terminate::check_query(&session.sandbox, &sql)?;
                self.send_pending(session, backend).await?;
                self.simple_query(session, backend, &sql).await?;
            }
            FrontMsg::Parse {
                name,
                sql,
                param_types,
            } => {
                let kind = classify::classify_one(&sql);
                if is_virtual(&kind) {
                    let replaced = self
                        .client(backend)
                        .statements
                        .insert(name.clone(), Prepared::Virtual(kind));
                    if matches!(replaced, Some(Prepared::Real { .. })) {
                        backend.queue_close(self.id, &name);
                    }
                    self.synthetic(back::parse_complete);
                    return Ok(());
                }
                if failed {
                    self.fail(backend, &aborted());
                    return Ok(());
                }
                let id = self.id;
                let sql = match &kind {
                    Kind::Prepare(_) | Kind::Execute(_) | Kind::Deallocate(Some(_)) => {
                        if let Kind::Prepare(prepared) = &kind {
                            self.client(backend).sql_prepared.insert(prepared.clone());
                        }
                        classify::rename_prepared(&sql, &|n| statement_name(id, n)).unwrap_or(sql)
                    }
                    _ => sql,
                };
                let sql = names::scope_prepared_view(&sql, id).unwrap_or(sql);
                let sql = super::super::copy_freeze::without_freeze(&sql).unwrap_or(sql);
                self.client(backend).cursors.note_sql(&sql, Some(&name));
                self.prepare_forward(backend);
                backend.virtual_setting_seen |= mentions_virtual_setting(&sql);
                if !name.is_empty() {
                    // The name is recorded for this Parse before the server answers it. Had the
                    // server kept an earlier statement of that name (its Parse fails with
                    // 42P05, or a syntax error), a later Bind would run that one, a COPY where
                    // a plain statement is planned and the shared session would be lost. Close
                    // of a name the server does not hold succeeds: the server then holds this
                    // Parse's statement or none. It fails only where the Parse would, with the
                    // client's error: a name not valid in the client encoding (22021).
                    front::close(&mut self.batch, false, &statement_name(id, &name));
                    self.steps.push(Step::Check(Expect::One));
                }
                front::parse(
                    &mut self.batch,
                    &statement_name(id, &name),
                    &sql,
                    &param_types,
                );
                self.steps.push(Step::Forward(if name.is_empty() {
                    Expect::ParseUnnamed
                } else {
                    Expect::One
                }));
                let copy = is_copy(&sql);
                let set_sql =
                    (changes_settings(&kind) || has_session_effects(&sql)).then(|| sql.clone());
                self.defined.push((false, name.clone()));
                let writes = copy || deferred::may_queue_deferred_checks(&sql);
                if deferred::may_change_schema(&sql) {
                    backend.schema_may_change();
                }
                let client = self.client(backend);
                if name.is_empty() {
                    let parsed = (sql, param_types);
                    let before = client.last_unnamed_parse.replace(parsed.clone());
                    self.unnamed_parses
                        .push_back(UnnamedParse { before, parsed });
                }
                client.statements.insert(
                    name.clone(),
                    Prepared::Real {
                        copy,
                        kind,
                        sql: set_sql,
                        writes,
                    },
                );
                if name.is_empty() {
                    backend.unnamed_owner = Some(id);
                }
            }
            FrontMsg::Bind {
                portal,
                statement,
                rest,
            } => {
                let prepared = self.client(backend).statements.get(&statement).cloned();
                match prepared {
                    Some(Prepared::Virtual(kind)) => {
                        self.client(backend)
                            .portals
                            .insert(portal, Prepared::Virtual(kind));
                        self.synthetic(back::bind_complete);
                    }
                    _ if failed => self.fail(backend, &aborted()),
                    _ if !self.has_unnamed(backend, &statement) => {
                        self.fail(backend, &no_unnamed_statement())
                    }
                    prepared => {
                        if let Some(Prepared::Real { sql: Some(sql), .. }) = &prepared {
                            terminate::check_bind(&session.sandbox, sql, &rest)?;
                        }
                        self.client(backend).cursors.note_bind(&statement);
                        self.prepare_forward(backend);
                        self.restore_unnamed(backend, &statement);
                        // As for a named Parse: the server must not keep an earlier portal of
                        // this name (its Bind fails with 42P03) under the plan recorded for this
                        // Bind; for the unnamed portal this is PostgreSQL's implicit close. Its
                        // error is the Bind's own (a name not valid in the client encoding).
                        let backend_portal = names::bound_portal_name(self.id, &portal);
                        front::close(&mut self.batch, true, &backend_portal);
                        self.steps.push(Step::Check(Expect::One));
                        front::bind(
                            &mut self.batch,
                            &backend_portal,
                            &statement_name(self.id, &statement),
                            &rest,
                        );
                        self.steps.push(Step::Forward(Expect::One));
                        // A statement the proxy does not know may still be on the server (the
                        // unnamed one, perhaps another client's; one DISCARD ALL forgot, whose
                        // Close is still queued): it may be a COPY.
                        let prepared = prepared.unwrap_or(Prepared::Real {
                            copy: true,
                            kind: Kind::Ordinary,
                            sql: None,
                            writes: true,
                        });
                        self.defined.push((true, portal.clone()));
                        self.client(backend).portals.insert(portal, prepared);
                    }
                }
            }
            FrontMsg::Describe { portal, name } => {
                let prepared = {
                    let client = self.client(backend);
                    if portal {
                        client.portals.get(&name).cloned()
                    } else {
                        client.statements.get(&name).cloned()
                    }
                };
                match prepared {
                    Some(Prepared::Virtual(kind)) => self.synthetic(|b| {
                        if !portal {
                            back::parameter_description(b, &[]);
                        }
                        match control_column(&kind) {
                            Some(column) => back::row_description_text(b, &[column]),
                            None => back::no_data(b),
                        }
                    }),
                    _ if !portal && !self.has_unnamed(backend, &name) => {
                        self.fail(backend, &no_unnamed_statement())
                    }
                    prepared => {
                        self.prepare_forward(backend);
                        let backend_name = if portal {
                            names::portal_name(self.id, &name, prepared.is_some())
                        } else {
                            self.restore_unnamed(backend, &name);
                            statement_name(self.id, &name)
                        };
                        front::describe(&mut self.batch, portal, &backend_name);
                        self.steps.push(Step::Forward(if portal {
                            Expect::DescribePortal
                        } else {
                            Expect::DescribeStatement
                        }));
                    }
                }
            }
            FrontMsg::Execute { portal, max_rows } => {
                let prepared = self.client(backend).portals.get(&portal).cloned();
                match prepared {
                    Some(Prepared::Virtual(kind)) => {
                        self.send_pending(session, backend).await?;
                        if !self.skipping {
                            self.virtual_statement(session, backend, &kind, false)
                                .await?;
                        }
                    }
                    _ if failed => self.fail(backend, &aborted()),
                    prepared => {
                        self.prepare_forward(backend);
                        if !matches!(prepared, Some(Prepared::Real { writes: false, .. })) {
                            match self.status(backend) {
                                TxStatus::Idle => self.autocommit_writes = true,
                                _ => self.client(backend).tx_may_write = true,
                            }
                        }
                        front::execute(
                            &mut self.batch,
                            &names::portal_name(self.id, &portal, prepared.is_some()),
                            max_rows,
                        );
                        self.steps.push(Step::Forward(Expect::Execute));
                        session.sandbox.counters.statements.fetch_add(1, Relaxed);
                        if portal.is_empty()
                            && max_rows == 0
                            && matches!(prepared, Some(Prepared::Real { copy: false, .. }))
                        {
                            // Run to its end, the unnamed portal would stay open on the shared
                            // backend under its private name, holding its tables (another
                            // connection's TRUNCATE or DROP then fails with 55006 "being used by
                            // active queries"), where PostgreSQL drops it at the next Bind.
                            self.close_unnamed_portal(backend);
                        }
                        match prepared {
                            // A portal the proxy does not know may still be on the server (the
                            // unnamed one after DISCARD ALL forgot it): it may be a COPY too.
                            Some(Prepared::Real { copy: true, .. }) | None => {
                                // Nothing may follow a COPY until it is over (the server reads
                                // only copy data then), so run what we have now; the Flush makes
                                // a COPY TO's output come without a Sync (a COPY FROM ignores it).
                                front::flush(&mut self.batch);
                                let walked = self.send(session, backend, BatchEnd::Open).await?;
                                self.copy_in_done = walked.copied_in;
                                self.after_walk(session, backend, &walked).await?;
                            }
                            Some(Prepared::Real {
                                kind,
                                sql: Some(sql),
                                ..
                            }) => {
                                self.send_pending(session, backend).await?;
                                if !self.skipping {
                                    self.record_simple_setting(backend, &kind, &sql);
                                    self.record_session_effects(backend, &sql).await?;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            FrontMsg::Close { portal, name } => {
                let client = self.client(backend);
                let prepared = if portal {
                    client.portals.remove(&name)
                } else {
                    client.statements.remove(&name)
                };
                match prepared {
                    Some(Prepared::Virtual(_)) => self.synthetic(back::close_complete),
                    prepared => {
                        self.prepare_forward(backend);
                        let backend_name = if portal {
                            names::portal_name(self.id, &name, prepared.is_some())
                        } else {
                            statement_name(self.id, &name)
                        };
                        front::close(&mut self.batch, portal, &backend_name);
                        self.steps.push(Step::Forward(Expect::One));
                    }
                }
            }
            FrontMsg::Other { tag: b'F', raw } => {
                self.send_pending(session, backend).await?;
                if failed {
                    self.fail(backend, &aborted());
                    self.synthetic(|b| back::ready_for_query(b, b'E'));
                    self.skipping = false;
                    return Ok(());
                }
                self.prepare_forward(backend);
                self.batch.extend_from_slice(&raw);
                self.steps.push(Step::Forward(Expect::UntilReady));
                let walked = self.send(session, backend, BatchEnd::InternalSync).await?;
                self.after_walk(session, backend, &walked).await?;
            }
            // CopyData, CopyDone and CopyFail outside COPY are ignored, per the protocol.
            FrontMsg::Other {
                tag: b'd' | b'c' | b'f',
                ..
            } => {}
            FrontMsg::Other { tag, .. } => {
                return Err(SessionEnd::Protocol(format!(
                    "unsupported frontend message type {:?}",
                    tag as char
                )));
            }
            FrontMsg::Sync | FrontMsg::Flush | FrontMsg::Terminate => {
                unreachable!("handled by the cycle")
            }
        }
        Ok(())
    }

    /// Closes the client's unnamed portal on the backend now (see `names::bound_portal_name`).
    fn close_unnamed_portal(&mut self, backend: &mut Backend) {
        front::close(
            &mut self.batch,
            true,
            &names::bound_portal_name(self.id, ""),
        );
        self.steps.push(Step::Swallow(Expect::One));
        self.client(backend).portals.remove("");
    }
}
