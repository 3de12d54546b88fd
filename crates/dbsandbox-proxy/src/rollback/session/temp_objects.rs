//! Temporary objects belong to the connection that made them. All connections of a key share
//! one backend, hence one temporary schema: two live connections see each other's temporary
//! tables (documented in the README). What can be kept is their lifetime: after a statement
//! that may have created temporary objects, the new ones in the backend's temporary schema are
//! recorded as the client's, and they are dropped when that client's connection closes, as
//! PostgreSQL drops a session's temporary objects when it ends.

use super::*;

/// The relations in the backend's temporary schema, as an oid array literal.
const TEMP_RELATIONS_SQL: &str = "SELECT coalesce(array_agg(oid), '{}')::text FROM pg_catalog.pg_class \
     WHERE relnamespace = pg_catalog.pg_my_temp_schema() AND relkind IN ('r', 'p', 'v', 'm', 'S', 'f')";

/// Whether SQL may create temporary objects (the word TEMP or TEMPORARY outside quotes): then
/// the backend's temporary schema is looked at after it.
pub(super) fn may_create_temp(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' => {
                let quote = bytes[i];
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = &sql[start..i];
                if word.eq_ignore_ascii_case("temp") || word.eq_ignore_ascii_case("temporary") {
                    return true;
                }
            }
            _ => i += 1,
        }
    }
    false
}

/// SQL dropping the given temporary relations (oids) that still exist; it cannot fail (each
/// drop is its own subtransaction), so it may be queued as savepoint work.
pub fn drop_temp_objects_sql(oids: &[String]) -> String {
    format!(
        "DO $dbsb$DECLARE r record; BEGIN FOR r IN SELECT c.oid::regclass AS rel, c.relkind \
         FROM pg_catalog.pg_class c WHERE c.oid = ANY ({}::oid[]) \
         AND c.relnamespace = pg_catalog.pg_my_temp_schema() LOOP BEGIN EXECUTE format(CASE r.relkind \
         WHEN 'v' THEN 'DROP VIEW IF EXISTS %s CASCADE' \
         WHEN 'm' THEN 'DROP MATERIALIZED VIEW IF EXISTS %s CASCADE' \
         WHEN 'S' THEN 'DROP SEQUENCE IF EXISTS %s CASCADE' \
         WHEN 'f' THEN 'DROP FOREIGN TABLE IF EXISTS %s CASCADE' \
         ELSE 'DROP TABLE IF EXISTS %s CASCADE' END, r.rel); \
         EXCEPTION WHEN OTHERS THEN NULL; END; END LOOP; END$dbsb$",
        quote_literal(&format!("{{{}}}", oids.join(",")))
    )
}

impl Unit {
    /// After a statement that may have created temporary objects succeeded: the relations new in
    /// the temporary schema are this client's.
    pub(super) async fn record_temp_objects(
        &mut self,
        backend: &mut Backend,
    ) -> Result<(), SessionEnd> {
        let Ok(rows) = backend.run_internal(TEMP_RELATIONS_SQL).await? else {
            return Ok(());
        };
        let Some([Some(array)]) = rows.first().map(Vec::as_slice) else {
            return Ok(());
        };
        let oids: Vec<String> = array
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        backend.claim_temp_objects(self.id, oids);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_is_a_word_outside_quotes() {
        assert!(may_create_temp("CREATE TEMP TABLE person (id int)"));
        assert!(may_create_temp("create local temporary view v as select 1"));
        assert!(!may_create_temp("select 'temp', \"temp\" from template_x"));
        assert!(!may_create_temp("select temperature from weather"));
    }
}
