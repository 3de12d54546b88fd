//! The daemon's upkeep, once a second: releases what dead processes held, closes dead and
//! expired runs, reaps what killed `run --no-daemon`s left (private clusters, records), notices
//! a template or pooled clones that vanished behind its back (and rebuilds), drops the clones a
//! dead creator left unmarked, retires old pools,
//! and ends an idle daemon. Also what the daemon tells about it: its repairs, and the databases
//! it uses (which `gc` asks for).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dbsandbox_pool::ClonePool;

use super::{lock, Daemon, MAX_RECOVERIES_SHOWN};

/// What [`Daemon::on_watch_connection`] runs: a future borrowing the connection.
type WatchWork<'c, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>;

impl Daemon {
    /// Notes a repair: logged, and listed by `GET /v1/status` (the last few).
    pub fn recovered(&self, what: String) {
        tracing::warn!("{what}");
        let mut recoveries = lock(&self.recoveries);
        recoveries.push(what);
        let excess = recoveries.len().saturating_sub(MAX_RECOVERIES_SHOWN);
        recoveries.drain(..excess);
    }

    /// The repairs the daemon made, oldest first.
    pub fn recoveries(&self) -> Vec<String> {
        lock(&self.recoveries).clone()
    }

    /// Every database this daemon uses: its templates (the current one and those of retired
    /// pools) and every clone its pools hold or are making. `gc` never drops them.
    pub fn databases_in_use(&self) -> Vec<String> {
        let mut names = vec![self.template().name];
        names.extend(self.pool().databases());
        for old in lock(&self.retired).iter() {
            names.push(old.template().name.clone());
            names.extend(old.databases());
        }
        names.sort();
        names.dedup();
        names
    }

    /// Which of `names` exist on the server, on the housekeeping's connection.
    pub async fn existing(&self, names: &[String]) -> anyhow::Result<Vec<String>> {
        // Owned: the work may not borrow beyond the connection it is given.
        let names = names.to_vec();
        self.on_watch_connection(|client| {
            let names = names.clone();
            Box::pin(async move {
                client
                    .query(
                        "select datname from pg_database where datname = any($1)",
                        &[&names],
                    )
                    .await
                    .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            })
        })
        .await
        .context("reading the catalogue")
    }

