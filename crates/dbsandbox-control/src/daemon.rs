//! The daemon's state: one server, the project's current template and its warm pool, the API
//! scope (keys acquired through the control API, on the daemon's own proxy port) and one scope
//! per `dbsandbox run` (its own proxy port, where any database name is a key).
//!
//! The same object runs detached (`dbsandbox serve`) or inside a `dbsandbox run --no-daemon`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use dbsandbox_pool::{ClonePool, PoolConfig, PoolStats, SchemaSource, Template};
use dbsandbox_proxy::{ClientAuth, Isolation, Proxy, ProxyConfig, StatsHandle};
use dbsandbox_server::{Endpoint, ProcessId, Server, ServerConfig};
use serde::Serialize;

use crate::registry::{PoolHandle, Registry, UnknownKeys};

mod tls;
mod upkeep;

pub use tls::{ProxyTls, TlsSource};

/// What a daemon is started with.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub server: ServerConfig,
    pub schema: SchemaSource,
    pub pool_size: Option<usize>,
    pub keep_templates: usize,
    pub cache_dir: PathBuf,
    /// Address of the API and of every proxy port.
    pub listen: IpAddr,
    /// 0: any free port.
    pub api_port: u16,
    pub proxy_port: u16,
    /// Required on API requests when set (always set off loopback).
    pub token: Option<String>,
    /// Password proxy clients must give (required off loopback).
    pub password: Option<String>,
    /// Exit after this long with nothing to do; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// TLS for the proxies' clients.
    pub tls: TlsSource,
}

/// The current template, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateInfo {
    pub name: String,
    pub fingerprint: String,
    pub project: String,
    /// True when the daemon built it (false: reused from an earlier build).
    pub built: bool,
    pub build_seconds: f64,
    /// Why the daemon rebuilt this template, when it was not drift (it vanished).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

impl From<&Template> for TemplateInfo {
    fn from(t: &Template) -> Self {
        TemplateInfo {
            name: t.name.clone(),
            fingerprint: t.fingerprint.short().to_string(),
            project: t.project.clone(),
            built: t.built,
            build_seconds: t.elapsed.as_secs_f64(),
            notice: None,
        }
    }
}

/// A proxy port and the keys behind it.
pub struct Scope {
    /// `api` for the daemon's own scope, `r<n>` for runs.
    pub id: String,
    pub registry: Arc<Registry>,
    pub proxy_addr: SocketAddr,
    pub owner: Option<ProcessId>,
    /// Closed after this long with no open connection and no request naming it.
    pub lease: Option<Duration>,
    last_used: Mutex<Instant>,
    stats: StatsHandle,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
}

impl Scope {
    async fn open(
        id: String,
        registry: Arc<Registry>,
        addr: SocketAddr,
        config: ProxyConfig,
        owner: Option<ProcessId>,
        lease: Option<Duration>,
    ) -> std::io::Result<Scope> {
        let proxy = Proxy::bind(addr, config, registry.clone()).await?;
        registry.attach_sandboxes(proxy.sandboxes());
        let proxy_addr = proxy.local_addr();
        let stats = proxy.stats_handle();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(async move {
            let _ = stopped.await;
        }));
        Ok(Scope {
            id,
            registry,
            proxy_addr,
            owner,
            lease,
            last_used: Mutex::new(Instant::now()),
            stats,
            stop: Mutex::new(Some(stop)),
            task: Mutex::new(Some(task)),
        })
    }

    /// Restarts the lease: a request named the scope, or a client is connected.
    pub fn renew(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    /// Whether the lease ran out (never for a scope without one).
    pub fn lease_expired(&self) -> bool {
        self.lease
            .is_some_and(|lease| lock(&self.last_used).elapsed() >= lease)
    }

    /// Client connections accepted so far.
    pub fn connections_total(&self) -> u64 {
        self.stats.snapshot().connections_total
    }

    /// Stops the proxy (clients are told, as at a server shutdown) and releases every key.
    pub async fn close(&self) {
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(());
        }
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(6), task).await;
        }
        self.registry.release_all();
    }

    /// `postgres://dbsandbox@host:port/KEY`.
    pub fn url(&self, key: &str) -> String {
        let host = match self.proxy_addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        format!(
            "postgres://dbsandbox@{host}:{}/{key}",
            self.proxy_addr.port()
        )
    }
}

