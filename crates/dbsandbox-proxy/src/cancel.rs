//! Cancel keys. A client cancels a query by opening a new connection and sending the
//! (process id, secret) pair it got in BackendKeyData. Clients of the proxy get the backend's real
//! process id, since drivers and their users compare it with `pg_backend_pid()`, notification
//! pids and `pg_stat_activity`, and pass it to `pg_terminate_backend`; the secret is the proxy's
//! own, since the backend's must not leak. This registry maps the proxy's secret to the real
//! backend and its key, and forgets it when the session ends.

use crate::backend::BackendAddr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where to send a forwarded CancelRequest, and the backend's own key.
#[derive(Clone, Debug)]
pub struct CancelTarget {
    pub addr: BackendAddr,
    pub process_id: i32,
    pub secret_key: i32,
    /// For clients sharing a backend (rollback sandboxes): the cancel is handed to the client's
    /// session, which alone knows when only the client's own statement can be hit.
    pub gate: Option<CancelGate>,
}

/// Hands a rollback client's cancel to its session (see `rollback::cancels`).
#[derive(Clone, Debug)]
pub struct CancelGate {
    pub window: Arc<crate::rollback::cancels::CancelWindow>,
    pub id: u32,
}

impl CancelGate {
    /// Whether the request was taken (the client's cycle runs).
    pub fn request(&self) -> bool {
        self.window.request(self.id)
    }
}

/// Live sessions by the secret the proxy gave them. Process ids are not unique here: the clients
/// of one rollback sandbox share a backend, and backends of different servers may share a pid.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    entries: Mutex<HashMap<i32, CancelTarget>>,
}

impl CancelRegistry {
    fn entries(&self) -> MutexGuard<'_, HashMap<i32, CancelTarget>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues the (backend pid, fresh secret) pair for a session and remembers its backend. The
    /// returned guard removes the entry when dropped.
    pub fn register(self: &Arc<Self>, target: CancelTarget) -> CancelKey {
        let process_id = target.process_id;
        let mut entries = self.entries();
        let secret_key = loop {
            let secret = crate::startup::random_u64() as i32;
            if !entries.contains_key(&secret) {
                break secret;
            }
        };
        entries.insert(secret_key, target);
        CancelKey {
            registry: Arc::clone(self),
            process_id,
            secret_key,
        }
    }

    /// The backend to cancel for a client's pair, if the pair is live and the secret matches.
    pub fn lookup(&self, process_id: i32, secret_key: i32) -> Option<CancelTarget> {
        let entries = self.entries();
        let target = entries.get(&secret_key)?;
        (target.process_id == process_id).then(|| target.clone())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

/// A registered cancel key; unregisters itself on drop.
#[derive(Debug)]
pub struct CancelKey {
    registry: Arc<CancelRegistry>,
    pub process_id: i32,
    pub secret_key: i32,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry.entries().remove(&self.secret_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_needs_the_right_secret_and_ends_with_the_session() {
        let registry = Arc::new(CancelRegistry::default());
        let target = CancelTarget {
            addr: BackendAddr::Tcp("127.0.0.1".into(), 5432),
            process_id: 42,
            secret_key: 7,
            gate: None,
        };
        let key = registry.register(target.clone());
        assert_eq!(key.process_id, 42, "the client sees the backend's pid");
        assert_ne!(key.secret_key, 7, "but never the backend's secret");
        let found = registry.lookup(key.process_id, key.secret_key).unwrap();
        assert_eq!(found.process_id, 42);
        assert_eq!(found.secret_key, 7);
        assert!(registry
            .lookup(key.process_id, key.secret_key.wrapping_add(1))
            .is_none());
        assert!(registry.lookup(43, key.secret_key).is_none());
        // Two clients of one shared backend: the same pid, each with its own secret.
        let sharer = registry.register(target);
        assert_eq!(sharer.process_id, 42);
        assert_ne!(sharer.secret_key, key.secret_key);
        drop(sharer);
        let (pid, secret) = (key.process_id, key.secret_key);
        drop(key);
        assert!(registry.lookup(pid, secret).is_none());
        assert_eq!(registry.len(), 0);
    }
}