    /// Runs `work` on the housekeeping's connection, remade (and `work` retried once) when it
    /// broke.
    async fn on_watch_connection<T, E>(
        &self,
        work: impl for<'c> Fn(&'c tokio_postgres::Client) -> WatchWork<'c, T, E>,
    ) -> anyhow::Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut admin = self.watch_admin.lock().await;
        for attempt in 0..2 {
            if admin.as_ref().is_none_or(|c| c.is_closed()) {
                *admin = Some(
                    self.endpoint
                        .admin()
                        .await
                        .context("connecting to the server")?,
                );
            }
            let client = admin.as_ref().expect("connected above");
            match work(client).await {
                Ok(answer) => return Ok(answer),
                Err(e) if attempt == 0 && client.is_closed() => {
                    tracing::debug!("the housekeeping connection failed ({e}); reconnecting");
                    *admin = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the second attempt returns")
    }

    pub(super) async fn housekeeping(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if *self.shutdown.borrow() {
                return;
            }
            self.restart_a_dead_server().await;
            self.close_finished_runs().await;
            self.reap_dead_runs_leftovers().await;
            self.check_databases().await;
            self.reap_unfinished_clones().await;
            self.retire_idle_pools().await;
            if !self.is_idle() {
                self.touch();
            }
            if let Some(limit) = self.config.idle_timeout {
                if lock(&self.last_activity).elapsed() >= limit {
                    tracing::info!("idle for {} s: stopping", limit.as_secs());
                    self.request_shutdown();
                    return;
                }
            }
        }
    }

    /// Releases the keys of dead owners; closes runs whose process is gone or whose lease ran out
    /// (a run with an open connection is in use: its lease restarts).
    async fn close_finished_runs(&self) {
        self.api_scope.registry.release_orphans();
        for run in self.runs() {
            if run.registry.connections_open() > 0 {
                run.renew();
            }
        }
        let finished: Vec<(String, &'static str)> = lock(&self.runs)
            .iter()
            .filter_map(|(id, scope)| {
                if scope.owner.is_some_and(|o| !o.is_alive()) {
                    Some((id.clone(), "the run's process is gone"))
                } else if scope.lease_expired() {
                    Some((id.clone(), "the run's lease ran out"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in finished {
            tracing::info!(run = %id, "{why}: closing its scope");
            let _ = self.close_run(&id).await;
        }
        for run in self.runs() {
            run.registry.release_orphans();
        }
    }

    /// A killed `run --no-daemon` leaves its private cluster running and its record behind until
    /// the next server start; a live daemon on the same cache reaps them now.
    async fn reap_dead_runs_leftovers(&self) {
        for id in crate::record::reap_dead_run_records(&self.config.cache_dir) {
            tracing::info!(record = %id, "removed the record of a run that died");
        }
        if let Some(root) = self.state_root.clone() {
            let _ =
                tokio::task::spawn_blocking(move || dbsandbox_server::reclaim_orphans(&root)).await;
        }
    }

    /// A creator killed mid-`CREATE DATABASE` (a daemon before this one, a `run --no-daemon`)
    /// leaves its clone unmarked only once that copy commits on the server, which may be after
    /// this daemon's start-up reaping: looked for on every tick.
    async fn reap_unfinished_clones(&self) {
        match self
            .on_watch_connection(|client| Box::pin(dbsandbox_pool::reap_unfinished_clones(client)))
            .await
        {
            Ok(reaped) if !reaped.is_empty() => self.recovered(format!(
                "dropped {} clone(s) a dbsandbox that died left unmarked ({})",
                reaped.len(),
                reaped.join(", ")
            )),
            Ok(_) => {}
            Err(e) => tracing::debug!("reaping unmarked clones: {e:#}"),
        }
    }

    /// A user may drop our databases by hand (or an old `gc` from another version): ready
    /// clones that vanished are forgotten (never handed out) and a vanished template is rebuilt,
    /// on a task of its own, so that a long build does not hold up the reapers.
    async fn check_databases(self: &Arc<Self>) {
        let pool = self.pool();
        let template = self.template().name;
        let ready = pool.ready_names();
        let leased = pool.leased_names();
        let mut names = ready.clone();
        names.extend(leased.iter().cloned());
        names.push(template.clone());
        let existing = match self.existing(&names).await {
            Ok(existing) => existing,
            Err(e) => {
                tracing::debug!("checking the daemon's databases: {e:#}");
                return;
            }
        };
        let vanished: Vec<String> = ready
            .into_iter()
            .filter(|name| !existing.contains(name))
            .collect();
        for note in pool.take_vanished_notes() {
            self.recovered(note);
        }
        let forgotten = pool.forget_vanished(&vanished);
        if !forgotten.is_empty() {
            self.recovered(format!(
                "{} pooled clone(s) vanished (dropped behind the daemon's back): replacing them ({})",
                forgotten.len(),
                forgotten.join(", ")
            ));
        }
        // A key's clone is the key's state: replacing it behind the key's back would hide that
        // its rows are gone, so the daemon says so and a reset (or release) gives a fresh one.
        let gone_leased: Vec<String> = {
            let mut said = lock(&self.vanished_leased);
            said.retain(|name| leased.contains(name));
            leased
                .iter()
                .filter(|name| !existing.contains(name) && said.insert((*name).clone()))
                .cloned()
                .collect()
        };
        for name in gone_leased {
            self.recovered(format!(
                "the clone {name} of a sandbox vanished (dropped behind the daemon's back): \
                 reset or release its key for a fresh one"
            ));
        }
        let missing = !existing.contains(&template) || pool.template_missing();
        if missing
            && !self
                .rebuilding
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            let daemon = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = daemon.refresh().await {
                    tracing::warn!("rebuilding the template {template}: {e:#}");
                }
                daemon
                    .rebuilding
                    .store(false, std::sync::atomic::Ordering::SeqCst);
            });
        }
    }

    /// Shuts down the pools of drifted templates once their last clone is back.
    async fn retire_idle_pools(&self) {
        let idle_old: Vec<ClonePool> = {
            let mut retired = lock(&self.retired);
            let (done, keep): (Vec<_>, Vec<_>) =
                retired.drain(..).partition(|p| p.stats().leased == 0);
            *retired = keep;
            done
        };
        for pool in idle_old {
            if let Err(e) = pool.shutdown(false).await {
                tracing::warn!("cleaning up an old template's clones: {e}");
            }
        }
    }
}
