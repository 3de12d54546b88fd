//! A warm pool of clones of one template: ready databases handed out in about a millisecond,
//! refilled in the background, dropped in the background when returned.
//!
//! Clones never reused after a lease: a returned clone is dirty and is dropped (`WITH (FORCE)`).
//! At a clean shutdown the never-leased clones are marked `spare`, and the next pool for the same
//! template adopts them by renaming (atomic, so two adopters never share one). After a crash no
//! clone is marked spare, and [`crate::reap_dead_owners`] drops them all.

use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbsandbox_server::Endpoint;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::marker::{hostname, DbKind, DbState, Marker, NAME_PREFIX};
use crate::template::{drop_database, drop_sql};
use crate::{named_lock, quote_ident, roles, PoolError, Template};

/// How `CREATE DATABASE` copies the template (PostgreSQL 15+ offers two).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloneStrategy {
    /// The server's default (the only choice before PostgreSQL 15).
    Default,
    FileCopy,
    WalLog,
}

impl CloneStrategy {
    fn clause(self) -> &'static str {
        match self {
            CloneStrategy::Default => "",
            CloneStrategy::FileCopy => " strategy file_copy",
            CloneStrategy::WalLog => " strategy wal_log",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Clones kept ready.
    pub size: usize,
    /// Clones created at once by the refill.
    pub refill_concurrency: usize,
    pub strategy: CloneStrategy,
}

impl Default for PoolConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        PoolConfig {
            size: 2 * cores,
            refill_concurrency: 2,
            strategy: CloneStrategy::Default,
        }
    }
}

/// Counters for summaries and `status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PoolStats {
    pub ready: usize,
    pub leased: usize,
    pub created: u64,
    pub adopted: u64,
    pub dropped: u64,
    /// Acquisitions that found the pool empty and waited for a clone to be made.
    pub misses: u64,
    /// Total time spent in `CREATE DATABASE`, in milliseconds.
    pub clone_millis: u64,
}

struct Shared {
    endpoint: Endpoint,
    template: Template,
    config: PoolConfig,
    ready: Mutex<VecDeque<String>>,
    leased: Mutex<HashSet<String>>,
    /// Clones being made now (named before `CREATE DATABASE`), so that `gc` can be told of them.
    creating: Mutex<HashSet<String>>,
    in_flight: AtomicUsize,
    /// The template is gone (dropped behind our back): the refill waits for it to be rebuilt
    /// instead of failing every acquisition.
    template_missing: std::sync::atomic::AtomicBool,
    /// Set at shutdown: refill workers finish the clone they are making and exit.
    stopping: std::sync::atomic::AtomicBool,
    wake_refill: Notify,
    clone_ready: Notify,
    drops: Mutex<JoinSet<()>>,
    created: AtomicU64,
    adopted: AtomicU64,
    dropped: AtomicU64,
    misses: AtomicU64,
    clone_micros: AtomicU64,
    refill_error: Mutex<Option<String>>,
    /// One connection for background marking and dropping, made on first use and remade when it breaks.
    background_admin: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// The connection acquisitions check a clone's existence on (made and remade like the above).
    check_admin: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// Ready clones found gone at acquisition, said once each.
    vanished_notes: Mutex<Vec<String>>,
}

/// A pool of clones of one template. Cheap to clone (shared).
#[derive(Clone)]
pub struct ClonePool {
    shared: Arc<Shared>,
    workers: Arc<Mutex<JoinSet<()>>>,
}

impl ClonePool {
    /// Starts the pool: adopts spare clones a previous run left, then refills in the background.
    pub async fn start(
        endpoint: &Endpoint,
        template: &Template,
        config: PoolConfig,
    ) -> Result<ClonePool, PoolError> {
        let shared = Arc::new(Shared::new(endpoint, template, config.clone()));
        let admin = endpoint
            .admin()
            .await
            .map_err(|e| PoolError::db("connecting to the server", &e))?;
        adopt_spares(&shared, &admin).await?;
        roles::drop_orphan_roles(endpoint, &admin).await;
        let mut workers = JoinSet::new();
        for _ in 0..config.refill_concurrency.max(1) {
            workers.spawn(refill_worker(shared.clone()));
        }
        Ok(ClonePool {
            shared,
            workers: Arc::new(Mutex::new(workers)),
        })
    }

