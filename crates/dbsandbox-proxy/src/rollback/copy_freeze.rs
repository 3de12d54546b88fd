//! `COPY … FROM … (FREEZE)` in a rollback sandbox. PostgreSQL accepts FREEZE only for a table
//! created or truncated in the current subtransaction, and every batch of a sandbox runs in a
//! savepoint of its own: the TRUNCATE of `BEGIN; TRUNCATE t; COPY t FROM STDIN (FREEZE)`
//! (`pgbench -i`, bulk loaders) is always in an earlier one, and the COPY failed with 55000.
//! FREEZE changes nothing the key's connections can see (it spares VACUUM work and shows the rows
//! to other sessions' older snapshots, of which a sandbox has none), so the option is dropped.

use pg_query::NodeEnum;

use crate::classify::contains_ignore_ascii_case;

/// The SQL with FREEZE removed from its `COPY … FROM` statements; `None` when there is none
/// (most SQL is not parsed: it must name both COPY and FREEZE).
pub fn without_freeze(sql: &str) -> Option<String> {
    if !contains_ignore_ascii_case(sql, b"freeze") || !contains_ignore_ascii_case(sql, b"copy") {
        return None;
    }
    let mut parsed = pg_query::parse(sql).ok()?.protobuf;
    let mut changed = false;
    for raw in &mut parsed.stmts {
        if let Some(NodeEnum::CopyStmt(copy)) = raw.stmt.as_mut().and_then(|n| n.node.as_mut()) {
            if copy.is_from {
                let before = copy.options.len();
                copy.options.retain(|option| {
                    !matches!(option.node.as_ref(),
                        Some(NodeEnum::DefElem(element)) if element.defname == "freeze")
                });
                changed |= copy.options.len() != before;
            }
        }
    }
    if !changed {
        return None;
    }
    pg_query::deparse(&parsed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_is_dropped_from_copy_from_only() {
        assert_eq!(
            without_freeze("copy pgbench_accounts from stdin with (freeze on)").as_deref(),
            Some("COPY pgbench_accounts FROM STDIN")
        );
        assert_eq!(
            without_freeze("COPY t (a, b) FROM STDIN (FORMAT csv, FREEZE true, HEADER)").as_deref(),
            Some("COPY t(a, b) FROM STDIN WITH (FORMAT CSV, HEADER)")
        );
        assert_eq!(without_freeze("COPY t TO STDOUT"), None);
        assert_eq!(without_freeze("select 'freeze' from copy_log"), None);
    }
}
