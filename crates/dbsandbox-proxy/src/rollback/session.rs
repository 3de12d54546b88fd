//! One client connection of a rollback sandbox: reads the client's messages in units (up to a
//! Sync, a Query, a Flush or a FunctionCall), takes the sandbox's cycle lock, and turns each unit
//! into a batch for the shared backend plus a *plan* of the replies to expect: which to forward
//! (with the client's own names and transaction status), which are ours to swallow (guard
//! savepoints, queued savepoint work, session settings), and which the engine writes itself
//! (replies to BEGIN, COMMIT, LISTEN, the reset statement, …).
//!
//! Units are processed one at a time: an error must be undone (back to the guard savepoint)
//! before the next unit reaches the backend, or it would run in an aborted transaction. Within a
//! unit everything is pipelined; it is split only where a virtual statement needs the state the
//! preceding messages produced (an error before a COMMIT means the COMMIT never happened).
//!
//! The rule that keeps a key from freezing: a cycle always leaves the server at a protocol
//! boundary, whatever happened in it. Every reply the plan expects is one the server will send:
//! after an extended-protocol error (the client's or one of ours) the server skips everything
//! until a Sync, so one is sent before anything else; one of our statements that fails answers
//! the client in place of its statements and the batch is undone; a client that leaves or breaks
//! the protocol mid-cycle has its query cancelled or its COPY failed and the cycle runs on to the
//! boundary; and a server that is gone breaks the key for everyone with the reason
//! ([`super::broken`]) instead of being waited on.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::messages::{back, front, quote_literal, FrontMsg, Malformed};
use super::names;
use super::sandbox::{
    statement_name, Backend, BackendFailure, ClientError, ClientId, ClientState, Prepared, Sandbox,
    TxStatus,
};
use crate::classify::{self, quote_ident, DiscardWhat, Kind};

mod deferred;
mod extended;
mod idle_timeout;
mod pg_notify;
mod replies;
mod set_config;
mod startup;
mod startup_check;
mod statements;
mod temp_objects;
mod terminate;
mod virtual_settings;

pub use pg_notify::ROLLBACK_SANDBOX_SETTING;
pub use startup::{greeting, parse_options, startup_settings, startup_values};
pub use startup_check::{check_startup_settings, Checked, StartupChecks};

pub use temp_objects::drop_temp_objects_sql;
use virtual_settings::mentions_virtual_setting;
pub use virtual_settings::{is_virtual_setting, VIRTUAL_SETTINGS, ZERO_VIRTUAL_SETTINGS_SQL};

/// How a session ended.
pub enum SessionEnd {
    /// The client said goodbye or went away (or was told why already).
    Closed,
    /// The client broke the protocol; the message is for its FATAL error.
    Protocol(String),
    /// The sandbox's backend failed, for the reason given: the key is now broken.
    Backend(String),
    /// The proxy ends the session with this FATAL error.
    Fatal {
        sqlstate: &'static str,
        message: String,
    },
}

impl From<BackendFailure> for SessionEnd {
    fn from(e: BackendFailure) -> Self {
        SessionEnd::Backend(e.0)
    }
}

impl From<std::io::Error> for SessionEnd {
    fn from(_: std::io::Error) -> Self {
        SessionEnd::Closed
    }
}

impl From<Malformed> for SessionEnd {
    fn from(e: Malformed) -> Self {
        SessionEnd::Protocol(e.to_string())
    }
}

/// What to expect from the backend for one message we sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// ParseComplete, BindComplete or CloseComplete.
    One,
    /// ParseComplete of the client's unnamed statement: if the Parse fails, the server has no
    /// unnamed statement (it drops the old one first).
    ParseUnnamed,
    DescribeStatement,
    DescribePortal,
    Execute,
    /// A simple Query or FunctionCall: everything up to ReadyForQuery.
    UntilReady,
    /// A simple Query whose ReadyForQuery is not the client's (one statement of several).
    UntilReadyNoReady,
    /// ReadyForQuery after a Sync.
    Ready,
}

