//! The creator's lock of a clone: a session advisory lock a creator holds from before its
//! `CREATE DATABASE` until the clone carries its marker. A clone without a marker is then one of
//! two things, told apart on the server alone: still being made by a live process (the lock is
//! held) or left by a creator that died between the two steps (no lock), which the reapers drop.
//!
//! A creator killed mid-`CREATE DATABASE` does not stop its backend: the copy goes on, commits,
//! and only then does the backend find its client gone and end, releasing the lock. So the lock
//! covers exactly the time a dead creator's clone may still appear, however late that is.

use std::future::Future;

use crate::PoolError;

/// Advisory-lock namespace for clones being made ("dbsc"); the second key is `hashtext(name)`.
pub const CLONE_LOCK_CLASS: i32 = 0x6462_7363;

/// Runs `create` (which makes and marks clone `name`) under the clone's creator lock, released
/// whatever `create` returns. A connection that broke released it already.
pub(crate) async fn while_creating<T>(
    admin: &tokio_postgres::Client,
    name: &str,
    create: impl Future<Output = Result<T, PoolError>>,
) -> Result<T, PoolError> {
    admin
        .execute(
            "select pg_advisory_lock($1, hashtext($2))",
            &[&CLONE_LOCK_CLASS, &name],
        )
        .await
        .map_err(|e| PoolError::db("taking the clone's creator lock", &e))?;
    let result = create.await;
    if let Err(e) = admin
        .execute(
            "select pg_advisory_unlock($1, hashtext($2))",
            &[&CLONE_LOCK_CLASS, &name],
        )
        .await
    {
        tracing::debug!("releasing the creator lock of {name}: {e}");
    }
    result
}

/// A SQL condition, true when some session holds the creator lock of the database named by the
/// expression `datname` (two-key advisory locks show their keys as unsigned oids).
pub(crate) fn held_sql(datname: &str) -> String {
    format!(
        "exists (select 1 from pg_locks l where l.locktype = 'advisory' and l.granted \
           and l.objsubid = 2 and l.classid::bigint = ({CLONE_LOCK_CLASS}::int4)::bigint \
           and l.objid::bigint = (hashtext({datname})::bigint + 4294967296) % 4294967296)"
    )
}
