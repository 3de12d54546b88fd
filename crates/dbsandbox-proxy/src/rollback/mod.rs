//! Rollback sandboxes: every client connection of a key joins one backend transaction that is
//! never committed, and sees a private session (its own transaction status, statement names,
//! settings and LISTENs) on top of it. [`sandbox`] holds the shared state and the savepoint
//! bookkeeping, [`session`] drives one client connection, [`messages`] reads and writes the
//! messages involved, [`broken`] what a key whose backend was lost tells its connections. This
//! module keeps the sandboxes of a proxy, one per key.

pub mod admission;
pub mod broken;
pub mod cancels;
mod client_io;
mod copy_freeze;
pub mod messages;
pub mod names;
pub mod sandbox;
pub mod session;
pub mod turn;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;

use crate::backend::{self, BackendAddr, BackendError, BackendStream};
use crate::server::BackendTarget;
use sandbox::SandboxCounters;
pub use sandbox::{Sandbox, SandboxStats};

/// How a key's connections are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Connections go straight to the key's database: real commits (pass-through).
    #[default]
    Database,
    /// Connections share one rolled-back transaction in the key's database.
    Rollback,
}

impl Isolation {
    /// The isolation a client asked for with `options=-c dbsandbox.isolation=…`, if any.
    pub fn requested(params: &[(String, String)]) -> Result<Option<Isolation>, String> {
        let Some((_, options)) = params.iter().find(|(n, _)| n == "options") else {
            return Ok(None);
        };
        for (name, value) in session::parse_options(options) {
            if name.eq_ignore_ascii_case("dbsandbox.isolation") {
                return match value.to_ascii_lowercase().as_str() {
                    "rollback" => Ok(Some(Isolation::Rollback)),
                    "database" => Ok(Some(Isolation::Database)),
                    other => Err(format!(
                        "invalid value for dbsandbox.isolation: \"{other}\" (use rollback or database)"
                    )),
                };
            }
        }
        Ok(None)
    }
}

/// The sandboxes of one proxy, by key.
#[derive(Default)]
pub struct Sandboxes {
    by_key: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<Sandbox>>>>>,
    /// Where each sandbox runs (a released key gets a new database and sandbox; a reset broken
    /// one a new sandbox in the same database).
    targets: Mutex<HashMap<String, BackendTarget>>,
    /// Held while a broken key is reset on a new connection's arrival (see `get_or_create`).
    reviving: tokio::sync::Mutex<()>,
}

