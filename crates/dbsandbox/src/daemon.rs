//! Finding or starting the project's daemon, and calling its control API.
//!
//! Discovery follows the daemon contract (`crates/dbsandbox-control/API.md`):
//!
//! 1. `DBSANDBOX_URL` set (e.g. under `dbsandbox run`): use it, with `DBSANDBOX_TOKEN` and the
//!    run scope `DBSANDBOX_RUN` when set.
//! 2. Otherwise run `$DBSANDBOX_BIN` (else `dbsandbox` from `PATH`) as `serve --detach` in the
//!    project directory; it attaches to the project's daemon or starts one and prints one JSON
//!    line with the API address.
//!
//! The result is cached per (project directory, migrations) for the life of the process, so a
//! process runs `serve --detach` at most once per project.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::http::{self, Endpoint};
use crate::{Error, Result, SandboxInfo};

/// The control API version this crate speaks; a daemon reporting another is refused.
pub const API_VERSION: u64 = 1;

/// Requests that may wait for the pool to make a clone get this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to one dbsandbox daemon's control API.
#[derive(Debug)]
pub struct Daemon {
    endpoint: Endpoint,
    api_url: String,
    token: Option<String>,
    run: Option<String>,
    proxy: Option<String>,
    pid: Option<u32>,
    /// Rollback sandboxes `#[dbsandbox::test]` finished with, kept for the next test of this
    /// process (reset before reuse). The daemon releases them when the process exits.
    pub(crate) spare: Mutex<Vec<SandboxInfo>>,
}

/// The line `dbsandbox serve --detach` prints.
#[derive(Debug, Deserialize)]
struct DetachLine {
    api: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    proxy: Option<String>,
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    api_version: Option<u64>,
}

/// Refuses a daemon (or binary) whose control API version, as it reported it, is not
/// [`API_VERSION`]; `origin` says where it was found.
fn check_api_version(reported: Option<u64>, origin: &str) -> Result<()> {
    if reported == Some(API_VERSION) {
        return Ok(());
    }
    let speaks = match reported {
        Some(v) => format!("speaks control API v{v}"),
        None => "reports no control API version (it is older than the versioned API)".into(),
    };
    Err(Error::Daemon(format!(
        "the dbsandbox daemon found through {origin} {speaks}, but this dbsandbox crate ({}) \
         speaks v{API_VERSION}: install the dbsandbox CLI of the same release \
         (`cargo install --locked dbsandbox-cli --version {}`), or use a dbsandbox crate that \
         matches the CLI (`dbsandbox --version` names its control API)",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
    )))
}

