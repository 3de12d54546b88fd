//! `dbsandbox run -- CMD`: a server, a current template, a warm pool and the proxy around a test
//! command, which gets `DATABASE_URL` and picks its own sandbox key per worker.

use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;
use dbsandbox_control::registry::{key_lines, KeyStats, SandboxCounts};
use dbsandbox_control::ApiClient;
use serde_json::{json, Value};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::daemon::{attach_or_start, InProcess, ServeOptions};
use crate::output::errln;
use crate::progress::Progress;
use crate::settings::{SchemaArgs, ServerArgs, Settings, UsageError};

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
    /// Run the daemon inside this process, for this command only.
    pub no_daemon: bool,
    /// For the daemon `run` starts when none runs.
    pub serve: ServeOptions,
    pub server_args: ServerArgs,
    pub schema_args: SchemaArgs,
}

/// Where the run's sandboxes come from: the project's daemon, or one inside this process.
enum Host {
    Daemon {
        pid: u32,
        started: bool,
    },
    InProcess {
        daemon: InProcess,
        _published: (
            dbsandbox_control::DaemonFiles,
            dbsandbox_control::DaemonLock,
        ),
    },
}

/// A run's scope on a daemon.
pub(crate) struct Session {
    host: Host,
    pub(crate) client: ApiClient,
    pub(crate) id: String,
    proxy: String,
    /// The generated CA the proxy's certificate is signed by, when the daemon made it.
    tls_ca_cert: Option<String>,
    pub(crate) template: Value,
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
    if let Some(notice) = session.template["notice"].as_str() {
        progress.finish(notice);
    }
    progress.finish(&format!(
        "{} · template {} ({}) · proxy {} · ready in {:.2} s",
        session.describe_host(),
        session.template["fingerprint"].as_str().unwrap_or("?"),
        if session.template["built"] == json!(true) {
            format!(
                "built in {:.2} s",
                session.template["build_seconds"].as_f64().unwrap_or(0.0)
            )
        } else {
            "reused".to_string()
        },
        session.proxy,
        session.setup_time.as_secs_f64()
    ));
    let status = run_command(&options.command, &session, &mut signals).await;
    let summary = session.finish(started).await;
    match summary {
        Ok(summary) if !options.quiet => errln!("{summary}"),
        Ok(_) => {}
        Err(e) => errln!("dbsandbox: closing the run: {e:#}"),
    }
    status
}

impl Session {
    pub(crate) async fn start(
        settings: &Settings,
        options: &RunOptions,
        progress: &Progress,
    ) -> anyhow::Result<Session> {
        let started = Instant::now();
        if let Some(file) = &settings.config_file {
            tracing::info!("settings from {}", file.display());
        }
        check_proxy_options(options)?;
        let (host, client) = if options.no_daemon {
            let claimed = InProcess::claim(settings)?;
            let daemon = InProcess::start(settings, &options.serve, progress).await?;
            let client = daemon.client();
            if let Err(e) = daemon.publish(settings, &claimed.0) {
                daemon.stop().await;
                return Err(e);
            }
            let published = claimed;
            (
                Host::InProcess {
                    daemon,
                    _published: published,
                },
                client,
            )
        } else {
            let attached = attach_or_start(
                settings,
                &options.server_args,
                &options.schema_args,
                &options.serve,
                progress,
            )
            .await?;
            let client = attached.client();
            (
                Host::Daemon {
                    pid: attached.record.pid,
                    started: attached.started,
                },
                client,
            )
        };
        let opened = async {
            progress.say("checking the template");
            let template = expect(
                client.post("/v1/refresh", &json!({})).await,
                "checking the template",
            )?;
            let opened = client
                .post(
                    "/v1/runs",
                    &json!({
                        "owner_pid": std::process::id(),
                        "isolation": match options.isolation {
                            dbsandbox_proxy::Isolation::Rollback => "rollback",
                            dbsandbox_proxy::Isolation::Database => "database",
                        },
                        "reset_on_close": options.reset_on_close,
                        "listen": options.listen,
                        "port": options.port.unwrap_or(DEFAULT_PORT),
                        // Only the default port may move: a URL written down with an explicit
                        // one would reach whatever holds it.
                        "port_fallback": options.port.is_none(),
                        "password": options.password,
                    }),
                )
                .await
                .context("opening the run")?;
            // The daemon refused the run's options (a taken port, a bad address): bad input.
            if opened.status == 400 || opened.status == 409 {
                return Err(
                    UsageError(format!("opening the run: {}", opened.error_message())).into(),
                );
            }
            let run = expect(Ok(opened), "opening the run")?;
            Ok::<_, anyhow::Error>((template, run))
        }
        .await;
        let (template, run) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                if let Host::InProcess { daemon, _published } = host {
                    daemon.stop().await;
                    _published.0.remove_record();
                }
                return Err(e);
            }
        };
        let proxy = run["proxy"].as_str().unwrap_or_default().to_string();
        if options.port.is_none() && !proxy.ends_with(&format!(":{DEFAULT_PORT}")) {
            tracing::info!("port {DEFAULT_PORT} is taken; the proxy listens on {proxy} instead");
        }
        Ok(Session {
            host,
            id: run["id"].as_str().unwrap_or_default().to_string(),
            tls_ca_cert: run["tls_ca_cert"].as_str().map(str::to_owned),
            proxy,
            client,
            template,
            setup_time: started.elapsed(),
        })
    }

    pub(crate) fn describe_host(&self) -> String {
        match &self.host {
            Host::Daemon { pid, started: true } => format!("daemon started (pid {pid})"),
            Host::Daemon {
                pid,
                started: false,
            } => format!("daemon attached (pid {pid})"),
            Host::InProcess { daemon, .. } => daemon.daemon.server_description().to_string(),
        }
    }

    /// Closes the run's scope (releasing its keys) and says what it served.
    pub(crate) async fn finish(self, started: Instant) -> anyhow::Result<String> {
        let closed = expect(
            self.client.delete(&format!("/v1/runs/{}", self.id)).await,
            "closing the run",
        );
        let pool = self.client.get("/v1/pool").await.ok().map(|r| r.body);
        if let Host::InProcess { daemon, _published } = self.host {
            daemon.stop().await;
            _published.0.remove_record();
        }
        let closed = closed?;
        let keys: BTreeMap<String, KeyStats> =
            serde_json::from_value(closed["keys"].clone()).unwrap_or_default();
        let connections = closed["connections_total"].as_u64().unwrap_or(0);
        Ok(summary(
            &keys,
            connections,
            pool.as_ref(),
            self.setup_time,
            started,
        ))
    }
}

