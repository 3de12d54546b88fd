//! The listener and the life of one client connection: accept, startup and client
//! authentication, routing by sandbox key, the backend handshake, the relay, and the farewell
//! (an ErrorResponse when the proxy ends a connection on purpose). Also the public configuration
//! types and the [`Router`] seam through which the CLI decides where each key's connections go.

use crate::backend::{self, BackendAddr, BackendError, BackendStream};
use crate::cancel::{CancelGate, CancelRegistry, CancelTarget};
use crate::client_stream::{
    negotiate_encryption, ClientStream, Encryption, SplitStream, TlsClient,
};
use crate::key::{validate_key, RouteError};
use crate::relay::{self, RelayEnd, RelayError};
use crate::rollback::{self, Isolation, Sandboxes};
use crate::startup::{self, StartupError, StartupPacket};
use crate::stats::{Counters, ProxyStats, StatsHandle};
use crate::wire::{self, PROTOCOL_VIOLATION};
use bytes::BytesMut;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

/// Where a sandbox key's connections go.
#[derive(Clone)]
pub struct BackendTarget {
    /// IP address or host name, or an absolute directory holding the Unix socket
    /// `.s.PGSQL.<port>` (as in libpq, a host starting with `/` is a socket directory).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// The key's isolation when the router knows it (a key acquired through the control API):
    /// it wins over [`ProxyConfig::default_isolation`], and a connection's own
    /// `options=-c dbsandbox.isolation=…` wins over it.
    pub isolation: Option<Isolation>,
    /// Whether the key's rollback sandbox is reset when its last connection closes, when the
    /// router decides it (keys acquired through the control API keep their state): it wins over
    /// [`ProxyConfig::reset_on_close`].
    pub reset_on_close: Option<bool>,
}

impl fmt::Debug for BackendTarget {
    // Hand-written so the password never ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .finish()
    }
}

/// Decides where a key's connections go. Implemented by the CLI over the clone pool.
pub trait Router: Send + Sync + 'static {
    /// Called once per client connection, after client authentication and key validation.
    fn route<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<BackendTarget, RouteError>> + Send + 'a>>;

    /// A client connection for `key` ended (called only after `route` succeeded for it).
    fn disconnected(&self, _key: &str) {}

    /// The isolation the proxy chose for a connection of `key` (its own request, the target's,
    /// or the default), so the router can describe and reset the key accordingly.
    fn isolation_chosen(&self, _key: &str, _isolation: Isolation) {}
}

/// How clients authenticate to the proxy.
#[derive(Clone)]
pub enum ClientAuth {
    /// Any client is accepted (the default, for loopback listeners).
    Trust,
    /// Clients must give this password, checked with an MD5 challenge and a random salt.
    Password(String),
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::Trust => f.write_str("Trust"),
            ClientAuth::Password(_) => f.write_str("Password(<redacted>)"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub auth: ClientAuth,
    /// Largest message a client may send (the length field's value). Default 64 MiB.
    pub max_message_bytes: usize,
    /// Time allowed for the client's startup and authentication, and separately for the
    /// backend's connect and handshake. Routing is not timed: the router owns its waits.
    pub startup_timeout: Duration,
    /// Isolation of keys whose first connection does not ask for one with
    /// `options=-c dbsandbox.isolation=rollback|database`.
    pub default_isolation: Isolation,
    /// Reset a rollback sandbox when its key's last connection closes (default). Off, a key's
    /// state lasts until an explicit reset, so code under test may close its own connection
    /// before the test looks at what it committed.
    pub reset_on_close: bool,
    /// Most bytes of complete messages a rollback client may send without ending a unit of work
    /// (Sync, Flush, Query, FunctionCall, Terminate). The proxy holds them until the unit is
    /// complete, so a client that never syncs would otherwise make it buffer without end; past
    /// the bound the connection ends with FATAL 54000. Default 64 MiB.
    pub max_pending_bytes: usize,
    /// TLS for clients that ask for it (SSLRequest answered 'S'); `None`: answered 'N', and
    /// clients go on in plain text (or give up, with `sslmode=require`).
    pub tls: Option<crate::tls::TlsConfig>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            auth: ClientAuth::Trust,
            max_message_bytes: 64 * 1024 * 1024,
            startup_timeout: Duration::from_secs(30),
            default_isolation: Isolation::Database,
            reset_on_close: true,
            max_pending_bytes: 64 * 1024 * 1024,
            tls: None,
        }
    }
}