/// Why a connection could not join its key's sandbox: SQLSTATE and message.
pub type JoinError = (&'static str, String);

impl Sandboxes {
    fn slots(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::OnceCell<Arc<Sandbox>>>>> {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, HashMap<String, BackendTarget>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key's sandbox in `target`'s database, created on first use, once every earlier
    /// connection of the key whose client has closed is cleaned up (the last one's reset done:
    /// see [`admission`]). A broken sandbox is not replaced: the connection is refused with the
    /// reason, until the key is reset or released. With `reset_on_close`, a broken key none of
    /// whose connections is still open is reset now, as its last close would have reset a
    /// healthy key: every connection that shared the lost state was told, and the next test of a
    /// suite starts on a fresh sandbox instead of being refused for good. The backend is probed
    /// once per new connection.
    pub async fn get_or_create(
        &self,
        key: &str,
        target: &BackendTarget,
        reset_on_close: bool,
    ) -> Result<Arc<Sandbox>, JoinError> {
        let mut sandbox = self.join(key, target).await?;
        loop {
            sandbox
                .admission
                .wait_for_closed_sessions(key, &sandbox.counters.connections_waiting)
                .await;
            match self.existing(key) {
                Some(current) if Arc::ptr_eq(&current, &sandbox) => break,
                // Reset (a broken key) or released meanwhile.
                _ => sandbox = self.join(key, target).await?,
            }
        }
        let idle_and_broken =
            |s: &Sandbox| s.broken.is_set() && s.counters.connections_open.load(Relaxed) == 0;
        if reset_on_close && idle_and_broken(&sandbox) {
            // One reviver at a time; a connection that waited finds the key reset already.
            let _reviving = self.reviving.lock().await;
            if let Some(current) = self.existing(key) {
                if idle_and_broken(&current) {
                    tracing::info!(
                        key,
                        "a broken key whose connections all closed: reset on close"
                    );
                    self.reset(key).await.map_err(|e| ("08006", e))?;
                }
            }
            // The reset put a fresh sandbox, just opened, in the key's slot.
            sandbox = match self.existing(key) {
                Some(current) => current,
                None => self.join(key, target).await?,
            };
        }
        match sandbox.broken.get() {
            Some(breakage) => Err((breakage.sqlstate, broken::message(key, &breakage.reason))),
            None => Ok(sandbox),
        }
    }

    /// The key's sandbox as it is, broken or not (created on first use).
    async fn join(&self, key: &str, target: &BackendTarget) -> Result<Arc<Sandbox>, JoinError> {
        let slot = {
            let mut slots = self.slots();
            let mut targets = self.targets();
            let stale = targets
                .get(key)
                .is_some_and(|t| t.database != target.database);
            if stale {
                slots.remove(key);
            }
            targets.insert(key.to_string(), target.clone());
            Arc::clone(slots.entry(key.to_string()).or_default())
        };
        let created = slot
            .get_or_try_init(|| create(key, target, Arc::default()))
            .await;
        let sandbox = match created {
            Ok(sandbox) => Arc::clone(sandbox),
            Err(e) => {
                self.slots().remove(key);
                return Err(("08006", e));
            }
        };
        // A backend that died while the key was idle is noticed now, not by this connection's
        // first statement (which would fail with a broken pipe).
        if let Ok(mut backend) = sandbox.backend.try_lock() {
            if let Err(failure) = backend.probe().await {
                backend.break_with(&failure.0);
            }
        }
        Ok(sandbox)
    }

    fn existing(&self, key: &str) -> Option<Arc<Sandbox>> {
        self.slots().get(key).and_then(|s| s.get().cloned())
    }

    /// Rolls the key's sandbox back to its template state. False when the key has none. A broken
    /// sandbox is replaced by a fresh one in the same database, which keeps its counters.
    pub async fn reset(&self, key: &str) -> Result<bool, String> {
        let Some(sandbox) = self.existing(key) else {
            return Ok(false);
        };
        if sandbox.broken.is_set() {
            let Some(target) = self.targets().get(key).cloned() else {
                return Ok(false);
            };
            let fresh = create(key, &target, Arc::clone(&sandbox.counters)).await?;
            fresh
                .counters
                .resets
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(
                key,
                "broken rollback sandbox reset: a fresh one replaces it"
            );
            self.slots().insert(
                key.to_string(),
                Arc::new(tokio::sync::OnceCell::from(fresh)),
            );
            return Ok(true);
        }
        let mut backend = turn(&sandbox).await?;
        backend.reset().await.map_err(|e| e.0)?;
        sandbox
            .counters
            .resets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    /// Rolls the key's sandbox back to its reset point `point` (see [`Sandboxes::snapshot`]).
    /// `Ok(None)` when the key has no sandbox; `Ok(Some(Err(..)))` when it has no such point.
    pub async fn reset_to(
        &self,
        key: &str,
        point: &str,
    ) -> Result<Option<Result<(), String>>, String> {
        let Some(sandbox) = self.existing(key) else {
            return Ok(None);
        };
        let mut backend = healthy_turn(&sandbox).await?;
        let done = backend.reset_to_point(point).await.map_err(|e| e.0)?;
        if done.is_ok() {
            sandbox
                .counters
                .resets
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Some(done.map_err(|e| e.message)))
    }

    /// Takes (or moves) the key's reset point `point`: the sandbox's state now, which
    /// [`Sandboxes::reset_to`] comes back to. `Ok(None)` when the key has no sandbox;
    /// `Ok(Some(Err(..)))` when a connection of the key is inside a transaction block.
    pub async fn snapshot(
        &self,
        key: &str,
        point: &str,
    ) -> Result<Option<Result<(), String>>, String> {
        let Some(sandbox) = self.existing(key) else {
            return Ok(None);
        };
        let mut backend = healthy_turn(&sandbox).await?;
        let taken = backend.take_point(point).await.map_err(|e| e.0)?;
        Ok(Some(taken.map_err(|e| e.message)))
    }

    /// Runs internal, read-only SQL inside the key's sandbox transaction (so it sees what the
    /// sandbox's clients wrote) and returns its rows as text. `None` when the key has no sandbox.
    pub async fn query(
        &self,
        key: &str,
        sql: &str,
    ) -> Result<Option<Vec<Vec<Option<String>>>>, String> {
        let Some(sandbox) = self.existing(key) else {
            return Ok(None);
        };
        let mut backend = healthy_turn(&sandbox).await?;
        // Inside a savepoint, so that a failing query cannot abort the sandbox's transaction.
        let wrapped = format!("SAVEPOINT dbsb_query; {sql}; RELEASE SAVEPOINT dbsb_query");
        match backend.run_internal(&wrapped).await {
            Ok(Ok(rows)) => Ok(Some(rows)),
            Ok(Err(e)) => {
                let undo = "ROLLBACK TO SAVEPOINT dbsb_query; RELEASE SAVEPOINT dbsb_query";
                let _ = backend.run_internal(undo).await;
                Err(e)
            }
            Err(failure) => Err(failure.0),
        }
    }

    /// The tables the key's sandbox wrote since its last reset, as `schema.table` (quoted where
    /// needed). `None` when the key has no sandbox.
    pub async fn written_tables(&self, key: &str) -> Result<Option<Vec<String>>, String> {
        let Some(now) = self.query(key, sandbox::WRITE_COUNTERS_SQL).await? else {
            return Ok(None);
        };
        let Some(sandbox) = self.existing(key) else {
            return Ok(None);
        };
        let backend = turn(&sandbox).await?;
        Ok(Some(backend.written_since_reset(now)))
    }

    /// Forgets the key's sandbox (its database is about to be dropped).
    pub fn remove(&self, key: &str) {
        self.slots().remove(key);
        self.targets().remove(key);
    }

    /// One key's counters (`None` when the key has no sandbox).
    pub fn stats_of(&self, key: &str) -> Option<SandboxStats> {
        self.existing(key).map(|s| stats_of(&s))
    }

    pub fn stats(&self) -> BTreeMap<String, SandboxStats> {
        let slots: Vec<(String, Arc<Sandbox>)> = self
            .slots()
            .iter()
            .filter_map(|(k, s)| s.get().map(|s| (k.clone(), Arc::clone(s))))
            .collect();
        slots.into_iter().map(|(k, s)| (k, stats_of(&s))).collect()
    }
}

fn stats_of(sandbox: &Sandbox) -> SandboxStats {
    SandboxStats {
        broken: sandbox.broken.get().map(|b| b.reason),
        ..sandbox.counters.snapshot()
    }
}

/// Opens the sandbox's backend connection and transaction.
/// Longest wait of a control request (reset, stats) for the key's turn: a connection holds it for
/// its statement, its unfinished extended-protocol sequence or its COPY, which a stuck client may
/// never finish; the request then fails with a clear error instead of hanging.
const TURN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The key's turn, refused with the reason when the key is broken.
async fn healthy_turn(
    sandbox: &Sandbox,
) -> Result<tokio::sync::MutexGuard<'_, sandbox::Backend>, String> {
    let backend = turn(sandbox).await?;
    match backend.broken.get() {
        Some(breakage) => Err(broken::message(&sandbox.key, &breakage.reason)),
        None => Ok(backend),
    }
}

async fn turn(sandbox: &Sandbox) -> Result<tokio::sync::MutexGuard<'_, sandbox::Backend>, String> {
    tokio::time::timeout(TURN_TIMEOUT, sandbox.take_turn())
        .await
        .map_err(|_| {
            format!(
                "the sandbox of key {} is busy: one of its connections has held it for more than \
                 {} s (a long statement, or an extended-protocol sequence or COPY it has not \
                 finished); try again when it is done",
                sandbox.key,
                TURN_TIMEOUT.as_secs()
            )
        })
}

/// Longest wait for a sandbox's backend to connect, authenticate and open its transaction: every
/// connection of the key waits for it, so a server that accepts and never answers must not hold
/// them for ever.
const OPEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn create(
    key: &str,
    target: &BackendTarget,
    counters: Arc<SandboxCounters>,
) -> Result<Arc<Sandbox>, String> {
    tokio::time::timeout(OPEN_TIMEOUT, open(key, target, counters))
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "dbsandbox could not open the sandbox for key {key}: the server at {} did not \
                 answer within {} s",
                BackendAddr::of(target),
                OPEN_TIMEOUT.as_secs()
            ))
        })
}

