//! Counters the proxy keeps while it serves, and the cheap snapshot the CLI prints in its run
//! summary. Counters are relaxed atomics updated once per connection event or once per relayed
//! batch (never per message), so keeping them costs nothing measurable.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// A point-in-time copy of the proxy's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted (including cancel requests and refused ones).
    pub connections_total: u64,
    /// Client connections currently open.
    pub connections_open: u64,
    /// Connections that reached the relay phase (startup, auth and routing succeeded).
    pub sessions_established: u64,
    /// Connections closed during startup with an error: bad packets, bad keys, failed
    /// authentication, routing or backend failures.
    pub refused: u64,
    /// Connections closed because of a framing violation (subset of `refused` during startup,
    /// counted here too when it happens during the relay).
    pub protocol_errors: u64,
    /// CancelRequests received, and those that matched a live session and were forwarded.
    pub cancel_requests: u64,
    pub cancels_forwarded: u64,
    /// Bytes relayed from clients to backends and from backends to clients after startup.
    pub bytes_from_clients: u64,
    pub bytes_to_clients: u64,
}

#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub connections_total: AtomicU64,
    pub connections_open: AtomicU64,
    pub sessions_established: AtomicU64,
    pub refused: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub cancel_requests: AtomicU64,
    pub cancels_forwarded: AtomicU64,
    pub bytes_from_clients: AtomicU64,
    pub bytes_to_clients: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> ProxyStats {
        ProxyStats {
            connections_total: self.connections_total.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            sessions_established: self.sessions_established.load(Relaxed),
            refused: self.refused.load(Relaxed),
            protocol_errors: self.protocol_errors.load(Relaxed),
            cancel_requests: self.cancel_requests.load(Relaxed),
            cancels_forwarded: self.cancels_forwarded.load(Relaxed),
            bytes_from_clients: self.bytes_from_clients.load(Relaxed),
            bytes_to_clients: self.bytes_to_clients.load(Relaxed),
        }
    }
}

/// A handle on a proxy's counters that stays valid while (and after) [`crate::Proxy::serve`]
/// consumes the proxy. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StatsHandle(pub(crate) Arc<Counters>);

impl StatsHandle {
    pub fn snapshot(&self) -> ProxyStats {
        self.0.snapshot()
    }
}