#[derive(Debug)]
enum Step {
    Forward(Expect),
    Swallow(Expect),
    /// One of our statements that checks something on the client's behalf: its replies are
    /// swallowed, its error is the client's (as PostgreSQL's own check would report it).
    Check(Expect),
    Synthetic(BytesMut),
}

/// Whether a statement is answered by the engine rather than forwarded.
fn is_virtual(kind: &Kind) -> bool {
    !matches!(
        kind,
        Kind::Ordinary
            | Kind::SetSession { .. }
            | Kind::ResetAll
            | Kind::SetLocal
            | Kind::SetTransactionReadOnly(_)
            | Kind::Prepare(_)
            | Kind::Execute(_)
            | Kind::Deallocate(Some(_))
            | Kind::Discard(DiscardWhat::Plans | DiscardWhat::Sequences | DiscardWhat::Temp)
    )
}

/// The column an in-band control statement answers in (named after its function, as
/// PostgreSQL names a function call's column); `None` for every other statement.
fn control_column(kind: &Kind) -> Option<&'static str> {
    match kind {
        Kind::SandboxReset | Kind::SandboxResetTo(_) => Some("dbsandbox_reset"),
        Kind::SandboxSnapshot(_) => Some("dbsandbox_snapshot"),
        _ => None,
    }
}

/// Whether a statement may run while the client's transaction is failed.
fn allowed_when_failed(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Commit { .. }
            | Kind::Rollback { .. }
            | Kind::RollbackTo(_)
            | Kind::SandboxReset
            | Kind::SandboxResetTo(_)
    )
}

fn is_copy(sql: &str) -> bool {
    let trimmed = sql.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    trimmed
        .get(..4)
        .is_some_and(|w| w.eq_ignore_ascii_case("copy"))
}

/// The client's socket halves, plain or TLS.
pub type ClientReader<'a> = Box<dyn AsyncRead + Unpin + Send + 'a>;
pub type ClientWriter<'a> = Box<dyn AsyncWrite + Unpin + Send + 'a>;

/// The connection of one client to a sandbox.
pub struct ClientSession<'a> {
    pub sandbox: Arc<Sandbox>,
    pub id: ClientId,
    pub reader: ClientReader<'a>,
    pub writer: ClientWriter<'a>,
    pub buf: BytesMut,
    pub max_message_bytes: usize,
    pub pid: i32,
    pub startup: BTreeMap<String, String>,
    /// Reset the sandbox when the key's last connection closes.
    pub reset_on_close: bool,
    /// Most bytes of complete messages buffered without a unit end (`ProxyConfig::max_pending_bytes`).
    pub max_pending_bytes: usize,
    /// The client's socket closed: its replies are dropped and its running query is cancelled,
    /// but the cycle goes on until the backend is back at a boundary.
    pub gone: bool,
    /// How the session ends once the current cycle is over (the client left, or broke the
    /// protocol, in the middle of a COPY).
    pub deferred_end: Option<SessionEnd>,
    /// A FATAL error from the server reached the client, which needs no second one.
    pub fatal_forwarded: bool,
    /// The departed client's running statement was cancelled (once is enough: the session ends
    /// with the cycle).
    pub cancel_sent: bool,
    /// An error in the client's extended-protocol sequence: its messages are ignored until its
    /// Sync, as PostgreSQL does, across cycles.
    pub skipping: bool,
    /// The last cycle gave the key's turn up in the middle of the client's sequence (see
    /// super::turn): the client is not idle, so its idle-in-transaction timeout does not run.
    pub paused: bool,
    /// Notifications for the client (from its own NOTIFY or another connection's commit).
    pub inbox: Option<mpsc::UnboundedReceiver<BytesMut>>,
}

