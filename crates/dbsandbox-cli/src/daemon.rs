//! `dbsandbox serve` (the daemon in the foreground), `serve --detach` (attach to the project's
//! daemon or start one, print where it is), `stop`, and the attach-or-start step `run` shares.
//!
//! Exactly one daemon serves a project: it holds `<cache>/daemons/<id>.lock` while it runs.
//! Starters that race each spawn a `serve`; the ones that lose the lock exit with
//! [`EXIT_ALREADY_RUNNING`], and every starter waits for the winner's record.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dbsandbox_control::{ApiClient, Daemon, DaemonConfig, DaemonFiles, DaemonLock, DaemonRecord};
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::progress::Progress;
use crate::settings::{flag_args, parse_duration, SchemaArgs, ServerArgs, Settings, UsageError};

/// A `serve` that found the project's daemon already running exits with this.
pub const EXIT_ALREADY_RUNNING: i32 = 3;

/// An idle daemon's life unless told otherwise.
const DEFAULT_IDLE_TIMEOUT: &str = "15m";

/// A daemon's log is started afresh at the next start beyond this size.
const LOG_LIMIT_BYTES: u64 = 1 << 20;

/// How long a starter waits for a new daemon (its first template build included).
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Options of `serve` beyond the shared ones.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeOptions {
    /// Address of the control API and proxy ports; anything but loopback requires a proxy
    /// --password and makes the API require a token [default: 127.0.0.1].
    #[arg(long, env = "DBSANDBOX_LISTEN")]
    pub listen: Option<String>,
    /// Control API port [default: any free port].
    #[arg(long, env = "DBSANDBOX_API_PORT")]
    pub api_port: Option<u16>,
    /// Port of the proxy for sandboxes acquired through the API [default: any free port].
    #[arg(long, env = "DBSANDBOX_PROXY_PORT")]
    pub proxy_port: Option<u16>,
    /// Password proxy clients must give (required off loopback).
    #[arg(long, env = "DBSANDBOX_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Token API clients must send as `Authorization: Bearer …` [default: none on loopback,
    /// a random one otherwise].
    #[arg(long, env = "DBSANDBOX_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Exit after this long with no lease, run, connection or request (90s, 15m, 1h; 0: never)
    /// [default: 15m].
    #[arg(long, env = "DBSANDBOX_IDLE_TIMEOUT", value_name = "TIME")]
    pub idle_timeout: Option<String>,
}

impl ServeOptions {
    fn to_args(&self) -> Vec<String> {
        flag_args(&[
            ("--listen", self.listen.clone()),
            ("--api-port", self.api_port.map(|p| p.to_string())),
            ("--proxy-port", self.proxy_port.map(|p| p.to_string())),
            ("--idle-timeout", self.idle_timeout.clone()),
        ])
    }
}

fn daemon_config(settings: &Settings, options: &ServeOptions) -> anyhow::Result<DaemonConfig> {
    let listen_text = options
        .listen
        .clone()
        .or(settings.listen.clone())
        .unwrap_or_else(|| "127.0.0.1".into());
    let listen: IpAddr = listen_text
        .parse()
        .map_err(|_| UsageError(format!("--listen {listen_text}: not an IP address")))?;
    let idle = options
        .idle_timeout
        .clone()
        .or(settings.idle_timeout.clone())
        .unwrap_or_else(|| DEFAULT_IDLE_TIMEOUT.into());
    let token = match (&options.token, listen.is_loopback()) {
        (Some(token), _) => Some(token.clone()),
        (None, false) => Some(dbsandbox_control::record::new_token()),
        (None, true) => None,
    };
    Ok(DaemonConfig {
        server: settings.server.clone(),
        schema: settings.schema.clone(),
        pool_size: settings.pool_size,
        keep_templates: settings.keep_templates,
        cache_dir: settings.cache_dir(),
        listen,
        api_port: options.api_port.unwrap_or(0),
        proxy_port: options.proxy_port.unwrap_or(0),
        token,
        password: options.password.clone(),
        idle_timeout: parse_duration(&idle)?,
    })
}

/// A daemon running inside this process: for `serve` and for `run --no-daemon`.
pub struct InProcess {
    pub daemon: Arc<Daemon>,
    pub api: String,
    api_task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    pub async fn start(
        settings: &Settings,
        options: &ServeOptions,
        progress: &Progress,
    ) -> anyhow::Result<InProcess> {
        let config = daemon_config(settings, options)?;
        let api_addr = SocketAddr::new(config.listen, config.api_port);
        let daemon = Daemon::start(config, &|line| progress.say(line)).await?;
        let listener = match tokio::net::TcpListener::bind(api_addr).await {
            Ok(listener) => listener,
            Err(e) => {
                daemon.shutdown().await;
                return Err(e).with_context(|| format!("binding the control API on {api_addr}"));
            }
        };
        let addr = listener.local_addr()?;
        let api = format!("http://{addr}");
        let api_task = tokio::spawn(dbsandbox_control::serve_api(daemon.clone(), listener));
        Ok(InProcess {
            daemon,
            api,
            api_task,
        })
    }

