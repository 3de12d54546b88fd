//! The clients' transactions on the shared backend: each BEGIN is a savepoint, COMMIT a
//! RELEASE, ROLLBACK a ROLLBACK TO + RELEASE, and the clients' own savepoints nest inside, all
//! on one stack whose savepoint work is queued and sent with the next batch.

use super::*;

impl Backend {
    /// Applies a transaction-control statement, queuing savepoint work. Returns the command tag,
    /// warnings to send first, or the error to report.
    pub fn transaction_control(
        &mut self,
        id: ClientId,
        kind: &Kind,
        counters: &SandboxCounters,
    ) -> Result<TxReply, ClientError> {
        let status = self
            .clients
            .get(&id)
            .map(|c| c.status)
            .unwrap_or(TxStatus::Idle);
        // AND CHAIN starts the next transaction with the same characteristics.
        let chained_read_only = self.batch_read_only(id);
        match kind {
            Kind::Begin { read_only } => match status {
                TxStatus::Idle => {
                    self.begin(id);
                    self.set_read_only(id, *read_only);
                    Ok(("BEGIN", None))
                }
                TxStatus::InTx => Ok((
                    "BEGIN",
                    Some(("25001", "there is already a transaction in progress")),
                )),
                TxStatus::Failed => Err(aborted()),
            },
            Kind::Commit { chain } => match status {
                TxStatus::Idle if *chain => Err(ClientError::new(
                    "25P01",
                    "COMMIT AND CHAIN can only be used in transaction blocks",
                )),
                TxStatus::Idle => Ok((
                    "COMMIT",
                    Some(("25P01", "there is no transaction in progress")),
                )),
                TxStatus::InTx => {
                    self.commit(id);
                    counters.commits_absorbed.fetch_add(1, Relaxed);
                    if *chain {
                        self.begin(id);
                        self.set_read_only(id, Some(chained_read_only));
                    }
                    Ok(("COMMIT", None))
                }
                TxStatus::Failed => {
                    self.rollback(id);
                    if *chain {
                        self.begin(id);
                        self.set_read_only(id, Some(chained_read_only));
                    }
                    Ok(("ROLLBACK", None))
                }
            },
            Kind::Rollback { chain } => match status {
                TxStatus::Idle if *chain => Err(ClientError::new(
                    "25P01",
                    "ROLLBACK AND CHAIN can only be used in transaction blocks",
                )),
                TxStatus::Idle => Ok((
                    "ROLLBACK",
                    Some(("25P01", "there is no transaction in progress")),
                )),
                TxStatus::InTx | TxStatus::Failed => {
                    self.rollback(id);
                    if *chain {
                        self.begin(id);
                        self.set_read_only(id, Some(chained_read_only));
                    }
                    Ok(("ROLLBACK", None))
                }
            },
            Kind::Savepoint(name) => match status {
                TxStatus::Idle => Err(ClientError::new(
                    "25P01",
                    "SAVEPOINT can only be used in transaction blocks",
                )),
                TxStatus::Failed => Err(aborted()),
                TxStatus::InTx => {
                    self.materialize_begin(id);
                    let physical = self.savepoint_name(id);
                    self.pending_ops.push(format!("SAVEPOINT {physical}"));
                    let notifies_before = self
                        .clients
                        .get(&id)
                        .map_or(0, |c| c.pending_notifies.len());
                    self.stack.push(Savepoint {
                        physical,
                        owner: id,
                        client_name: Some(name.clone()),
                        released: false,
                        notifies_before,
                    });
                    Ok(("SAVEPOINT", None))
                }
            },
            Kind::Release(name) => match status {
                TxStatus::Idle => Err(ClientError::new(
                    "25P01",
                    "RELEASE SAVEPOINT can only be used in transaction blocks",
                )),
                TxStatus::Failed => Err(aborted()),
                TxStatus::InTx => {
                    let at = self
                        .find_savepoint(id, name)
                        .ok_or_else(|| no_savepoint(name))?;
                    self.release_from(id, at);
                    Ok(("RELEASE", None))
                }
            },
            Kind::RollbackTo(name) => match status {
                TxStatus::Idle => Err(ClientError::new(
                    "25P01",
                    "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
                )),
                TxStatus::InTx | TxStatus::Failed => {
                    let at = self
                        .find_savepoint(id, name)
                        .ok_or_else(|| no_savepoint(name))?;
                    let physical = self.stack[at].physical.clone();
                    let notifies_before = self.stack[at].notifies_before;
                    self.pending_ops
                        .push(format!("ROLLBACK TO SAVEPOINT {physical}"));
                    self.drop_above(id, at + 1);
                    self.invalidate_settings();
                    if let Some(client) = self.clients.get_mut(&id) {
                        client.status = TxStatus::InTx;
                        client.pending_notifies.truncate(notifies_before);
                    }
                    Ok(("ROLLBACK", None))
                }
            },
            _ => Err(ClientError::new("XX000", "not a transaction statement")),
        }
    }