/// What a run asks for when it opens its scope.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub owner_pid: Option<u32>,
    pub isolation: Option<IsolationName>,
    pub reset_on_close: Option<bool>,
    pub listen: Option<String>,
    pub port: Option<u16>,
    /// When `port` is taken, listen on a free port instead (for a default port; an explicit
    /// port that is taken is an error).
    pub port_fallback: Option<bool>,
    pub password: Option<String>,
    /// Close the run after this long with no open connection and no request naming it
    /// [default: [`DEFAULT_RUN_LEASE`] without `owner_pid`, none with one].
    pub lease_seconds: Option<u64>,
}

/// How long a run opened without an `owner_pid` lives with no connection and no request.
pub const DEFAULT_RUN_LEASE: Duration = Duration::from_secs(600);

/// `rollback` or `database` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationName {
    Rollback,
    Database,
}

impl From<IsolationName> for Isolation {
    fn from(i: IsolationName) -> Self {
        match i {
            IsolationName::Rollback => Isolation::Rollback,
            IsolationName::Database => Isolation::Database,
        }
    }
}

impl From<Isolation> for IsolationName {
    fn from(i: Isolation) -> Self {
        match i {
            Isolation::Rollback => IsolationName::Rollback,
            Isolation::Database => IsolationName::Database,
        }
    }
}

/// A request the daemon refuses, with the API's error code.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }
}

pub struct Daemon {
    pub config: DaemonConfig,
    server: tokio::sync::Mutex<Option<Server>>,
    server_description: String,
    pub endpoint: Endpoint,
    pool: PoolHandle,
    template: RwLock<TemplateInfo>,
    /// Pools of templates that drifted away, shut down once their last clone is back.
    retired: Mutex<Vec<ClonePool>>,
    refresh_lock: tokio::sync::Mutex<()>,
    pub api_scope: Scope,
    /// TLS of the proxies listening on the daemon's address (None: TLS unavailable).
    pub proxy_tls: Option<ProxyTls>,
    runs: Mutex<BTreeMap<String, Arc<Scope>>>,
    next_run: AtomicU64,
    next_key: AtomicU64,
    last_activity: Mutex<Instant>,
    pub started: Instant,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// What the daemon repaired behind its clients' backs (newest last), for the API to say.
    recoveries: Mutex<Vec<String>>,
    /// A rebuild of a vanished template is under way (on its own task).
    rebuilding: std::sync::atomic::AtomicBool,
    /// Leased clones found gone, said once each.
    vanished_leased: Mutex<std::collections::HashSet<String>>,
    /// The housekeeping's own connection (remade when user code terminates it).
    watch_admin: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// The embedded server's state directory, where dead runs' private clusters are reaped.
    state_root: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bad input in a daemon's or a run's settings: the CLI exits 2, the API answers 4xx.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// How proxy clients on `listen` authenticate: a password off loopback, trust on loopback without
/// one. An empty password is no password (an unset CI variable): refused off loopback.
pub fn proxy_auth(listen: IpAddr, password: &Option<String>) -> Result<ClientAuth, InputError> {
    let password = password.as_deref().filter(|p| !p.is_empty());
    match (password, listen.is_loopback()) {
        (Some(password), _) => Ok(ClientAuth::Password(password.to_string())),
        (None, true) => Ok(ClientAuth::Trust),
        (None, false) => Err(InputError(format!(
            "listening on {listen} is reachable from other machines: set a proxy password \
             (--password or DBSANDBOX_PASSWORD; an empty one is no password)"
        ))),
    }
}

/// A bind error, with "port N is in use" as bad input when that is what it was.
pub fn bind_error(what: &str, addr: SocketAddr, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        InputError(format!(
            "{what}: port {} on {} is in use (choose another port, or 0 for any free one)",
            addr.port(),
            addr.ip()
        ))
        .into()
    } else {
        anyhow::Error::new(e).context(format!("binding {what} on {addr}"))
    }
}