    pub fn client(&self) -> ApiClient {
        ApiClient::new(&self.api, self.daemon.config.token.clone())
    }

    fn record(&self, files: &DaemonFiles, project: &std::path::Path) -> DaemonRecord {
        DaemonRecord {
            id: files.id.clone(),
            pid: std::process::id(),
            api: self.api.clone(),
            proxy: self.daemon.api_scope.proxy_addr.to_string(),
            token: self.daemon.config.token.clone(),
            project: project.to_path_buf(),
            version: env!("CARGO_PKG_VERSION").into(),
            log: files.log.clone(),
        }
    }

    /// Publishes this in-process daemon under its own id (`<project id>.run-<pid>`), so that
    /// `status`, `reset` and `release` find a `run --no-daemon` too; `serve --detach` never
    /// attaches to it, since it ends with its run.
    pub fn publish(&self, settings: &Settings) -> anyhow::Result<(DaemonFiles, DaemonLock)> {
        let id = format!("{}.run-{}", settings.daemon_id(), std::process::id());
        let files = DaemonFiles::new(&settings.cache_dir(), &id);
        let lock = DaemonLock::try_take(&files)?
            .with_context(|| format!("{} is locked by another process", files.lock.display()))?;
        files.write(&self.record(&files, &settings.project_root))?;
        Ok((files, lock))
    }

    pub async fn stop(self) {
        self.daemon.request_shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.api_task).await;
        self.daemon.shutdown().await;
    }
}

/// `dbsandbox serve`: runs the project's daemon until `stop`, a signal, or idleness.
pub async fn serve(settings: Settings, options: ServeOptions) -> anyhow::Result<i32> {
    let files = DaemonFiles::new(&settings.cache_dir(), &settings.daemon_id());
    let Some(_lock) = DaemonLock::try_take(&files)? else {
        let at = files
            .read_live()
            .map(|r| format!(" (pid {}, API {})", r.pid, r.api))
            .unwrap_or_default();
        eprintln!(
            "dbsandbox: a daemon already serves {}{at}; `dbsandbox stop` ends it",
            settings.project_root.display()
        );
        return Ok(EXIT_ALREADY_RUNNING);
    };
    let progress = Progress::new(false);
    let in_process = InProcess::start(&settings, &options, &progress).await?;
    let daemon = in_process.daemon.clone();
    let record = in_process.record(&files, &settings.project_root);
    if let Err(e) = files.write(&record) {
        in_process.stop().await;
        return Err(e);
    }
    progress.finish(&format!(
        "daemon ready: API {} · proxy {} · {} · template {} · idle timeout {}",
        record.api,
        record.proxy,
        daemon.server_description(),
        daemon.template().fingerprint,
        daemon
            .config
            .idle_timeout
            .map(|d| format!("{} s", d.as_secs()))
            .unwrap_or_else(|| "none".into())
    ));
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = daemon.stopped() => {}
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("dbsandbox: daemon stopping");
    in_process.stop().await;
    files.remove_record();
    Ok(0)
}

/// Where a daemon was found, as `serve --detach` prints it.
pub struct Attached {
    pub record: DaemonRecord,
    pub started: bool,
}

impl Attached {
    pub fn client(&self) -> ApiClient {
        ApiClient::new(&self.record.api, self.record.token.clone())
    }
}

