//! The sandbox registry of a run: which clone each key holds, and the proxy's [`Router`] over it.
//!
//! The first connection for a key takes a clone from the pool; later connections for the same key
//! (even concurrent first ones) go to the same clone. Releasing a key returns its clone to the
//! pool, which drops it; the next connection for that key gets a fresh clone.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use dbsandbox_pool::ClonePool;
use dbsandbox_proxy::{BackendTarget, RouteError, Router, SandboxStats, Sandboxes};
use dbsandbox_server::Endpoint;
use tokio::sync::OnceCell;

/// What the registry knows of one key.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct KeyStats {
    pub clone: Option<String>,
    pub connections_open: u64,
    pub connections_total: u64,
    /// Clones this key has held (more than one after releases).
    pub clones_used: u64,
    /// For rollback sandboxes: what the sandbox absorbed.
    pub sandbox: Option<SandboxCounts>,
}

/// A rollback sandbox's counters, as scripts read them.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SandboxCounts {
    pub statements: u64,
    pub commits_absorbed: u64,
    pub errors_recovered: u64,
    pub resets: u64,
    pub connections_open: u64,
}

impl SandboxCounts {
    /// Field-wise sum, for totals over keys.
    pub fn plus(self, other: &SandboxCounts) -> SandboxCounts {
        SandboxCounts {
            statements: self.statements + other.statements,
            commits_absorbed: self.commits_absorbed + other.commits_absorbed,
            errors_recovered: self.errors_recovered + other.errors_recovered,
            resets: self.resets + other.resets,
            connections_open: self.connections_open + other.connections_open,
        }
    }
}

impl From<SandboxStats> for SandboxCounts {
    fn from(s: SandboxStats) -> Self {
        SandboxCounts {
            statements: s.statements,
            commits_absorbed: s.commits_absorbed,
            errors_recovered: s.errors_recovered,
            resets: s.resets,
            connections_open: s.connections_open,
        }
    }
}

/// "1 commit", "2 commits".
fn count(n: u64, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// One line per key (at most `limit`, then a count of the rest), for summaries and `status`.
pub fn key_lines(keys: &BTreeMap<String, KeyStats>, limit: usize) -> Vec<String> {
    let mut lines: Vec<String> = keys
        .iter()
        .take(limit)
        .map(|(key, stats)| {
            let mut line = format!(
                "{key}: {} connection{} ({} open)",
                stats.connections_total,
                if stats.connections_total == 1 {
                    ""
                } else {
                    "s"
                },
                stats.connections_open
            );
            if let Some(s) = &stats.sandbox {
                line.push_str(&format!(
                    ", rollback sandbox: {}, {} absorbed, {} recovered, {}",
                    count(s.statements, "statement"),
                    count(s.commits_absorbed, "commit"),
                    count(s.errors_recovered, "error"),
                    count(s.resets, "reset")
                ));
            }
            line
        })
        .collect();
    if keys.len() > limit {
        lines.push(format!(
            "… and {} more keys (dbsandbox status --json lists all)",
            keys.len() - limit
        ));
    }
    lines
}

struct Slot {
    clone: Arc<OnceCell<String>>,
    stats: KeyStats,
}

pub struct Registry {
    pool: ClonePool,
    endpoint: Endpoint,
    keys: Mutex<BTreeMap<String, Slot>>,
    /// The proxy's rollback sandboxes, known once the proxy is bound.
    sandboxes: std::sync::OnceLock<Arc<Sandboxes>>,
}

impl Registry {
    pub fn new(pool: ClonePool, endpoint: Endpoint) -> Arc<Registry> {
        Arc::new(Registry {
            pool,
            endpoint,
            keys: Mutex::new(BTreeMap::new()),
            sandboxes: std::sync::OnceLock::new(),
        })
    }

    pub fn attach_sandboxes(&self, sandboxes: Arc<Sandboxes>) {
        let _ = self.sandboxes.set(sandboxes);
    }

    /// Rolls a key's sandbox back (rollback isolation). False when the key has no sandbox.
    pub async fn reset(&self, key: &str) -> Result<bool, String> {
        match self.sandboxes.get() {
            Some(sandboxes) => sandboxes.reset(key).await,
            None => Ok(false),
        }
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn clone_for(&self, key: &str) -> Result<String, RouteError> {
        let cell = {
            let mut keys = self.keys();
            let slot = keys.entry(key.to_string()).or_insert_with(|| Slot {
                clone: Arc::new(OnceCell::new()),
                stats: KeyStats::default(),
            });
            slot.stats.connections_open += 1;
            slot.stats.connections_total += 1;
            slot.clone.clone()
        };
        let result = cell
            .get_or_try_init(|| async {
                let name = self.pool.acquire().await?;
                if let Some(slot) = self.keys().get_mut(key) {
                    slot.stats.clones_used += 1;
                    slot.stats.clone = Some(name.clone());
                }
                Ok::<_, dbsandbox_pool::PoolError>(name)
            })
            .await;
        match result {
            Ok(name) => Ok(name.clone()),
            Err(e) => {
                self.disconnected(key);
                Err(RouteError::new(
                    "53000",
                    format!("dbsandbox could not get a database for key {key}: {e}"),
                ))
            }
        }
    }

    /// Returns the key's clone to the pool; its open connections are closed by the drop.
    /// Returns false when the key holds no clone.
    pub fn release(&self, key: &str) -> bool {
        if let Some(sandboxes) = self.sandboxes.get() {
            sandboxes.remove(key);
        }
        let removed = self.keys().remove(key);
        match removed.and_then(|slot| slot.clone.get().cloned()) {
            Some(clone) => {
                self.pool.release(&clone);
                true
            }
            None => false,
        }
    }

    /// Releases every key (end of run).
    pub fn release_all(&self) {
        let keys: Vec<String> = self.keys().keys().cloned().collect();
        for key in keys {
            self.release(&key);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, KeyStats> {
        let sandboxes = self.sandboxes.get().map(|s| s.stats()).unwrap_or_default();
        self.keys()
            .iter()
            .map(|(k, s)| {
                let mut stats = s.stats.clone();
                stats.sandbox = sandboxes.get(k).cloned().map(SandboxCounts::from);
                (k.clone(), stats)
            })
            .collect()
    }
}

impl Router for Registry {
    fn route<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<BackendTarget, RouteError>> + Send + 'a>> {
        Box::pin(async move {
            let database = self.clone_for(key).await?;
            let host = match &self.endpoint.socket_dir {
                Some(dir) => dir.display().to_string(),
                None => self.endpoint.host.clone(),
            };
            Ok(BackendTarget {
                host,
                port: self.endpoint.port,
                user: self.endpoint.user.clone(),
                password: self.endpoint.password.clone(),
                database,
            })
        })
    }

    fn disconnected(&self, key: &str) {
        if let Some(slot) = self.keys().get_mut(key) {
            slot.stats.connections_open = slot.stats.connections_open.saturating_sub(1);
        }
    }
}
