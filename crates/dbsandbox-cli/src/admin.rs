//! `status`, `gc`, `reset` and `release`: looking after what dbsandbox made, on the server and in
//! the project's daemon.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use dbsandbox_pool::{DatabaseInfo, DbKind};
use dbsandbox_server::Server;

use dbsandbox_control::ApiClient;

use crate::output::outln;
use crate::settings::{Settings, UsageError};

/// Runs `work` with an admin connection to the server: the one a daemon runs, else the embedded
/// server started for the moment (and stopped after), or the external one.
async fn with_server(
    settings: &Settings,
    work: impl AsyncFnOnce(&Server, &tokio_postgres::Client) -> anyhow::Result<i32>,
) -> anyhow::Result<i32> {
    let server = Server::attach_or_start(&settings.server).await?;
    let result = async {
        let admin = server
            .endpoint()
            .admin()
            .await
            .context("connecting to the server")?;
        work(&server, &admin).await
    }
    .await;
    server.stop().await?;
    result
}

pub async fn status(settings: &Settings, json: bool) -> anyhow::Result<i32> {
    with_server(settings, async |server, admin| {
        let databases = dbsandbox_pool::list(admin).await?;
        let mut daemons = Vec::new();
        for daemon in dbsandbox_control::live_daemons(&settings.cache_dir()) {
            let client = ApiClient::new(&daemon.api, daemon.token.clone());
            let sandboxes = match client.get("/v1/sandboxes").await {
                Ok(reply) if reply.is_success() => reply.body["sandboxes"].clone(),
                _ => serde_json::Value::Null,
            };
            let status = match client.get("/v1/status").await {
                Ok(reply) if reply.is_success() => reply.body,
                _ => serde_json::Value::Null,
            };
            daemons.push(serde_json::json!({
                "pid": daemon.pid,
                "api": daemon.api,
                "proxy": daemon.proxy,
                "project": daemon.project,
                "template": status["template"]["name"],
                "server": status["server"]["description"],
                "sandbox_role": status["server"]["sandbox_role"],
                "tls": status["daemon"]["tls"],
                "tls_ca_cert": status["daemon"]["tls_ca_cert"],
                "sandboxes": sandboxes,
            }));
        }
        if json {
            let endpoint = server.endpoint();
            let report = serde_json::json!({
                "server": server.describe(),
                "sandbox_role": server.describe_roles(),
                "endpoint": {
                    "host": endpoint.host,
                    "port": endpoint.port,
                    "user": endpoint.user,
                    // With the admin password, as the API's status has it: the cache's owner
                    // may read it from the cluster anyway.
                    "url": endpoint.url(&endpoint.admin_database),
                    "socket_dir": endpoint.socket_dir,
                    "version_num": endpoint.version_num,
                },
                "databases": databases.iter().map(database_json).collect::<Vec<_>>(),
                "daemons": daemons,
            });
            outln!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_status(server, &databases, &daemons);
        }
        Ok(0)
    })
    .await
}

fn database_json(db: &DatabaseInfo) -> serde_json::Value {
    serde_json::json!({
        "name": db.name,
        "kind": db.marker.kind,
        "state": db.marker.state,
        "project": db.marker.project,
        "fingerprint": db.marker.fingerprint,
        "template": db.marker.template,
        "owner_pid": db.marker.owner.map(|o| o.pid),
        "owner_alive": !db.marker.owner_is_dead(),
        "created": db.marker.created,
        "size_bytes": db.size_bytes,
        "connections": db.connections,
    })
}

