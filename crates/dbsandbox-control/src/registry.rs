//! The sandbox registry of one scope: which clone each key holds, its isolation and owner, and
//! the proxy's [`Router`] over it.
//!
//! A key gets a clone from the pool when it is acquired through the API, or (in a run's scope) on
//! its first connection; later connections for the same key, even concurrent first ones, go to
//! the same clone. Releasing a key returns its clone to the pool that made it, which drops it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use dbsandbox_pool::ClonePool;
use dbsandbox_proxy::{BackendTarget, Isolation, RouteError, Router, SandboxStats, Sandboxes};
use dbsandbox_server::{Endpoint, ProcessId};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

mod points;
use points::release_points;
pub use points::PointError;

/// The pool new clones come from; swapped for a new one when the template drifts.
pub type PoolHandle = Arc<RwLock<ClonePool>>;

/// What the registry knows of one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyStats {
    pub clone: Option<String>,
    pub connections_open: u64,
    pub connections_total: u64,
    /// Clones this key has held (more than one after releases or database resets).
    pub clones_used: u64,
    /// For rollback sandboxes: what the sandbox absorbed.
    pub sandbox: Option<SandboxCounts>,
}

/// A rollback sandbox's counters, as scripts read them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SandboxCounts {
    pub statements: u64,
    pub commits_absorbed: u64,
    pub errors_recovered: u64,
    pub resets: u64,
    pub connections_open: u64,
    /// Why the key is broken (its connections are refused until it is reset), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
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
            broken: self.broken.or_else(|| other.broken.clone()),
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
            broken: s.broken,
        }
    }
}

/// A table a sandbox wrote, with its row count now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableRows {
    pub table: String,
    pub rows: i64,
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
                "{key}: {} ({} open)",
                count(stats.connections_total, "connection"),
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
                if let Some(reason) = &s.broken {
                    line.push_str(&format!("; BROKEN until reset: {reason}"));
                }
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

/// A clone and the pool that made it (and takes it back).
#[derive(Clone)]
struct Held {
    name: String,
    pool: ClonePool,
}

struct Slot {
    clone: Arc<OnceCell<Held>>,
    /// A database key's reset points: copies of its clone, oldest first (see [`points`]).
    points: Vec<(String, Held)>,
    stats: KeyStats,
    /// Set for keys acquired through the API.
    isolation: Option<Isolation>,
    owner: Option<ProcessId>,
    /// Acquired through the API (not made by a first connection).
    acquired: bool,
}

impl Slot {
    fn new(isolation: Option<Isolation>, owner: Option<ProcessId>, acquired: bool) -> Slot {
        Slot {
            clone: Arc::new(OnceCell::new()),
            points: Vec::new(),
            stats: KeyStats::default(),
            isolation,
            owner,
            acquired,
        }
    }
}

/// Why an acquisition failed.
#[derive(Debug)]
pub enum AcquireError {
    InUse,
    Pool(String),
}

/// How a scope treats keys nobody acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKeys {
    /// Created on first connection (a run's scope: any database name is a key).
    Create,
    /// Refused (the API scope: keys are acquired first).
    Refuse,
}

pub struct Registry {
    pool: PoolHandle,
    endpoint: Endpoint,
    unknown_keys: UnknownKeys,
    /// The isolation of keys that did not choose one (the proxy's default).
    default_isolation: Isolation,
    keys: Mutex<BTreeMap<String, Slot>>,
    /// Final statistics of released keys, kept for a run's summary (run scopes only: the API
    /// scope lives as long as the daemon).
    released: Mutex<BTreeMap<String, KeyStats>>,
    /// The proxy's rollback sandboxes, known once the proxy is bound.
    sandboxes: std::sync::OnceLock<Arc<Sandboxes>>,
}

impl Registry {
    pub fn new(
        pool: PoolHandle,
        endpoint: Endpoint,
        unknown_keys: UnknownKeys,
        default_isolation: Isolation,
    ) -> Arc<Registry> {
        Arc::new(Registry {
            pool,
            endpoint,
            unknown_keys,
            default_isolation,
            keys: Mutex::new(BTreeMap::new()),
            released: Mutex::new(BTreeMap::new()),
            sandboxes: std::sync::OnceLock::new(),
        })
    }

    pub fn attach_sandboxes(&self, sandboxes: Arc<Sandboxes>) {
        let _ = self.sandboxes.set(sandboxes);
    }

