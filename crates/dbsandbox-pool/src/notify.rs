//! `pg_notify()` that a rollback sandbox can deliver. Every connection of a rollback key shares
//! one server transaction that never commits, so a notification sent with `pg_notify()` (from
//! SQL, or from a trigger function, the way job queues signal) would wait for a commit that
//! never comes. The proxy emulates the `NOTIFY` statement itself; for the function, each template
//! dbsandbox builds gets its own `pg_catalog.pg_notify(text, text)`: in a session that a rollback
//! sandbox opened (its startup packet sets [`ROLLBACK_SANDBOX_SETTING`]) it checks its arguments
//! as PostgreSQL does and hands channel and payload to the proxy in a NOTICE of its own
//! ([`NOTIFY_SQLSTATE`], channel in DETAIL, payload in HINT); the proxy swallows that notice and
//! delivers the notification with NOTIFY's semantics (at the sender's COMMIT, dropped on
//! ROLLBACK, at once in autocommit). In any other session (a `database` key, a direct connection)
//! it is PostgreSQL's own function (renamed [`REAL_PG_NOTIFY`]), inlined into the caller's query,
//! so even its errors are PostgreSQL's.
//!
//! A built-in function's pg_proc row cannot simply be replaced: PostgreSQL calls built-ins by
//! their oid, whatever pg_proc says. So the built-in is renamed (it keeps its oid and its C
//! code) and a new `pg_notify` takes the name. Both need a superuser; on an external server whose
//! admin role is not one the template keeps PostgreSQL's function (README: differences).

use crate::PoolError;

/// The setting a rollback sandbox's backend connection sets in its startup packet (so `RESET
/// ALL` keeps it); the proxy's copy is `dbsandbox_proxy::rollback`'s startup parameters.
pub const ROLLBACK_SANDBOX_SETTING: &str = "dbsandbox.rollback_sandbox";

/// The SQLSTATE of the NOTICE that carries a sandbox's notification to the proxy.
pub const NOTIFY_SQLSTATE: &str = "DBSBN";

/// PostgreSQL's own `pg_notify`, renamed.
pub const REAL_PG_NOTIFY: &str = "pg_catalog.dbsandbox_real_pg_notify";

/// What `pg_notify` calls in a rollback sandbox's session.
const SANDBOX_NOTIFY: &str = "pg_catalog.dbsandbox_sandbox_notify";

/// The SQL that installs the function in a database (run it as a superuser, once).
///
/// `pg_notify` itself is an SQL function PostgreSQL inlines into the calling query, so outside a
/// rollback sandbox the caller runs PostgreSQL's own function directly: same errors, no CONTEXT
/// line of ours. In a rollback sandbox it calls [`SANDBOX_NOTIFY`], whose checks are PostgreSQL
/// 15's (async.c): a NULL or empty channel, a channel of 64 bytes or more, a payload of 8000
/// bytes or more are errors with SQLSTATE 22023 (and a PL/pgSQL CONTEXT line); a NULL payload
/// is ''. Its own `client_min_messages` keeps a client's setting from hiding the notice.
pub fn install_sql() -> String {
    format!(
        "ALTER FUNCTION pg_catalog.pg_notify(text, text) RENAME TO {real_name};
CREATE FUNCTION {SANDBOX_NOTIFY}(text, text) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL RESTRICTED
SET client_min_messages = notice
AS $dbsandbox$
BEGIN
  IF $1 IS NULL OR $1 = '' THEN
    RAISE EXCEPTION 'channel name cannot be empty' USING ERRCODE = '22023';
  END IF;
  IF pg_catalog.octet_length($1) >= 64 THEN
    RAISE EXCEPTION 'channel name too long' USING ERRCODE = '22023';
  END IF;
  IF pg_catalog.octet_length($2) >= 8000 THEN
    RAISE EXCEPTION 'payload string too long' USING ERRCODE = '22023';
  END IF;
  RAISE NOTICE 'dbsandbox: pg_notify for the rollback sandbox''s proxy'
    USING ERRCODE = '{NOTIFY_SQLSTATE}', DETAIL = $1, HINT = COALESCE($2, '');
END
$dbsandbox$;
CREATE FUNCTION pg_catalog.pg_notify(text, text) RETURNS void
LANGUAGE sql VOLATILE PARALLEL RESTRICTED
AS $dbsandbox$
  SELECT CASE WHEN pg_catalog.current_setting('{setting}', true) = 'on'
    THEN {SANDBOX_NOTIFY}($1, $2)
    ELSE {REAL_PG_NOTIFY}($1, $2) END
$dbsandbox$;
COMMENT ON FUNCTION pg_catalog.pg_notify(text, text) IS 'send a notification event';",
        real_name = REAL_PG_NOTIFY.trim_start_matches("pg_catalog."),
        setting = ROLLBACK_SANDBOX_SETTING,
    )
}

/// Installs the function in template `name` when the admin role is a superuser; otherwise logs
/// why rollback sandboxes of this template cannot deliver `pg_notify()`.
pub(crate) async fn install(
    endpoint: &dbsandbox_server::Endpoint,
    name: &str,
) -> Result<(), PoolError> {
    let client = endpoint
        .connect(name)
        .await
        .map_err(|e| PoolError::db("connecting to the new template", &e))?;
    let superuser: bool = client
        .query_one(
            "select rolsuper from pg_catalog.pg_roles where rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| PoolError::db("reading the admin role's privileges", &e))?
        .get(0);
    if !superuser {
        tracing::info!(
            template = name,
            "the admin role {} is not a superuser: pg_notify() stays PostgreSQL's own in this \
             template, and rollback sandboxes do not deliver it (the NOTIFY statement works)",
            endpoint.user
        );
        return Ok(());
    }
    client
        .batch_execute(&install_sql())
        .await
        .map_err(|e| PoolError::db("installing pg_notify for rollback sandboxes", &e))
}
