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

use crate::output::{errln, outln};
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
    /// --password [default: 127.0.0.1]. The API always requires the daemon's token.
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
    /// Token API clients must send as `Authorization: Bearer …` [default: a random one, kept in
    /// the daemon's record (readable by its owner only) and printed by `serve --detach`].
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

/// The daemon's configuration; bad input (listen address, password, idle timeout) is a
/// [`UsageError`], found before any daemon is started.
pub fn daemon_config(settings: &Settings, options: &ServeOptions) -> anyhow::Result<DaemonConfig> {
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
    dbsandbox_control::daemon::proxy_auth(listen, &options.password)
        .map_err(|e| UsageError(e.0))?;
    // On loopback too: any local user could otherwise stop the daemon or open runs on it.
    let token = options
        .token
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(dbsandbox_control::record::new_token);
    Ok(DaemonConfig {
        server: settings.server.clone(),
        schema: settings.schema.clone(),
        pool_size: settings.pool_size,
        keep_templates: settings.keep_templates,
        cache_dir: settings.cache_dir(),
        listen,
        api_port: options.api_port.unwrap_or(0),
        proxy_port: options.proxy_port.unwrap_or(0),
        token: Some(token),
        password: options.password.clone(),
        idle_timeout: parse_duration(&idle)?,
        tls: settings.tls.clone(),
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
        // Bound first: a port in use is found before the server and template are set up.
        let listener = tokio::net::TcpListener::bind(api_addr)
            .await
            .map_err(|e| dbsandbox_control::daemon::bind_error("the control API", api_addr, e))?;
        let daemon = Daemon::start(config, &|line| progress.say(line)).await?;
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

    /// Takes the lock of an in-process daemon's own id (`<project id>.run-<pid>`) before it
    /// starts, so that `gc` knows a daemon is starting; [`InProcess::publish`] follows.
    pub fn claim(settings: &Settings) -> anyhow::Result<(DaemonFiles, DaemonLock)> {
        let id = format!("{}.run-{}", settings.daemon_id(), std::process::id());
        let files = DaemonFiles::new(&settings.cache_dir(), &id);
        let lock = DaemonLock::try_take(&files)?
            .with_context(|| format!("{} is locked by another process", files.lock.display()))?;
        Ok((files, lock))
    }

    /// Publishes this in-process daemon's record under the id [`InProcess::claim`] took, so
    /// that `status`, `gc`, `reset` and `release` find a `run --no-daemon` too; `serve --detach`
    /// never attaches to it, since it ends with its run.
    pub fn publish(&self, settings: &Settings, files: &DaemonFiles) -> anyhow::Result<()> {
        files.write(&self.record(files, &settings.project_root))
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
        errln!(
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
    errln!("dbsandbox: daemon stopping");
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
    // Bad input is refused here, not by the daemon this would start (whose exit code and log
    // would be all the user sees).
    daemon_config(settings, options)?;
    let files = DaemonFiles::new(&settings.cache_dir(), &settings.daemon_id());
    if let Some(record) = answering(&files).await {
        return Ok(Attached {
            record,
            started: false,
        });
    }
    progress.say("starting the dbsandbox daemon");
    if let Some(dir) = files.log.parent() {
        dbsandbox_control::record::private_dir(dir)?;
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
    // What this start writes comes after this offset; earlier starts' lines are not its story.
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
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
                    let message = format!(
                        "the dbsandbox daemon failed to start ({status}); it wrote to {}:\n{}",
                        files.log.display(),
                        log_since(&files.log, log_start, 15)
                    );
                    // The daemon found bad input (a port in use): so is it for this command.
                    if status.code() == Some(2) {
                        return Err(UsageError(message).into());
                    }
                    anyhow::bail!(message);
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

/// The last `lines` lines written to `path` after byte `offset`.
fn log_since(path: &std::path::Path, offset: u64, lines: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
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
    outln!(
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
        outln!(
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
        outln!(
            "stopped the dbsandbox daemon for {} (pid {})",
            record.project.display(),
            record.pid
        );
    }
    Ok(0)
}
