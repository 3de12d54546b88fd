//! A sandbox's life on its backend: the transaction opened (with what a reset needs to know:
//! the sequences' values, the user tables), reset to the template's state, and the tables
//! written since.

use super::*;

/// Each sequence's qualified name, value and `is_called`, as `setval` takes them.
pub(super) const SEQUENCE_VALUES_SQL: &str = "SELECT format('%I.%I', schemaname, sequencename), \
     coalesce(last_value, start_value)::text, (last_value IS NOT NULL)::text FROM pg_sequences";

/// What a reset undoes besides the data: session-level advisory locks and settings.
pub(super) const RESET_SESSION_SQL: &str =
    "SELECT pg_advisory_unlock_all(); RESET ALL; RESET SESSION AUTHORIZATION; ";

/// `SELECT setval(…), …` putting every sequence of [`SEQUENCE_VALUES_SQL`]'s rows back (rows of
/// any other shape are skipped); `None` without sequences.
pub(super) fn setval_sql(rows: &[Vec<Option<String>>]) -> Option<String> {
    let setvals: Vec<String> = rows
        .iter()
        .filter_map(|row| match row.as_slice() {
            [Some(name), Some(value), Some(called)] => Some(format!(
                "setval({}::regclass, {value}, {called})",
                crate::rollback::messages::quote_literal(name)
            )),
            _ => None,
        })
        .collect();
    (!setvals.is_empty()).then(|| format!("SELECT {}", setvals.join(", ")))
}

/// Each written user table's oid, name and write counters in the backend's current,
/// never-flushed statistics.
pub const WRITE_COUNTERS_SQL: &str = "SELECT relid::text, format('%I.%I', schemaname, relname), \
     (n_tup_ins + n_tup_upd + n_tup_del)::text FROM pg_stat_xact_user_tables \
     WHERE n_tup_ins + n_tup_upd + n_tup_del > 0";

/// The oids of the clone's user tables, as an array literal (read once, when the sandbox opens).
const USER_TABLES_SQL: &str = "SELECT coalesce(array_agg(c.oid), '{}')::text FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') \
     AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'";

/// The write counters of the given tables (by oid): a few function calls per table, far cheaper
/// than the statistics view, since every reset runs it.
pub(super) fn baseline_sql(user_tables: &str) -> String {
    format!(
        "SELECT o::text, n::text FROM (SELECT o, pg_stat_get_xact_tuples_inserted(o) \
         + pg_stat_get_xact_tuples_updated(o) + pg_stat_get_xact_tuples_deleted(o) AS n \
         FROM unnest({}::oid[]) AS o) AS s WHERE n > 0",
        crate::rollback::messages::quote_literal(user_tables)
    )
}

impl Backend {
    /// Opens the sandbox transaction, remembers the sequences' values and prepares the guard,
    /// all in one write and one round trip.
    pub async fn initialise(&mut self) -> Result<(), BackendFailure> {
        let mut out = BytesMut::new();
        front::query(
            &mut out,
            &format!("BEGIN; {SEQUENCE_VALUES_SQL}; {USER_TABLES_SQL}"),
        );
        front::parse(&mut out, GUARD_SET, &format!("SAVEPOINT {GUARD}"), &[]);
        front::parse(
            &mut out,
            GUARD_RELEASE,
            &format!("RELEASE SAVEPOINT {GUARD}"),
            &[],
        );
        front::sync(&mut out);
        self.write(&out).await?;
        let mut rows = Vec::new();
        let mut ready = 0;
        while ready < 2 {
            let msg = self.read().await?;
            match msg.tag {
                b'D' => rows.push(data_row_texts(msg.body())),
                b'E' => {
                    let (code, message) = crate::rollback::messages::error_fields(msg.body());
                    return Err(BackendFailure(format!(
                        "opening the sandbox: {message} ({code})"
                    )));
                }
                b'Z' => ready += 1,
                _ => {}
            }
        }
        self.restore_sequences = setval_sql(&rows);
        if let Some([Some(tables)]) = rows.iter().map(Vec::as_slice).find(|r| r.len() == 1) {
            self.user_tables = tables.clone();
        }
        Ok(())
    }

    /// Rolls everything back to the template's state and starts afresh: sequences restored,
    /// advisory locks released, session settings reset, reset points dropped. Connected clients
    /// keep their prepared statements and settings (re-applied on their next cycle); one inside
    /// a transaction block stays in it, with the block's earlier work gone.
    pub async fn reset(&mut self) -> Result<(), BackendFailure> {
        let mut sql = String::from("ROLLBACK; BEGIN; ");
        if let Some(restore) = &self.restore_sequences {
            sql.push_str(restore);
            sql.push_str("; ");
        }
        sql.push_str(RESET_SESSION_SQL);
        sql.push_str(&baseline_sql(&self.user_tables));
        let rows = self.run_or_break(&sql, "resetting the sandbox").await?;
        self.points.clear();
        self.start_afresh(rows, true);
        Ok(())
    }

    /// The tables written since the last reset, given the counters now ([`WRITE_COUNTERS_SQL`]).
    pub fn written_since_reset(&self, now: Vec<Vec<Option<String>>>) -> Vec<String> {
        let mut tables: Vec<String> = now
            .into_iter()
            .filter_map(|row| match row.as_slice() {
                [Some(oid), Some(table), Some(n)] => {
                    let n: i64 = n.parse().ok()?;
                    let grew = self.write_baseline.get(oid).is_none_or(|base| n > *base);
                    grew.then(|| table.clone())
                }
                _ => None,
            })
            .collect();
        tables.sort();
        tables
    }
}

pub(super) fn write_counters(rows: Vec<Vec<Option<String>>>) -> HashMap<String, i64> {
    rows.into_iter()
        .filter_map(|row| match row.as_slice() {
            [Some(table), Some(n)] => Some((table.clone(), n.parse().ok()?)),
            _ => None,
        })
        .collect()
}