/// The run's own proxy options, checked before any daemon is asked (exit 2 when bad).
fn check_proxy_options(options: &RunOptions) -> anyhow::Result<()> {
    let listen: std::net::IpAddr = options
        .listen
        .parse()
        .map_err(|_| UsageError(format!("--listen {}: not an IP address", options.listen)))?;
    dbsandbox_control::daemon::proxy_auth(listen, &options.password)
        .map_err(|e| UsageError(e.0))?;
    Ok(())
}

/// The reply's body when it succeeded; its error as a message otherwise.
fn expect(reply: anyhow::Result<dbsandbox_control::Reply>, doing: &str) -> anyhow::Result<Value> {
    let reply = reply.with_context(|| doing.to_string())?;
    if !reply.is_success() {
        anyhow::bail!("{doing}: {}", reply.error_message());
    }
    Ok(reply.body)
}

fn summary(
    keys: &BTreeMap<String, KeyStats>,
    connections: u64,
    pool: Option<&Value>,
    setup_time: Duration,
    started: Instant,
) -> String {
    let mut names: Vec<&str> = keys.keys().map(String::as_str).collect();
    if names.len() > 8 {
        names.truncate(8);
        names.push("…");
    }
    let total = keys
        .values()
        .filter_map(|k| k.sandbox.as_ref())
        .fold(SandboxCounts::default(), |sum, s| sum.plus(s));
    let sandboxes = if keys.values().any(|k| k.sandbox.is_some()) {
        format!(
            "; rollback sandboxes: {}, {} absorbed, {} recovered, {}",
            count(total.statements, "statement"),
            count(total.commits_absorbed, "commit"),
            count(total.errors_recovered, "error"),
            count(total.resets, "reset")
        )
    } else {
        String::new()
    };
    let clones: u64 = keys.values().map(|k| k.clones_used).sum();
    let pool = pool
        .map(|p| {
            format!(
                " (pool: {} ready, {} made by this daemon)",
                p["ready"], p["created"]
            )
        })
        .unwrap_or_default();
    let mut summary =
        format!(
        "dbsandbox: {} served ({}), {}, {} used{pool}{sandboxes}; set-up {:.2} s, total {:.2} s",
        count(keys.len() as u64, "key"),
        if names.is_empty() { "none".to_string() } else { names.join(", ") },
        count(connections, "connection"),
        count(clones, "clone"),
        setup_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    for line in key_lines(keys, 16) {
        summary.push_str("\n  ");
        summary.push_str(&line);
    }
    summary
}

/// "1 clone", "2 clones".
fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Runs the test command with the sandbox environment; forwards signals; returns its exit code.
async fn run_command(
    command: &[String],
    session: &Session,
    signals: &mut Signals,
) -> anyhow::Result<i32> {
    let (program, args) = command.split_first().context("no command given after --")?;
    let (host, port) = session
        .proxy
        .rsplit_once(':')
        .context("the daemon gave no proxy address")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let url_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let mut command = tokio::process::Command::new(program);
    command.env("DBSANDBOX_URL", &session.client.base);
    command.env("DBSANDBOX_RUN", &session.id);
    if let Some(token) = &session.client.token {
        command.env("DBSANDBOX_TOKEN", token);
    }
    if let Some(ca) = &session.tls_ca_cert {
        // For `sslmode=verify-full`; libpq (and what reads PGSSLROOTCERT) then also checks the
        // chain under `sslmode=require`, which this CA passes. A user's own setting stays.
        command.env("DBSANDBOX_SSLROOTCERT", ca);
        if std::env::var_os("PGSSLROOTCERT").is_none() {
            command.env("PGSSLROOTCERT", ca);
        }
    }
    let mut child = command
        .args(args)
        .env(
            "DATABASE_URL",
            format!("postgres://dbsandbox@{url_host}:{port}/default"),
        )
        .env("DBSANDBOX_HOST", &host)
        .env("DBSANDBOX_PORT", port)
        .env("PGHOST", &host)
        .env("PGPORT", port)
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
