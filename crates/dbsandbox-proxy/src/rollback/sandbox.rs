//! One rollback sandbox: a backend connection inside a transaction that is never committed,
//! shared by every client connection of a key, and the bookkeeping that keeps each client's
//! illusion of a private session.
//!
//! Physical model. The backend runs `BEGIN` once. A client's BEGIN becomes a SAVEPOINT, its
//! COMMIT a RELEASE, its ROLLBACK a ROLLBACK TO + RELEASE; those savepoints form one stack
//! ([`Savepoint`]) shared by all clients, because connections of a key may interleave their
//! transactions. Savepoint work is *lazy*: it is queued in `pending_ops` and sent in front of the
//! next batch that reaches the backend, so BEGIN and COMMIT cost no round trip of their own. Every
//! batch of client messages runs under a guard savepoint (prepared once as `dbsb_sp`/`dbsb_rel`),
//! so an error only undoes that batch and never aborts the sandbox. A departed client's prepared
//! statements are closed with protocol Close, which cannot fail (DEALLOCATE of a statement whose
//! Parse failed would abort the sandbox's transaction).
//!
//! Rule for interleaved transactions (documented in the README): request cycles are serialised per
//! key, transactions are not. A COMMIT whose savepoint has another client's savepoint above it is
//! recorded and released later; a ROLLBACK also undoes what other connections of the key wrote
//! since that transaction began (their open savepoints are re-created afterwards).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::UnboundedSender;

mod lifecycle;
pub use lifecycle::WRITE_COUNTERS_SQL;
use lifecycle::{baseline_sql, setval_sql, write_counters, RESET_SESSION_SQL, SEQUENCE_VALUES_SQL};
mod points;
mod read_only;
mod transactions;
mod wire;

use super::broken::BrokenFlag;
use super::messages::{back, front};
use crate::backend::BackendAddr;
use crate::classify::{quote_ident, Kind};

pub type ClientId = u32;

/// The savepoint every batch runs under, and the prepared statements that set and release it.
pub const GUARD: &str = "dbsb_g";
const GUARD_SET: &str = "dbsb_sp";
const GUARD_RELEASE: &str = "dbsb_rel";

/// A client's transaction status as the client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTx,
    Failed,
}

impl TxStatus {
    pub fn byte(self) -> u8 {
        match self {
            TxStatus::Idle => b'I',
            TxStatus::InTx => b'T',
            TxStatus::Failed => b'E',
        }
    }
}

/// One physical savepoint on the backend.
#[derive(Debug, Clone)]
struct Savepoint {
    physical: String,
    owner: ClientId,
    /// The client's own name for it; `None` for the savepoint that stands for its BEGIN.
    client_name: Option<String>,
    /// Released by its owner but still physically present under another client's savepoint.
    released: bool,
    /// How many notifications its owner's transaction held when it was made: a ROLLBACK TO it
    /// drops the later ones, as PostgreSQL drops a rolled-back subtransaction's.
    notifies_before: usize,
}

/// What the engine knows about a client's prepared statement or portal.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Answered by the engine (transaction control, LISTEN, the reset statement, …).
    Virtual(Kind),
    /// Forwarded; `copy` marks COPY statements, after which nothing may be pipelined; `sql` is
    /// kept for statements that change settings (to re-apply them later).
    Real {
        copy: bool,
        kind: Kind,
        sql: Option<String>,
        /// May write rows: an autocommit Execute of it runs the deferred checks at its Sync.
        writes: bool,
    },
}