/// Attaches to the project's daemon, or starts one (a detached `dbsandbox serve`) and waits for it.
pub async fn attach_or_start(
    settings: &Settings,
    server_args: &ServerArgs,
    schema_args: &SchemaArgs,
    options: &ServeOptions,
    progress: &Progress,
) -> anyhow::Result<Attached> {
    let files = DaemonFiles::new(&settings.cache_dir(), &settings.daemon_id());
    if let Some(record) = answering(&files).await {
        return Ok(Attached {
            record,
            started: false,
        });
    }
    progress.say("starting the dbsandbox daemon");
    if let Some(dir) = files.log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Starters that race share the log (appending); it is started afresh once it grows large.
    let large = std::fs::metadata(&files.log).is_ok_and(|m| m.len() > LOG_LIMIT_BYTES);
    if large {
        let _ = std::fs::remove_file(&files.log);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&files.log)
        .with_context(|| format!("opening {}", files.log.display()))?;
    let exe = std::env::current_exe().context("finding the dbsandbox executable")?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("serve")
        .args(server_args.to_args())
        .args(schema_args.to_args())
        .args(options.to_args())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    if let Some(password) = &options.password {
        command.env("DBSANDBOX_PASSWORD", password);
    }
    if let Some(token) = &options.token {
        command.env("DBSANDBOX_TOKEN", token);
    }
    // Its own session: the test command's Ctrl-C or process-group kill must not reach it.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = command.spawn().context("starting `dbsandbox serve`")?;
    let child_pid = child.id();
    let deadline = Instant::now() + START_TIMEOUT;
    let mut child_done = false;
    loop {
        if let Some(record) = answering(&files).await {
            let _ = std::thread::spawn(move || child.wait());
            let started = record.pid == child_pid;
            return Ok(Attached { record, started });
        }
        if !child_done {
            if let Some(status) = child.try_wait()? {
                child_done = true;
                if status.code() != Some(EXIT_ALREADY_RUNNING) {
                    anyhow::bail!(
                        "the dbsandbox daemon failed to start ({status}); its log, {}, ends with:\n{}",
                        files.log.display(),
                        log_tail(&files.log, 15)
                    );
                }
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the dbsandbox daemon did not become ready within {} s; see {}",
                START_TIMEOUT.as_secs(),
                files.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The project's daemon record when the daemon answers its health check.
async fn answering(files: &DaemonFiles) -> Option<DaemonRecord> {
    let record = files.read_live()?;
    let client = ApiClient {
        timeout: Duration::from_secs(5),
        ..ApiClient::new(&record.api, record.token.clone())
    };
    match client.get("/v1/health").await {
        Ok(reply) if reply.is_success() && reply.body["pid"] == json!(record.pid) => Some(record),
        _ => None,
    }
}

fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `dbsandbox serve --detach`: one JSON line on stdout saying where the daemon is.
pub async fn detach(
    settings: Settings,
    server_args: &ServerArgs,
    schema_args: &SchemaArgs,
    options: ServeOptions,
) -> anyhow::Result<i32> {
    let progress = Progress::new(false);
    let attached =
        attach_or_start(&settings, server_args, schema_args, &options, &progress).await?;
    let refreshed = attached.client().post("/v1/refresh", &json!({})).await?;
    if !refreshed.is_success() {
        anyhow::bail!("checking the template: {}", refreshed.error_message());
    }
    progress.clear();
    let record = &attached.record;
    println!(
        "{}",
        json!({
            "api": record.api,
            "token": record.token,
            "proxy": record.proxy,
            "pid": record.pid,
            "project": record.project,
            "started": attached.started,
            "api_version": dbsandbox_control::API_VERSION,
            "template": refreshed.body,
        })
    );
    Ok(0)
}

/// The live daemons serving this project directory (whatever their schema settings), including
/// those inside `run --no-daemon` processes.
pub fn project_daemons(settings: &Settings) -> Vec<DaemonRecord> {
    let root = std::fs::canonicalize(&settings.project_root)
        .unwrap_or_else(|_| settings.project_root.clone());
    dbsandbox_control::live_daemons(&settings.cache_dir())
        .into_iter()
        .filter(|r| std::fs::canonicalize(&r.project).unwrap_or_else(|_| r.project.clone()) == root)
        .collect()
}

/// `dbsandbox stop`: ends the project's daemon (or every daemon with `--all`).
pub async fn stop(settings: Settings, all: bool) -> anyhow::Result<i32> {
    let cache = settings.cache_dir();
    let records: Vec<DaemonRecord> = if all {
        dbsandbox_control::live_daemons(&cache)
    } else {
        project_daemons(&settings)
    };
    if records.is_empty() {
        println!(
            "no dbsandbox daemon runs for {}",
            if all {
                "any project".to_string()
            } else {
                settings.project_root.display().to_string()
            }
        );
        return Ok(0);
    }
    for record in records {
        let files = DaemonFiles::new(&cache, &record.id);
        let client = ApiClient::new(&record.api, record.token.clone());
        let asked = client.post("/v1/shutdown", &json!({})).await;
        if !asked.as_ref().is_ok_and(|r| r.is_success()) {
            // It does not answer: end it the way its signal handler expects.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(record.pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while files.read_live().is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if files.read_live().is_some() {
            anyhow::bail!(
                "the daemon for {} (pid {}) did not stop within 60 s",
                record.project.display(),
                record.pid
            );
        }
        println!(
            "stopped the dbsandbox daemon for {} (pid {})",
            record.project.display(),
            record.pid
        );
    }
    Ok(0)
}
