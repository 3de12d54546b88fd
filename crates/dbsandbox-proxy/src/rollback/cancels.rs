//! A client's CancelRequest in a rollback sandbox cancels that client's own statement and never
//! the proxy's SQL on the key's shared backend (savepoint work, the guard savepoints, recovery,
//! a reset), which would break the key for every connection. PostgreSQL acts on a cancel
//! whenever its signal is taken: during the statement it was meant for, or, if that one is
//! done, during whatever the server runs next from what it has already read. So the proxy does
//! not forward a client's cancel itself: the request is held for the client's session while its
//! cycle runs, and the session sends it (and waits until the server has it) only while it awaits
//! the replies of the client's own statements, once the batch's leading SQL of ours is answered
//! (a Flush after it makes the server answer it at once). What the server may then still run
//! of that batch is the client's or inside its guard savepoint, so the worst a late signal does
//! is fail the client's batch; the next batch is read from the socket, where PostgreSQL drops
//! a pending cancel. A request that finds no such moment before the cycle ends is dropped, as
//! PostgreSQL drops one that arrives between statements.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

use tokio::sync::Notify;

use super::sandbox::ClientId;

/// The cancel state of one sandbox: whose cycle runs, and whether that client asked to cancel.
#[derive(Default, Debug)]
pub struct CancelWindow {
    /// The client whose cycle runs now (0: none).
    owner: AtomicU32,
    /// The owner's cancel, not yet sent.
    requested: AtomicBool,
    wake: Notify,
}

impl CancelWindow {
    /// The cycle of client `id` begins (an older request of its is stale).
    pub fn open(&self, id: ClientId) {
        self.requested.store(false, SeqCst);
        self.owner.store(id, SeqCst);
    }

    /// The cycle ends: a request not sent by now is dropped.
    pub fn close(&self) {
        self.owner.store(0, SeqCst);
        self.requested.store(false, SeqCst);
    }

    /// A CancelRequest of client `id`: held for its session when its cycle runs, else ignored
    /// (another client's statement runs, or none). Returns whether it was taken.
    pub fn request(&self, id: ClientId) -> bool {
        if self.owner.load(SeqCst) != id {
            return false;
        }
        self.requested.store(true, SeqCst);
        self.wake.notify_one();
        true
    }

    /// Takes the pending request, if any.
    pub fn take(&self) -> bool {
        self.requested.swap(false, SeqCst)
    }

    /// Resolves when a request may have arrived (check with [`CancelWindow::take`]).
    pub async fn requested(&self) {
        self.wake.notified().await
    }
}