/// State shared by the listener and every connection.
struct Shared {
    config: ProxyConfig,
    router: Arc<dyn Router>,
    counters: Arc<Counters>,
    cancels: Arc<CancelRegistry>,
    sandboxes: Arc<Sandboxes>,
}

/// A bound proxy listener. Call [`Proxy::serve`] to start accepting.
pub struct Proxy {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

/// How long `serve` waits for connections to close after shutdown before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Proxy {
    pub async fn bind(
        addr: SocketAddr,
        config: ProxyConfig,
        router: Arc<dyn Router>,
    ) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        Ok(Proxy {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                config,
                router,
                counters: Arc::new(Counters::default()),
                cancels: Arc::new(CancelRegistry::default()),
                sandboxes: Arc::new(Sandboxes::default()),
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProxyStats {
        self.stats_handle().snapshot()
    }

    /// A handle that keeps reading the counters after [`Proxy::serve`] took the proxy; take it
    /// before calling `serve`.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.shared.counters))
    }

    /// A handle on the rollback sandboxes (reset, forget, stats) that outlives `serve`'s taking
    /// of the proxy; take it before calling `serve`.
    pub fn sandboxes(&self) -> Arc<Sandboxes> {
        Arc::clone(&self.shared.sandboxes)
    }

    /// Serves until `shutdown` resolves; then stops accepting, tells every connected client
    /// (FATAL 57P01, as a PostgreSQL shutdown does) and closes its connections, waiting up to
    /// five seconds for them to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let Proxy {
            listener, shared, ..
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let span = tracing::info_span!("client", %peer, key = tracing::field::Empty);
                        let conn = handle_connection(Arc::clone(&shared), stream, stop_rx.clone());
                        connections.spawn(conn.instrument(span));
                    }
                    Err(e) => {
                        // Usually EMFILE or a connection reset before accept; keep serving, but
                        // do not spin while the condition lasts.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!("connections still open after shutdown grace period; aborting them");
            connections.shutdown().await;
        }
        Ok(())
    }
}

/// What the proxy tells a client when it ends the connection on purpose.
enum Farewell {
    /// Nothing (the client left, or an I/O error makes talking pointless).
    Silent,
    /// A FATAL ErrorResponse made by the proxy.
    Refuse {
        sqlstate: &'static str,
        message: String,
    },
    /// Bytes from the backend (its ErrorResponse), relayed verbatim.
    Relay(BytesMut),
    /// A protocol violation PostgreSQL answers by closing without a word; the reason is logged.
    Dropped(String),
}

impl From<StartupError> for Farewell {
    fn from(e: StartupError) -> Self {
        match e {
            StartupError::Closed => Farewell::Silent,
            StartupError::Dropped(reason) => Farewell::Dropped(reason),
            StartupError::Io(e) => {
                debug!(error = %e, "client I/O error during startup");
                Farewell::Silent
            }
            StartupError::Refuse { sqlstate, message } => Farewell::Refuse { sqlstate, message },
        }
    }
}

impl From<RouteError> for Farewell {
    fn from(e: RouteError) -> Self {
        Farewell::Refuse {
            sqlstate: e.sqlstate,
            message: e.message,
        }
    }
}

/// How a connection ended, for counters and logs.
enum Ending {
    /// A CancelRequest connection, or a session that ran and ended.
    Done,
    /// Ended before a session was established.
    Refused(Farewell),
    /// An established session the proxy ended (protocol violation, shutdown).
    Ended(Farewell),
}

