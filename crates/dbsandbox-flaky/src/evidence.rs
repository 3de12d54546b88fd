//! The database evidence of a culprit: what a test left in its clone, compared with an untouched
//! clone of the same template (the baseline). Rows inserted, template rows updated or deleted,
//! tables created or dropped, and sequences that handed out values (which breaks tests that
//! assume ids).
//!
//! Cheap first: one query per side fingerprints every table (row count and a sum of row hashes),
//! and only the tables whose fingerprints differ are compared row by row — keyed by the primary
//! key, else a unique index over not-null columns, else the whole row as a multiset. Keyed tables
//! fetch keys and row hashes first, and whole rows only for the few listed. Every statement is
//! read-only, inside one `READ ONLY` repeatable-read transaction per side.
//!
//! The template holds no objects of dbsandbox's own (its marker is a database comment), so every
//! table and sequence outside the system schemas and extensions is the user's and is compared.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use serde_json::{json, Map, Value};
use tokio_postgres::{Client, NoTls};

use crate::model::TableEvidence;

/// What `clone_url`'s database holds that `baseline_url`'s (an untouched clone of the same
/// template) does not, table by table, then sequence by sequence; each list cut at `limit` rows.
/// Tables and sequences that did not change are left out.
pub async fn left_behind(
    baseline_url: &str,
    clone_url: &str,
    limit: usize,
) -> anyhow::Result<Vec<TableEvidence>> {
    let (baseline, clone) = tokio::try_join!(
        Side::open(baseline_url, "the baseline clone"),
        Side::open(clone_url, "the culprit's clone"),
    )?;
    let evidence = compare(&baseline, &clone, limit).await;
    tokio::join!(baseline.close(), clone.close());
    evidence
}

async fn compare(
    baseline: &Side,
    clone: &Side,
    limit: usize,
) -> anyhow::Result<Vec<TableEvidence>> {
    let (before_tables, after_tables) = tokio::try_join!(baseline.tables(), clone.tables())?;
    let (before_sequences, after_sequences) =
        tokio::try_join!(baseline.sequences(), clone.sequences())?;

    let common: Vec<(&Table, &Table)> = before_tables
        .iter()
        .filter_map(|(name, before)| Some((before, after_tables.get(name)?)))
        .collect();
    let (before_prints, after_prints) = tokio::try_join!(
        baseline.fingerprints(common.iter().map(|(b, _)| *b)),
        clone.fingerprints(common.iter().map(|(_, a)| *a)),
    )?;

    let mut tables: BTreeMap<String, TableEvidence> = BTreeMap::new();
    for (((before, after), print_before), print_after) in
        common.iter().zip(&before_prints).zip(&after_prints)
    {
        if print_before == print_after {
            continue;
        }
        let keyed = match comparable_key(before, after) {
            Some(key) => keyed_difference(baseline, clone, before, after, key, limit).await?,
            None => None,
        };
        let evidence = match keyed {
            Some(evidence) => evidence,
            None => multiset_difference(baseline, clone, before, after, limit).await?,
        };
        if !evidence.is_empty() {
            tables.insert(before.name.clone(), evidence);
        }
    }
    for (name, created) in &after_tables {
        if !before_tables.contains_key(name) {
            let (count, rows) = clone.first_rows(created, limit).await?;
            tables.insert(
                name.clone(),
                TableEvidence {
                    inserted: rows,
                    inserted_count: count,
                    ..created.evidence()
                },
            );
        }
    }
    for (name, dropped) in &before_tables {
        if !after_tables.contains_key(name) {
            let (count, rows) = baseline.first_rows(dropped, limit).await?;
            tables.insert(
                name.clone(),
                TableEvidence {
                    deleted: rows,
                    deleted_count: count,
                    ..dropped.evidence()
                },
            );
        }
    }

    let mut evidence: Vec<TableEvidence> = tables.into_values().collect();
    evidence.extend(sequence_changes(&before_sequences, &after_sequences));
    Ok(evidence)
}

/// The key both sides can be compared by: the baseline's, when the clone still has its columns.
fn comparable_key<'t>(before: &'t Table, after: &Table) -> Option<&'t [String]> {
    let key = before.key.as_deref()?;
    key.iter()
        .all(|column| after.columns.contains(column))
        .then_some(key)
}

/// Sequences whose last value moved (`null`: no value handed out yet, or no such sequence).
fn sequence_changes(
    before: &BTreeMap<String, Option<i64>>,
    after: &BTreeMap<String, Option<i64>>,
) -> Vec<TableEvidence> {
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let was = before.get(name).copied().flatten();
            let is = after.get(name).copied().flatten();
            (was != is).then(|| TableEvidence {
                table: name.clone(),
                updated: vec![json!({ "before": was, "after": is })],
                updated_count: 1,
                ..Default::default()
            })
        })
        .collect()
}

