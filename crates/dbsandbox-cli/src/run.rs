//! `dbsandbox run -- CMD`: a server, a current template, a warm pool and the proxy around a test
//! command, which gets `DATABASE_URL` and picks its own sandbox key per worker.

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dbsandbox_pool::{ClonePool, PoolConfig, Template};
use dbsandbox_proxy::{ClientAuth, Proxy, ProxyConfig};
use dbsandbox_server::Server;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::control::{ControlSocket, RunRecordInput};
use crate::progress::Progress;
use crate::registry::Registry;
use crate::settings::Settings;

/// The proxy's port unless told otherwise (PgBouncer's 6432 + 111, to stay out of its way).
const DEFAULT_PORT: u16 = 6543;

/// Options of `run` beyond the shared ones.
pub struct RunOptions {
    pub listen: String,
    /// `None`: 6543, or any free port when that is taken.
    pub port: Option<u16>,
    pub password: Option<String>,
    pub command: Vec<String>,
    pub quiet: bool,
    pub isolation: dbsandbox_proxy::Isolation,
    pub reset_on_close: bool,
}

/// Everything a run starts, in the order it is stopped.
struct Session {
    server: Server,
    pool: ClonePool,
    template: Template,
    registry: Arc<Registry>,
    proxy_addr: SocketAddr,
    proxy_task: tokio::task::JoinHandle<std::io::Result<()>>,
    proxy_shutdown: tokio::sync::oneshot::Sender<()>,
    proxy_stats: dbsandbox_proxy::StatsHandle,
    _control: ControlSocket,
    setup_time: Duration,
}

/// Runs the command and returns the exit code dbsandbox should exit with.
pub async fn run(settings: Settings, options: RunOptions) -> anyhow::Result<i32> {
    let started = Instant::now();
    let mut signals = Signals::new()?;
    let progress = Progress::new(options.quiet);
    let session = tokio::select! {
        session = Session::start(&settings, &options, &progress) => session?,
        signal = signals.next() => {
            progress.finish(&format!("interrupted by {signal} during set-up"));
            return Ok(128 + signal.number());
        }
    };
    progress.finish(&format!(
        "{} · template {} ({}) · proxy {} · ready in {:.2} s",
        session.server.describe(),
        session.template.fingerprint.short(),
        if session.template.built {
            format!("built in {:.2} s", session.template.elapsed.as_secs_f64())
        } else {
            "reused".to_string()
        },
        session.proxy_addr,
        session.setup_time.as_secs_f64()
    ));
    let status = run_command(&options.command, &session, &mut signals).await;
    let summary = session.summary(started);
    session.stop().await;
    if !options.quiet {
        eprintln!("{summary}");
    }
    status
}