/// Everything per client that must survive between its cycles.
pub struct ClientState {
    /// The process id the client was given (used as the sender of its notifications).
    pub pid: i32,
    pub outbox: UnboundedSender<BytesMut>,
    pub status: TxStatus,
    /// BEGIN seen, savepoint not yet created (created lazily by the first real statement).
    pub begin_pending: bool,
    /// Whether the current transaction changed settings or used SET LOCAL (then the backend's
    /// settings are re-synchronised when it ends).
    tx_touched_settings: bool,
    /// Session settings as `name → SET statement`, re-applied when the backend switches to this client.
    pub settings: BTreeMap<String, String>,
    startup_settings: BTreeMap<String, String>,
    settings_at_begin: Option<BTreeMap<String, String>>,
    pub listens: BTreeSet<String>,
    listens_at_begin: Option<BTreeSet<String>>,
    pending_notifies: Vec<(String, String)>,
    pub statements: HashMap<String, Prepared>,
    pub portals: HashMap<String, Prepared>,
    /// SQL-level PREPAREd names (client spelling).
    pub sql_prepared: BTreeSet<String>,
    /// The client's last Parse of the unnamed statement, to re-send if another client replaced it.
    pub last_unnamed_parse: Option<(String, Vec<u32>)>,
    /// Cursors it declared in SQL (see [`super::names::Cursors`]).
    pub cursors: super::names::Cursors,
    /// The temporary relations this client made (oid → name), dropped when it leaves.
    temp_objects: BTreeMap<String, String>,
    /// The open transaction ran a statement that may write rows: its COMMIT runs the
    /// deferred checks.
    pub tx_may_write: bool,
    /// The open transaction is READ ONLY (see [`read_only`]).
    tx_read_only: bool,
}

impl ClientState {
    pub fn new(
        pid: i32,
        outbox: UnboundedSender<BytesMut>,
        startup: BTreeMap<String, String>,
    ) -> ClientState {
        ClientState {
            pid,
            outbox,
            status: TxStatus::Idle,
            begin_pending: false,
            tx_touched_settings: false,
            settings: startup.clone(),
            startup_settings: startup,
            settings_at_begin: None,
            listens: BTreeSet::new(),
            listens_at_begin: None,
            pending_notifies: Vec::new(),
            statements: HashMap::new(),
            portals: HashMap::new(),
            sql_prepared: BTreeSet::new(),
            last_unnamed_parse: None,
            cursors: Default::default(),
            temp_objects: BTreeMap::new(),
            tx_may_write: false,
            tx_read_only: false,
        }
    }
}

/// Counters per sandbox, for the run summary and `dbsandbox status`.
#[derive(Debug, Default)]
pub struct SandboxCounters {
    pub statements: AtomicU64,
    pub commits_absorbed: AtomicU64,
    pub errors_recovered: AtomicU64,
    pub resets: AtomicU64,
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    /// New connections waiting for closed ones to be cleaned up (see [`super::admission`]).
    pub connections_waiting: AtomicU64,
}

/// A snapshot of [`SandboxCounters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxStats {
    pub statements: u64,
    pub commits_absorbed: u64,
    pub errors_recovered: u64,
    pub resets: u64,
    pub connections_open: u64,
    pub connections_total: u64,
    pub connections_waiting: u64,
    /// Why the key is broken (its connections are refused until it is reset), if it is.
    pub broken: Option<String>,
}

impl SandboxCounters {
    pub fn snapshot(&self) -> SandboxStats {
        SandboxStats {
            statements: self.statements.load(Relaxed),
            commits_absorbed: self.commits_absorbed.load(Relaxed),
            errors_recovered: self.errors_recovered.load(Relaxed),
            resets: self.resets.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            connections_waiting: self.connections_waiting.load(Relaxed),
            broken: None,
        }
    }
}