impl<'a> ClientSession<'a> {
    pub fn new(
        sandbox: Arc<Sandbox>,
        id: ClientId,
        (reader, writer): (ClientReader<'a>, ClientWriter<'a>),
        buf: BytesMut,
        pid: i32,
        startup: BTreeMap<String, String>,
    ) -> ClientSession<'a> {
        ClientSession {
            sandbox,
            id,
            reader,
            writer,
            buf,
            max_message_bytes: 64 * 1024 * 1024,
            pid,
            startup,
            reset_on_close: true,
            max_pending_bytes: 64 * 1024 * 1024,
            gone: false,
            deferred_end: None,
            fatal_forwarded: false,
            cancel_sent: false,
            skipping: false,
            paused: false,
            inbox: None,
        }
    }
}

impl ClientSession<'_> {
    /// Serves the client until it leaves; then cleans up its traces in the sandbox.
    pub async fn run(&mut self) -> SessionEnd {
        let (outbox, inbox) = mpsc::unbounded_channel::<BytesMut>();
        let mut outbox = Some(outbox);
        self.inbox = Some(inbox);
        let mut broken = self.sandbox.broken.subscribe();
        // When the client, idle in its transaction, outstays its own timeout (see idle_timeout).
        let mut idle_deadline: Option<tokio::time::Instant> = None;
        let end = loop {
            let unit = match self.take_unit() {
                Ok(Some(unit)) => unit,
                Ok(None) => {
                    tokio::select! {
                        read = self.reader.read_buf(&mut self.buf) => match read {
                            Ok(0) | Err(_) => break SessionEnd::Closed,
                            Ok(_) => continue,
                        },
                        // The key broke while this connection was idle: it is told at once, as
                        // PostgreSQL tells an idle session that is terminated.
                        Ok(()) = broken.changed() => match self.broken_end() {
                            Some(end) => break end,
                            None => continue,
                        },
                        () = sleep_until_some(idle_deadline) => {
                            break idle_timeout::timed_out();
                        }
                        Some(message) = next_notification(&mut self.inbox) => {
                            let mut out = message;
                            while let Some(more) = self.inbox.as_mut().and_then(|i| i.try_recv().ok()) {
                                out.extend_from_slice(&more);
                            }
                            if self.writer.write_all(&out).await.is_err() {
                                break SessionEnd::Closed;
                            }
                            continue;
                        }
                    }
                }
                Err(e) => break e,
            };
            let sandbox = Arc::clone(&self.sandbox);
            let mut backend = sandbox.take_turn().await;
            sandbox.cancels.open(self.id);
            if let Some(outbox) = outbox.take() {
                backend.clients.insert(
                    self.id,
                    ClientState::new(self.pid, outbox, self.startup.clone()),
                );
            }
            let result = self.cycle(&mut backend, unit).await;
            sandbox.cancels.close();
            idle_deadline = idle_timeout::idle_limit(&backend, self.id)
                .filter(|_| !self.paused)
                .map(|limit| tokio::time::Instant::now() + limit);
            let end = match result {
                Ok(true) if self.deferred_end.is_none() && !self.gone => continue,
                Ok(true) => self.deferred_end.take().unwrap_or(SessionEnd::Closed),
                Ok(false) => SessionEnd::Closed,
                Err(SessionEnd::Backend(reason)) => {
                    backend.break_with(&reason);
                    self.broken_end().unwrap_or(SessionEnd::Closed)
                }
                Err(end) => end,
            };
            // Under the same hold of the backend, so a connection arriving just after this one
            // left (a test's next connection) finds the reset done.
            self.leave(&mut backend).await;
            return end;
        };
        let sandbox = Arc::clone(&self.sandbox);
        let mut backend = sandbox.take_turn().await;
        self.leave(&mut backend).await;
        end
    }

    /// How a connection of a broken key ends: told the reason (unless the server's own FATAL
    /// already told it, as for the connection that terminated the session).
    fn broken_end(&self) -> Option<SessionEnd> {
        let breakage = self.sandbox.broken.get()?;
        if self.fatal_forwarded || self.gone {
            return Some(SessionEnd::Closed);
        }
        Some(SessionEnd::Fatal {
            sqlstate: breakage.sqlstate,
            message: super::broken::message(&self.sandbox.key, &breakage.reason),
        })
    }

    /// Removes the client from the sandbox; the last one out resets it.
    async fn leave(&mut self, backend: &mut Backend) {
        let sandbox = Arc::clone(&self.sandbox);
        backend.forget_client(self.id);
        let last = sandbox.counters.connections_open.fetch_sub(1, Relaxed) == 1;
        if backend.broken.is_set() {
            return;
        }
        let cleaned = if last && self.reset_on_close {
            sandbox.counters.resets.fetch_add(1, Relaxed);
            backend.reset().await
        } else {
            backend.flush_pending().await
        };
        if let Err(e) = cleaned {
            tracing::warn!(key = %sandbox.key, "cleaning up after a client failed: {}", e.0);
            backend.break_with(&e.0);
        }
    }

    /// Takes the complete messages up to and including the next unit end, if the buffer holds one.
    fn take_unit(&mut self) -> Result<Option<Vec<FrontMsg>>, SessionEnd> {
        let mut offset = 0;
        let mut ends = None;
        while self.buf.len() >= offset + 5 {
            let len = i32::from_be_bytes([
                self.buf[offset + 1],
                self.buf[offset + 2],
                self.buf[offset + 3],
                self.buf[offset + 4],
            ]);
            if len < 4 || len as usize > self.max_message_bytes {
                return Err(SessionEnd::Protocol(format!(
                    "invalid message length {len} for message type {:?}",
                    self.buf[offset] as char
                )));
            }
            let total = len as usize + 1;
            if self.buf.len() < offset + total {
                break;
            }
            let tag = self.buf[offset];
            offset += total;
            if matches!(tag, b'S' | b'Q' | b'H' | b'X' | b'F') {
                ends = Some(offset);
                break;
            }
        }
        let Some(end) = ends else {
            if offset > self.max_pending_bytes {
                return Err(SessionEnd::Fatal {
                    sqlstate: "54000",
                    message: format!(
                        "the client sent more than {} bytes of messages without a Sync, Flush or \
                         Query; a dbsandbox rollback sandbox holds at most that much per \
                         connection until the unit of work is complete \
                         (ProxyConfig::max_pending_bytes)",
                        self.max_pending_bytes
                    ),
                });
            }
            return Ok(None);
        };
        let mut raw = self.buf.split_to(end).freeze();
        let mut messages = Vec::new();
        while !raw.is_empty() {
            let len = i32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize + 1;
            messages.push(FrontMsg::parse(raw.split_to(len))?);
        }
        Ok(Some(messages))
    }

    /// Reads one more complete message from the client (during COPY IN).
    async fn next_message(&mut self) -> Result<Bytes, SessionEnd> {
        loop {
            if self.buf.len() >= 5 {
                let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
                if len < 4 || len as usize > self.max_message_bytes {
                    return Err(SessionEnd::Protocol(format!(
                        "invalid message length {len}"
                    )));
                }
                let total = len as usize + 1;
                if self.buf.len() >= total {
                    return Ok(self.buf.split_to(total).freeze());
                }
            }
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return Err(SessionEnd::Closed);
            }
        }
    }

    /// Runs one unit and, while the client has begun but not finished an extended-protocol
    /// sequence (it sent Flush), the units that follow. Returns false when the client terminated.
    async fn cycle(
        &mut self,
        backend: &mut Backend,
        first: Vec<FrontMsg>,
    ) -> Result<bool, SessionEnd> {
        if !backend.broken.is_set() {
            backend.probe().await?;
        }
        if let Some(end) = self.broken_end() {
            return Err(end);
        }
        if backend.needs_reset {
            backend.reset().await?;
        }
        let mut unit = Unit::new(self.id);
        unit.skipping = std::mem::take(&mut self.skipping);
        let result = self.run_unit(backend, &mut unit, first).await;
        self.skipping = unit.skipping;
        match result {
            Err(SessionEnd::Backend(reason)) => {
                // What the server said before it went (a terminated session's FATAL 57P01) is
                // the client's to see.
                let _ = self.write_out(&mut unit.out).await;
                Err(SessionEnd::Backend(reason))
            }
            Err(end) => {
                // The client broke the protocol mid-unit: what is on its way to the server is
                // finished first, so the key's next cycle finds the server at a boundary.
                self.gone = true;
                unit.finish(self, backend).await?;
                Err(end)
            }
            ok => ok,
        }
    }

    async fn run_unit(
        &mut self,
        backend: &mut Backend,
        unit: &mut Unit,
        first: Vec<FrontMsg>,
    ) -> Result<bool, SessionEnd> {
        let mut messages = first;
        self.paused = false;
        loop {
            let mut mid_sequence = false;
            for message in messages {
                if self.deferred_end.is_some() {
                    // The client left or broke the protocol during its COPY: nothing more of
                    // it runs; the unit is closed on the server below.
                    break;
                }
                match message {
                    FrontMsg::Terminate => {
                        unit.finish(self, backend).await?;
                        return Ok(false);
                    }
                    FrontMsg::Flush => {
                        unit.flush(self, backend).await?;
                        // The key's turn stays with this client only while its sequence is open
                        // on the server (a Flush right after a Sync, as psycopg's executemany
                        // sends, opens nothing).
                        mid_sequence = unit.guard;
                    }
                    // A Sync sent before the client's COPY data arrived while the server was in
                    // COPY IN, where PostgreSQL ignores it; the client sends another after CopyDone.
                    FrontMsg::Sync if unit.copy_in_done => {
                        unit.copy_in_done = false;
                        mid_sequence = true;
                    }
                    FrontMsg::Sync => {
                        unit.sync(self, backend).await?;
                        mid_sequence = false;
                    }
                    other => unit.handle(self, backend, other).await?,
                }
            }
            self.notifications_before_ready(&mut unit.out);
            self.write_out(&mut unit.out).await?;
            if self.deferred_end.is_some() {
                unit.finish(self, backend).await?;
                return Ok(true);
            }
            if !mid_sequence {
                return Ok(true);
            }
            // The client flushed in the middle of a sequence: it keeps the turn until its Sync,
            // unless another connection of the key asks for it first (see super::turn).
            messages = loop {
                if let Some(unit) = self.take_unit()? {
                    break unit;
                }
                let sandbox = Arc::clone(&self.sandbox);
                let asked = sandbox.turn.asked();
                tokio::pin!(asked);
                asked.as_mut().enable();
                if sandbox.turn.wanted() {
                    unit.pause(self, backend).await?;
                    self.write_out(&mut unit.out).await?;
                    self.paused = true;
                    return Ok(true);
                }
                tokio::select! {
                    read = self.reader.read_buf(&mut self.buf) => {
                        if read? == 0 {
                            unit.finish(self, backend).await?;
                            return Ok(false);
                        }
                    }
                    () = &mut asked => {}
                }
            };
        }
    }
}