/// Decrements the open-connection gauge however the connection task ends.
struct OpenConnection(Arc<Counters>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

/// Tells the router a routed connection ended, however it ends.
struct RoutedConnection {
    router: Arc<dyn Router>,
    key: String,
}

impl Drop for RoutedConnection {
    fn drop(&mut self) {
        self.router.disconnected(&self.key);
    }
}

async fn handle_connection(
    shared: Arc<Shared>,
    mut client: TcpStream,
    stop: watch::Receiver<bool>,
) {
    let counters = &shared.counters;
    Counters::bump(&counters.connections_total);
    counters.connections_open.fetch_add(1, Relaxed);
    let _open = OpenConnection(Arc::clone(counters));
    // Small requests and replies; Nagle's algorithm would delay them.
    let _ = client.set_nodelay(true);

    let mut client_buf = BytesMut::with_capacity(relay::CLIENT_BUF_SIZE);
    let negotiated = tokio::time::timeout(
        shared.config.startup_timeout,
        negotiate_encryption(shared.config.tls.as_ref(), &mut client, &mut client_buf),
    )
    .await;
    let first = match negotiated {
        Err(_) => {
            return farewell(&shared, &mut client, Ending::Refused(startup_timed_out())).await
        }
        Ok(Err(e)) => return farewell(&shared, &mut client, Ending::Refused(e.into())).await,
        Ok(Ok(Encryption::Plain(first))) => first,
        Ok(Ok(Encryption::Tls(acceptor))) => {
            let accepted =
                tokio::time::timeout(shared.config.startup_timeout, acceptor.accept(client)).await;
            let tls = match accepted {
                Ok(Ok(tls)) => TlsClient::new(tls),
                Ok(Err(e)) => {
                    Counters::bump(&counters.refused);
                    info!(error = %e, "TLS handshake with the client failed");
                    return;
                }
                Err(_) => {
                    Counters::bump(&counters.refused);
                    info!("TLS handshake with the client timed out");
                    return;
                }
            };
            let mut tls = tls;
            let ending = serve_client(&shared, &mut tls, client_buf, None, stop).await;
            return farewell(&shared, &mut tls, ending).await;
        }
    };
    let ending = serve_client(&shared, &mut client, client_buf, first, stop).await;
    farewell(&shared, &mut client, ending).await
}

fn startup_timed_out() -> Farewell {
    debug!("client startup timed out");
    Farewell::Refuse {
        sqlstate: PROTOCOL_VIOLATION,
        message: "startup timed out: the client did not finish startup and authentication in time"
            .into(),
    }
}

/// Serves one client connection, plain or TLS, from its startup packet on.
async fn serve_client<C: ClientStream>(
    shared: &Shared,
    client: &mut C,
    client_buf: BytesMut,
    first: Option<StartupPacket>,
    mut stop: watch::Receiver<bool>,
) -> Ending {
    tokio::select! {
        ending = drive_connection(shared, client, client_buf, first) => ending,
        _ = stop.wait_for(|stopping| *stopping) => Ending::Ended(Farewell::Refuse {
            sqlstate: "57P01",
            message: "terminating connection because the dbsandbox proxy is shutting down".into(),
        }),
    }
}

/// Counts how the connection ended and tells the client, if there is anything to tell.
async fn farewell<C: ClientStream>(shared: &Shared, client: &mut C, ending: Ending) {
    let counters = &shared.counters;
    let farewell = match ending {
        Ending::Done => {
            close_tls(client).await;
            return;
        }
        Ending::Refused(farewell) => {
            Counters::bump(&counters.refused);
            farewell
        }
        Ending::Ended(farewell) => farewell,
    };
    let bytes = match farewell {
        Farewell::Silent => {
            close_tls(client).await;
            return;
        }
        Farewell::Dropped(reason) => {
            Counters::bump(&counters.protocol_errors);
            info!(%reason, "client connection closed without a word, as PostgreSQL does");
            return;
        }
        Farewell::Refuse { sqlstate, message } => {
            if sqlstate == PROTOCOL_VIOLATION {
                Counters::bump(&counters.protocol_errors);
            }
            info!(sqlstate, %message, "closing client connection");
            wire::fatal(sqlstate, &message)
        }
        Farewell::Relay(bytes) => bytes,
    };
    // Best effort: the client may already be gone. What the client still sends is read and
    // dropped until it closes (up to the second), so the kernel does not answer it with a reset
    // that could destroy the error before the client reads it.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        client.write_all(&bytes).await?;
        client.shutdown().await?;
        let mut sink = vec![0u8; 64 * 1024];
        while tokio::io::AsyncReadExt::read(client, &mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Ends a TLS client's connection with close_notify, as PostgreSQL's server does: libpq reports
/// a connection that ends without one as "SSL error: unexpected eof while reading" (its cancel
/// over TLS, PQcancelBlocking, failed so after every CancelRequest).
async fn close_tls<C: ClientStream>(client: &mut C) {
    if client.encrypted() {
        let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
    }
}

/// The parts of a client's StartupMessage the proxy acts on.
struct SessionRequest {
    user: String,
    key: String,
    params: Vec<(String, String)>,
}

enum ClientStart {
    Cancel { process_id: i32, secret_key: i32 },
    Session(SessionRequest),
}

async fn drive_connection<C: ClientStream>(
    shared: &Shared,
    client: &mut C,
    mut client_buf: BytesMut,
    first: Option<StartupPacket>,
) -> Ending {
    let startup_timeout = shared.config.startup_timeout;
    let start = tokio::time::timeout(
        startup_timeout,
        client_startup(shared, client, &mut client_buf, first),
    )
    .await;
    let request = match start {
        Err(_) => return Ending::Refused(startup_timed_out()),
        Ok(Err(e)) => return Ending::Refused(e.into()),
        Ok(Ok(ClientStart::Cancel {
            process_id,
            secret_key,
        })) => {
            forward_cancel(shared, process_id, secret_key).await;
            return Ending::Done;
        }
        Ok(Ok(ClientStart::Session(request))) => request,
    };

    let target = match shared.router.route(&request.key).await {
        Ok(target) => target,
        Err(e) => return Ending::Refused(e.into()),
    };
    let _routed = RoutedConnection {
        router: Arc::clone(&shared.router),
        key: request.key.clone(),
    };
    let isolation = match Isolation::requested(&request.params) {
        Ok(requested) => requested
            .or(target.isolation)
            .unwrap_or(shared.config.default_isolation),
        Err(message) => {
            return Ending::Refused(Farewell::Refuse {
                sqlstate: "22023",
                message,
            })
        }
    };
    shared.router.isolation_chosen(&request.key, isolation);
    if isolation == Isolation::Rollback {
        return serve_rollback(shared, client, client_buf, &request, &target).await;
    }
    let addr = BackendAddr::of(&target);
    let connected = tokio::time::timeout(startup_timeout, backend::connect(&addr)).await;
    let stream = match connected {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Ending::Refused(backend_unreachable(&addr, &e.to_string())),
        Err(_) => return Ending::Refused(backend_unreachable(&addr, "timed out")),
    };
    let session = Session {
        shared,
        client,
        client_buf,
        request: &request,
        target: &target,
        addr: &addr,
    };
    match stream {
        BackendStream::Tcp(mut stream) => session.run(&mut stream).await,
        BackendStream::Unix(mut stream) => session.run(&mut stream).await,
    }
}

fn backend_unreachable(addr: &BackendAddr, why: &str) -> Farewell {
    Farewell::Refuse {
        sqlstate: "08006",
        message: format!(
            "dbsandbox proxy could not connect to the sandbox's server at {addr}: {why}"
        ),
    }
}

/// Serves a client of a rollback sandbox: the key's shared backend transaction, with the
/// proxy answering startup itself.
async fn serve_rollback<C: ClientStream>(
    shared: &Shared,
    client: &mut C,
    client_buf: BytesMut,
    request: &SessionRequest,
    target: &BackendTarget,
) -> Ending {
    let reset_on_close = target
        .reset_on_close
        .unwrap_or(shared.config.reset_on_close);
    let sandbox = match shared
        .sandboxes
        .get_or_create(&request.key, target, reset_on_close)
        .await
    {
        Ok(sandbox) => sandbox,
        Err((sqlstate, message)) => return Ending::Refused(Farewell::Refuse { sqlstate, message }),
    };
    let id = sandbox.next_client_id();
    // Until the session has left (cleaned up, the key reset if it was the last), the key's new
    // connections wait once this client has closed.
    let _admitted =
        rollback::admission::Admitted::register(&sandbox, id, client.tcp(), client.encrypted());
    let cancel_key = sandbox.backend_key.map(|(process_id, secret_key)| {
        shared.cancels.register(CancelTarget {
            addr: sandbox.addr.clone(),
            process_id,
            secret_key,
            gate: Some(CancelGate {
                window: Arc::clone(&sandbox.cancels),
                id,
            }),
        })
    });
    let (pid, secret) = cancel_key
        .as_ref()
        .map(|k| (k.process_id, k.secret_key))
        .unwrap_or((id as i32, 0));
    let mut startup_values = rollback::session::startup_values(&request.params);
    match rollback::session::check_startup_settings(&sandbox, &startup_values).await {
        rollback::session::Checked::Accepted(spelled) => startup_values.extend(spelled),
        rollback::session::Checked::Refused(fatal) => {
            return Ending::Refused(Farewell::Relay(fatal));
        }
    }
    let greeting = rollback::session::greeting(&sandbox, &startup_values, pid, secret);
    if client.write_all(&greeting).await.is_err() {
        return Ending::Done;
    }
    Counters::bump(&shared.counters.sessions_established);
    sandbox.counters.connections_open.fetch_add(1, Relaxed);
    sandbox.counters.connections_total.fetch_add(1, Relaxed);
    info!(user = %request.user, database = %target.database, "rollback session established");
    let (reader, writer) = client.halves();
    let mut session = rollback::session::ClientSession::new(
        sandbox,
        id,
        (Box::new(reader), Box::new(writer)),
        client_buf,
        pid,
        rollback::session::startup_settings(&startup_values),
    );
    session.max_message_bytes = shared.config.max_message_bytes;
    session.max_pending_bytes = shared.config.max_pending_bytes;
    session.reset_on_close = reset_on_close;
    let end = session.run().await;
    drop(cancel_key);
    match end {
        rollback::session::SessionEnd::Closed => Ending::Done,
        rollback::session::SessionEnd::Protocol(message) => Ending::Ended(Farewell::Refuse {
            sqlstate: PROTOCOL_VIOLATION,
            message,
        }),
        rollback::session::SessionEnd::Backend(message) => Ending::Ended(Farewell::Refuse {
            sqlstate: "08006",
            message,
        }),
        rollback::session::SessionEnd::Fatal { sqlstate, message } => {
            Ending::Ended(Farewell::Refuse { sqlstate, message })
        }
    }
}

/// Reads the StartupMessage or CancelRequest (unless encryption negotiation already read it),
/// then authenticates the client and checks its key.
async fn client_startup<C: ClientStream>(
    shared: &Shared,
    client: &mut C,
    buf: &mut BytesMut,
    first: Option<StartupPacket>,
) -> Result<ClientStart, StartupError> {
    let packet = match first {
        Some(packet) => packet,
        None => startup::read_startup_packet(client, buf).await?,
    };
    let (minor_version, params) = match packet {
        // Encryption was settled by `negotiate_encryption`; asking again (inside TLS, or after
        // a refusal) is what PostgreSQL calls a duplicate request.
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
            return Err(StartupError::refuse(
                PROTOCOL_VIOLATION,
                "duplicate SSL or GSS encryption request",
            ))
        }
        StartupPacket::Cancel {
            process_id,
            secret_key,
        } => {
            return Ok(ClientStart::Cancel {
                process_id,
                secret_key,
            })
        }
        StartupPacket::Startup {
            minor_version,
            params,
        } => (minor_version, params),
    };

    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let user = match param("user") {
        Some(user) if !user.is_empty() => user.to_owned(),
        _ => {
            return Err(StartupError::refuse(
                "28000",
                "no PostgreSQL user name specified in startup packet",
            ))
        }
    };
    // As in PostgreSQL, the database defaults to the user name.
    let key = param("database")
        .filter(|db| !db.is_empty())
        .unwrap_or(&user)
        .to_owned();
    tracing::Span::current().record("key", key.as_str());
    if let Some(replication) = param("replication") {
        if !matches!(replication, "false" | "off" | "no" | "0") {
            return Err(StartupError::refuse(
                "0A000",
                "replication connections are not supported by the dbsandbox proxy",
            ));
        }
    }
    let unknown_options: Vec<&str> = params
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| name.starts_with("_pq_."))
        .collect();
    if minor_version > 0 || !unknown_options.is_empty() {
        let mut out = BytesMut::new();
        wire::negotiate_protocol_version(&mut out, &unknown_options);
        client.write_all(&out).await?;
    }

    startup::authenticate_client(client, buf, &shared.config.auth, &user).await?;
    validate_key(&key).map_err(|e| StartupError::refuse(e.sqlstate, e.message))?;
    Ok(ClientStart::Session(SessionRequest { user, key, params }))
}

async fn forward_cancel(shared: &Shared, process_id: i32, secret_key: i32) {
    Counters::bump(&shared.counters.cancel_requests);
    // Unknown keys are dropped silently, as PostgreSQL does, so probing reveals nothing.
    let Some(target) = shared.cancels.lookup(process_id, secret_key) else {
        debug!(process_id, "cancel request for an unknown key ignored");
        return;
    };
    if let Some(gate) = &target.gate {
        // A rollback sandbox's client: its session sends the cancel when only its own
        // statement can be hit (see rollback::cancels).
        if gate.request() {
            Counters::bump(&shared.counters.cancels_forwarded);
            debug!(process_id, "cancel request handed to the client's session");
        } else {
            debug!(
                process_id,
                "cancel request while another client of the sandbox runs, or none; ignored"
            );
        }
        return;
    }
    match backend::send_cancel(&target.addr, target.process_id, target.secret_key).await {
        Ok(()) => {
            Counters::bump(&shared.counters.cancels_forwarded);
            debug!(backend = %target.addr, "cancel request forwarded");
        }
        Err(e) => warn!(backend = %target.addr, error = %e, "forwarding cancel request failed"),
    }
}

/// A routed client connection whose backend socket is open.
struct Session<'a, C: ClientStream> {
    shared: &'a Shared,
    client: &'a mut C,
    client_buf: BytesMut,
    request: &'a SessionRequest,
    target: &'a BackendTarget,
    addr: &'a BackendAddr,
}

