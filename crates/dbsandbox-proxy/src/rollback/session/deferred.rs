//! Deferred constraints at the client's COMMIT. The sandbox's transaction never commits, so
//! PostgreSQL never runs the checks of `DEFERRABLE INITIALLY DEFERRED` constraints (every Django
//! foreign key) by itself: a violation would pass silently, and its pending trigger events would
//! make a later `TRUNCATE` fail (55006). At the client's COMMIT, and at the end of an autocommit
//! statement that may write, the checks run on the client's behalf: a violation fails that
//! COMMIT (or statement) with the server's own error, and the client's transaction is rolled back.
//!
//! The checks are fired with `SET CONSTRAINTS <each deferrable constraint> IMMEDIATE`, by name,
//! not `ALL`: SET CONSTRAINTS state outlives a released savepoint, and only named settings can be
//! put back to each constraint's own default (`SET CONSTRAINTS <the initially deferred ones>
//! DEFERRED`), so the client's next transaction defers what the schema says and nothing else.

use super::*;

/// Fires every pending deferred check now, then gives each deferrable constraint its own
/// default mode back (other sessions' temporary schemas are not ours to name).
const DEFERRED_CHECK_SQL: &str = "DO $dbsb$DECLARE deferrable_ text; deferred_ text; BEGIN \
     SELECT string_agg(format('%I.%I', n.nspname, c.conname), ', '), \
            string_agg(format('%I.%I', n.nspname, c.conname), ', ') FILTER (WHERE c.condeferred) \
       INTO deferrable_, deferred_ \
       FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace \
      WHERE c.condeferrable AND (n.nspname NOT LIKE 'pg\\_temp\\_%' OR n.oid = pg_my_temp_schema()); \
     IF deferrable_ IS NOT NULL THEN EXECUTE 'SET CONSTRAINTS ' || deferrable_ || ' IMMEDIATE'; END IF; \
     IF deferred_ IS NOT NULL THEN EXECUTE 'SET CONSTRAINTS ' || deferred_ || ' DEFERRED'; END IF; \
     END$dbsb$";

/// Whether an autocommit statement may queue deferred checks (writes rows): the check costs a
/// round trip, which reads (`SELECT`, `SHOW`, …) and DDL do not pay.
pub(super) fn may_queue_deferred_checks(sql: &str) -> bool {
    let word: String = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    ["insert", "update", "delete", "merge", "with", "call", "do"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
}

/// The server's ErrorResponse without its CONTEXT field (which would name our DO block), as
/// the client's COMMIT would have reported it.
pub(super) fn error_without_context(out: &mut BytesMut, body: &[u8]) {
    let mut fields = BytesMut::new();
    let mut rest = body;
    while let Some((&code, tail)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        if code != b'W' {
            fields.extend_from_slice(&[code]);
            fields.extend_from_slice(&tail[..end]);
            fields.extend_from_slice(&[0]);
        }
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    fields.extend_from_slice(&[0]);
    out.extend_from_slice(b"E");
    out.extend_from_slice(&((fields.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(&fields);
}

impl Unit {
    /// Before the client's COMMIT of a transaction that ran something: its deferred checks, in
    /// a batch of its own. Returns whether they failed (the error is out, the batch undone, the
    /// client's transaction rolled back, the rest of the unit skipped).
    pub(super) async fn commit_checks_failed(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
    ) -> Result<bool, SessionEnd> {
        self.send_pending(session, backend).await?;
        self.prepare_forward(backend);
        front::query(&mut self.batch, DEFERRED_CHECK_SQL);
        self.steps.push(Step::Check(Expect::UntilReadyNoReady));
        let walked = self.send(session, backend, BatchEnd::InternalSync).await?;
        self.after_walk(session, backend, &walked).await?;
        if walked.client_error {
            backend.rollback(self.id);
        }
        Ok(walked.client_error)
    }

    /// Before the client's Sync of an autocommit sequence that may have written: its implicit
    /// COMMIT's deferred checks, inside the sequence's guard (a violation undoes the sequence;
    /// after an earlier error the server skips them, as it skips the rest of the sequence).
    pub(super) fn queue_autocommit_checks(&mut self) {
        front::query(&mut self.batch, DEFERRED_CHECK_SQL);
        self.steps.push(Step::Check(Expect::UntilReadyNoReady));
    }

    /// After an autocommit simple Query that succeeded, with its guard still open on the
    /// backend: the implicit COMMIT's deferred checks, inside that guard, so a violation undoes
    /// the statement as PostgreSQL's failed implicit COMMIT does.
    pub(super) async fn autocommit_checks(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
    ) -> Result<(), SessionEnd> {
        if !std::mem::take(&mut backend.guard_left_open) {
            return Ok(());
        }
        self.guard = true;
        front::query(&mut self.batch, DEFERRED_CHECK_SQL);
        self.steps.push(Step::Check(Expect::UntilReadyNoReady));
        let walked = self.send(session, backend, BatchEnd::Open).await?;
        self.leave_guard_open(backend, &walked);
        self.after_walk(session, backend, &walked).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pay_for_the_check_reads_do_not() {
        assert!(may_queue_deferred_checks("  INSERT into t values (1)"));
        assert!(may_queue_deferred_checks(
            "with x as (delete from t) select 1"
        ));
        assert!(!may_queue_deferred_checks("select 1"));
        assert!(!may_queue_deferred_checks("create table t (id int)"));
    }

    #[test]
    fn the_context_field_is_dropped() {
        let body = b"SERROR\0C23503\0Mviolation\0Wmy DO block\0nchild_fkey\0\0";
        let mut out = BytesMut::new();
        error_without_context(&mut out, body);
        assert_eq!(&out[5..], b"SERROR\0C23503\0Mviolation\0nchild_fkey\0\0");
        assert_eq!(
            i32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize,
            out.len() - 1
        );
    }
}
