//! `pg_notify()` in a rollback sandbox. The key's shared server transaction never commits, so
//! the server would hold a notification for ever. dbsandbox's templates carry their own
//! `pg_notify` (dbsandbox-pool's `notify` module) which, in a session that has
//! [`ROLLBACK_SANDBOX_SETTING`] on (the sandbox's backend sets it at startup), sends channel and
//! payload back as a NOTICE with SQLSTATE [`NOTIFY_SQLSTATE`] instead of notifying. The reply walk
//! swallows that notice and keeps the notification with the unit; once the unit's batch is done
//! it becomes a [`Backend::notify`], as a `NOTIFY` statement does (delivered at the client's
//! COMMIT, dropped by its ROLLBACK, at once in autocommit), unless the batch failed: then it was
//! undone with the rest, as PostgreSQL drops the notifications of an aborted transaction.

use super::*;

/// The setting of the sandbox's backend session that dbsandbox's `pg_notify` looks for
/// (dbsandbox-pool's `ROLLBACK_SANDBOX_SETTING`).
pub const ROLLBACK_SANDBOX_SETTING: &str = "dbsandbox.rollback_sandbox";

/// The SQLSTATE of the notice that carries one (dbsandbox-pool's `NOTIFY_SQLSTATE`).
const NOTIFY_SQLSTATE: &[u8] = b"DBSBN";

/// The notifications a unit's `pg_notify()` calls sent, not yet settled.
#[derive(Default)]
pub(super) struct UnitNotifications {
    received: Vec<(String, String)>,
    /// The client ended its sequence without a Sync (it left, or sent Terminate): PostgreSQL
    /// aborts such a transaction, and what it notified goes with it.
    abandoned: bool,
}

impl UnitNotifications {
    /// Keeps the notification a NoticeResponse body carries; false for any other notice.
    pub(super) fn receive(&mut self, notice: &[u8]) -> bool {
        match parse(notice) {
            Some(notification) => {
                self.received.push(notification);
                true
            }
            None => false,
        }
    }

    pub(super) fn abandon(&mut self) {
        self.abandoned = true;
    }
}

impl Unit {
    /// After a walk: a failed batch drops its notifications; a finished one (no guard left
    /// open for more of the client's sequence) hands them to the client's transaction.
    pub(super) fn settle_notifications(&mut self, backend: &mut Backend, walked: &Walked) {
        let pending = &mut self.notifications;
        if pending.received.is_empty() {
            return;
        }
        let failed =
            walked.backend_status == b'E' || walked.client_error || walked.internal_error.is_some();
        if failed || pending.abandoned {
            pending.received.clear();
        } else if !self.guard {
            for (channel, payload) in std::mem::take(&mut pending.received) {
                backend.notify(self.id, &channel, &payload);
            }
        }
    }
}

/// Channel (DETAIL) and payload (HINT) of our notice; `None` for any other. The text is the
/// client's bytes (its `client_encoding` is the backend's during its batch), kept byte for byte
/// as the NOTIFY statement's are.
fn parse(body: &[u8]) -> Option<(String, String)> {
    let mut code = None;
    let mut channel = None;
    let mut payload = None;
    for (field, value) in crate::rollback::messages::response_fields(body) {
        match field {
            b'C' => code = Some(value),
            b'D' => channel = Some(value),
            b'H' => payload = Some(value),
            _ => {}
        }
    }
    if code? != NOTIFY_SQLSTATE {
        return None;
    }
    Some((
        names::decode_text(channel?),
        names::decode_text(payload.unwrap_or_default()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_notice_carries_a_notification() {
        let ours = "SNOTICE\0VNOTICE\0CDBSBN\0Mdbsandbox\0Djobs\0Hit's \u{fc}\0Wcontext\0\0";
        assert_eq!(
            parse(ours.as_bytes()),
            Some(("jobs".to_string(), "it's \u{fc}".to_string()))
        );
        assert_eq!(
            parse(b"SNOTICE\0CDBSBN\0Djobs\0\0"),
            Some(("jobs".to_string(), String::new())),
            "an empty payload may come without its field"
        );
        assert_eq!(parse(b"SNOTICE\0C00000\0Djobs\0Hx\0\0"), None);
        assert_eq!(parse(b"SNOTICE\0CDBSBN\0Hx\0\0"), None, "no channel");
        assert_eq!(parse(b"SNOTICE\0CDBSBN\0Djo"), None, "cut short");
    }
}
