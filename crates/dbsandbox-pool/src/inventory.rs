//! What dbsandbox has made on a server: listing it, reaping what dead runs left, collecting old
//! templates, and `gc`. Every function here only ever touches databases that carry our marker.

use crate::marker::{DbKind, DbState, Marker, NAME_PREFIX};

use crate::named_lock;
use crate::template::{build_in_progress, drop_database};
use crate::PoolError;

/// One of our databases.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseInfo {
    pub name: String,
    pub marker: Marker,
    pub size_bytes: i64,
    pub connections: i64,
    /// A live process holds its creator lock: a clone without a marker is still being made.
    pub being_created: bool,
}

impl DatabaseInfo {
    /// Whether a live process (or one on another host) may still be using it.
    pub fn in_use(&self) -> bool {
        match self.marker.state {
            DbState::Leased | DbState::Pooled | DbState::Building => !self.marker.owner_is_dead(),
            DbState::Unfinished => self.connections > 0 || self.being_created,
            DbState::Ready | DbState::Spare => false,
        }
    }
}

/// Lists every database on the server that carries our marker, newest first.
pub async fn list(admin: &tokio_postgres::Client) -> Result<Vec<DatabaseInfo>, PoolError> {
    let rows = admin
        .query(
            &format!(
                "select d.datname, shobj_description(d.oid, 'pg_database'), \
                        case when has_database_privilege(d.oid, 'connect') or not d.datallowconn \
                             then pg_database_size(d.oid) else -1 end, \
                        (select count(*) from pg_stat_activity a where a.datid = d.oid), {} \
                 from pg_database d where d.datname like $1",
                named_lock::held_sql(named_lock::CLONE_CREATION, "d.datname")
            ),
            &[&format!("{NAME_PREFIX}%")],
        )
        .await
        .map_err(|e| PoolError::db("listing databases", &e))?;
    let mut found = Vec::new();
    let mut unmarked = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let comment: Option<String> = row.get(1);
        let info = |marker| DatabaseInfo {
            name: name.clone(),
            marker,
            // NULL when the database was dropped between the scan and the size call.
            size_bytes: row.get::<_, Option<i64>>(2).unwrap_or(-1),
            connections: row.get(3),
            being_created: row.get(4),
        };
        match Marker::parse(&name, comment.as_deref()) {
            Some(marker) => found.push(info(marker)),
            None => unmarked.push(info(Marker::new(
                DbKind::Clone,
                DbState::Unfinished,
                "",
                "",
                "",
            ))),
        }
    }
    for mut db in unmarked {
        let Some(prefix) = unfinished_clone_fingerprint(&db.name) else {
            continue;
        };
        let template = found.iter().find(|t| {
            t.marker.kind == DbKind::Template && t.marker.fingerprint.starts_with(prefix)
        });
        if let Some(template) = template {
            db.marker = Marker {
                owner: None,
                created: 0,
                ..Marker::new(
                    DbKind::Clone,
                    DbState::Unfinished,
                    &template.marker.project,
                    &template.marker.fingerprint,
                    &template.name,
                )
            };
            found.push(db);
        }
    }
    found.sort_by(|a, b| {
        b.marker
            .created
            .cmp(&a.marker.created)
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(found)
}

/// The clone-shaped databases matching `condition` (on `d`, `pg_database`) that carry no marker,
/// have nobody connected and no creator lock held: left by creators that died.
async fn left_unmarked(
    admin: &tokio_postgres::Client,
    condition: &str,
    value: &str,
) -> Result<Vec<String>, PoolError> {
    let rows = admin
        .query(
            &format!(
                "select d.datname, shobj_description(d.oid, 'pg_database') from pg_database d \
                 where {condition} \
                   and not exists (select 1 from pg_stat_activity a where a.datid = d.oid) \
                   and not {}",
                named_lock::held_sql(named_lock::CLONE_CREATION, "d.datname")
            ),
            &[&value],
        )
        .await
        .map_err(|e| PoolError::db("looking for unmarked clones", &e))?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let comment: Option<String> = row.get(1);
            (Marker::parse(&name, comment.as_deref()).is_none()
                && unfinished_clone_fingerprint(&name).is_some())
            .then_some(name)
        })
        .collect())
}