    pub(super) fn begin(&mut self, id: ClientId) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.status = TxStatus::InTx;
            client.begin_pending = true;
            client.tx_touched_settings = false;
            client.tx_may_write = false;
            client.settings_at_begin = Some(client.settings.clone());
            client.listens_at_begin = Some(client.listens.clone());
            client.pending_notifies.clear();
        }
    }

    /// The index of the client's transaction base savepoint, if it reached the backend.
    pub(super) fn tx_base(&self, id: ClientId) -> Option<usize> {
        self.stack
            .iter()
            .position(|s| s.owner == id && s.client_name.is_none() && !s.released)
    }

    /// Whether the client's open transaction has reached the backend (ran a statement there).
    pub fn has_tx_base(&self, id: ClientId) -> bool {
        self.tx_base(id).is_some()
    }

    pub(super) fn find_savepoint(&self, id: ClientId, name: &str) -> Option<usize> {
        let base = self.tx_base(id)?;
        (base..self.stack.len()).rev().find(|&i| {
            self.stack[i].owner == id
                && !self.stack[i].released
                && self.stack[i].client_name.as_deref() == Some(name)
        })
    }

    /// Releases the client's savepoints from `at` upwards: physically when nothing of another
    /// client's lies above, otherwise later, when they are gone.
    pub(super) fn release_from(&mut self, id: ClientId, at: usize) {
        let foreign_above = self.stack[at..]
            .iter()
            .any(|s| s.owner != id && !s.released);
        for savepoint in &mut self.stack[at..] {
            if savepoint.owner == id {
                savepoint.released = true;
            }
        }
        if !foreign_above {
            self.collapse_released();
        }
    }

    /// Physically releases the run of released savepoints at the top of the stack.
    pub(super) fn collapse_released(&mut self) {
        let mut lowest = self.stack.len();
        while lowest > 0 && self.stack[lowest - 1].released {
            lowest -= 1;
        }
        if lowest < self.stack.len() {
            self.pending_ops
                .push(format!("RELEASE SAVEPOINT {}", self.stack[lowest].physical));
            self.stack.truncate(lowest);
        }
    }

    /// After a ROLLBACK TO the savepoint below `from`: the client's savepoints from `from` up are
    /// gone; other clients' live ones were destroyed too and are re-created (empty).
    pub(super) fn drop_above(&mut self, id: ClientId, from: usize) {
        let above: Vec<Savepoint> = self.stack.drain(from..).collect();
        for savepoint in above {
            if savepoint.owner != id && !savepoint.released {
                self.pending_ops
                    .push(format!("SAVEPOINT {}", savepoint.physical));
                self.stack.push(savepoint);
            }
        }
    }

    pub(super) fn commit(&mut self, id: ClientId) {
        if let Some(base) = self.tx_base(id) {
            self.release_from(id, base);
        }
        let notifies = match self.clients.get_mut(&id) {
            Some(client) => {
                client.status = TxStatus::Idle;
                client.begin_pending = false;
                client.settings_at_begin = None;
                client.listens_at_begin = None;
                if std::mem::take(&mut client.tx_touched_settings) {
                    self.applied = None;
                }
                std::mem::take(&mut client.pending_notifies)
            }
            None => Vec::new(),
        };
        for (channel, payload) in notifies {
            self.deliver(id, &channel, &payload);
        }
    }

    /// Ends the client's transaction the way ROLLBACK does.
    pub fn rollback(&mut self, id: ClientId) {
        if let Some(base) = self.tx_base(id) {
            let physical = self.stack[base].physical.clone();
            self.pending_ops
                .push(format!("ROLLBACK TO SAVEPOINT {physical}"));
            self.pending_ops
                .push(format!("RELEASE SAVEPOINT {physical}"));
            self.drop_above(id, base + 1);
            self.stack.remove(base);
            self.collapse_released();
            self.invalidate_settings();
        }
        if let Some(client) = self.clients.get_mut(&id) {
            client.status = TxStatus::Idle;
            client.begin_pending = false;
            client.tx_touched_settings = false;
            if let Some(settings) = client.settings_at_begin.take() {
                client.settings = settings;
            }
            if let Some(listens) = client.listens_at_begin.take() {
                client.listens = listens;
            }
            client.pending_notifies.clear();
        }
    }
}
