//! Named advisory locks: a session holds one while it builds a template or makes a clone, so
//! that any process on any machine can see on the server alone that the work is under way.
//!
//! A clone without a marker is one of two things, told apart by its creator lock: still being
//! made by a live process (held, from before its `CREATE DATABASE` until it is marked) or left
//! by a creator that died between the two steps (free), which the reapers drop. A creator killed
//! mid-`CREATE DATABASE` does not stop its backend: the copy goes on, commits, and only then does
//! the backend find its client gone and end, releasing the lock. So the lock covers exactly the
//! time a dead creator's clone may still appear, however late that is.

use std::future::Future;

use crate::PoolError;

/// What a lock guards: its namespace (the first key; the second is `hashtext(name)`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockKind {
    class: i32,
    what: &'static str,
}

/// A template being built ("dbsb").
pub(crate) const TEMPLATE_BUILD: LockKind = LockKind {
    class: 0x6462_7362,
    what: "the template lock",
};

/// A clone being made ("dbsc").
pub(crate) const CLONE_CREATION: LockKind = LockKind {
    class: CLONE_LOCK_CLASS,
    what: "the clone's creator lock",
};

/// The namespace of clones' creator locks, for tools (and tests) that play a creator.
pub const CLONE_LOCK_CLASS: i32 = 0x6462_7363;

/// Runs `work` holding the `kind` lock of `name` (waiting for it), released whatever `work`
/// returns. A connection that broke released it already.
pub(crate) async fn holding<T>(
    admin: &tokio_postgres::Client,
    kind: LockKind,
    name: &str,
    work: impl Future<Output = Result<T, PoolError>>,
) -> Result<T, PoolError> {
    admin
        .execute(
            "select pg_advisory_lock($1, hashtext($2))",
            &[&kind.class, &name],
        )
        .await
        .map_err(|e| PoolError::db(format!("taking {}", kind.what), &e))?;
    let result = work.await;
    if let Err(e) = admin
        .execute(
            "select pg_advisory_unlock($1, hashtext($2))",
            &[&kind.class, &name],
        )
        .await
    {
        tracing::debug!("releasing {} of {name}: {e}", kind.what);
    }
    result
}

/// A SQL condition, true when some session holds the `kind` lock of the name the SQL
/// expression `name` gives (a two-key advisory lock shows its keys as oids: the int4 bits,
/// unsigned).
pub(crate) fn held_sql(kind: LockKind, name: &str) -> String {
    format!(
        "exists (select 1 from pg_locks l where l.locktype = 'advisory' and l.granted \
           and l.objsubid = 2 and l.classid::bigint = ({}::int4)::bigint \
           and l.objid::bigint = (hashtext({name})::bigint + 4294967296) % 4294967296)",
        kind.class
    )
}