/// The next notification for the client (never, before the inbox exists).
async fn next_notification(
    inbox: &mut Option<mpsc::UnboundedReceiver<BytesMut>>,
) -> Option<BytesMut> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}

/// Completes at `deadline`, never without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The state of one unit of work while it is planned and run.
struct Unit {
    id: ClientId,
    /// Replies for the client, written when the unit ends (or earlier when large or for COPY).
    out: BytesMut,
    /// Messages for the backend not yet sent, and the replies they will produce.
    batch: BytesMut,
    steps: Vec<Step>,
    /// A guard savepoint is open on the backend (or in `batch`).
    guard: bool,
    /// A client-visible error happened; messages are ignored until Sync, as PostgreSQL does.
    skipping: bool,
    /// An extended-protocol COPY FROM STDIN just ended: a Sync the client sent before its data
    /// was ignored by the server.
    copy_in_done: bool,
    /// The first step of the batch after our leading SQL (see `prepare_forward`).
    cancellable_from: usize,
    /// An autocommit Execute that may write ran in this sequence: its Sync (the implicit
    /// COMMIT) runs the deferred checks first (see [`deferred`]).
    autocommit_writes: bool,
    /// The client's statements (false) and portals (true) the batch defines, by client name:
    /// if the batch fails, the server may have skipped them (see `Unit::forget_uncertain`).
    defined: Vec<(bool, String)>,
    /// What its `pg_notify()` calls sent, until the batch is settled (see [`pg_notify`]).
    notifications: pg_notify::UnitNotifications,
    /// The client's unnamed Parses sent, in order, each with the unnamed statement it replaces
    /// (see `Unit::walk`: the server skips a Parse after an error).
    unnamed_parses: std::collections::VecDeque<UnnamedParse>,
}