async fn keyed_difference(
    baseline: &Side,
    clone: &Side,
    before: &Table,
    after: &Table,
    key: &[String],
    limit: usize,
) -> anyhow::Result<Option<TableEvidence>> {
    let (before_hashes, after_hashes) = tokio::try_join!(
        baseline.key_hashes(before, key),
        clone.key_hashes(after, key),
    )?;
    let before_by_key: HashMap<&str, i64> = before_hashes
        .iter()
        .map(|(k, h)| (k.as_str(), *h))
        .collect();
    let after_by_key: HashMap<&str, i64> =
        after_hashes.iter().map(|(k, h)| (k.as_str(), *h)).collect();
    if after_by_key.len() < after_hashes.len() {
        // The culprit dropped the key and duplicated keys: only whole rows tell them apart.
        return Ok(None);
    }
    let mut inserted = Vec::new();
    let mut updated = Vec::new();
    for (k, hash) in &after_hashes {
        match before_by_key.get(k.as_str()) {
            None => inserted.push(k.as_str()),
            Some(old) if old != hash => updated.push(k.as_str()),
            Some(_) => {}
        }
    }
    let deleted: Vec<&str> = before_hashes
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !after_by_key.contains_key(k))
        .collect();

    let wanted_after = [first(&inserted, limit), first(&updated, limit)].concat();
    let wanted_before = [first(&deleted, limit), first(&updated, limit)].concat();
    let (rows_before, rows_after) = tokio::try_join!(
        baseline.rows_by_key(before, key, &wanted_before),
        clone.rows_by_key(after, key, &wanted_after),
    )?;
    let row = |rows: &HashMap<String, Value>, k: &str| rows.get(k).cloned().unwrap_or(Value::Null);
    Ok(Some(TableEvidence {
        key_columns: key.to_vec(),
        inserted: first(&inserted, limit)
            .into_iter()
            .map(|k| row(&rows_after, k))
            .collect(),
        updated: first(&updated, limit)
            .into_iter()
            .map(|k| change(k, &row(&rows_before, k), &row(&rows_after, k)))
            .collect(),
        deleted: first(&deleted, limit)
            .into_iter()
            .map(|k| row(&rows_before, k))
            .collect(),
        inserted_count: inserted.len(),
        updated_count: updated.len(),
        deleted_count: deleted.len(),
        ..before.evidence()
    }))
}

fn first<'k>(keys: &[&'k str], limit: usize) -> Vec<&'k str> {
    keys.iter().take(limit).copied().collect()
}

/// `{"key": …, "before": …, "after": …}` with only the columns that changed (every column when
/// the row's text changed but no column's JSON did, e.g. `1.0` → `1.00`).
fn change(key: &str, before: &Value, after: &Value) -> Value {
    let empty = Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let key: Value = serde_json::from_str(key).unwrap_or(Value::String(key.to_string()));
    let is_key = |column: &str| key.get(column).is_some();
    let mut columns: Vec<&String> = before.keys().collect();
    columns.extend(after.keys().filter(|c| !before.contains_key(*c)));
    let mut changed: Vec<&String> = columns
        .iter()
        .copied()
        .filter(|c| before.get(*c) != after.get(*c))
        .collect();
    if changed.is_empty() {
        changed = columns.into_iter().filter(|c| !is_key(c)).collect();
    }
    let pick = |row: &Map<String, Value>| -> Map<String, Value> {
        changed
            .iter()
            .filter_map(|c| Some(((*c).clone(), row.get(*c)?.clone())))
            .collect()
    };
    json!({ "key": key, "before": pick(before), "after": pick(after) })
}

async fn multiset_difference(
    baseline: &Side,
    clone: &Side,
    before: &Table,
    after: &Table,
    limit: usize,
) -> anyhow::Result<TableEvidence> {
    let (before_rows, after_rows) =
        tokio::try_join!(baseline.row_texts(before), clone.row_texts(after))?;
    let (inserted, deleted) = multiset_minus(&after_rows, &before_rows);
    let parse = |rows: &[&String]| -> anyhow::Result<Vec<Value>> {
        rows.iter()
            .take(limit)
            .map(|text| serde_json::from_str(text).context("a row's JSON from to_jsonb"))
            .collect()
    };
    Ok(TableEvidence {
        key_columns: before.columns.clone(),
        inserted: parse(&inserted)?,
        deleted: parse(&deleted)?,
        inserted_count: inserted.len(),
        deleted_count: deleted.len(),
        ..before.evidence()
    })
}