impl Daemon {
    /// Starts the server, makes sure the template is current, fills the pool and binds the API
    /// scope's proxy. `progress` hears a line per step.
    pub async fn start(
        config: DaemonConfig,
        progress: &(dyn Fn(&str) + Sync),
    ) -> anyhow::Result<Arc<Daemon>> {
        let auth = proxy_auth(config.listen, &config.password)?;
        let proxy_tls = tls::resolve(&config.tls, &config.cache_dir, config.listen)?;
        progress("starting PostgreSQL");
        let server = Server::start(&config.server).await?;
        let endpoint = server.endpoint().clone();
        let server_description = server.describe();
        let started = async {
            let admin = endpoint.admin().await.context("connecting to the server")?;
            dbsandbox_pool::reap_dead_owners(&admin).await?;
            progress("checking the template");
            let template = ensure_current(&config, &endpoint, progress).await?;
            let pool = start_pool(&config, &endpoint, &template).await?;
            Ok::<_, anyhow::Error>((template, pool))
        }
        .await;
        let (template, pool) = match started {
            Ok(started) => started,
            Err(e) => {
                let _ = server.stop().await;
                return Err(e);
            }
        };
        let pool: PoolHandle = Arc::new(RwLock::new(pool));
        let registry = Registry::new(
            pool.clone(),
            endpoint.clone(),
            UnknownKeys::Refuse,
            Isolation::Rollback,
        );
        let proxy_config = ProxyConfig {
            auth,
            default_isolation: Isolation::Rollback,
            reset_on_close: false,
            tls: proxy_tls.as_ref().map(|t| t.config.clone()),
            ..Default::default()
        };
        let proxy_addr = SocketAddr::new(config.listen, config.proxy_port);
        let api_scope = Scope::open("api".into(), registry, proxy_addr, proxy_config, None, None)
            .await
            .map_err(|e| bind_error("the proxy", proxy_addr, e));
        let api_scope = match api_scope {
            Ok(scope) => scope,
            Err(e) => {
                let pool = pool.read().unwrap_or_else(|p| p.into_inner()).clone();
                let _ = pool.shutdown(true).await;
                let _ = server.stop().await;
                return Err(e);
            }
        };
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let state_root = server_state_root(&config.server);
        let daemon = Arc::new(Daemon {
            config,
            server: tokio::sync::Mutex::new(Some(server)),
            server_description,
            endpoint,
            pool,
            template: RwLock::new(TemplateInfo::from(&template)),
            retired: Mutex::new(Vec::new()),
            refresh_lock: tokio::sync::Mutex::new(()),
            api_scope,
            runs: Mutex::new(BTreeMap::new()),
            next_run: AtomicU64::new(1),
            next_key: AtomicU64::new(1),
            last_activity: Mutex::new(Instant::now()),
            started: Instant::now(),
            shutdown,
            recoveries: Mutex::new(Vec::new()),
            vanished_leased: Mutex::new(Default::default()),
            rebuilding: Default::default(),
            watch_admin: tokio::sync::Mutex::new(None),
            state_root,
            proxy_tls,
        });
        tokio::spawn(Arc::clone(&daemon).housekeeping());
        Ok(daemon)
    }

    pub fn server_description(&self) -> &str {
        &self.server_description
    }