impl Session {
    async fn start(
        settings: &Settings,
        options: &RunOptions,
        progress: &Progress,
    ) -> anyhow::Result<Session> {
        let started = Instant::now();
        if let Some(file) = &settings.config_file {
            tracing::info!("settings from {}", file.display());
        }
        progress.say("starting PostgreSQL");
        let server = Server::start(&settings.server).await?;
        let endpoint = server.endpoint().clone();
        let admin = endpoint.admin().await.context("connecting to the server")?;
        dbsandbox_pool::reap_dead_owners(&admin).await?;

        progress.say("checking the template");
        let template = dbsandbox_pool::ensure_template(&endpoint, &settings.schema, &|step| {
            progress.say(&format!("building the template: {step}"))
        })
        .await?;
        let collected = dbsandbox_pool::collect_old_templates(
            &admin,
            &template.project,
            &template.name,
            settings.keep_templates,
        )
        .await?;
        if !collected.is_empty() {
            tracing::info!(count = collected.len(), "collected old templates");
        }
        let strategy = dbsandbox_pool::choose_strategy(
            &endpoint,
            &template,
            &settings.cache_dir().join("clone-strategy.json"),
        )
        .await;
        let mut pool_config = PoolConfig {
            strategy,
            ..Default::default()
        };
        if let Some(size) = settings.pool_size {
            pool_config.size = size;
        }
        let pool = ClonePool::start(&endpoint, &template, pool_config).await?;
        let registry = Registry::new(pool.clone(), endpoint.clone());

        let listen: std::net::IpAddr = options
            .listen
            .parse()
            .with_context(|| format!("--listen {}: not an IP address", options.listen))?;
        let auth = match (&options.password, listen.is_loopback()) {
            (Some(password), _) => ClientAuth::Password(password.clone()),
            (None, true) => ClientAuth::Trust,
            (None, false) => anyhow::bail!(
                "--listen {listen} is reachable from other machines: set a password with --password or DBSANDBOX_PASSWORD"
            ),
        };
        let config = || ProxyConfig {
            auth: auth.clone(),
            default_isolation: options.isolation,
            reset_on_close: options.reset_on_close,
            ..Default::default()
        };
        let proxy = match Proxy::bind(
            SocketAddr::new(listen, options.port.unwrap_or(DEFAULT_PORT)),
            config(),
            registry.clone(),
        )
        .await
        {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && options.port.is_none() => {
                tracing::info!(
                    "port {DEFAULT_PORT} is taken; the proxy listens on a free port instead"
                );
                Proxy::bind(SocketAddr::new(listen, 0), config(), registry.clone()).await
            }
            other => other,
        }
        .with_context(|| {
            format!(
                "listening on {listen}:{} (choose another with --port)",
                options.port.unwrap_or(DEFAULT_PORT)
            )
        })?;
        let proxy_addr = proxy.local_addr();
        registry.attach_sandboxes(proxy.sandboxes());
        let proxy_stats = proxy.stats_handle();
        let (proxy_shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let proxy_task = tokio::spawn(proxy.serve(async move {
            let _ = shutdown_rx.await;
        }));
        let control = ControlSocket::start(
            &settings.cache_dir(),
            RunRecordInput {
                proxy: proxy_addr.to_string(),
                project_root: settings.project_root.clone(),
            },
            registry.clone(),
        )?;
        Ok(Session {
            server,
            pool,
            template,
            registry,
            proxy_addr,
            proxy_task,
            proxy_shutdown,
            proxy_stats,
            _control: control,
            setup_time: started.elapsed(),
        })
    }

    fn summary(&self, started: Instant) -> String {
        let keys = self.registry.snapshot();
        let pool = self.pool.stats();
        let proxy = self.proxy_stats.snapshot();
        let mut names: Vec<&str> = keys.keys().map(String::as_str).collect();
        if names.len() > 8 {
            names.truncate(8);
            names.push("…");
        }
        let total = keys
            .values()
            .filter_map(|k| k.sandbox.as_ref())
            .fold(crate::registry::SandboxCounts::default(), |sum, s| {
                sum.plus(s)
            });
        let (statements, absorbed, recovered, resets) = (
            total.statements,
            total.commits_absorbed,
            total.errors_recovered,
            total.resets,
        );
        let sandboxes = if keys.values().any(|k| k.sandbox.is_some()) {
            format!(
                "; rollback sandboxes: {statements} statement{}, {absorbed} commit{} absorbed, {recovered} error{} recovered, {resets} reset{}",
                plural(statements),
                plural(absorbed),
                plural(recovered),
                plural(resets)
            )
        } else {
            String::new()
        };
        let mut summary = format!(
            "dbsandbox: {} key{} served ({}), {} connection{}, {} clone{} made{}{sandboxes}; set-up {:.2} s, total {:.2} s",
            keys.len(),
            plural(keys.len() as u64),
            if names.is_empty() { "none".to_string() } else { names.join(", ") },
            proxy.connections_total,
            plural(proxy.connections_total),
            pool.created,
            plural(pool.created),
            if pool.adopted > 0 {
                format!(" ({} adopted from the last run)", pool.adopted)
            } else {
                String::new()
            },
            self.setup_time.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
        for line in crate::registry::key_lines(&keys, 16) {
            summary.push_str("\n  ");
            summary.push_str(&line);
        }
        summary
    }

    /// Stops the proxy, returns every clone, keeps spare clones for the next run, stops the server.
    async fn stop(self) {
        let _ = self.proxy_shutdown.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.proxy_task).await;
        self.registry.release_all();
        if let Err(e) = self.pool.shutdown(true).await {
            tracing::warn!("cleaning up clones: {e}");
        }
        if let Err(e) = self.server.stop().await {
            tracing::warn!("stopping the server: {e}");
        }
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Runs the test command with the sandbox environment; forwards signals; returns its exit code.
async fn run_command(
    command: &[String],
    session: &Session,
    signals: &mut Signals,
) -> anyhow::Result<i32> {
    let (program, args) = command.split_first().context("no command given after --")?;
    let port = session.proxy_addr.port().to_string();
    let host = session.proxy_addr.ip().to_string();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env(
            "DATABASE_URL",
            format!("postgres://dbsandbox@{host}:{port}/default"),
        )
        .env("DBSANDBOX_HOST", &host)
        .env("DBSANDBOX_PORT", &port)
        .env("PGHOST", &host)
        .env("PGPORT", &port)
        .env("PGUSER", "dbsandbox")
        .env("PGDATABASE", "default")
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let pid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    let status: ExitStatus = tokio::select! {
        status = child.wait() => status?,
        signal = signals.next() => {
            // A terminal Ctrl-C already reached the command (same process group); a signal sent
            // to dbsandbox alone did not: forward it if the command is still running shortly after.
            let grace = if signal == SignalName::Interrupt { Duration::from_secs(2) } else { Duration::ZERO };
            match tokio::time::timeout(grace, child.wait()).await {
                Ok(status) => status?,
                Err(_) => {
                    if let Some(pid) = pid {
                        let _ = nix::sys::signal::kill(pid, signal.as_nix());
                    }
                    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                        Ok(status) => status?,
                        Err(_) => {
                            let _ = child.kill().await;
                            child.wait().await?
                        }
                    }
                }
            }
        }
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(1)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignalName {
    Interrupt,
    Terminate,
}

impl SignalName {
    fn number(self) -> i32 {
        self.as_nix() as i32
    }

    fn as_nix(self) -> nix::sys::signal::Signal {
        match self {
            SignalName::Interrupt => nix::sys::signal::Signal::SIGINT,
            SignalName::Terminate => nix::sys::signal::Signal::SIGTERM,
        }
    }
}

impl std::fmt::Display for SignalName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignalName::Interrupt => "SIGINT",
            SignalName::Terminate => "SIGTERM",
        })
    }
}

/// SIGINT and SIGTERM, caught so that dbsandbox cleans up instead of dying.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    async fn next(&mut self) -> SignalName {
        tokio::select! {
            _ = self.interrupt.recv() => SignalName::Interrupt,
            _ = self.terminate.recv() => SignalName::Terminate,
        }
    }
}