/// Whether clone `name` is, as of now, left unmarked (see [`left_unmarked`]). Asked afresh just
/// before a drop because one query's catalogue snapshot may predate a live creator's marker
/// while its look at the locks follows the creator's unlock; a fresh look either sees the
/// marker or, before it, the lock.
async fn still_left_unmarked(
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<bool, PoolError> {
    Ok(!left_unmarked(admin, "d.datname = $1", name)
        .await?
        .is_empty())
}

/// The fingerprint prefix in a clone name of exactly the shape the pool makes
/// (`dbsandbox_c_` + 10 hex + `_` + 12 hex), or `None` for any other name.
fn unfinished_clone_fingerprint(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(NAME_PREFIX)?.strip_prefix("c_")?;
    let (fingerprint, unique) = rest.split_once('_')?;
    let hex = |s: &str, len| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    (hex(fingerprint, 10) && hex(unique, 12)).then_some(fingerprint)
}

/// Drops clones whose owner died on this host (a killed run): they may be dirty and nobody
/// will return them, and the clones a dead creator left unmarked. Spare clones stay for adoption.
pub async fn reap_dead_owners(admin: &tokio_postgres::Client) -> Result<Vec<String>, PoolError> {
    let mut reaped = Vec::new();
    for db in list(admin).await? {
        let dead_clone = db.marker.kind == DbKind::Clone
            && matches!(db.marker.state, DbState::Pooled | DbState::Leased)
            && db.marker.owner_is_dead();
        let left_unmarked = db.marker.state == DbState::Unfinished
            && !db.in_use()
            && still_left_unmarked(admin, &db.name).await?;
        if dead_clone || left_unmarked {
            drop_database(admin, &db.name).await?;
            reaped.push(db.name);
        }
    }
    if !reaped.is_empty() {
        tracing::info!(
            count = reaped.len(),
            "dropped clones left by a dbsandbox that died"
        );
    }
    Ok(reaped)
}

/// Drops the clones a creator that died left without a marker: no creator lock is held for them
/// and nobody is connected. Cheap when there are none (one catalogue query), so a daemon runs it
/// in its upkeep: a creator killed mid-`CREATE DATABASE` leaves its clone only when that copy
/// commits, which may be after the next daemon started.
pub async fn reap_unfinished_clones(
    admin: &tokio_postgres::Client,
) -> Result<Vec<String>, PoolError> {
    let unmarked =
        left_unmarked(admin, "d.datname like $1", &format!("{NAME_PREFIX}c\\_%")).await?;
    if unmarked.is_empty() {
        return Ok(Vec::new());
    }
    // Listed again, whole: only a clone of one of our templates' fingerprints is ours.
    let mut reaped = Vec::new();
    for db in list(admin).await? {
        if db.marker.state == DbState::Unfinished
            && !db.in_use()
            && unmarked.contains(&db.name)
            && still_left_unmarked(admin, &db.name).await?
        {
            drop_database(admin, &db.name).await?;
            reaped.push(db.name);
        }
    }
    if !reaped.is_empty() {
        tracing::info!(
            clones = ?reaped,
            "dropped clones a dbsandbox that died left unmarked"
        );
    }
    Ok(reaped)
}

/// Keeps the `keep` newest ready templates of `project` (the current one always counts as kept)
/// and drops the older ones with their spare clones. A template whose clones a live process
/// still pools or leases is kept.
pub async fn collect_old_templates(
    admin: &tokio_postgres::Client,
    project: &str,
    current: &str,
    keep: usize,
) -> Result<Vec<String>, PoolError> {
    let all = list(admin).await?;
    let busy = |template: &str| {
        all.iter().any(|db| {
            db.marker.kind == DbKind::Clone && db.marker.template == template && db.in_use()
        })
    };
    let mut kept = 1;
    let mut collected = Vec::new();
    for db in all.iter().filter(|db| {
        db.marker.kind == DbKind::Template
            && db.marker.project == project
            && db.marker.state == DbState::Ready
    }) {
        if db.name == current {
            continue;
        }
        if kept < keep.max(1) || busy(&db.name) {
            kept += 1;
            continue;
        }
        for spare in all
            .iter()
            .filter(|c| c.marker.template == db.name && c.marker.state == DbState::Spare)
        {
            drop_database(admin, &spare.name).await?;
        }
        drop_database(admin, &db.name).await?;
        collected.push(db.name.clone());
    }
    Ok(collected)
}

/// What `gc` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    pub dropped: Vec<String>,
    /// In use by a live process that no daemon claims; dropped only with `force`.
    pub skipped_in_use: Vec<String>,
    /// Used by a live daemon (its templates, pooled and leased clones) or being built by one
    /// (its builder holds the build lock): never dropped.
    pub kept_for_daemons: Vec<String>,
    pub freed_bytes: i64,
}

/// Drops everything dbsandbox made on this server, except what a live daemon uses (`daemons_use`,
/// never dropped) and what a live process holds (unless `force`). Databases without our marker
/// are never touched.
///
/// `daemons_use` is awaited after the listing, so a database a daemon makes later is not listed,
/// and one it used by then is in its answer.
pub async fn gc(
    admin: &tokio_postgres::Client,
    force: bool,
    daemons_use: impl std::future::Future<
        Output = Result<std::collections::BTreeSet<String>, PoolError>,
    >,
) -> Result<GcReport, PoolError> {
    let mut report = GcReport::default();
    // Clones first: a template cannot be dropped while a clone is being made from it.
    let mut all = list(admin).await?;
    all.sort_by_key(|db| db.marker.kind == DbKind::Template);
    let daemons_use = daemons_use.await?;
    for db in all {
        let being_built = db.marker.kind == DbKind::Template
            && db.marker.state == DbState::Building
            && build_in_progress(admin, &db.name).await?;
        if being_built || daemons_use.contains(&db.name) {
            report.kept_for_daemons.push(db.name);
            continue;
        }
        if db.in_use() && !force {
            report.skipped_in_use.push(db.name);
            continue;
        }
        drop_database(admin, &db.name).await?;
        report.freed_bytes += db.size_bytes.max(0);
        report.dropped.push(db.name);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_exact_clone_name_shape_counts_as_unfinished() {
        use super::unfinished_clone_fingerprint as f;
        assert_eq!(f("dbsandbox_c_0123456789_abcdef012345"), Some("0123456789"));
        assert_eq!(f("dbsandbox_c_0123456789_abcdef01234"), None, "short");
        assert_eq!(f("dbsandbox_c_012345678g_abcdef012345"), None, "not hex");
        assert_eq!(f("dbsandbox_c_0123456789_ABCDEF012345"), None, "upper case");
        assert_eq!(f("dbsandbox_users"), None);
        assert_eq!(f("myapp_c_0123456789_abcdef012345"), None);
    }
}