    pub fn template(&self) -> TemplateInfo {
        self.template
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn pool(&self) -> ClonePool {
        self.pool.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn pool_stats(&self) -> PoolStats {
        self.pool().stats()
    }

    /// Notes that a client did something (the idle clock restarts).
    pub fn touch(&self) {
        *lock(&self.last_activity) = Instant::now();
    }

    /// Rechecks the schema's fingerprint and that the template still exists; on drift builds the
    /// new template and swaps the pool, and a template dropped behind the daemon's back is
    /// rebuilt (and said so, in its `notice`).
    pub async fn refresh(&self) -> anyhow::Result<TemplateInfo> {
        let _one_at_a_time = self.refresh_lock.lock().await;
        let current = self.template();
        // The common case, an unchanged project, is answered from the files and one catalogue
        // query.
        let schema = self.config.schema.clone();
        let major = self.endpoint.major_version();
        let fingerprint = tokio::task::spawn_blocking(move || schema.fingerprint(major)).await;
        let unchanged = matches!(&fingerprint, Ok(Ok(f)) if f.short() == current.fingerprint);
        let vanished = unchanged
            && !self
                .existing(std::slice::from_ref(&current.name))
                .await
                .map(|found| found.contains(&current.name))
                // Unable to check (a broken connection): do not rebuild on a hiccup.
                .unwrap_or(true);
        if unchanged && !vanished {
            if self.pool().template_missing() {
                self.pool().template_restored();
            }
            return Ok(current);
        }
        let template = ensure_current(&self.config, &self.endpoint, &|step| {
            tracing::info!("building the template: {step}")
        })
        .await?;
        if template.name == current.name {
            let mut info = TemplateInfo::from(&template);
            if template.built {
                let notice = format!(
                    "the template {} vanished (dropped behind the daemon's back): rebuilt it in {:.2} s",
                    template.name,
                    template.elapsed.as_secs_f64()
                );
                self.recovered(notice.clone());
                info.notice = Some(notice);
            }
            *self.template.write().unwrap_or_else(|p| p.into_inner()) = info.clone();
            self.pool().template_restored();
            return Ok(info);
        }
        tracing::info!(template = %template.name, "schema changed: new template");
        let pool = start_pool(&self.config, &self.endpoint, &template).await?;
        let old = std::mem::replace(
            &mut *self.pool.write().unwrap_or_else(|p| p.into_inner()),
            pool,
        );
        lock(&self.retired).push(old);
        let info = TemplateInfo::from(&template);
        *self.template.write().unwrap_or_else(|p| p.into_inner()) = info.clone();
        Ok(info)
    }

    /// A key nobody holds, for acquisitions that do not name one.
    pub fn fresh_key(&self) -> String {
        loop {
            let n = self.next_key.fetch_add(1, Ordering::Relaxed);
            let key = format!("sb-{n}");
            if self.find_key(&key, None).is_err() {
                return key;
            }
        }
    }

    /// The scope a request names (`run`), or the API scope.
    pub fn scope(&self, run: Option<&str>) -> Result<ScopeRef<'_>, Refusal> {
        match run {
            None => Ok(ScopeRef::Api(&self.api_scope)),
            Some(id) => {
                let scope = lock(&self.runs)
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Refusal::new(404, "not_found", format!("no run {id}")))?;
                scope.renew();
                Ok(ScopeRef::Run(scope))
            }
        }
    }