    pub fn template(&self) -> &Template {
        &self.shared.template
    }

    /// The configuration the pool runs with (size, strategy).
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// Takes a clone: from the pool when one is ready, else waits for the refill to make one.
    pub async fn acquire(&self) -> Result<String, PoolError> {
        let mut missed = false;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            // Register interest before checking, so a clone that lands in between is not missed.
            let notified = self.shared.clone_ready.notified();
            let popped = lock(&self.shared.ready).pop_front();
            if let Some(name) = popped {
                lock(&self.shared.leased).insert(name.clone());
                self.shared.wake_refill.notify_waiters();
                // Someone may have dropped it (a clean-up script): never hand out a ghost.
                if !self.shared.still_exists(&name).await {
                    lock(&self.shared.leased).remove(&name);
                    let note = format!(
                        "the pooled clone {name} vanished (dropped behind the pool's back): \
                         handed out another"
                    );
                    tracing::warn!("{note}");
                    lock(&self.shared.vanished_notes).push(note);
                    continue;
                }
                self.mark_leased(&name);
                return Ok(name);
            }
            if let Some(error) = lock(&self.shared.refill_error).take() {
                return Err(PoolError::Database {
                    context: format!("cloning {}", self.shared.template.name),
                    message: error,
                });
            }
            if !missed {
                missed = true;
                self.shared.misses.fetch_add(1, Ordering::Relaxed);
                self.shared.wake_refill.notify_waiters();
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return Err(PoolError::Database {
                    context: "waiting for a clone".to_string(),
                    message: "none became ready within 120 s".to_string(),
                });
            }
        }
    }

    fn mark_leased(&self, name: &str) {
        let shared = self.shared.clone();
        let name = name.to_string();
        self.shared.background(async move {
            let marker = clone_marker(&shared, DbState::Leased);
            if let Err(e) = shared.background_execute(&marker.comment_sql(&name)).await {
                tracing::debug!("marking {name} leased: {e}");
            }
        });
    }

    /// A new leased database copied from `source` (a leased clone or an earlier copy, with no
    /// connection open: PostgreSQL copies only an idle database), marked and owned like a clone,
    /// returned to the pool with [`ClonePool::release`]. A database key's reset points are such
    /// copies, and so is the clone a reset to one of them gets. Its role is granted the source's,
    /// which owns what the key's clients created there.
    pub async fn copy_of(&self, source: &str) -> Result<String, PoolError> {
        let shared = &self.shared;
        let name = new_clone_name(&shared.template);
        let admin = shared
            .endpoint
            .admin()
            .await
            .map_err(|e| PoolError::db("connecting to the server", &e))?;
        lock(&shared.leased).insert(name.clone());
        let made = named_lock::holding(&admin, named_lock::CLONE_CREATION, &name, async {
            roles::create_clone_role(&shared.endpoint, &admin, &name).await?;
            admin
                .batch_execute(&format!(
                    "create database {} template {}{}{}",
                    quote_ident(&name),
                    quote_ident(source),
                    roles::owner_clause(&shared.endpoint, &name),
                    shared.config.strategy.clause()
                ))
                .await
                .map_err(|e| PoolError::db(format!("copying {source}"), &e))?;
            admin
                .batch_execute(&clone_marker(shared, DbState::Leased).comment_sql(&name))
                .await
                .map_err(|e| PoolError::db("marking a copy", &e))?;
            roles::inherit_role_of(&shared.endpoint, &admin, &name, source).await
        })
        .await;
        if let Err(e) = made {
            self.release(&name);
            return Err(e);
        }
        Ok(name)
    }

    /// Returns a clone: it is dropped in the background.
    pub fn release(&self, name: &str) {
        if !lock(&self.shared.leased).remove(name) {
            tracing::warn!(
                clone = name,
                "release of a clone this pool did not lease; ignored"
            );
            return;
        }
        let shared = self.shared.clone();
        let name = name.to_string();
        self.shared.background(async move {
            match shared.background_execute(&drop_sql(&name)).await {
                Ok(()) => {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!("cannot drop {name}: {e}"),
            }
            if let Some(sql) = roles::drop_role_sql(&name) {
                if let Err(e) = shared.background_execute(&sql).await {
                    tracing::debug!("dropping the role of {name}: {e}");
                }
            }
        });
    }

    /// Every database this pool holds or is making: ready, leased and being created.
    pub fn databases(&self) -> Vec<String> {
        let s = &self.shared;
        let mut names: Vec<String> = lock(&s.ready).iter().cloned().collect();
        names.extend(lock(&s.leased).iter().cloned());
        names.extend(lock(&s.creating).iter().cloned());
        names
    }

    /// The clones handed out and not yet returned.
    pub fn leased_names(&self) -> Vec<String> {
        lock(&self.shared.leased).iter().cloned().collect()
    }

    /// The ready clones, in hand-out order.
    pub fn ready_names(&self) -> Vec<String> {
        lock(&self.shared.ready).iter().cloned().collect()
    }

    /// Forgets ready clones that no longer exist on the server (someone dropped them), so they
    /// are never handed out; wakes the refill to replace them. Returns those it forgot.
    pub fn forget_vanished(&self, vanished: &[String]) -> Vec<String> {
        let mut ready = lock(&self.shared.ready);
        let before: Vec<String> = ready.iter().cloned().collect();
        ready.retain(|name| !vanished.contains(name));
        drop(ready);
        let forgotten: Vec<String> = before
            .into_iter()
            .filter(|name| vanished.contains(name))
            .collect();
        if !forgotten.is_empty() {
            self.shared.wake_refill.notify_waiters();
        }
        forgotten
    }

    /// What the pool found vanished since the last call (for the daemon to report).
    pub fn take_vanished_notes(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.shared.vanished_notes))
    }

    /// True once the refill found the template gone; [`ClonePool::template_restored`] clears it.
    pub fn template_missing(&self) -> bool {
        self.shared.template_missing.load(Ordering::SeqCst)
    }

    /// The template exists again (rebuilt under the same name): the refill resumes.
    pub fn template_restored(&self) {
        self.shared.template_missing.store(false, Ordering::SeqCst);
        self.shared.wake_refill.notify_waiters();
    }

    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            ready: lock(&s.ready).len(),
            leased: lock(&s.leased).len(),
            created: s.created.load(Ordering::Relaxed),
            adopted: s.adopted.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            clone_millis: s.clone_micros.load(Ordering::Relaxed) / 1000,
        }
    }

    /// Waits until the pool holds `count` ready clones (benchmarks and tests use it).
    pub async fn wait_ready(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.clone_ready.notified();
            if lock(&self.shared.ready).len() >= count {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Stops refilling, drops leased clones, and keeps the ready ones as spares for the next run
    /// (or drops them too when `keep_spares` is false).
    pub async fn shutdown(&self, keep_spares: bool) -> Result<(), PoolError> {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake_refill.notify_waiters();
        let mut workers = std::mem::take(&mut *lock(&self.workers));
        while workers.join_next().await.is_some() {}
        let admin = self
            .shared
            .endpoint
            .admin()
            .await
            .map_err(|e| PoolError::db("connecting to the server", &e))?;
        let mut drops = std::mem::take(&mut *lock(&self.shared.drops));
        while drops.join_next().await.is_some() {}
        let ready: Vec<String> = lock(&self.shared.ready).drain(..).collect();
        let leased: Vec<String> = lock(&self.shared.leased).drain().collect();
        for name in &leased {
            drop_database(&admin, name).await?;
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        for name in &ready {
            if keep_spares {
                let marker = clone_marker(&self.shared, DbState::Spare);
                admin
                    .batch_execute(&marker.comment_sql(name))
                    .await
                    .map_err(|e| PoolError::db("keeping a spare clone", &e))?;
            } else {
                drop_database(&admin, name).await?;
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn short_fp(template: &Template) -> &str {
    &template.fingerprint.hex[..10]
}

fn clone_marker(shared: &Shared, state: DbState) -> Marker {
    let t = &shared.template;
    Marker::new(
        DbKind::Clone,
        state,
        &t.project,
        &t.fingerprint.hex,
        &t.name,
    )
}

fn new_clone_name(template: &Template) -> String {
    // Unique across processes and machines: pid, time and a per-process counter.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let unique =
        blake3::hash(format!("{}|{}|{nanos}|{n}", hostname(), std::process::id()).as_bytes())
            .to_hex();
    format!("{NAME_PREFIX}c_{}_{}", short_fp(template), &unique[..12])
}

/// Creates one marked clone and returns its name.
async fn create_clone(
    shared: &Shared,
    admin: &tokio_postgres::Client,
) -> Result<String, PoolError> {
    let name = new_clone_name(&shared.template);
    lock(&shared.creating).insert(name.clone());
    let made = named_lock::holding(
        admin,
        named_lock::CLONE_CREATION,
        &name,
        make_clone(shared, admin, &name),
    )
    .await;
    if made.is_err() {
        // A clone made but not marked (the marking failed) is not left for the reapers.
        if let Err(e) = drop_database(admin, &name).await {
            tracing::debug!("dropping the unfinished clone {name}: {e}");
        }
        lock(&shared.creating).remove(&name);
    }
    made.map(|()| name)
}

async fn make_clone(
    shared: &Shared,
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<(), PoolError> {
    let started = Instant::now();
    roles::create_clone_role(&shared.endpoint, admin, name).await?;
    admin
        .batch_execute(&format!(
            "create database {} template {}{}{}",
            quote_ident(name),
            quote_ident(&shared.template.name),
            roles::owner_clause(&shared.endpoint, name),
            shared.config.strategy.clause()
        ))
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_DATABASE) {
                PoolError::TemplateMissing(shared.template.name.clone())
            } else {
                PoolError::db(format!("cloning {}", shared.template.name), &e)
            }
        })?;
    shared
        .clone_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    admin
        .batch_execute(&clone_marker(shared, DbState::Pooled).comment_sql(name))
        .await
        .map_err(|e| PoolError::db("marking a clone", &e))?;
    warm_up(&shared.endpoint, name).await;
    shared.created.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Connects to a new clone once. The first connection to a database builds its relation cache
/// and writes the cache file; done here, in the background, it does not land on the first
/// connection of a test (measured: ~15 ms of a fresh key's connect-to-first-row on schema40).
async fn warm_up(endpoint: &Endpoint, name: &str) {
    match endpoint.connect(name).await {
        Ok(client) => {
            if let Err(e) = client.batch_execute("select 1").await {
                tracing::debug!("warming {name}: {e}");
            }
        }
        Err(e) => tracing::debug!("warming {name}: {e}"),
    }
}

async fn refill_worker(shared: Arc<Shared>) {
    let mut admin: Option<tokio_postgres::Client> = None;
    // A connection that was fine a moment ago may have been ended by user code (terminating
    // every backend on the server): a failure is retried once on a new connection before
    // acquirers hear of it.
    let mut retried_broken_connection = false;
    loop {
        let notified = shared.wake_refill.notified();
        // Checked between clones only: a CREATE DATABASE already sent finishes on the server even
        // if we stop listening, so a worker is never cancelled in the middle of one.
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        // The daemon rebuilds a vanished template under the same name: a clone taken while it
        // is being built would miss the migrations not yet applied, so none is made until the
        // daemon says it is back ([`ClonePool::template_restored`]).
        if shared.template_missing.load(Ordering::SeqCst) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = notified => {}
            }
            continue;
        }
        let have = lock(&shared.ready).len() + shared.in_flight.load(Ordering::SeqCst);
        // A pool of size 0 still makes one clone at a time for waiting acquirers.
        if have >= shared.config.size.max(1) {
            notified.await;
            continue;
        }
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        if admin.as_ref().is_none_or(|c| c.is_closed()) {
            admin = shared.endpoint.admin().await.ok();
        }
        let result = match &admin {
            Some(client) => create_clone(&shared, client).await,
            None => Err(PoolError::Database {
                context: "refilling the pool".to_string(),
                message: "cannot connect to the server".to_string(),
            }),
        };
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(name) => {
                retried_broken_connection = false;
                lock(&shared.ready).push_back(name.clone());
                lock(&shared.creating).remove(&name);
                shared.clone_ready.notify_waiters();
            }
            Err(PoolError::TemplateMissing(template)) => {
                if !shared.template_missing.swap(true, Ordering::SeqCst) {
                    tracing::warn!(
                        template,
                        "the template vanished (dropped by someone else): waiting for it to be rebuilt"
                    );
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shared.wake_refill.notified() => {}
                }
            }
            Err(e) if !retried_broken_connection => {
                // The error may arrive before the client notices its connection is closed.
                tracing::info!("cloning failed ({e}); retrying once on a new connection");
                retried_broken_connection = true;
                admin = None;
            }
            Err(e) => {
                retried_broken_connection = false;
                tracing::warn!("pool refill failed: {e}");
                *lock(&shared.refill_error) = Some(e.to_string());
                admin = None;
                shared.clone_ready.notify_waiters();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shared.wake_refill.notified() => {}
                }
            }
        }
    }
}

impl Shared {
    /// Spawns background database work (markers, drops) that shutdown waits for. Finished tasks
    /// are collected here, so a long-lived daemon's set does not grow with every clone.
    fn background(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut drops = lock(&self.drops);
        while drops.try_join_next().is_some() {}
        drops.spawn(work);
    }

    fn new(endpoint: &Endpoint, template: &Template, config: PoolConfig) -> Shared {
        Shared {
            endpoint: endpoint.clone(),
            template: template.clone(),
            config,
            ready: Mutex::new(VecDeque::new()),
            leased: Mutex::new(HashSet::new()),
            creating: Mutex::new(HashSet::new()),
            in_flight: AtomicUsize::new(0),
            template_missing: std::sync::atomic::AtomicBool::new(false),
            stopping: std::sync::atomic::AtomicBool::new(false),
            wake_refill: Notify::new(),
            clone_ready: Notify::new(),
            drops: Mutex::new(JoinSet::new()),
            created: AtomicU64::new(0),
            adopted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            clone_micros: AtomicU64::new(0),
            refill_error: Mutex::new(None),
            background_admin: tokio::sync::Mutex::new(None),
            check_admin: tokio::sync::Mutex::new(None),
            vanished_notes: Mutex::new(Vec::new()),
        }
    }

    /// Whether the database `name` is still on the server (one round trip); true when that
    /// cannot be checked, since an acquisition must not fail over the check itself.
    async fn still_exists(&self, name: &str) -> bool {
        let sql = format!(
            "select 1 from pg_database where datname = {}",
            crate::quote_literal(name)
        );
        let mut check = self.check_admin.lock().await;
        for _ in 0..2 {
            if check.as_ref().is_none_or(|c| c.is_closed()) {
                match self.endpoint.admin().await {
                    Ok(client) => *check = Some(client),
                    Err(_) => return true,
                }
            }
            let client = check.as_ref().expect("connected above");
            match client.simple_query(&sql).await {
                Ok(messages) => {
                    return messages
                        .iter()
                        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                }
                Err(e) => {
                    tracing::debug!("checking {name}: {e}; reconnecting");
                    *check = None;
                }
            }
        }
        true
    }

    /// Runs `sql` on the background admin connection, reconnecting once if it broke.
    async fn background_execute(&self, sql: &str) -> Result<(), PoolError> {
        let mut admin = self.background_admin.lock().await;
        for _ in 0..2 {
            if admin.as_ref().is_none_or(|c| c.is_closed()) {
                *admin = Some(
                    self.endpoint
                        .admin()
                        .await
                        .map_err(|e| PoolError::db("connecting to the server", &e))?,
                );
            }
            let client = admin.as_ref().expect("connected above");
            match client.batch_execute(sql).await {
                Err(e) if client.is_closed() => tracing::debug!("background connection broke: {e}"),
                result => return result.map_err(|e| PoolError::db(sql.to_string(), &e)),
            }
        }
        Err(PoolError::Database {
            context: sql.to_string(),
            message: "the connection to the server keeps breaking".to_string(),
        })
    }
}

/// Adopts spare clones of this template left by cleanly stopped runs, up to the pool size.
async fn adopt_spares(shared: &Shared, admin: &tokio_postgres::Client) -> Result<(), PoolError> {
    let rows = admin
        .query(
            "select datname, shobj_description(oid, 'pg_database') from pg_database where datname like $1",
            &[&format!("{NAME_PREFIX}c_{}%", short_fp(&shared.template))],
        )
        .await
        .map_err(|e| PoolError::db("looking for spare clones", &e))?;
    for row in rows {
        if lock(&shared.ready).len() >= shared.config.size {
            break;
        }
        let name: String = row.get(0);
        let comment: Option<String> = row.get(1);
        let Some(marker) = Marker::parse(&name, comment.as_deref()) else {
            continue;
        };
        if marker.state != DbState::Spare || marker.template != shared.template.name {
            continue;
        }
        let adopted = new_clone_name(&shared.template);
        // Renaming fails when another process renamed it first: then it is theirs.
        if admin
            .batch_execute(&format!(
                "alter database {} rename to {}",
                quote_ident(&name),
                quote_ident(&adopted)
            ))
            .await
            .is_err()
        {
            continue;
        }
        roles::give_clone_its_role(&shared.endpoint, admin, &adopted).await?;
        roles::drop_clone_role(admin, &name).await;
        admin
            .batch_execute(&clone_marker(shared, DbState::Pooled).comment_sql(&adopted))
            .await
            .map_err(|e| PoolError::db("marking an adopted clone", &e))?;
        lock(&shared.ready).push_back(adopted);
        shared.adopted.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// On PostgreSQL 15+, measures `STRATEGY FILE_COPY` against `WAL_LOG` for this template once per
/// server and remembers the faster in `memory_file`; older servers have only the default.
pub async fn choose_strategy(
    endpoint: &Endpoint,
    template: &Template,
    memory_file: &Path,
) -> CloneStrategy {
    if endpoint.major_version() < 15 {
        return CloneStrategy::Default;
    }
    let Ok(admin) = endpoint.admin().await else {
        return CloneStrategy::Default;
    };
    let server_key = admin
        .query_one(
            "select system_identifier::text from pg_control_system()",
            &[],
        )
        .await
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_else(|_| format!("{}:{}", endpoint.host, endpoint.port));
    let mut memory: std::collections::BTreeMap<String, CloneStrategy> = std::fs::read(memory_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let Some(strategy) = memory.get(&server_key) {
        return *strategy;
    }
    let probe = Shared::new(endpoint, template, PoolConfig::default());
    let mut best = (CloneStrategy::Default, Duration::MAX);
    // One probe each: the two differ by far more than the noise, and this runs once per server.
    for strategy in [CloneStrategy::WalLog, CloneStrategy::FileCopy] {
        let name = new_clone_name(template);
        let started = Instant::now();
        let made = named_lock::holding(&admin, named_lock::CLONE_CREATION, &name, async {
            let made = admin
                .batch_execute(&format!(
                    "create database {} template {}{}",
                    quote_ident(&name),
                    quote_ident(&template.name),
                    strategy.clause()
                ))
                .await;
            let elapsed = started.elapsed();
            if made.is_ok() {
                let _ = admin
                    .batch_execute(&clone_marker(&probe, DbState::Pooled).comment_sql(&name))
                    .await;
            }
            Ok(made.map(|_| elapsed))
        })
        .await;
        if let Ok(Ok(elapsed)) = made {
            let _ = drop_database(&admin, &name).await;
            if elapsed < best.1 {
                best = (strategy, elapsed);
            }
        }
    }
    tracing::debug!(strategy = ?best.0, elapsed = ?best.1, "clone strategy measured");
    memory.insert(server_key, best.0);
    if let Some(parent) = memory_file.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(
        memory_file,
        serde_json::to_vec_pretty(&memory).unwrap_or_default(),
    );
    best.0
}