/// What a transaction-control statement answers: its command tag, and a warning
/// (SQLSTATE, message) to send before it, as PostgreSQL does for BEGIN inside a transaction.
pub type TxReply = (&'static str, Option<(&'static str, &'static str)>);

/// An error the engine reports to a client as an ErrorResponse.
#[derive(Debug, Clone)]
pub struct ClientError {
    pub sqlstate: &'static str,
    pub message: String,
}

impl ClientError {
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> ClientError {
        ClientError {
            sqlstate,
            message: message.into(),
        }
    }
}

/// The backend went away or spoke nonsense: the sandbox cannot continue.
#[derive(Debug)]
pub struct BackendFailure(pub String);

impl From<std::io::Error> for BackendFailure {
    fn from(e: std::io::Error) -> Self {
        BackendFailure(format!("connection to the sandbox's server failed: {e}"))
    }
}

/// The backend connection and all state that changes only while holding it (the cycle lock).
pub struct Backend {
    reader: Box<dyn AsyncRead + Unpin + Send>,
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    rbuf: BytesMut,
    pub clients: HashMap<ClientId, ClientState>,
    stack: Vec<Savepoint>,
    pending_ops: Vec<String>,
    /// Prepared statements (backend names) to close before the next batch. Close, unlike
    /// DEALLOCATE, is no error for a statement that does not exist (its Parse failed), so this
    /// clean-up cannot fail.
    pending_closes: Vec<String>,
    /// Portals to close before the next batch, by backend name (see [`Backend::queue_portal_close`]).
    pending_portal_closes: Vec<String>,
    /// Session settings currently on the backend; `None` when unknown (after a rollback).
    applied: Option<BTreeMap<String, String>>,
    /// Whose Parse the backend's unnamed statement holds.
    pub unnamed_owner: Option<ClientId>,
    /// `SELECT setval(...)` restoring every sequence to its template value, if there are any.
    restore_sequences: Option<String>,
    pub needs_reset: bool,
    /// The guard savepoint of the last batch is still open: it is released at the start of the
    /// next batch (or before any internal SQL), so a batch needs no extra Sync of its own.
    pub guard_left_open: bool,
    /// Set when the backend failed; shared with the [`Sandbox`] and watched by its sessions.
    pub broken: Arc<BrokenFlag>,
    /// The key, for logs.
    pub key: String,
    /// The last FATAL error the server sent (code, message): why it is about to close.
    last_fatal: Option<(String, String)>,
    next_savepoint: u64,
    /// Per table oid, the backend's uncommitted write counters at the last reset: the backend
    /// never leaves its transaction, so PostgreSQL never flushes them, and the sandbox's own
    /// writes are the growth since then.
    write_baseline: HashMap<String, i64>,
    /// The template's user tables (an oid array literal), whose counters a reset records.
    user_tables: String,
    /// The SQL that fires the deferred checks (`Some(None)`: no constraint is deferrable);
    /// `None` when unknown (after DDL or a rollback). See `session::deferred`.
    pub deferred_checks: Option<Option<String>>,
    /// A client statement that may change the schema ran since the last reset: a rollback may
    /// then have undone constraints `deferred_checks` names.
    ddl_since_reset: bool,
    /// Named reset points, oldest (lowest on the backend) first.
    points: Vec<points::ResetPoint>,
    /// Some SQL of the key named one of `session::VIRTUAL_SETTINGS`: from then on every batch
    /// sets them back before it ends, since a statement, function or SQL PREPARE defined then
    /// may set one later without naming it.
    pub virtual_setting_seen: bool,
}

/// A message read from the backend: its tag and the whole raw message.
pub struct BackendMsg {
    pub tag: u8,
    pub raw: Bytes,
}

impl BackendMsg {
    pub fn body(&self) -> &[u8] {
        &self.raw[5..]
    }
}

impl Backend {
    pub fn new(
        reader: Box<dyn AsyncRead + Unpin + Send>,
        writer: Box<dyn AsyncWrite + Unpin + Send>,
        leftover: BytesMut,
    ) -> Backend {
        Backend {
            reader,
            writer,
            rbuf: leftover,
            clients: HashMap::new(),
            stack: Vec::new(),
            pending_ops: Vec::new(),
            pending_closes: Vec::new(),
            pending_portal_closes: Vec::new(),
            applied: Some(BTreeMap::new()),
            unnamed_owner: None,
            restore_sequences: None,
            needs_reset: false,
            guard_left_open: false,
            broken: Arc::new(BrokenFlag::default()),
            key: String::new(),
            last_fatal: None,
            next_savepoint: 0,
            write_baseline: HashMap::new(),
            user_tables: "{}".into(),
            points: Vec::new(),
            virtual_setting_seen: false,
            deferred_checks: None,
            ddl_since_reset: false,
        }
    }

    fn savepoint_name(&mut self, owner: ClientId) -> String {
        self.next_savepoint += 1;
        format!("dbsb_c{owner}_{}", self.next_savepoint)
    }

    /// Creates the savepoint of a BEGIN that has not reached the backend yet.
    pub fn materialize_begin(&mut self, id: ClientId) {
        let pending = self.clients.get(&id).is_some_and(|c| c.begin_pending);
        if pending {
            let physical = self.savepoint_name(id);
            self.pending_ops.push(format!("SAVEPOINT {physical}"));
            self.stack.push(Savepoint {
                physical,
                owner: id,
                client_name: None,
                released: false,
                notifies_before: 0,
            });
            if let Some(client) = self.clients.get_mut(&id) {
                client.begin_pending = false;
            }
        }
    }

    /// Queued savepoint work, to send before the guard of the client's next batch (a guard
    /// release would destroy savepoints created after the guard).
    pub fn take_savepoint_work(&mut self, id: ClientId) -> Option<String> {
        self.materialize_begin(id);
        let ops = std::mem::take(&mut self.pending_ops);
        (!ops.is_empty()).then(|| ops.join("; "))
    }

    /// The SET/RESET statements that give the backend this client's session settings, to send
    /// inside the guard (undone with the batch if it fails).
    pub fn take_settings_sync(&mut self, id: ClientId) -> Option<String> {
        let client = self.clients.get(&id)?;
        let target = &client.settings;
        let mut parts = Vec::new();
        match &self.applied {
            Some(applied) => {
                for name in applied.keys().filter(|n| !target.contains_key(*n)) {
                    parts.push(format!("RESET {}", quote_ident(name)));
                }
                for (name, set) in target {
                    if applied.get(name) != Some(set) {
                        parts.push(set.clone());
                    }
                }
            }
            None => {
                parts.push("RESET ALL".to_string());
                parts.extend(target.values().cloned());
            }
        }
        // The client's own timeouts are set back before each of its batches ends, so they are
        // set again for each (see session::VIRTUAL_SETTINGS).
        let mut applied = target.clone();
        applied.retain(|name, _| !super::session::is_virtual_setting(name));
        self.applied = Some(applied);
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// Queues SQL to run before the next batch.
    pub fn queue(&mut self, ops: Vec<String>) {
        self.pending_ops.extend(ops);
    }

    /// Queues the Close of a client's prepared statement (by its client name).
    pub fn queue_close(&mut self, id: ClientId, name: &str) {
        if !name.is_empty() {
            self.pending_closes.push(statement_name(id, name));
        }
    }

    /// Queues the Close of a portal whose transaction ended, by its backend name (a protocol
    /// Close of a portal that is gone is no error).
    pub fn queue_portal_close(&mut self, name: String) {
        // A name that is not UTF-8 goes out only under its client's encoding, which the backend
        // may not have when the Close is sent (before the next batch's settings): the server
        // would reject the Close (22021) ahead of the batch's guard and the key would break.
        // Such a cursor (most likely one whose DECLARE the server refused) is left to the
        // sandbox's transaction.
        if !super::names::has_raw_bytes(&name) {
            self.pending_portal_closes.push(name);
        }
    }

    /// Appends the queued Closes to a batch; returns how many (each answers CloseComplete).
    pub fn take_closes(&mut self, out: &mut BytesMut) -> usize {
        let closes = std::mem::take(&mut self.pending_closes);
        for name in &closes {
            front::close(out, false, name);
        }
        let portals = std::mem::take(&mut self.pending_portal_closes);
        for name in &portals {
            front::close(out, true, name);
        }
        closes.len() + portals.len()
    }

    /// Forgets what the backend's settings are (after a rollback undid some of them).
    pub fn invalidate_settings(&mut self) {
        self.applied = None;
        // What was rolled back may have created or dropped deferrable constraints too.
        if self.ddl_since_reset {
            self.deferred_checks = None;
        }
    }

    /// A client statement that may create or drop constraints reaches the backend.
    pub fn schema_may_change(&mut self) {
        self.deferred_checks = None;
        self.ddl_since_reset = true;
    }

    /// The backend now holds `set` for `name` (a SET the client ran succeeded).
    pub fn record_setting(&mut self, id: ClientId, name: &str, set: Option<String>) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        match &set {
            Some(set) => client.settings.insert(name.to_string(), set.clone()),
            None => client.settings.remove(name),
        };
        if client.status != TxStatus::Idle {
            client.tx_touched_settings = true;
        }
        if super::session::is_virtual_setting(name) {
            return;
        }
        if let Some(applied) = &mut self.applied {
            match set {
                Some(set) => applied.insert(name.to_string(), set),
                None => applied.remove(name),
            };
        }
    }

    /// After RESET ALL by the client: its settings are its startup ones again.
    pub fn record_reset_all(&mut self, id: ClientId) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.settings = client.startup_settings.clone();
        }
        self.applied = None;
    }

    pub fn note_set_local(&mut self, id: ClientId) {
        if let Some(client) = self.clients.get_mut(&id) {
            if client.status == TxStatus::Idle {
                // Outside a transaction PostgreSQL ignores SET LOCAL; ours ran inside the
                // sandbox transaction, so undo its effect before anyone else's next batch.
                self.applied = None;
            } else {
                client.tx_touched_settings = true;
            }
        }
    }

    /// A client-visible error happened in this client's batch.
    pub fn client_failed(&mut self, id: ClientId) {
        if let Some(client) = self.clients.get_mut(&id) {
            if client.status == TxStatus::InTx {
                client.status = TxStatus::Failed;
            }
        }
    }

    /// NOTIFY: delivered now outside a transaction, at COMMIT inside one (duplicates folded, as
    /// PostgreSQL does).
    pub fn notify(&mut self, id: ClientId, channel: &str, payload: &str) {
        let in_tx = match self.clients.get_mut(&id) {
            Some(client) if client.status != TxStatus::Idle => {
                let entry = (channel.to_string(), payload.to_string());
                if !client.pending_notifies.contains(&entry) {
                    client.pending_notifies.push(entry);
                }
                true
            }
            _ => false,
        };
        if !in_tx {
            self.deliver(id, channel, payload);
        }
    }

    fn deliver(&self, from: ClientId, channel: &str, payload: &str) {
        let pid = self.clients.get(&from).map(|c| c.pid).unwrap_or(0);
        for client in self
            .clients
            .values()
            .filter(|c| c.listens.contains(channel))
        {
            let mut message = BytesMut::new();
            back::notification(&mut message, pid, channel, payload);
            let _ = client.outbox.send(message);
        }
    }

    /// Queues the clean-up of a client that left: its open transaction rolled back, its
    /// prepared statements deallocated.
    pub fn forget_client(&mut self, id: ClientId) {
        if self
            .clients
            .get(&id)
            .is_some_and(|c| c.status != TxStatus::Idle)
        {
            self.rollback(id);
        }
        // Savepoints it released under someone else's stay until they collapse; nothing to do.
        if let Some(mut client) = self.clients.remove(&id) {
            for name in super::names::portals_ending(id, &mut client, true) {
                self.queue_portal_close(name);
            }
            for (name, _) in client
                .statements
                .iter()
                .filter(|(_, p)| matches!(p, Prepared::Real { .. }))
            {
                self.queue_close(id, name);
            }
            for name in &client.sql_prepared {
                self.queue_close(id, name);
            }
            if !client.temp_objects.is_empty() {
                let oids: Vec<String> = client.temp_objects.into_keys().collect();
                self.pending_ops
                    .push(super::session::drop_temp_objects_sql(&oids));
            }
        }
        if self.unnamed_owner == Some(id) {
            self.unnamed_owner = None;
        }
    }

    /// The temporary relations (oid, name): all those now in the backend's temporary schema.
    /// Those no client holds yet are `id`'s; those no longer there (dropped, rolled back) are
    /// nobody's.
    pub fn claim_temp_objects(&mut self, id: ClientId, relations: Vec<(String, String)>) {
        let present: BTreeSet<&str> = relations.iter().map(|(oid, _)| oid.as_str()).collect();
        for client in self.clients.values_mut() {
            client
                .temp_objects
                .retain(|oid, _| present.contains(oid.as_str()));
        }
        let held: BTreeSet<String> = self
            .clients
            .values()
            .flat_map(|c| c.temp_objects.keys().cloned())
            .collect();
        if let Some(client) = self.clients.get_mut(&id) {
            client
                .temp_objects
                .extend(relations.into_iter().filter(|(oid, _)| !held.contains(oid)));
        }
    }

    /// Whether a connection of the key other than `id` holds a temporary relation named `name`.
    pub fn others_temp_relation(&self, id: ClientId, name: &str) -> bool {
        self.clients
            .iter()
            .any(|(other, c)| *other != id && c.temp_objects.values().any(|n| n == name))
    }

    /// Runs queued savepoint work now (used when no client batch follows soon).
    pub async fn flush_pending(&mut self) -> Result<(), BackendFailure> {
        if !self.pending_ops.is_empty() {
            let sql = std::mem::take(&mut self.pending_ops).join("; ");
            self.run_required(&sql).await?;
        }
        let mut out = BytesMut::new();
        if self.take_closes(&mut out) > 0 {
            front::sync(&mut out);
            self.write(&out).await?;
            if let (_, Some(e)) = self.read_internal("Close of prepared statements").await? {
                let failure = format!("closing a client's prepared statements failed: {e}");
                self.break_with(&failure);
                return Err(BackendFailure(failure));
            }
        }
        Ok(())
    }

    /// Appends the guard savepoint (prepared once, run through the unnamed portal: the client's
    /// unnamed portal does not outlive a batch anyway).
    pub fn guard_open(&self, out: &mut BytesMut) {
        front::bind_plain(out, "", GUARD_SET);
        front::execute(out, "", 0);
    }

    pub fn guard_close(&self, out: &mut BytesMut) {
        front::bind_plain(out, "", GUARD_RELEASE);
        front::execute(out, "", 0);
    }

    /// Undoes a failed batch: back to the guard, which is then released.
    pub async fn recover(&mut self, counters: &SandboxCounters) -> Result<(), BackendFailure> {
        counters.errors_recovered.fetch_add(1, Relaxed);
        // The failed batch released any earlier guard before opening its own.
        self.guard_left_open = false;
        self.run_required(&format!(
            "ROLLBACK TO SAVEPOINT {GUARD}; RELEASE SAVEPOINT {GUARD}"
        ))
        .await
    }
}