/// A client's unnamed statement: its SQL and parameter types.
type UnnamedStatement = (String, Vec<u32>);

/// One unnamed Parse of a unit: the client's unnamed statement before it, and its own.
struct UnnamedParse {
    before: Option<UnnamedStatement>,
    parsed: UnnamedStatement,
}

/// Whether a statement may change session state the proxy keeps per client outside SET:
/// settings made with `set_config`, temporary objects, its own termination.
fn has_session_effects(sql: &str) -> bool {
    mentions_set_config(sql)
        || set_config::sets_session_characteristics(sql)
        || temp_objects::may_create_temp(sql)
        || terminate::mentions_terminate(sql)
}

fn mentions_set_config(sql: &str) -> bool {
    classify::contains_ignore_ascii_case(sql, b"set_config")
}

/// How a batch sent to the backend ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchEnd {
    /// No Sync: more of the client's sequence follows (after a Flush, or during COPY).
    Open,
    /// Our own Sync, whose ReadyForQuery the client never sees.
    InternalSync,
    /// The client's Sync, whose ReadyForQuery carries the client's status.
    ClientSync,
}

/// What walking a batch's replies found.
#[derive(Default)]
struct Walked {
    client_error: bool,
    internal_error: Option<String>,
    /// An extended-protocol error left the server ignoring messages until a Sync, and no Sync
    /// was in the batch.
    awaiting_sync: bool,
    /// Status byte of the last ReadyForQuery the backend sent.
    backend_status: u8,
    /// A COPY FROM STDIN ran.
    copied_in: bool,
}