fn print_status(server: &Server, databases: &[DatabaseInfo], daemons: &[serde_json::Value]) {
    outln!("server: {}", server.describe());
    outln!("  {}", server.describe_roles());
    let templates: Vec<&DatabaseInfo> = databases
        .iter()
        .filter(|d| d.marker.kind == DbKind::Template)
        .collect();
    outln!("\ntemplates ({}):", templates.len());
    for t in &templates {
        let clones: Vec<&DatabaseInfo> = databases
            .iter()
            .filter(|d| d.marker.template == t.name)
            .collect();
        let count = |state| clones.iter().filter(|c| c.marker.state == state).count();
        outln!(
            "  {}  project {}  {:?}  {}  clones: {} leased, {} pooled, {} spare",
            t.name,
            t.marker.project,
            t.marker.state,
            human_size(t.size_bytes),
            count(dbsandbox_pool::DbState::Leased),
            count(dbsandbox_pool::DbState::Pooled),
            count(dbsandbox_pool::DbState::Spare),
        );
    }
    let clones: Vec<&DatabaseInfo> = databases
        .iter()
        .filter(|d| d.marker.kind == DbKind::Clone)
        .collect();
    outln!("\nclones ({}):", clones.len());
    for c in &clones {
        outln!(
            "  {}  {:?}  {}  owner {}{}  {} connection{}",
            c.name,
            c.marker.state,
            human_size(c.size_bytes),
            c.marker
                .owner
                .map(|o| o.pid.to_string())
                .unwrap_or_else(|| "-".into()),
            if c.marker.owner_is_dead() {
                " (gone)"
            } else {
                ""
            },
            c.connections,
            if c.connections == 1 { "" } else { "s" }
        );
    }
    outln!("\ndaemons ({}):", daemons.len());
    for daemon in daemons {
        outln!(
            "  pid {}  project {}  template {}  API {}  proxy {}",
            daemon["pid"],
            daemon["project"].as_str().unwrap_or("?"),
            daemon["template"].as_str().unwrap_or("?"),
            daemon["api"].as_str().unwrap_or("?"),
            daemon["proxy"].as_str().unwrap_or("?"),
        );
        if daemon["server"].as_str() != Some(&server.describe()) {
            println!("    on {}", daemon["server"].as_str().unwrap_or("?"));
        }
        if let Some(role) = daemon["sandbox_role"].as_str() {
            println!("    sandbox clients connect as: {role}");
        }
        match (daemon["tls"].as_bool(), daemon["tls_ca_cert"].as_str()) {
            (Some(true), Some(ca)) => {
                outln!("    TLS: on (sslmode=require); for sslmode=verify-full, sslrootcert={ca}")
            }
            (Some(true), None) => outln!("    TLS: on, with your certificate (--tls-cert)"),
            (Some(false), _) => outln!("    TLS: off (see the daemon's log)"),
            _ => {}
        }
        for sandbox in daemon["sandboxes"].as_array().into_iter().flatten() {
            outln!(
                "    {}  {}{}  {} connection(s) open, {} statement(s), {} commit(s) absorbed",
                sandbox["key"].as_str().unwrap_or("?"),
                sandbox["isolation"].as_str().unwrap_or("?"),
                sandbox["run"]
                    .as_str()
                    .map(|r| format!(" (run {r})"))
                    .unwrap_or_default(),
                sandbox["stats"]["connections_open"],
                sandbox["stats"]["statements"],
                sandbox["stats"]["commits_absorbed"],
            );
        }
    }
}

fn human_size(bytes: i64) -> String {
    if bytes < 0 {
        return "size unknown".to_string();
    }
    let mb = bytes as f64 / (1024.0 * 1024.0);
    format!("{mb:.1} MB")
}

pub async fn gc(settings: &Settings, force: bool, json: bool) -> anyhow::Result<i32> {
    with_server(settings, async |_, admin| {
        // Asked after gc has listed the server's databases: anything a daemon makes later is not
        // on that list, and anything it used by then is in its answer.
        let daemons_use = async {
            databases_daemons_use(settings)
                .await
                .map_err(|e| dbsandbox_pool::PoolError::Database {
                    context: "asking the live daemons which databases they use".into(),
                    message: format!("{e:#}"),
                })
        };
        let report = dbsandbox_pool::gc(admin, force, daemons_use).await?;
        if json {
            outln!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            let mut kept = Vec::new();
            if !report.kept_for_daemons.is_empty() {
                kept.push(format!(
                    "kept {} used by a running daemon",
                    report.kept_for_daemons.len()
                ));
            }
            if !report.skipped_in_use.is_empty() {
                kept.push(format!(
                    "kept {} held by another live dbsandbox process (--force drops them)",
                    report.skipped_in_use.len()
                ));
            }
            outln!(
                "dropped {} database{} ({}){}",
                report.dropped.len(),
                if report.dropped.len() == 1 { "" } else { "s" },
                human_size(report.freed_bytes),
                kept.iter().map(|k| format!("; {k}")).collect::<String>()
            );
        }
        Ok(0)
    })
    .await
}

