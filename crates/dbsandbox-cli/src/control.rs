//! The control socket of a running `dbsandbox run`: other processes (`dbsandbox release`,
//! `dbsandbox status`) reach the run through a Unix socket listed in `<cache>/runs/<pid>.json`.
//!
//! The protocol is one request line and one JSON reply line: `release KEY` → `{"ok":true,"released":true}`,
//! `reset KEY` → `{"ok":true,"reset":true}`, `keys` → `{"ok":true,"keys":{…}}`. The HTTP control API (a later issue) will supersede it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::registry::Registry;

/// What a run publishes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub owner: dbsandbox_server::ProcessId,
    pub proxy: String,
    pub socket: PathBuf,
    pub project_root: PathBuf,
}

/// Serves the control socket until dropped; removes its files on drop.
pub struct ControlSocket {
    record_path: PathBuf,
    socket_path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlSocket {
    pub fn start(
        cache_dir: &Path,
        record: RunRecordInput,
        registry: Arc<Registry>,
    ) -> anyhow::Result<ControlSocket> {
        let runs = cache_dir.join("runs");
        std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
        live_runs(cache_dir); // also removes the records of dead runs
        let me = dbsandbox_server::ProcessId::current();
        let socket_path = runs.join(format!("{}.sock", me.pid));
        let _ = std::fs::remove_file(&socket_path);
        let listener = UnixListener::bind(&socket_path)
            .with_context(|| format!("binding {}", socket_path.display()))?;
        let record_path = runs.join(format!("{}.json", me.pid));
        let record = RunRecord {
            owner: me,
            proxy: record.proxy,
            socket: socket_path.clone(),
            project_root: record.project_root,
        };
        std::fs::write(&record_path, serde_json::to_vec_pretty(&record)?)?;
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let registry = registry.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, &registry).await {
                        tracing::debug!("control request failed: {e}");
                    }
                });
            }
        });
        Ok(ControlSocket {
            record_path,
            socket_path,
            task,
        })
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.record_path);
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

pub struct RunRecordInput {
    pub proxy: String,
    pub project_root: PathBuf,
}

async fn answer(stream: UnixStream, registry: &Registry) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let mut words = line.split_whitespace();
    let reply = match (words.next(), words.next()) {
        (Some("release"), Some(key)) => {
            serde_json::json!({"ok": true, "released": registry.release(key)})
        }
        (Some("keys"), None) => serde_json::json!({"ok": true, "keys": registry.snapshot()}),
        (Some("reset"), Some(key)) => match registry.reset(key).await {
            Ok(reset) => serde_json::json!({"ok": true, "reset": reset}),
            Err(e) => serde_json::json!({"ok": false, "error": e}),
        },
        _ => {
            serde_json::json!({"ok": false, "error": format!("unknown request {:?}", line.trim())})
        }
    };
    write.write_all(format!("{reply}\n").as_bytes()).await?;
    Ok(())
}

/// The runs recorded under `<cache>/runs` whose process is alive; records of dead ones are removed.
pub fn live_runs(cache_dir: &Path) -> Vec<RunRecord> {
    let Ok(entries) = std::fs::read_dir(cache_dir.join("runs")) else {
        return Vec::new();
    };
    let mut live = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let record: Option<RunRecord> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match record {
            Some(record) if record.owner.is_alive() => live.push(record),
            Some(record) => {
                let _ = std::fs::remove_file(&record.socket);
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    live
}

/// Sends one request to a run and returns its JSON reply.
pub async fn request(run: &RunRecord, line: &str) -> anyhow::Result<serde_json::Value> {
    let mut stream = UnixStream::connect(&run.socket)
        .await
        .with_context(|| format!("connecting to the run with pid {}", run.owner.pid))?;
    stream.write_all(format!("{line}\n").as_bytes()).await?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await?;
    serde_json::from_str(&reply).context("reading the run's reply")
}