impl Unit {
    fn new(id: ClientId) -> Unit {
        Unit {
            id,
            out: BytesMut::new(),
            batch: BytesMut::new(),
            steps: Vec::new(),
            guard: false,
            skipping: false,
            copy_in_done: false,
            cancellable_from: 0,
            autocommit_writes: false,
            defined: Vec::new(),
            notifications: Default::default(),
            unnamed_parses: Default::default(),
        }
    }

    fn status(&self, backend: &Backend) -> TxStatus {
        backend
            .clients
            .get(&self.id)
            .map(|c| c.status)
            .unwrap_or(TxStatus::Idle)
    }

    fn client<'b>(&self, backend: &'b mut Backend) -> &'b mut ClientState {
        backend
            .clients
            .get_mut(&self.id)
            .expect("registered before its first cycle")
    }

    fn synthetic(&mut self, write: impl FnOnce(&mut BytesMut)) {
        let mut bytes = BytesMut::new();
        write(&mut bytes);
        if self.steps.is_empty() {
            self.out.extend_from_slice(&bytes);
        } else {
            self.steps.push(Step::Synthetic(bytes));
        }
    }

    /// An error the engine reports: the rest of the unit is ignored until Sync.
    fn fail(&mut self, backend: &mut Backend, error: &ClientError) {
        self.synthetic(|b| back::error(b, error.sqlstate, &error.message));
        backend.client_failed(self.id);
        self.skipping = true;
    }

    /// Before the first forwarded message of a batch: queued savepoint work and the client's
    /// settings, then the guard savepoint.
    fn prepare_forward(&mut self, backend: &mut Backend) {
        if self.guard {
            return;
        }
        if std::mem::take(&mut backend.guard_left_open) {
            // The previous batch's guard, released first: what follows must not lie inside it.
            backend.guard_close(&mut self.batch);
            self.steps.push(Step::Swallow(Expect::One));
            self.steps.push(Step::Swallow(Expect::Execute));
        }
        if let Some(work) = backend.take_savepoint_work(self.id) {
            front::query(&mut self.batch, &work);
            self.steps.push(Step::Swallow(Expect::UntilReadyNoReady));
            backend.unnamed_owner = None;
        }
        for _ in 0..backend.take_closes(&mut self.batch) {
            self.steps.push(Step::Swallow(Expect::One));
        }
        backend.guard_open(&mut self.batch);
        self.steps.push(Step::Swallow(Expect::One));
        self.steps.push(Step::Swallow(Expect::Execute));
        self.guard = true;
        if let Some(settings) = backend.take_settings_sync(self.id) {
            front::query(&mut self.batch, &settings);
            self.steps.push(Step::Swallow(Expect::UntilReadyNoReady));
            backend.unnamed_owner = None;
        }
        if backend.batch_read_only(self.id) {
            // Inside the guard: it ends with the guard (see sandbox::read_only).
            front::query(&mut self.batch, "SET TRANSACTION READ ONLY");
            self.steps.push(Step::Swallow(Expect::UntilReadyNoReady));
            backend.unnamed_owner = None;
        }
        // The server answers all of the above now, not with the client's replies: once they
        // are read, a cancel can no longer hit them (see super::cancels).
        front::flush(&mut self.batch);
        self.cancellable_from = self.steps.len();
    }

    /// Re-sends the client's unnamed statement if another client's Parse (or any simple query)
    /// replaced it since.
    fn restore_unnamed(&mut self, backend: &mut Backend, statement: &str) {
        if !statement.is_empty() || backend.unnamed_owner == Some(self.id) {
            return;
        }
        if let Some((sql, types)) = self.client(backend).last_unnamed_parse.clone() {
            front::parse(&mut self.batch, "", &sql, &types);
            // Its error is the client's: PostgreSQL's Bind analyses a statement again when
            // what it reads changed (a table gone: 42P01), and reports that error.
            self.steps.push(Step::Check(Expect::One));
            backend.unnamed_owner = Some(self.id);
        }
    }

    /// Whether the client can use `statement`: any named one (the server answers for those), the
    /// unnamed one only if it has Parsed one (else another client's could run in its place).
    fn has_unnamed(&mut self, backend: &mut Backend, statement: &str) -> bool {
        !statement.is_empty()
            || backend.unnamed_owner == Some(self.id)
            || self.client(backend).last_unnamed_parse.is_some()
    }
}