/// How long `gc` waits for a starting daemon to publish its record.
const STARTING_DAEMON_PATIENCE: Duration = Duration::from_secs(30);

/// Every database the live daemons under the cache directory use (templates and clones), from
/// their APIs. A daemon that is still starting is waited for; one that does not answer stops
/// `gc`, which cannot tell what it would break.
async fn databases_daemons_use(settings: &Settings) -> anyhow::Result<BTreeSet<String>> {
    let cache = settings.cache_dir();
    let deadline = Instant::now() + STARTING_DAEMON_PATIENCE;
    loop {
        let starting = dbsandbox_control::starting_daemons(&cache);
        if starting.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "a dbsandbox daemon is still starting ({}): run gc again once it is ready",
                starting.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut names = BTreeSet::new();
    for daemon in dbsandbox_control::live_daemons(&cache) {
        let client = ApiClient {
            timeout: Duration::from_secs(30),
            ..ApiClient::new(&daemon.api, daemon.token.clone())
        };
        let answer = client.get("/v1/databases").await;
        let refusal = match answer {
            Ok(reply) if reply.is_success() => {
                let used = reply.body["databases"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                names.extend(used.iter().filter_map(|n| n.as_str().map(str::to_string)));
                continue;
            }
            Ok(reply) => reply.error_message(),
            Err(e) => format!("{e:#}"),
        };
        anyhow::bail!(
            "the dbsandbox daemon for {} (pid {}) cannot say which databases it uses ({refusal}): \
             gc would risk breaking it; try again, or end it with `dbsandbox stop`",
            daemon.project.display(),
            daemon.pid
        );
    }
    Ok(names)
}

/// The daemons to ask about a key: this project's (whatever their schema settings), else every
/// live one under the cache directory.
fn daemons_to_ask(settings: &Settings) -> anyhow::Result<Vec<ApiClient>> {
    let mut records = crate::daemon::project_daemons(settings);
    if records.is_empty() {
        records = dbsandbox_control::live_daemons(&settings.cache_dir());
    }
    if records.is_empty() {
        return Err(UsageError(format!(
            "no dbsandbox daemon runs for {} (is a `dbsandbox run` or `dbsandbox serve` running, \
             with the same --cache-dir?)",
            settings.project_root.display()
        ))
        .into());
    }
    Ok(records
        .into_iter()
        .map(|r| ApiClient::new(&r.api, r.token))
        .collect())
}

/// Sends the request to each daemon until one knows the key; `None` when none does.
async fn ask_about_key(
    settings: &Settings,
    method: &str,
    path: &str,
) -> anyhow::Result<Option<dbsandbox_control::Reply>> {
    for client in daemons_to_ask(settings)? {
        let body = serde_json::json!({});
        let reply = client
            .request(method, path, (method == "POST").then_some(&body))
            .await?;
        if reply.status != 404 {
            return Ok(Some(reply));
        }
    }
    Ok(None)
}

fn key_path(key: &str, suffix: &str, run: Option<&str>) -> String {
    match run {
        Some(run) => format!("/v1/sandboxes/{key}{suffix}?run={run}"),
        None => format!("/v1/sandboxes/{key}{suffix}"),
    }
}

/// What `reset` and `release` do to a key.
#[derive(Debug, Clone, Copy)]
pub enum KeyAction {
    Reset,
    Release,
}

pub async fn key_action(
    settings: &Settings,
    action: KeyAction,
    key: &str,
    run: Option<&str>,
) -> anyhow::Result<i32> {
    dbsandbox_proxy::validate_key(key).map_err(|e| UsageError(e.message))?;
    let (method, suffix, verb, done) = match action {
        KeyAction::Reset => ("POST", "/reset", "reset", "back to the template's state"),
        KeyAction::Release => (
            "DELETE",
            "",
            "release",
            "its next connection gets a fresh database",
        ),
    };
    match ask_about_key(settings, method, &key_path(key, suffix, run)).await? {
        Some(reply) if reply.is_success() => {
            outln!("{verb} {key}: {done}");
            Ok(0)
        }
        Some(reply) => anyhow::bail!("{verb} of {key} failed: {}", reply.error_message()),
        None => {
            outln!("no sandbox with key {key} (nothing to {verb})");
            Ok(1)
        }
    }
}