type Cache = Mutex<HashMap<(PathBuf, Option<PathBuf>), Arc<Daemon>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The project directory used when none is given: `$CARGO_MANIFEST_DIR` (set by `cargo test`
/// and `cargo nextest` for the crate under test), else the current directory.
pub(crate) fn default_project_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

impl Daemon {
    /// The daemon for the default project directory (see [`Daemon::discover_in`]).
    pub fn discover() -> Result<Arc<Daemon>> {
        Daemon::discover_in(&default_project_dir(), None)
    }

    /// The daemon serving `project_dir` (the directory of `dbsandbox.toml`, searched upward by
    /// the daemon), with `migrations` (relative to `project_dir`) overriding the toml's. Uses
    /// `DBSANDBOX_URL` when set (then `project_dir` and `migrations` are not used: the daemon
    /// of `dbsandbox run` decides), else runs `dbsandbox serve --detach` once per process.
    pub fn discover_in(project_dir: &Path, migrations: Option<&Path>) -> Result<Arc<Daemon>> {
        if let Some(url) = env_nonempty("DBSANDBOX_URL") {
            let key = (PathBuf::from(format!("env:{url}")), None);
            let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
            if let Some(d) = cache.get(&key) {
                return Ok(d.clone());
            }
            let mut daemon = Daemon::connect(&url, env_nonempty("DBSANDBOX_TOKEN").as_deref())?;
            let health = daemon.request("GET", "/v1/health", None)?;
            check_api_version(
                health.get("api_version").and_then(Value::as_u64),
                &format!("DBSANDBOX_URL={url}"),
            )?;
            daemon.run = env_nonempty("DBSANDBOX_RUN");
            let daemon = Arc::new(daemon);
            cache.insert(key, daemon.clone());
            return Ok(daemon);
        }
        let migrations = migrations.map(|m| project_dir.join(m));
        let key = (project_dir.to_path_buf(), migrations.clone());
        // Held while `serve --detach` runs, so the threads of one process run it once.
        let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = cache.get(&key) {
            return Ok(d.clone());
        }
        let daemon = Arc::new(serve_detach(project_dir, migrations.as_deref())?);
        cache.insert(key, daemon.clone());
        Ok(daemon)
    }

    /// A client for the daemon whose API is at `api_url` (`http://127.0.0.1:PORT`), without any
    /// discovery. Makes no request.
    pub fn connect(api_url: &str, token: Option<&str>) -> Result<Daemon> {
        Ok(Daemon {
            endpoint: Endpoint::parse(api_url)?,
            api_url: api_url.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            run: None,
            proxy: None,
            pid: None,
            spare: Mutex::new(Vec::new()),
        })
    }

    /// The API's base URL.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The proxy address (`host:port`), when `serve --detach` reported it.
    pub fn proxy(&self) -> Option<&str> {
        self.proxy.as_deref()
    }

    /// The daemon's pid, when `serve --detach` reported it.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The run scope (`$DBSANDBOX_RUN`) sandboxes are acquired in, if any.
    pub fn run(&self) -> Option<&str> {
        self.run.as_deref()
    }

    /// Sends a request and returns the JSON answer (`Value::Null` for an empty body). Non-2xx
    /// answers become [`Error::Api`].
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string().into_bytes());
        let response = http::send(
            &self.endpoint,
            method,
            path,
            self.token.as_deref(),
            body.as_deref(),
            REQUEST_TIMEOUT,
        )?;
        if !(200..300).contains(&response.status) {
            return Err(api_error(response.status, &response.body));
        }
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&response.body).map_err(|e| {
            Error::Http(format!(
                "{method} {path}: the answer is not JSON ({e}): {}",
                excerpt(&response.body)
            ))
        })
    }

    /// `GET /v1/status`: daemon, server (with the admin URL `server.url`), template and pool.
    pub fn status(&self) -> Result<Value> {
        self.request("GET", "/v1/status", None)
    }

    /// `GET /v1/sandboxes`: the API leases and the keys of every run.
    pub fn sandboxes(&self) -> Result<Vec<SandboxInfo>> {
        #[derive(Deserialize)]
        struct List {
            sandboxes: Vec<SandboxInfo>,
        }
        let value = self.request("GET", "/v1/sandboxes", None)?;
        let list: List = serde_json::from_value(value)
            .map_err(|e| Error::Http(format!("GET /v1/sandboxes: unexpected answer: {e}")))?;
        Ok(list.sandboxes)
    }

    /// `GET /v1/sandboxes/{key}`: one sandbox with its statistics and written tables.
    pub fn sandbox(&self, key: &str) -> Result<SandboxInfo> {
        let value = self.request("GET", &self.key_path(key, "")?, None)?;
        parse_info(value, "GET /v1/sandboxes/{key}")
    }

    /// `/v1/sandboxes/{key}{suffix}` plus `?run=` when in a run scope.
    pub(crate) fn key_path(&self, key: &str, suffix: &str) -> Result<String> {
        if !crate::key::is_valid_key(key) {
            return Err(Error::InvalidArgument(format!(
                "invalid sandbox key {key:?}: keys are 1 to 48 characters of [A-Za-z0-9_-]"
            )));
        }
        let mut path = format!("/v1/sandboxes/{key}{suffix}");
        if let Some(run) = &self.run {
            path.push_str("?run=");
            path.push_str(&http::encode_query_value(run));
        }
        Ok(path)
    }
}

pub(crate) fn parse_info(value: Value, what: &str) -> Result<SandboxInfo> {
    serde_json::from_value(value)
        .map_err(|e| Error::Http(format!("{what}: unexpected Sandbox object: {e}")))
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// Maps an error answer to [`Error::Api`].
pub(crate) fn api_error(status: u16, body: &[u8]) -> Error {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => Error::Api {
            status,
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) => Error::Api {
            status,
            code: format!("http_{status}"),
            message: excerpt(body),
        },
    }
}

