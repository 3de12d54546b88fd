//! The key's turn: one connection at a time drives the shared backend (the lock around
//! [`Backend`]). A connection in the middle of an extended-protocol sequence keeps the turn
//! between its messages (it sent Flush, not Sync, as psycopg's pipeline mode does to fetch a
//! result), so that nothing else reaches the server inside its sequence. Its code may meanwhile
//! wait for another connection of the key (a second connection's query, in PostgreSQL an
//! independent session), which waits for the turn: a deadlock. So whoever waits for the turn says
//! so here, and the holder gives the turn up at its next pause (see `ClientSession::run_unit`).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tokio::sync::futures::Notified;
use tokio::sync::{MutexGuard, Notify};

use super::sandbox::{Backend, Sandbox};

/// Who is waiting for a sandbox's turn.
#[derive(Default)]
pub struct Turn {
    waiting: AtomicUsize,
    asked: Notify,
}

impl Turn {
    /// Whether anyone waits for the turn now.
    pub fn wanted(&self) -> bool {
        self.waiting.load(SeqCst) > 0
    }

    /// Completes when someone starts waiting for the turn. Enable it before checking
    /// [`Turn::wanted`], so a waiter that arrives in between is not missed.
    pub fn asked(&self) -> Notified<'_> {
        self.asked.notified()
    }
}

impl Sandbox {
    /// Waits for the key's turn, telling a holder that pauses mid-sequence to give it up.
    pub async fn take_turn(&self) -> MutexGuard<'_, Backend> {
        self.turn.waiting.fetch_add(1, SeqCst);
        let _waiting = Waiting(&self.turn.waiting);
        self.turn.asked.notify_waiters();
        self.backend.lock().await
    }
}

/// Counts a waiter however its wait ends (a control request's wait is bounded).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}