fn changes_settings(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::SetSession { .. } | Kind::ResetAll | Kind::SetLocal | Kind::SetTransactionReadOnly(_)
    )
}

fn no_unnamed_statement() -> ClientError {
    ClientError::new("26000", "unnamed prepared statement does not exist")
}

fn aborted() -> ClientError {
    ClientError::new(
        "25P02",
        "current transaction is aborted, commands ignored until end of transaction block",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_settings() {
        assert_eq!(
            parse_options(
                "-c search_path=a,b --work-mem=7MB -c dbsandbox.isolation=database -c x=a\\ b"
            ),
            vec![
                ("search_path".to_string(), "a,b".to_string()),
                ("work_mem".to_string(), "7MB".to_string()),
                ("dbsandbox.isolation".to_string(), "database".to_string()),
                ("x".to_string(), "a b".to_string()),
            ]
        );
        let settings = startup_settings(&startup_values(&[
            ("user".into(), "u".into()),
            ("application_name".into(), "it's".into()),
            (
                "options".into(),
                "-c dbsandbox.isolation=rollback -c work_mem=7MB".into(),
            ),
        ]));
        assert_eq!(
            settings.into_iter().collect::<Vec<_>>(),
            vec![
                (
                    "application_name".to_string(),
                    "SET \"application_name\" TO 'it''s'".to_string()
                ),
                (
                    "work_mem".to_string(),
                    "SET \"work_mem\" TO '7MB'".to_string()
                ),
            ]
        );
    }
}
