//! Temporary objects belong to the connection that made them. All connections of a key share
//! one backend, hence one temporary schema: two live connections see each other's temporary
//! tables (documented in the README). What can be kept is their lifetime: after a statement
//! that may have created temporary objects, the new ones in the backend's temporary schema are
//! recorded as the client's, and they are dropped when that client's connection closes, as
//! PostgreSQL drops a session's temporary objects when it ends.

use super::*;

/// The relations in the backend's temporary schema: oid and name, a row each.
const TEMP_RELATIONS_SQL: &str = "SELECT oid::text, relname::text FROM pg_catalog.pg_class \
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

/// The server's 42P07 for a relation name that another open connection of the key holds as a
/// temporary relation, with a HINT naming why (one temporary schema per key) and the remedy;
/// `None` for any other error, which goes as it is.
pub(super) fn shared_temp_schema_hint(
    backend: &Backend,
    id: ClientId,
    key: &str,
    raw: &[u8],
) -> Option<BytesMut> {
    use crate::rollback::messages::{error_fields, response_fields, with_fields};
    let body = raw.get(5..)?;
    let (code, message) = error_fields(body);
    if code != "42P07" || response_fields(body).any(|(field, _)| field == b'H') {
        return None;
    }
    let name = message
        .strip_prefix("relation \"")?
        .strip_suffix("\" already exists")?;
    if !backend.others_temp_relation(id, name) {
        return None;
    }
    let hint = format!(
        "another open connection of dbsandbox key {key} holds a temporary relation \"{name}\": the \
         connections of a rollback sandbox share one session, so their temporary objects too; give \
         it another name, or use database isolation for this key (a session per connection): \
         connect with options=-c dbsandbox.isolation=database"
    );
    Some(with_fields(raw, |_| true, &[(b'H', hint.as_bytes())]))
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
        let relations = rows
            .into_iter()
            .filter_map(|row| match <[_; 2]>::try_from(row) {
                Ok([Some(oid), Some(name)]) => Some((oid, name)),
                _ => None,
            })
            .collect();
        backend.claim_temp_objects(self.id, relations);
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
