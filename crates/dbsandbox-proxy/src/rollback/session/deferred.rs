//! Deferred constraints at the client's COMMIT. The sandbox's transaction never commits, so
//! PostgreSQL never runs the checks of `DEFERRABLE INITIALLY DEFERRED` constraints (every Django
//! foreign key) by itself: a violation would pass silently, and its pending trigger events would
//! make a later `TRUNCATE` fail (55006). At the client's COMMIT, and at the end of an autocommit
//! statement that may write, the checks run on the client's behalf: a violation fails that
//! COMMIT (or statement) with the server's own error, and the client's transaction is rolled back.
//!
//! The checks are pipelined with the statement they belong to where they can be (an autocommit
//! statement's batch), and cost nothing while no constraint is deferrable: the list of
//! deferrable constraints is read from the catalog once and kept until DDL or a rollback.
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

/// The deferrable constraints, all and the initially deferred ones, as lists of qualified names.
const DEFERRABLE_SQL: &str = "SELECT string_agg(format('%I.%I', n.nspname, c.conname), ', '), \
     string_agg(format('%I.%I', n.nspname, c.conname), ', ') FILTER (WHERE c.condeferred) \
     FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace \
     WHERE c.condeferrable AND (n.nspname NOT LIKE 'pg\\_temp\\_%' OR n.oid = pg_my_temp_schema())";

/// Whether a statement may create or drop constraints (anything but reads and row writes):
/// then the cached list of deferrable constraints is stale.
pub(super) fn may_change_schema(sql: &str) -> bool {
    let word: String = sql
        .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    ![
        "select",
        "insert",
        "update",
        "delete",
        "merge",
        "with",
        "values",
        "table",
        "show",
        "set",
        "reset",
        "fetch",
        "move",
        "close",
        "copy",
        "explain",
        "execute",
        "prepare",
        "deallocate",
        "lock",
        "listen",
        "unlisten",
        "notify",
        "begin",
        "start",
        "commit",
        "end",
        "rollback",
        "abort",
        "savepoint",
        "release",
        "declare",
        "discard",
        "",
    ]
    .iter()
    .any(|w| word.eq_ignore_ascii_case(w))
}

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

/// The server's ErrorResponse (whole message) without its CONTEXT field (which would name our
/// DO block), as the client's COMMIT would have reported it.
pub(super) fn error_without_context(out: &mut BytesMut, raw: &[u8]) {
    out.extend_from_slice(&crate::rollback::messages::with_fields(
        raw,
        |field| field != b'W',
        &[],
    ));
}

impl Unit {
    /// The SQL that fires the deferred checks, `None` when no constraint is deferrable. Known
    /// from the catalog once and kept until DDL or a rollback may have changed the constraints;
    /// `fresh` (the batch itself may change them) or `no_query_now` (the backend is in the middle
    /// of the client's sequence) with the list unknown: the DO block, which reads the catalog
    /// when it runs.
    pub(super) async fn deferred_checks_sql(
        &mut self,
        backend: &mut Backend,
        fresh: bool,
        no_query_now: bool,
    ) -> Result<Option<String>, SessionEnd> {
        if fresh {
            return Ok(Some(DEFERRED_CHECK_SQL.to_string()));
        }
        if let Some(known) = &backend.deferred_checks {
            return Ok(known.clone());
        }
        if no_query_now {
            return Ok(Some(DEFERRED_CHECK_SQL.to_string()));
        }
        let Ok(rows) = backend.run_internal(DEFERRABLE_SQL).await? else {
            return Ok(Some(DEFERRED_CHECK_SQL.to_string()));
        };
        let sql = match rows.first().map(Vec::as_slice) {
            Some([Some(all), deferred]) => Some(match deferred {
                Some(deferred) => {
                    format!("SET CONSTRAINTS {all} IMMEDIATE; SET CONSTRAINTS {deferred} DEFERRED")
                }
                None => format!("SET CONSTRAINTS {all} IMMEDIATE"),
            }),
            _ => None,
        };
        backend.deferred_checks = Some(sql.clone());
        Ok(sql)
    }

    /// Before the client's COMMIT of a transaction that ran something: its deferred checks, in
    /// a batch of its own. Returns whether they failed (the error is out, the batch undone, the
    /// client's transaction rolled back, the rest of the unit skipped).
    pub(super) async fn commit_checks_failed(
        &mut self,
        session: &mut ClientSession<'_>,
        backend: &mut Backend,
    ) -> Result<bool, SessionEnd> {
        self.send_pending(session, backend).await?;
        let Some(checks) = self.deferred_checks_sql(backend, false, false).await? else {
            return Ok(false);
        };
        self.prepare_forward(backend);
        front::query(&mut self.batch, &checks);
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
    pub(super) fn queue_autocommit_checks(&mut self, checks: &str) {
        front::query(&mut self.batch, checks);
        self.steps.push(Step::Check(Expect::UntilReadyNoReady));
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
    fn ddl_makes_the_constraint_list_stale() {
        assert!(may_change_schema("CREATE TABLE t (id int references p)"));
        assert!(may_change_schema(
            "alter table t add foreign key (p) references p"
        ));
        assert!(!may_change_schema("insert into t values (1)"));
        assert!(!may_change_schema("  select 1"));
    }

    #[test]
    fn the_context_field_is_dropped() {
        let body = b"SERROR\0C23503\0Mviolation\0Wmy DO block\0nchild_fkey\0\0";
        let mut raw = BytesMut::from(&b"E"[..]);
        raw.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        raw.extend_from_slice(body);
        let mut out = BytesMut::new();
        error_without_context(&mut out, &raw);
        assert_eq!(out[0], b'E');
        assert_eq!(&out[5..], b"SERROR\0C23503\0Mviolation\0nchild_fkey\0\0");
        assert_eq!(
            i32::from_be_bytes([out[1], out[2], out[3], out[4]]) as usize,
            out.len() - 1
        );
    }
}