impl<C: ClientStream> Session<'_, C> {
    async fn run<S: SplitStream>(mut self, backend_stream: &mut S) -> Ending {
        let shared = self.shared;
        let handshake = tokio::time::timeout(
            shared.config.startup_timeout,
            backend::establish(backend_stream, self.target, &self.request.params),
        )
        .await;
        let established = match handshake {
            Ok(Ok(established)) => established,
            Ok(Err(BackendError::Rejected(error))) => {
                // E.g. "database does not exist": the client sees the server's own words.
                return Ending::Refused(Farewell::Relay(error));
            }
            Ok(Err(BackendError::Failed(message))) => {
                return Ending::Refused(Farewell::Refuse {
                    sqlstate: "08006",
                    message,
                })
            }
            Ok(Err(BackendError::Io(e))) => {
                return Ending::Refused(backend_unreachable(self.addr, &e.to_string()))
            }
            Err(_) => {
                return Ending::Refused(backend_unreachable(
                    self.addr,
                    "the server did not complete startup in time",
                ))
            }
        };

        // The client gets the proxy's own cancel key; the registry maps it to the backend's.
        let cancel_key = established.key_data.map(|(process_id, secret_key)| {
            shared.cancels.register(CancelTarget {
                addr: self.addr.clone(),
                process_id,
                secret_key,
                gate: None,
            })
        });
        let mut greeting = BytesMut::with_capacity(
            established.greeting.len() + established.ready_for_query.len() + 32,
        );
        wire::authentication_ok(&mut greeting);
        greeting.extend_from_slice(&established.greeting);
        if let Some(key) = &cancel_key {
            wire::backend_key_data(&mut greeting, key.process_id, key.secret_key);
        }
        greeting.extend_from_slice(&established.ready_for_query);
        if let Err(e) = self.client.write_all(&greeting).await {
            debug!(error = %e, "client went away during startup");
            return Ending::Done;
        }
        Counters::bump(&shared.counters.sessions_established);
        info!(
            user = %self.request.user,
            backend = %self.addr,
            database = %self.target.database,
            "session established"
        );

        let mut backend_buf = established.leftover;
        let (mut client_read, mut client_write) = self.client.halves();
        let (mut backend_read, mut backend_write) = backend_stream.halves();
        let end = relay::relay(
            &mut client_read,
            &mut client_write,
            &mut backend_read,
            &mut backend_write,
            &mut self.client_buf,
            &mut backend_buf,
            &relay::ClientGuard {
                key: self.request.key.clone(),
                max_message_bytes: shared.config.max_message_bytes,
                unnamed_portal: Default::default(),
            },
            &shared.counters,
        )
        .await;
        let ending = match end {
            Ok(RelayEnd::ClientTerminated) => {
                let _ = backend_write.shutdown().await;
                Ending::Done
            }
            Ok(RelayEnd::ClientClosed { at_boundary }) => {
                if at_boundary {
                    relay::terminate_backend(&mut backend_write).await;
                }
                Ending::Done
            }
            Ok(RelayEnd::BackendClosed) => Ending::Done,
            Err(RelayError::Io(e)) => {
                debug!(error = %e, "connection ended by an I/O error");
                Ending::Done
            }
            Err(RelayError::ClientProtocol(e)) => Ending::Ended(Farewell::Refuse {
                sqlstate: PROTOCOL_VIOLATION,
                message: e.to_string(),
            }),
            Err(RelayError::BackendProtocol(e)) => Ending::Ended(Farewell::Refuse {
                sqlstate: PROTOCOL_VIOLATION,
                message: format!("the sandbox's server sent an invalid message: {e}"),
            }),
        };
        debug!("session ended");
        drop(cancel_key);
        ending
    }
}