async fn open(
    key: &str,
    target: &BackendTarget,
    counters: Arc<SandboxCounters>,
) -> Result<Arc<Sandbox>, String> {
    let addr = BackendAddr::of(target);
    let stream = backend::connect(&addr).await.map_err(|e| {
        format!("dbsandbox could not connect to the sandbox's server at {addr}: {e}")
    })?;
    let params = vec![
        (
            "application_name".to_string(),
            format!("dbsandbox sandbox {key}"),
        ),
        ("client_encoding".to_string(), "UTF8".to_string()),
        // The sandbox's backend is idle in its transaction between any two statements: a server
        // (or database, or role) setting would end it. A startup value survives RESET ALL.
        // Clients' own values are kept per client and not applied (see session.rs).
        (
            "idle_in_transaction_session_timeout".to_string(),
            "0".to_string(),
        ),
        // Tells the pg_notify() of dbsandbox's templates to hand its notifications to the proxy
        // (see session/pg_notify.rs); a startup value survives RESET ALL.
        (
            session::ROLLBACK_SANDBOX_SETTING.to_string(),
            "on".to_string(),
        ),
    ];
    let (established, reader, writer): (
        _,
        Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
    ) = match stream {
        BackendStream::Tcp(mut stream) => {
            let established = backend::establish(&mut stream, target, &params)
                .await
                .map_err(describe)?;
            let (r, w) = stream.into_split();
            (established, Box::new(r), Box::new(w))
        }
        BackendStream::Unix(mut stream) => {
            let established = backend::establish(&mut stream, target, &params)
                .await
                .map_err(describe)?;
            let (r, w) = stream.into_split();
            (established, Box::new(r), Box::new(w))
        }
    };
    let parameters = parameter_statuses(&established.greeting);
    let mut backend = sandbox::Backend::new(reader, writer, established.leftover);
    backend.initialise().await.map_err(|e| {
        format!(
            "dbsandbox could not open the sandbox for key {key}: {}",
            e.0
        )
    })?;
    Ok(Arc::new(Sandbox::new(
        key.to_string(),
        backend,
        parameters,
        addr,
        established.key_data,
        counters,
    )))
}

fn describe(e: BackendError) -> String {
    match e {
        BackendError::Io(e) => format!("dbsandbox could not talk to the sandbox's server: {e}"),
        BackendError::Rejected(raw) => {
            let (code, message) = messages::error_fields(raw.get(5..).unwrap_or(&[]));
            format!("{message} ({code})")
        }
        BackendError::Failed(message) => message,
    }
}

/// The (name, value) pairs of the ParameterStatus messages in a startup greeting.
fn parameter_statuses(greeting: &BytesMut) -> Vec<(String, String)> {
    let mut buf = greeting.clone();
    let mut parameters = Vec::new();
    while let Ok(Some(message)) = Message::parse(&mut buf) {
        if let Message::ParameterStatus(status) = message {
            if let (Ok(name), Ok(value)) = (status.name(), status.value()) {
                parameters.push((name.to_string(), value.to_string()));
            }
        }
    }
    parameters
}
