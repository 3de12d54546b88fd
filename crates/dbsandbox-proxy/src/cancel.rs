//! Cancel keys. A client cancels a query by opening a new connection and sending the
//! (process id, secret) pair it got in BackendKeyData. Clients of the proxy get a pair the proxy
//! made up, never the backend's, because the backend's pid would be ambiguous across servers and
//! its secret must not leak; this registry maps the proxy's pair to the real backend and its key,
//! and forgets it when the session ends.

use crate::backend::BackendAddr;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Where to send a forwarded CancelRequest, and the backend's own key.
#[derive(Clone, Debug)]
pub struct CancelTarget {
    pub addr: BackendAddr,
    pub process_id: i32,
    pub secret_key: i32,
    /// For clients sharing a backend (rollback sandboxes): forward only while this client's
    /// request runs, so one client cannot cancel another's query.
    pub gate: Option<CancelGate>,
}

/// Passes a cancel only while `owner` holds `id`.
#[derive(Clone, Debug)]
pub struct CancelGate {
    pub owner: Arc<std::sync::atomic::AtomicU32>,
    pub id: u32,
}

impl CancelGate {
    pub fn open(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == self.id
    }
}

#[derive(Debug)]
struct Entry {
    secret_key: i32,
    target: CancelTarget,
}

#[derive(Debug)]
pub struct CancelRegistry {
    next_pid: AtomicI32,
    entries: Mutex<HashMap<i32, Entry>>,
}

impl Default for CancelRegistry {
    fn default() -> Self {
        // Start somewhere random in the positive range so pids do not look like small counters
        // that collide with real backend pids in logs.
        let start = (crate::startup::random_u64() % (1 << 30)) as i32 + 1;
        CancelRegistry {
            next_pid: AtomicI32::new(start),
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl CancelRegistry {
    fn entries(&self) -> MutexGuard<'_, HashMap<i32, Entry>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Issues a fresh (pid, secret) for a session and remembers its backend. The returned guard
    /// removes the entry when dropped.
    pub fn register(self: &Arc<Self>, target: CancelTarget) -> CancelKey {
        let secret_key = crate::startup::random_u64() as i32;
        let mut entries = self.entries();
        let process_id = loop {
            let pid = self.next_pid.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff;
            if pid != 0 && !entries.contains_key(&pid) {
                break pid;
            }
        };
        entries.insert(process_id, Entry { secret_key, target });
        CancelKey {
            registry: Arc::clone(self),
            process_id,
            secret_key,
        }
    }

    /// The backend to cancel for a client's pair, if the pair is live and the secret matches.
    pub fn lookup(&self, process_id: i32, secret_key: i32) -> Option<CancelTarget> {
        let entries = self.entries();
        let entry = entries.get(&process_id)?;
        (entry.secret_key == secret_key).then(|| entry.target.clone())
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
        self.registry.entries().remove(&self.process_id);
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
        let key = registry.register(target);
        let found = registry.lookup(key.process_id, key.secret_key).unwrap();
        assert_eq!(found.process_id, 42);
        assert_eq!(found.secret_key, 7);
        assert!(registry
            .lookup(key.process_id, key.secret_key.wrapping_add(1))
            .is_none());
        let (pid, secret) = (key.process_id, key.secret_key);
        drop(key);
        assert!(registry.lookup(pid, secret).is_none());
        assert_eq!(registry.len(), 0);
    }
}