/// Rows only in `after` and rows only in `before`, counting duplicates, each in its side's order.
pub(crate) fn multiset_minus<'r>(
    after: &'r [String],
    before: &'r [String],
) -> (Vec<&'r String>, Vec<&'r String>) {
    let mut unmatched: HashMap<&str, usize> = HashMap::new();
    for row in before {
        *unmatched.entry(row).or_default() += 1;
    }
    let mut only_after = Vec::new();
    for row in after {
        match unmatched.get_mut(row.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => only_after.push(row),
        }
    }
    // What is left unmatched was deleted (copies of a row are alike: which ones does not matter).
    let mut only_before = Vec::new();
    for row in before {
        if let Some(n) = unmatched.get_mut(row.as_str()).filter(|n| **n > 0) {
            *n -= 1;
            only_before.push(row);
        }
    }
    (only_after, only_before)
}

/// A table as one side's catalogue describes it.
#[derive(Debug, Clone)]
struct Table {
    /// `schema.table`, unquoted: how reports name it.
    name: String,
    /// The FROM item, aliased `row`: quoted, `only` for ordinary tables (their inheritance
    /// children are compared on their own), the whole tree for partitioned ones.
    from: String,
    /// The quoted alias of its rows.
    row: String,
    columns: Vec<String>,
    /// Primary key, else the narrowest unique index over not-null columns.
    key: Option<Vec<String>>,
}

impl Table {
    fn evidence(&self) -> TableEvidence {
        TableEvidence {
            table: self.name.clone(),
            key_columns: self.key.clone().unwrap_or_else(|| self.columns.clone()),
            ..Default::default()
        }
    }

    /// `jsonb_build_object('a', r."a", …)` over `key`.
    fn key_object(&self, key: &[String]) -> String {
        let pairs: Vec<String> = key
            .iter()
            .map(|c| format!("{}, {}.{}", literal(c), self.row, ident(c)))
            .collect();
        format!("jsonb_build_object({})", pairs.join(", "))
    }