fn aborted() -> ClientError {
    ClientError::new(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

fn no_savepoint(name: &str) -> ClientError {
    ClientError::new("3B001", format!("savepoint \"{name}\" does not exist"))
}

/// The backend's name for a client's prepared statement or portal (empty stays empty).
pub fn statement_name(id: ClientId, name: &str) -> String {
    super::names::backend_name(id, name)
}

fn data_row_texts(mut body: &[u8]) -> Vec<Option<String>> {
    if body.len() < 2 {
        return Vec::new();
    }
    let count = body.get_i16();
    let mut values = Vec::new();
    for _ in 0..count.max(0) {
        if body.len() < 4 {
            break;
        }
        let len = body.get_i32();
        if len < 0 {
            values.push(None);
            continue;
        }
        let len = (len as usize).min(body.len());
        values.push(Some(String::from_utf8_lossy(&body[..len]).into_owned()));
        body.advance(len);
    }
    values
}

/// The sandbox of one key: its backend (behind the cycle lock), counters, and what clients need
/// to greet and cancel.
pub struct Sandbox {
    pub key: String,
    pub backend: tokio::sync::Mutex<Backend>,
    /// Shared with the sandbox that replaces this one after a reset of a broken key, so a
    /// run's counters go on.
    pub counters: Arc<SandboxCounters>,
    /// Set when the backend is lost; the key then says so until it is reset or released.
    pub broken: Arc<BrokenFlag>,
    /// ParameterStatus values the backend reported at startup.
    pub parameters: Vec<(String, String)>,
    pub addr: BackendAddr,
    /// The backend's own cancel key.
    pub backend_key: Option<(i32, i32)>,
    /// Whose cycle runs, and the cancel it asked for (see [`super::cancels`]).
    pub cancels: Arc<super::cancels::CancelWindow>,
    next_client: AtomicU32,
    /// Bumped by every attach, so a reset scheduled by a detach can tell it is stale.
    pub generation: AtomicU64,
    /// The sessions' client sockets, watched by new connections (see [`super::admission`]).
    pub admission: super::admission::Admission,
    /// Who waits for the key's turn (see [`super::turn`]).
    pub turn: super::turn::Turn,
    /// What the server said about the startup settings its clients sent (see
    /// [`super::session::check_startup_settings`]).
    pub startup_checks: super::session::StartupChecks,
}

impl Sandbox {
    pub fn new(
        key: String,
        mut backend: Backend,
        parameters: Vec<(String, String)>,
        addr: BackendAddr,
        backend_key: Option<(i32, i32)>,
        counters: Arc<SandboxCounters>,
    ) -> Sandbox {
        backend.key = key.clone();
        let broken = Arc::clone(&backend.broken);
        Sandbox {
            key,
            backend: tokio::sync::Mutex::new(backend),
            counters,
            broken,
            parameters,
            addr,
            backend_key,
            cancels: Arc::default(),
            next_client: AtomicU32::new(1),
            generation: AtomicU64::new(0),
            admission: Default::default(),
            turn: Default::default(),
            startup_checks: Default::default(),
        }
    }

    pub fn next_client_id(&self) -> ClientId {
        self.next_client.fetch_add(1, Relaxed)
    }
}

#[cfg(test)]
mod tests;
