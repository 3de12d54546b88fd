//! A broken sandbox: its backend died or lost track of the protocol, so the key's state (what its
//! connections wrote) is gone. The sandbox keeps saying so, with the reason, to every connection
//! of the key (those open are told at once, new ones are refused) until the key is reset or
//! released: a key is never silently replaced by an empty one.

use tokio::sync::watch;

/// Why a sandbox stopped, and the SQLSTATE its connections are told with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakage {
    /// `57P01` when the server terminated the session (as PostgreSQL tells a terminated
    /// session's client), else `08006`.
    pub sqlstate: &'static str,
    pub reason: String,
}

/// The breakage of one sandbox, shared by its backend and its sessions (which watch it).
#[derive(Debug)]
pub struct BrokenFlag(watch::Sender<Option<Breakage>>);

impl Default for BrokenFlag {
    fn default() -> Self {
        BrokenFlag(watch::channel(None).0)
    }
}

impl BrokenFlag {
    /// Marks the sandbox broken; the first reason wins (later ones are consequences).
    pub fn set(&self, key: &str, sqlstate: &'static str, reason: &str) {
        self.0.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            tracing::warn!(key, sqlstate, "rollback sandbox broken: {reason}");
            *current = Some(Breakage {
                sqlstate,
                reason: reason.to_string(),
            });
            true
        });
    }

    pub fn get(&self) -> Option<Breakage> {
        self.0.borrow().clone()
    }

    pub fn is_set(&self) -> bool {
        self.0.borrow().is_some()
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Breakage>> {
        self.0.subscribe()
    }
}

/// What a connection of a broken key is told: the key, the reason, and how to recover.
pub fn message(key: &str, reason: &str) -> String {
    format!(
        "dbsandbox key {key} is broken: {reason}. Its sandbox's state (everything its connections \
         wrote since the last reset) is lost; every connection of the key gets this error until \
         the key is reset (`dbsandbox reset {key}`, or POST /v1/sandboxes/{key}/reset on the \
         control API) or released (`dbsandbox release {key}`)"
    )
}