    /// The scope holding `key`: the named run's, else the API scope, else the one run that has it.
    pub fn find_key(&self, key: &str, run: Option<&str>) -> Result<ScopeRef<'_>, Refusal> {
        let not_found = || Refusal::new(404, "not_found", format!("no sandbox with key {key}"));
        if run.is_some() {
            let scope = self.scope(run)?;
            return if scope.registry.contains(key) {
                Ok(scope)
            } else {
                Err(not_found())
            };
        }
        if self.api_scope.registry.contains(key) {
            return Ok(ScopeRef::Api(&self.api_scope));
        }
        let runs: Vec<Arc<Scope>> = lock(&self.runs)
            .values()
            .filter(|s| s.registry.contains(key))
            .cloned()
            .collect();
        match runs.len() {
            0 => Err(not_found()),
            1 => {
                let scope = runs.into_iter().next().expect("one");
                scope.renew();
                Ok(ScopeRef::Run(scope))
            }
            _ => Err(Refusal::new(
                409,
                "ambiguous_key",
                format!("several runs have a key {key}: name the run with ?run=<id>"),
            )),
        }
    }

    pub fn runs(&self) -> Vec<Arc<Scope>> {
        lock(&self.runs).values().cloned().collect()
    }

    /// Opens a run's scope: its own proxy port.
    pub async fn open_run(&self, request: RunRequest) -> Result<Arc<Scope>, Refusal> {
        let bad = |m: String| Refusal::new(400, "bad_request", m);
        let listen: IpAddr = match &request.listen {
            Some(text) => text
                .parse()
                .map_err(|_| bad(format!("listen: {text} is not an IP address")))?,
            None => self.config.listen,
        };
        let auth = proxy_auth(listen, &request.password).map_err(|e| bad(e.0))?;
        let isolation: Isolation = request
            .isolation
            .map(Isolation::from)
            .unwrap_or(Isolation::Rollback);
        let owner = match request.owner_pid {
            Some(pid) => Some(owner_process(pid).map_err(bad)?),
            None => None,
        };
        let lease = match (request.lease_seconds, owner) {
            (Some(0), _) => return Err(bad("lease_seconds: must be at least 1".into())),
            (Some(seconds), _) => Some(Duration::from_secs(seconds)),
            (None, None) => Some(DEFAULT_RUN_LEASE),
            (None, Some(_)) => None,
        };
        // A run on another address needs a certificate naming it.
        let run_tls = if listen == self.config.listen {
            self.proxy_tls.clone()
        } else {
            tls::resolve(&self.config.tls, &self.config.cache_dir, listen)
                .map_err(|e| Refusal::new(503, "unavailable", format!("TLS for {listen}: {e:#}")))?
        };
        let config = ProxyConfig {
            auth,
            default_isolation: isolation,
            reset_on_close: request.reset_on_close.unwrap_or(true),
            tls: run_tls.map(|t| t.config),
            ..Default::default()
        };
        let id = format!("r{}", self.next_run.fetch_add(1, Ordering::Relaxed));
        let registry = Registry::new(
            self.pool.clone(),
            self.endpoint.clone(),
            UnknownKeys::Create,
            isolation,
        );
        let port = request.port.unwrap_or(0);
        let open = |port| {
            Scope::open(
                id.clone(),
                registry.clone(),
                SocketAddr::new(listen, port),
                config.clone(),
                owner,
                lease,
            )
        };
        let mut scope = open(port).await;
        let taken = matches!(&scope, Err(e) if e.kind() == std::io::ErrorKind::AddrInUse);
        if taken && port != 0 {
            if !request.port_fallback.unwrap_or(false) {
                return Err(Refusal::new(
                    409,
                    "port_in_use",
                    format!(
                        "port {port} on {listen} is in use: choose another port, or 0 for any \
                         free one"
                    ),
                ));
            }
            tracing::info!("port {port} is taken; the run's proxy listens on a free port instead");
            scope = open(0).await;
        }
        let scope = Arc::new(scope.map_err(|e| {
            Refusal::new(
                503,
                "unavailable",
                format!("binding the run's proxy on {listen}:{port}: {e}"),
            )
        })?);
        lock(&self.runs).insert(id, Arc::clone(&scope));
        Ok(scope)
    }

    /// Closes a run's scope and returns it (for its final statistics).
    pub async fn close_run(&self, id: &str) -> Result<Arc<Scope>, Refusal> {
        let scope = lock(&self.runs)
            .remove(id)
            .ok_or_else(|| Refusal::new(404, "not_found", format!("no run {id}")))?;
        scope.close().await;
        Ok(scope)
    }

    /// Asks the daemon to stop; [`Daemon::stopped`] resolves.
    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Resolves once a shutdown was requested (by the API, idleness, or [`Daemon::request_shutdown`]).
    pub async fn stopped(&self) {
        let mut rx = self.shutdown.subscribe();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Releases everything, keeps ready clones as spares for the next start, stops the server.
    pub async fn shutdown(&self) {
        let runs: Vec<Arc<Scope>> = std::mem::take(&mut *lock(&self.runs))
            .into_values()
            .collect();
        for run in runs {
            run.close().await;
        }
        self.api_scope.close().await;
        let retired: Vec<ClonePool> = std::mem::take(&mut *lock(&self.retired));
        for pool in retired {
            if let Err(e) = pool.shutdown(false).await {
                tracing::warn!("cleaning up an old template's clones: {e}");
            }
        }
        if let Err(e) = self.pool().shutdown(true).await {
            tracing::warn!("cleaning up clones: {e}");
        }
        if let Some(server) = self.server.lock().await.take() {
            if let Err(e) = server.stop().await {
                tracing::warn!("stopping the server: {e}");
            }
        }
    }

    /// Nothing is leased, no run is open, no client is connected.
    pub(crate) fn is_idle(&self) -> bool {
        let runs = lock(&self.runs);
        runs.is_empty()
            && self.api_scope.registry.is_empty()
            && self.api_scope.registry.connections_open() == 0
    }
}

