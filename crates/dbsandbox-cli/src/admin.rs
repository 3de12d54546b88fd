//! `status`, `gc` and `release`: looking after what dbsandbox made, on the server and in runs.

use anyhow::Context;
use dbsandbox_pool::{DatabaseInfo, DbKind};
use dbsandbox_server::Server;

use crate::control::{live_runs, request};
use crate::settings::{Settings, UsageError};

pub async fn status(settings: &Settings, json: bool) -> anyhow::Result<i32> {
    let server = Server::attach_or_start(&settings.server).await?;
    let result = async {
        let admin = server.endpoint().admin().await.context("connecting to the server")?;
        let databases = dbsandbox_pool::list(&admin).await?;
        let mut runs = Vec::new();
        for run in live_runs(&settings.cache_dir()) {
            let keys = request(&run, "keys").await.ok().and_then(|r| r.get("keys").cloned());
            runs.push(serde_json::json!({"pid": run.owner.pid, "proxy": run.proxy, "project": run.project_root, "keys": keys}));
        }
        if json {
            let endpoint = server.endpoint();
            let report = serde_json::json!({
                "server": server.describe(),
                "endpoint": {
                    "host": endpoint.host,
                    "port": endpoint.port,
                    "user": endpoint.user,
                    "socket_dir": endpoint.socket_dir,
                    "version_num": endpoint.version_num,
                },
                "databases": databases.iter().map(database_json).collect::<Vec<_>>(),
                "runs": runs,
            });
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print_status(&server.describe(), &databases, &runs);
        }
        Ok::<_, anyhow::Error>(0)
    }
    .await;
    server.stop().await?;
    result
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

fn print_status(server: &str, databases: &[DatabaseInfo], runs: &[serde_json::Value]) {
    println!("server: {server}");
    let templates: Vec<&DatabaseInfo> = databases
        .iter()
        .filter(|d| d.marker.kind == DbKind::Template)
        .collect();
    println!("\ntemplates ({}):", templates.len());
    for t in &templates {
        let clones: Vec<&DatabaseInfo> = databases
            .iter()
            .filter(|d| d.marker.template == t.name)
            .collect();
        let count = |state| clones.iter().filter(|c| c.marker.state == state).count();
        println!(
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
    println!("\nclones ({}):", clones.len());
    for c in &clones {
        println!(
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
    println!("\nruns ({}):", runs.len());
    for run in runs {
        println!(
            "  pid {}  proxy {}  project {}",
            run["pid"],
            run["proxy"].as_str().unwrap_or("?"),
            run["project"]
        );
        let keys: std::collections::BTreeMap<String, crate::registry::KeyStats> =
            serde_json::from_value(run["keys"].clone()).unwrap_or_default();
        for line in crate::registry::key_lines(&keys, 50) {
            println!("    {line}");
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
    let server = Server::attach_or_start(&settings.server).await?;
    let result = async {
        let admin = server
            .endpoint()
            .admin()
            .await
            .context("connecting to the server")?;
        let report = dbsandbox_pool::gc(&admin, force).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "dropped {} database{} ({}){}",
                report.dropped.len(),
                if report.dropped.len() == 1 { "" } else { "s" },
                human_size(report.freed_bytes),
                if report.skipped_in_use.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; kept {} in use by a running dbsandbox (--force drops them too)",
                        report.skipped_in_use.len()
                    )
                }
            );
        }
        Ok::<_, anyhow::Error>(0)
    }
    .await;
    server.stop().await?;
    result
}

/// The one running `dbsandbox run` to ask (`pid` chooses among several).
fn the_run(settings: &Settings, pid: Option<u32>) -> anyhow::Result<crate::control::RunRecord> {
    let runs: Vec<_> = live_runs(&settings.cache_dir())
        .into_iter()
        .filter(|r| pid.is_none_or(|p| r.owner.pid == p))
        .collect();
    match runs.as_slice() {
        [run] => Ok(run.clone()),
        [] => Err(UsageError(
            "no running `dbsandbox run` found (is one running with the same --cache-dir?)".into(),
        )
        .into()),
        _ => {
            let pids: Vec<String> = runs.iter().map(|r| r.owner.pid.to_string()).collect();
            Err(UsageError(format!(
                "several runs are active (pids {}): choose one with --pid",
                pids.join(", ")
            ))
            .into())
        }
    }
}

pub async fn reset(settings: &Settings, key: &str, pid: Option<u32>) -> anyhow::Result<i32> {
    dbsandbox_proxy::validate_key(key).map_err(|e| UsageError(e.message))?;
    let run = the_run(settings, pid)?;
    let reply = request(&run, &format!("reset {key}")).await?;
    match (&reply["ok"], &reply["reset"]) {
        (serde_json::Value::Bool(true), serde_json::Value::Bool(true)) => {
            println!("reset {key}: rolled back to the template's state");
            Ok(0)
        }
        (serde_json::Value::Bool(true), _) => {
            println!(
                "key {key} has no rollback sandbox in run {} (nothing to reset)",
                run.owner.pid
            );
            Ok(1)
        }
        _ => anyhow::bail!("reset of {key} failed: {}", reply["error"]),
    }
}

pub async fn release(settings: &Settings, key: &str, pid: Option<u32>) -> anyhow::Result<i32> {
    dbsandbox_proxy::validate_key(key).map_err(|e| UsageError(e.message))?;
    let runs: Vec<_> = live_runs(&settings.cache_dir())
        .into_iter()
        .filter(|r| pid.is_none_or(|p| r.owner.pid == p))
        .collect();
    let run = match runs.as_slice() {
        [run] => run,
        [] => {
            return Err(UsageError(
                "no running `dbsandbox run` found (is one running with the same --cache-dir?)"
                    .into(),
            )
            .into())
        }
        _ => {
            let pids: Vec<String> = runs.iter().map(|r| r.owner.pid.to_string()).collect();
            return Err(UsageError(format!(
                "several runs are active (pids {}): choose one with --pid",
                pids.join(", ")
            ))
            .into());
        }
    };
    let reply = request(run, &format!("release {key}")).await?;
    if reply["released"] == serde_json::Value::Bool(true) {
        println!("released {key}: its next connection gets a fresh database");
        Ok(0)
    } else {
        println!("key {key} holds no database in run {}", run.owner.pid);
        Ok(1)
    }
}