    fn key_order(&self, key: &[String]) -> String {
        key.iter()
            .map(|c| format!("{}.{}", self.row, ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The alias a table's rows are read under: one none of its columns is named (a column of that
/// name would shadow it, and `to_jsonb(alias)` would read the column).
fn row_alias(columns: &[String]) -> String {
    let mut alias = "dbsandbox row".to_string();
    while columns.contains(&alias) {
        alias.push('_');
    }
    ident(&alias)
}

/// Non-system schemas; extensions' own tables (e.g. PostGIS's `spatial_ref_sys`) are left out.
const USER_RELATION: &str = "n.nspname not in ('pg_catalog', 'information_schema')
    and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
    and not exists (select 1 from pg_depend d
                    where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')";

/// One side's connection, in a read-only snapshot.
struct Side {
    client: Client,
    connection: tokio::task::JoinHandle<()>,
    label: &'static str,
}

impl Side {
    async fn open(url: &str, label: &'static str) -> anyhow::Result<Side> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .with_context(|| format!("connecting to {label}"))?;
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("evidence connection ended: {e}");
            }
        });
        // The same settings on both sides, so equal values print (and hash) alike.
        client
            .batch_execute(
                "set search_path = pg_catalog; set timezone = 'UTC'; \
                 set datestyle = 'ISO, YMD'; set intervalstyle = 'postgres'; \
                 set extra_float_digits = 1; set bytea_output = 'hex'; \
                 set standard_conforming_strings = on; \
                 begin isolation level repeatable read read only",
            )
            .await
            .with_context(|| format!("starting a read-only snapshot of {label}"))?;
        Ok(Side {
            client,
            connection,
            label,
        })
    }

    /// Ends the snapshot and waits for the connection to close, so a `DROP DATABASE` that
    /// follows does not meet it.
    async fn close(self) {
        let _ = self.client.batch_execute("rollback").await;
        drop(self.client);
        let _ = self.connection.await;
    }

    async fn tables(&self) -> anyhow::Result<BTreeMap<String, Table>> {
        let sql = format!(
            "select n.nspname::text, c.relname::text, c.relkind = 'p',
                array(select a.attname::text from pg_attribute a
                      where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                      order by a.attnum),
                (select array(select a.attname::text
                              from unnest(i.indkey::int2[]) with ordinality k(attnum, ord)
                              join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
                              where k.ord <= i.indnkeyatts order by k.ord)
                 from pg_index i
                 where i.indrelid = c.oid and i.indisunique and i.indisvalid
                   and i.indpred is null and i.indexprs is null
                   and (i.indisprimary or not exists (
                        select 1 from unnest(i.indkey::int2[]) k(attnum)
                        join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
                        where not a.attnotnull))
                 order by i.indisprimary desc, i.indnkeyatts, i.indexrelid
                 limit 1)
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind in ('r', 'p') and not c.relispartition and {USER_RELATION}"
        );
        let rows = self.query(&sql, &[], "listing tables").await?;
        Ok(rows
            .iter()
            .map(|row| {
                let (schema, name): (String, String) = (row.get(0), row.get(1));
                let partitioned: bool = row.get(2);
                let columns: Vec<String> = row.get(3);
                let alias = row_alias(&columns);
                let qualified = format!("{}.{} as {alias}", ident(&schema), ident(&name));
                let table = Table {
                    name: format!("{schema}.{name}"),
                    from: if partitioned {
                        qualified
                    } else {
                        format!("only {qualified}")
                    },
                    row: alias,
                    columns,
                    key: row.get(4),
                };
                (table.name.clone(), table)
            })
            .collect())
    }

    /// Every sequence's last value (`None`: none handed out yet, or not readable).
    async fn sequences(&self) -> anyhow::Result<BTreeMap<String, Option<i64>>> {
        let sql = format!(
            "select n.nspname::text || '.' || c.relname::text,
                case when has_sequence_privilege(c.oid, 'SELECT,USAGE')
                     then pg_sequence_last_value(c.oid::regclass) end
             from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relkind = 'S' and {USER_RELATION}"
        );
        let rows = self.query(&sql, &[], "reading sequences").await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Per table, its row count and the sum of its rows' hashes, in one statement.
    async fn fingerprints(
        &self,
        tables: impl Iterator<Item = &Table>,
    ) -> anyhow::Result<Vec<(i64, String)>> {
        let parts: Vec<String> = tables
            .enumerate()
            .map(|(i, t)| {
                format!(
                    "select {i} as i, count(*) as n, \
                     coalesce(sum(hashtextextended({}::text, 0)), 0)::text as h from {}",
                    t.row, t.from
                )
            })
            .collect();
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{} order by i", parts.join("\nunion all "));
        let rows = self.query(&sql, &[], "fingerprinting tables").await?;
        Ok(rows.iter().map(|r| (r.get(1), r.get(2))).collect())
    }

    /// Every row's key (as canonical jsonb text) and row hash, in key order.
    async fn key_hashes(
        &self,
        table: &Table,
        key: &[String],
    ) -> anyhow::Result<Vec<(String, i64)>> {
        let sql = format!(
            "select {}::text, hashtextextended({}::text, 0) from {} order by {}",
            table.key_object(key),
            table.row,
            table.from,
            table.key_order(key)
        );
        let rows = self
            .query(&sql, &[], &format!("reading {}", table.name))
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// The whole rows with these keys, by key.
    async fn rows_by_key(
        &self,
        table: &Table,
        key: &[String],
        keys: &[&str],
    ) -> anyhow::Result<HashMap<String, Value>> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted = format!("[{}]", keys.join(","));
        let sql = format!(
            "select {key}::text, to_jsonb({})::text from {}
             where {key} in (select jsonb_array_elements($1::text::jsonb))",
            table.row,
            table.from,
            key = table.key_object(key)
        );
        let rows = self
            .query(&sql, &[&wanted], &format!("reading {}", table.name))
            .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.get(1);
                let row = serde_json::from_str(&text).context("a row's JSON from to_jsonb")?;
                Ok((r.get(0), row))
            })
            .collect()
    }

    /// Every row as jsonb text, in the table's physical order.
    async fn row_texts(&self, table: &Table) -> anyhow::Result<Vec<String>> {
        let sql = format!("select to_jsonb({})::text from {}", table.row, table.from);
        let rows = self
            .query(&sql, &[], &format!("reading {}", table.name))
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// A table's row count and its first `limit` rows (in key order when it has a key).
    async fn first_rows(&self, table: &Table, limit: usize) -> anyhow::Result<(usize, Vec<Value>)> {
        let order = match &table.key {
            Some(key) => format!("order by {}", table.key_order(key)),
            None => String::new(),
        };
        let what = format!("reading {}", table.name);
        let count = self
            .query(&format!("select count(*) from {}", table.from), &[], &what)
            .await?[0]
            .get::<_, i64>(0);
        let rows = self
            .query(
                &format!(
                    "select to_jsonb({})::text from {} {order} limit {limit}",
                    table.row, table.from
                ),
                &[],
                &what,
            )
            .await?;
        let rows = rows
            .iter()
            .map(|r| {
                serde_json::from_str(r.get::<_, &str>(0)).context("a row's JSON from to_jsonb")
            })
            .collect::<anyhow::Result<_>>()?;
        Ok((count as usize, rows))
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        what: &str,
    ) -> anyhow::Result<Vec<tokio_postgres::Row>> {
        self.client
            .query(sql, params)
            .await
            .map_err(|e| anyhow::anyhow!("{what} in {}: {}", self.label, describe(&e)))
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