/// The binary to run: `$DBSANDBOX_BIN`, else `dbsandbox` (looked up on `PATH`).
fn binary() -> PathBuf {
    std::env::var_os("DBSANDBOX_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("dbsandbox"))
}

/// Runs `dbsandbox serve --detach` in `project_dir` and reads its JSON line.
fn serve_detach(project_dir: &Path, migrations: Option<&Path>) -> Result<Daemon> {
    serve_detach_retrying(&binary(), project_dir, migrations)
}

fn serve_detach_retrying(
    bin: &Path,
    project_dir: &Path,
    migrations: Option<&Path>,
) -> Result<Daemon> {
    let mut attempt = 1;
    loop {
        match serve_detach_with(bin, project_dir, migrations) {
            Ok(daemon) => return Ok(daemon),
            // It ran and failed: often a transient race (a daemon starting or stopping while
            // another process attaches). A missing binary is not retried.
            Err(e) if attempt < DETACH_ATTEMPTS && is_retryable(&e) => {
                std::thread::sleep(Duration::from_millis(250 * attempt as u64));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How many times `serve --detach` is tried before its error is reported.
const DETACH_ATTEMPTS: u32 = 5;

fn is_retryable(e: &Error) -> bool {
    matches!(e, Error::Daemon(m) if !m.contains(NOT_FOUND_MARK))
}

const NOT_FOUND_MARK: &str = "not found. Install the dbsandbox CLI";

fn serve_detach_with(bin: &Path, project_dir: &Path, migrations: Option<&Path>) -> Result<Daemon> {
    let mut command = Command::new(bin);
    command.arg("serve").arg("--detach");
    if let Some(m) = migrations {
        command.arg("--migrations").arg(m);
    }
    command
        .current_dir(project_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!(
        "`{} serve --detach{}` in {}",
        bin.display(),
        migrations
            .map(|m| format!(" --migrations {}", m.display()))
            .unwrap_or_default(),
        project_dir.display()
    );
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Daemon(format!(
                "cannot run {shown}: {} {NOT_FOUND_MARK} \
                 (`cargo install --locked dbsandbox-cli`, or `pip install dbsandbox`) and put it on \
                 PATH, set DBSANDBOX_BIN to its path, or run the tests under \
                 `dbsandbox run -- cargo test` (which sets DBSANDBOX_URL)",
                bin.display()
            ))
        } else {
            Error::Daemon(format!("cannot run {shown}: {e}"))
        }
    })?;

    // Drain stderr on a thread: the detached daemon may keep the pipe open, so never wait for
    // its EOF unless the command failed.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                match stderr.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) if buf.len() < 64 * 1024 => buf.extend_from_slice(&chunk[..n]),
                    Ok(_) => {}
                }
            }
            let _ = tx.send(buf);
        });
    }
    let stderr_text = |rx: &std::sync::mpsc::Receiver<Vec<u8>>| {
        rx.recv_timeout(Duration::from_secs(2))
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default()
    };

    // The first non-empty stdout line is the JSON answer.
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut reader = BufReader::new(stdout);
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) if line.trim().is_empty() => continue,
                Ok(_) => break,
                Err(e) => {
                    return Err(Error::Daemon(format!(
                        "{shown}: cannot read its output: {e}"
                    )))
                }
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::Daemon(format!("{shown}: {e}")))?;
    if !status.success() {
        let err = stderr_text(&rx);
        return Err(Error::Daemon(format!(
            "{shown} failed ({status}){}",
            if err.is_empty() {
                String::new()
            } else {
                format!(":\n{err}")
            }
        )));
    }
    let detach: DetachLine = serde_json::from_str(line.trim()).map_err(|e| {
        Error::Daemon(format!(
            "{shown} printed {:?}, not the expected JSON line ({e})",
            line.trim()
        ))
    })?;
    check_api_version(detach.api_version, &shown)?;
    let mut daemon = Daemon::connect(&detach.api, detach.token.as_deref())?;
    daemon.proxy = detach.proxy;
    daemon.pid = detach.pid;
    // A run scope may still be given explicitly (a run's daemon found through serve --detach).
    daemon.run = env_nonempty("DBSANDBOX_RUN");
    Ok(daemon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_error_bodies() {
        let e = api_error(
            409,
            br#"{"error":{"code":"key_in_use","message":"key t1 is held"}}"#,
        );
        assert_eq!(e.code(), Some("key_in_use"));
        assert!(e.to_string().contains("key t1 is held"), "{e}");
        assert!(e.to_string().contains("409"), "{e}");
        let e = api_error(502, b"<html>bad gateway</html>");
        assert_eq!(e.code(), Some("http_502"));
        assert!(e.to_string().contains("bad gateway"), "{e}");
        let e = api_error(500, &[b'x'; 1000]);
        assert!(e.to_string().len() < 500);
    }

    #[test]
    fn key_paths_validate_and_scope() {
        let mut d = Daemon::connect("http://127.0.0.1:1", None).unwrap();
        assert_eq!(
            d.key_path("k1", "/reset").unwrap(),
            "/v1/sandboxes/k1/reset"
        );
        assert!(d.key_path("../x", "").is_err());
        assert!(d.key_path("", "").is_err());
        d.run = Some("r 3".into());
        assert_eq!(d.key_path("k1", "").unwrap(), "/v1/sandboxes/k1?run=r%203");
    }

    #[cfg(unix)]
    fn fake_bin(dir: &Path, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("fake-dbsandbox");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[cfg(unix)]
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dbsandbox-rs-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn missing_binary_says_how_to_fix() {
        let err = serve_detach_with(
            Path::new("/nonexistent/dbsandbox-for-test"),
            Path::new("."),
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("not found"), "{text}");
        assert!(text.contains("DBSANDBOX_BIN"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn serve_detach_reads_the_json_line_and_passes_arguments() {
        let dir = scratch("ok");
        // Progress on stderr, a blank line, then the answer; the arguments and cwd are echoed
        // back through the token field so the test can check them.
        let bin = fake_bin(
            &dir,
            r#"echo "starting…" >&2
echo
echo "{\"api\": \"http://127.0.0.1:41234\", \"token\": \"$*|$(pwd)\", \"proxy\": \"127.0.0.1:41235\", \"pid\": 4242, \"project\": \"/p\", \"started\": true, \"api_version\": 1}""#,
        );
        let d = serve_detach_with(&bin, &dir, Some(Path::new("/m/igrations"))).unwrap();
        assert_eq!(d.api_url(), "http://127.0.0.1:41234");
        assert_eq!(d.proxy(), Some("127.0.0.1:41235"));
        assert_eq!(d.pid(), Some(4242));
        let token = d.token.clone().unwrap();
        let cwd = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(
            token,
            format!("serve --detach --migrations /m/igrations|{}", cwd.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn serve_detach_does_not_wait_for_a_daemon_holding_the_pipes() {
        let dir = scratch("hold");
        // The "daemon" keeps stdout and stderr open for 30 s after the command exits.
        let bin = fake_bin(
            &dir,
            r#"sleep 30 &
echo '{"api": "http://127.0.0.1:1", "api_version": 1}'"#,
        );
        let started = std::time::Instant::now();
        let d = serve_detach_with(&bin, &dir, None).unwrap();
        assert_eq!(d.api_url(), "http://127.0.0.1:1");
        assert!(started.elapsed() < Duration::from_secs(10));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn serve_detach_failure_reports_stderr() {
        let dir = scratch("fail");
        let bin = fake_bin(&dir, "echo 'no PostgreSQL binaries found' >&2; exit 3");
        let err = serve_detach_with(&bin, &dir, None).unwrap_err().to_string();
        assert!(err.contains("no PostgreSQL binaries found"), "{err}");
        assert!(err.contains("serve --detach"), "{err}");
        let bin = fake_bin(&dir, "echo 'not json'");
        let err = serve_detach_with(&bin, &dir, None).unwrap_err().to_string();
        assert!(err.contains("not json"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn serve_detach_is_retried_after_a_transient_failure() {
        let dir = scratch("retry");
        // Fails on the first call, answers on the second.
        let bin = fake_bin(
            &dir,
            r#"if [ ! -e tried ]; then touch tried; echo 'POST /v1/refresh: incomplete HTTP response' >&2; exit 1; fi
echo '{"api": "http://127.0.0.1:2", "api_version": 1}'"#,
        );
        let d = serve_detach_retrying(&bin, &dir, None).unwrap();
        assert_eq!(d.api_url(), "http://127.0.0.1:2");
        // Always failing: the last error is reported, after DETACH_ATTEMPTS tries.
        let bin = fake_bin(&dir, "echo x >> attempts; echo 'still broken' >&2; exit 1");
        let err = serve_detach_retrying(&bin, &dir, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("still broken"), "{err}");
        let attempts = std::fs::read_to_string(dir.join("attempts")).unwrap();
        assert_eq!(attempts.lines().count(), DETACH_ATTEMPTS as usize);
        // A missing binary is reported at once.
        let err = serve_detach_retrying(Path::new("/nonexistent/dbsandbox"), &dir, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("DBSANDBOX_BIN"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn serve_detach_refuses_a_binary_of_another_control_api() {
        let dir = scratch("api-version");
        for (line, expected) in [
            (
                r#"{"api": "http://127.0.0.1:3", "api_version": 2}"#,
                "speaks control API v2",
            ),
            (
                r#"{"api": "http://127.0.0.1:3"}"#,
                "reports no control API version",
            ),
        ] {
            let bin = fake_bin(&dir, &format!("echo '{line}'"));
            let err = serve_detach_with(&bin, &dir, None).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(err.contains("speaks v1"), "{err}");
            assert!(
                err.contains("cargo install --locked dbsandbox-cli"),
                "{err}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_the_detach_line() {
        let d: DetachLine = serde_json::from_str(
            r#"{"api": "http://127.0.0.1:41234", "token": null, "proxy": "127.0.0.1:41235",
                "pid": 4242, "project": "/p", "started": true}"#,
        )
        .unwrap();
        assert_eq!(d.api, "http://127.0.0.1:41234");
        assert_eq!(d.proxy.as_deref(), Some("127.0.0.1:41235"));
        assert_eq!(d.pid, Some(4242));
        assert!(d.token.is_none());
    }
}
