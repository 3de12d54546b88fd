//! Named reset points of a key: the state after set-up that a group of tests shares, which a
//! reset can go back to instead of the template's. A rollback key keeps them as savepoints in
//! its sandbox (see `dbsandbox_proxy::Sandboxes::snapshot`); a database key as copies of its
//! clone, made while none of its connections is open (PostgreSQL copies only an idle database),
//! and a reset to one gives the key a fresh copy of it.

use std::sync::Arc;

use dbsandbox_proxy::{Isolation, Sandboxes};
use tokio::sync::OnceCell;

use super::{Held, Registry};

/// Why a named reset point could not be taken or gone back to.
#[derive(Debug)]
pub enum PointError {
    /// Not now (a connection is inside a transaction block, or open on a database key), or
    /// before the key has anything to keep.
    Conflict(String),
    /// No such point.
    Missing(String),
    /// The sandbox is broken or busy, or the server failed.
    Unavailable(String),
}

/// Returns a database key's points to their pools (they are dropped in the background).
pub(super) fn release_points(points: Vec<(String, Held)>) {
    for (_, held) in points {
        held.pool.release(&held.name);
    }
}

impl Registry {
    /// Takes (or moves) the key's reset point `point`: its state now. Taking a name again moves
    /// the point and drops the points taken after it. `Ok(false)` when the key is unknown.
    pub async fn take_point(&self, key: &str, point: &str) -> Result<bool, PointError> {
        if !self.contains(key) {
            return Ok(false);
        }
        if self.isolation_of(key) == Isolation::Database {
            return self.copy_clone_as_point(key, point).await;
        }
        let sandboxes = self.rollback_sandboxes(key)?;
        match sandboxes.snapshot(key, point).await {
            Ok(Some(Ok(()))) => Ok(true),
            Ok(Some(Err(refused))) => Err(PointError::Conflict(refused)),
            Ok(None) => Err(no_sandbox_yet(key)),
            Err(e) => Err(PointError::Unavailable(e)),
        }
    }

    /// Rolls the key back to its reset point `point`, dropping the points taken after it.
    /// `Ok(false)` when the key is unknown.
    pub async fn reset_to(&self, key: &str, point: &str) -> Result<bool, PointError> {
        if !self.contains(key) {
            return Ok(false);
        }
        if self.isolation_of(key) == Isolation::Database {
            return self.clone_from_point(key, point).await;
        }
        let sandboxes = self.rollback_sandboxes(key)?;
        match sandboxes.reset_to(key, point).await {
            Ok(Some(Ok(()))) => Ok(true),
            Ok(Some(Err(missing))) => Err(PointError::Missing(missing)),
            Ok(None) => Err(PointError::Missing(format!(
                "key {key} has no reset point \"{point}\": it has no sandbox yet"
            ))),
            Err(e) => Err(PointError::Unavailable(e)),
        }
    }

    fn rollback_sandboxes(&self, key: &str) -> Result<&Arc<Sandboxes>, PointError> {
        self.sandboxes.get().ok_or_else(|| no_sandbox_yet(key))
    }

    async fn copy_clone_as_point(&self, key: &str, point: &str) -> Result<bool, PointError> {
        if point.is_empty() || point.len() > 63 {
            return Err(PointError::Conflict(
                "a dbsandbox reset point needs a name of 1 to 63 bytes".to_string(),
            ));
        }
        let (clone, open) = {
            let keys = self.keys();
            let Some(slot) = keys.get(key) else {
                return Ok(false);
            };
            (slot.clone.get().cloned(), slot.stats.connections_open)
        };
        let Some(clone) = clone else {
            return Err(no_sandbox_yet(key));
        };
        if open > 0 {
            return Err(PointError::Conflict(format!(
                "key {key} is a database key with {open} open connection(s): its reset point is \
                 a copy of its database, which PostgreSQL makes only while nobody is connected; \
                 close them (a pool's too), then take the point"
            )));
        }
        let copy = clone
            .pool
            .copy_of(&clone.name)
            .await
            .map_err(|e| PointError::Unavailable(e.to_string()))?;
        let held = Held {
            name: copy,
            pool: clone.pool.clone(),
        };
        let dropped = {
            let mut keys = self.keys();
            let Some(slot) = keys.get_mut(key) else {
                drop(keys);
                release_points(vec![(point.to_string(), held)]);
                return Ok(false);
            };
            let later = match slot.points.iter().position(|(name, _)| name == point) {
                Some(at) => slot.points.split_off(at),
                None => Vec::new(),
            };
            slot.points.push((point.to_string(), held));
            later
        };
        release_points(dropped);
        Ok(true)
    }

    async fn clone_from_point(&self, key: &str, point: &str) -> Result<bool, PointError> {
        let source = {
            let keys = self.keys();
            let Some(slot) = keys.get(key) else {
                return Ok(false);
            };
            slot.points
                .iter()
                .find(|(name, _)| name == point)
                .map(|(_, held)| held.clone())
        };
        let Some(source) = source else {
            return Err(PointError::Missing(format!(
                "key {key} has no reset point \"{point}\" (take it with POST \
                 /v1/sandboxes/{key}/snapshot; a reset to the template drops every point)"
            )));
        };
        let fresh = source
            .pool
            .copy_of(&source.name)
            .await
            .map_err(|e| PointError::Unavailable(e.to_string()))?;
        let held = Held {
            name: fresh.clone(),
            pool: source.pool.clone(),
        };
        let (old, later) = {
            let mut keys = self.keys();
            let Some(slot) = keys.get_mut(key) else {
                drop(keys);
                source.pool.release(&fresh);
                return Ok(false);
            };
            let later = match slot.points.iter().position(|(name, _)| name == point) {
                Some(at) => slot.points.split_off(at + 1),
                None => Vec::new(),
            };
            let old = std::mem::replace(&mut slot.clone, Arc::new(OnceCell::from(held)));
            slot.stats.clone = Some(fresh);
            slot.stats.clones_used += 1;
            (old, later)
        };
        // The old clone's open connections are closed by its drop, as at a reset.
        if let Some(held) = old.get() {
            held.pool.release(&held.name);
        }
        release_points(later);
        Ok(true)
    }
}

fn no_sandbox_yet(key: &str) -> PointError {
    PointError::Conflict(format!(
        "key {key} has no sandbox yet (no connection has used it), so it is in the template's \
         state: connect, run the shared set-up, then take the point"
    ))
}