    fn keys(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Slot>> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current_pool(&self) -> ClonePool {
        self.pool.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.keys().contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.keys().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The isolation a key's connections get when they do not ask.
    pub fn isolation_of(&self, key: &str) -> Isolation {
        self.keys()
            .get(key)
            .and_then(|s| s.isolation)
            .unwrap_or(self.default_isolation)
    }

    pub fn owner_of(&self, key: &str) -> Option<ProcessId> {
        self.keys().get(key).and_then(|s| s.owner)
    }

    /// Takes a clone for a new key now, so its first connection does not wait for one.
    pub async fn acquire(
        &self,
        key: &str,
        isolation: Isolation,
        owner: Option<ProcessId>,
    ) -> Result<(), AcquireError> {
        let cell = {
            let mut keys = self.keys();
            if keys.contains_key(key) {
                return Err(AcquireError::InUse);
            }
            let slot = Slot::new(Some(isolation), owner, true);
            let cell = slot.clone.clone();
            keys.insert(key.to_string(), slot);
            cell
        };
        match cell.get_or_try_init(|| self.take_clone(key)).await {
            Ok(_) => Ok(()),
            Err(e) => {
                self.keys().remove(key);
                Err(AcquireError::Pool(e.to_string()))
            }
        }
    }

    async fn take_clone(&self, key: &str) -> Result<Held, dbsandbox_pool::PoolError> {
        let pool = self.current_pool();
        let name = pool.acquire().await?;
        if let Some(slot) = self.keys().get_mut(key) {
            slot.stats.clones_used += 1;
            slot.stats.clone = Some(name.clone());
        }
        Ok(Held { name, pool })
    }

    async fn clone_for(&self, key: &str) -> Result<String, RouteError> {
        let cell = {
            let mut keys = self.keys();
            if !keys.contains_key(key) && self.unknown_keys == UnknownKeys::Refuse {
                return Err(RouteError::new(
                    "3D000",
                    format!(
                        "sandbox key \"{key}\" is not acquired: acquire it first \
                         (POST /v1/sandboxes on the dbsandbox control API)"
                    ),
                ));
            }
            let slot = keys
                .entry(key.to_string())
                .or_insert_with(|| Slot::new(None, None, false));
            slot.stats.connections_open += 1;
            slot.stats.connections_total += 1;
            slot.clone.clone()
        };
        match cell.get_or_try_init(|| self.take_clone(key)).await {
            Ok(held) => Ok(held.name.clone()),
            Err(e) => {
                self.disconnected(key);
                Err(RouteError::new(
                    "53000",
                    format!("dbsandbox could not get a database for key {key}: {e}"),
                ))
            }
        }
    }

    /// Rolls a key back to the template's state: a rollback sandbox is rolled back; a database
    /// key gets a fresh clone (its open connections are closed). False when the key is unknown.
    pub async fn reset(&self, key: &str) -> Result<bool, String> {
        if !self.contains(key) {
            return Ok(false);
        }
        if self.isolation_of(key) == Isolation::Rollback {
            // Without a sandbox (no connection made one yet) the key is in the template's state.
            if let Some(sandboxes) = self.sandboxes.get() {
                sandboxes.reset(key).await?;
            }
            return Ok(true);
        }
        let old = {
            let mut keys = self.keys();
            let Some(slot) = keys.get_mut(key) else {
                return Ok(false);
            };
            let old = std::mem::replace(&mut slot.clone, Arc::new(OnceCell::new()));
            slot.stats.clone = None;
            release_points(std::mem::take(&mut slot.points));
            old
        };
        if let Some(held) = old.get() {
            held.pool.release(&held.name);
        }
        let cell = match self.keys().get(key) {
            Some(slot) => slot.clone.clone(),
            None => return Ok(false),
        };
        cell.get_or_try_init(|| self.take_clone(key))
            .await
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Returns the key's clone to its pool; its open connections are closed by the drop.
    /// Returns false when the key is unknown.
    pub fn release(&self, key: &str) -> bool {
        if self.unknown_keys == UnknownKeys::Create {
            if let Some(stats) = self.key_stats(key) {
                self.released
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.to_string(), stats);
            }
        }
        if let Some(sandboxes) = self.sandboxes.get() {
            sandboxes.remove(key);
        }
        let Some(slot) = self.keys().remove(key) else {
            return false;
        };
        if let Some(held) = slot.clone.get() {
            held.pool.release(&held.name);
        }
        release_points(slot.points);
        true
    }

    /// Releases every key (end of a run or of the daemon).
    pub fn release_all(&self) {
        let keys: Vec<String> = self.keys().keys().cloned().collect();
        for key in keys {
            self.release(&key);
        }
    }

    /// Releases the keys whose owner process is gone; returns them.
    pub fn release_orphans(&self) -> Vec<String> {
        let orphans: Vec<String> = self
            .keys()
            .iter()
            .filter(|(_, slot)| slot.owner.is_some_and(|o| !o.is_alive()))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &orphans {
            tracing::info!(key, "owner process is gone: releasing its sandbox");
            self.release(key);
        }
        orphans
    }

    /// Open client connections over all keys.
    pub fn connections_open(&self) -> u64 {
        self.keys().values().map(|s| s.stats.connections_open).sum()
    }

    /// Every key served: the current ones and (in a run's scope) those released earlier.
    pub fn served(&self) -> BTreeMap<String, KeyStats> {
        let mut all = self
            .released
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        all.extend(self.snapshot());
        all
    }

    /// One key's statistics, without a snapshot of every key. `None` for an unknown key.
    pub fn key_stats(&self, key: &str) -> Option<KeyStats> {
        let mut stats = self.keys().get(key)?.stats.clone();
        stats.sandbox = self
            .sandboxes
            .get()
            .and_then(|s| s.stats_of(key))
            .map(SandboxCounts::from);
        Some(stats)
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

    /// The tables the key wrote (since its last reset for a rollback sandbox, since its clone was
    /// made for a database key) and their row counts now. `None` for an unknown key.
    pub async fn written_tables(&self, key: &str) -> Result<Option<Vec<TableRows>>, String> {
        if !self.contains(key) {
            return Ok(None);
        }
        if self.isolation_of(key) == Isolation::Rollback {
            let Some(sandboxes) = self.sandboxes.get() else {
                return Ok(Some(Vec::new()));
            };
            let Some(tables) = sandboxes.written_tables(key).await? else {
                return Ok(Some(Vec::new()));
            };
            let counts = match count_rows_sql(&tables) {
                Some(sql) => sandboxes.query(key, &sql).await?.unwrap_or_default(),
                None => Vec::new(),
            };
            return Ok(Some(parse_counts(counts)));
        }
        let clone = self.keys().get(key).and_then(|s| s.clone.get().cloned());
        let Some(held) = clone else {
            return Ok(Some(Vec::new()));
        };
        let (client, connection) = self
            .endpoint
            .config(&held.name)
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connecting to {}: {e}", held.name))?;
        tokio::spawn(connection);
        let tables: Vec<String> = client
            .simple_query(WRITTEN_SINCE_CLONE)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .collect();
        let Some(sql) = count_rows_sql(&tables) else {
            return Ok(Some(Vec::new()));
        };
        let rows = client
            .simple_query(&sql)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(vec![
                    row.get(0).map(str::to_string),
                    row.get(1).map(str::to_string),
                ]),
                _ => None,
            })
            .collect();
        Ok(Some(parse_counts(rows)))
    }
}

/// Cumulative statistics of a fresh database start at zero, so these are the clone's own writes
/// (PostgreSQL publishes them within about a second of each transaction, not at once).
const WRITTEN_SINCE_CLONE: &str = "SELECT format('%I.%I', schemaname, relname) \
     FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY 1";

/// One query counting the rows of each table (names come quoted from `format('%I.%I')`).
fn count_rows_sql(tables: &[String]) -> Option<String> {
    if tables.is_empty() {
        return None;
    }
    let parts: Vec<String> = tables
        .iter()
        .map(|t| format!("SELECT {}, count(*) FROM {t}", sql_literal(t)))
        .collect();
    Some(parts.join(" UNION ALL "))
}

fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn parse_counts(rows: Vec<Vec<Option<String>>>) -> Vec<TableRows> {
    rows.into_iter()
        .filter_map(|row| match row.as_slice() {
            [Some(table), Some(rows)] => Some(TableRows {
                table: table.clone(),
                rows: rows.parse().ok()?,
            }),
            _ => None,
        })
        .collect()
}

impl Router for Registry {
    fn route<'a>(
        &'a self,
        key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<BackendTarget, RouteError>> + Send + 'a>> {
        Box::pin(async move {
            let database = self.clone_for(key).await?;
            let (isolation, acquired) = match self.keys().get(key) {
                Some(slot) => (slot.isolation, slot.acquired),
                None => (None, false),
            };
            let host = match &self.endpoint.socket_dir {
                Some(dir) => dir.display().to_string(),
                None => self.endpoint.host.clone(),
            };
            let (user, password) = self.endpoint.clone_login(&database);
            Ok(BackendTarget {
                host,
                port: self.endpoint.port,
                user,
                password,
                database,
                isolation,
                // Acquired keys keep their state until an explicit reset or release.
                reset_on_close: acquired.then_some(false),
            })
        })
    }

    fn disconnected(&self, key: &str) {
        if let Some(slot) = self.keys().get_mut(key) {
            slot.stats.connections_open = slot.stats.connections_open.saturating_sub(1);
        }
    }

    fn isolation_chosen(&self, key: &str, isolation: Isolation) {
        if let Some(slot) = self.keys().get_mut(key) {
            slot.isolation.get_or_insert(isolation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_table_in_one_query_and_parses_the_answer() {
        let sql = count_rows_sql(&["public.users".into(), "\"Odd\".\"it's\"".into()]).unwrap();
        assert_eq!(
            sql,
            "SELECT 'public.users', count(*) FROM public.users UNION ALL \
             SELECT '\"Odd\".\"it''s\"', count(*) FROM \"Odd\".\"it's\""
        );
        assert!(count_rows_sql(&[]).is_none());
        let parsed = parse_counts(vec![
            vec![Some("public.users".into()), Some("3".into())],
            vec![Some("broken".into()), None],
        ]);
        assert_eq!(
            parsed,
            vec![TableRows {
                table: "public.users".into(),
                rows: 3
            }]
        );
    }
}