impl Daemon {
    /// Starts the server again when it died (kill -9, a crash): on the same port, so every
    /// endpoint and clone name the daemon holds works again.
    async fn restart_a_dead_server(&self) {
        if let Some(server) = self.server.lock().await.as_mut() {
            match server.ensure_running().await {
                Ok(true) => tracing::warn!("the PostgreSQL server had stopped: it runs again"),
                Ok(false) => {}
                Err(e) => tracing::warn!("the PostgreSQL server stopped and cannot start: {e}"),
            }
        }
    }
}

/// A scope found for a request.
pub enum ScopeRef<'a> {
    Api(&'a Scope),
    Run(Arc<Scope>),
}

impl std::ops::Deref for ScopeRef<'_> {
    type Target = Scope;
    fn deref(&self) -> &Scope {
        match self {
            ScopeRef::Api(s) => s,
            ScopeRef::Run(s) => s,
        }
    }
}

/// The process a lease belongs to, identified with its start time so a reused pid is not it.
pub fn owner_process(pid: u32) -> Result<ProcessId, String> {
    let start_ticks = dbsandbox_server::process_start_ticks(pid)
        .ok_or_else(|| format!("owner_pid {pid}: no such process on the daemon's machine"))?;
    Ok(ProcessId { pid, start_ticks })
}

async fn ensure_current(
    config: &DaemonConfig,
    endpoint: &Endpoint,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Template> {
    let template = dbsandbox_pool::ensure_template(endpoint, &config.schema, &|step| {
        progress(&format!("building the template: {step}"))
    })
    .await?;
    let admin = endpoint.admin().await.context("connecting to the server")?;
    let collected = dbsandbox_pool::collect_old_templates(
        &admin,
        &template.project,
        &template.name,
        config.keep_templates,
    )
    .await?;
    if !collected.is_empty() {
        tracing::info!(count = collected.len(), "collected old templates");
    }
    Ok(template)
}

async fn start_pool(
    config: &DaemonConfig,
    endpoint: &Endpoint,
    template: &Template,
) -> anyhow::Result<ClonePool> {
    let strategy = dbsandbox_pool::choose_strategy(
        endpoint,
        template,
        &config.cache_dir.join("clone-strategy.json"),
    )
    .await;
    let mut pool_config = PoolConfig {
        strategy,
        ..Default::default()
    };
    if let Some(size) = config.pool_size {
        pool_config.size = size;
    }
    Ok(ClonePool::start(endpoint, template, pool_config).await?)
}

/// How many repairs `GET /v1/status` lists.
const MAX_RECOVERIES_SHOWN: usize = 20;

/// The embedded server's state root (where private clusters live), or `None` for an external
/// server.
fn server_state_root(config: &ServerConfig) -> Option<PathBuf> {
    if config.external.is_some() {
        return None;
    }
    let account = dbsandbox_server::ServerAccount::choose(config.run_as.as_deref()).ok()?;
    Some(dbsandbox_server::state_root(
        config.cache_dir.as_deref(),
        &account,
    ))
}
