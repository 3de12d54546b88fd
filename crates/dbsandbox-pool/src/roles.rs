//! The role each clone's clients connect as: named like the clone, owner of its database, member
//! of the sandbox owner role (which owns the template's objects, so the clone's too). Enough for
//! any DDL, TRUNCATE, sequences and trusted extensions in its own clone; not enough to drop
//! another database, signal another clone's backends, create roles, or read server files.
//!
//! Only when the server has sandbox roles (see [`dbsandbox_server::SandboxRoles`]); with
//! `--superuser` or on an external server, clones belong to the admin role as before.

use dbsandbox_server::Endpoint;

use crate::marker::NAME_PREFIX;
use crate::{quote_ident, PoolError};

/// `CREATE ROLE` for clone `name`, a no-op when the role exists.
pub(crate) fn create_clone_role_sql(name: &str, owner: &str) -> String {
    format!(
        "do $$ begin create role {} login nosuperuser nocreatedb nocreaterole noreplication \
         nobypassrls inherit in role {}; exception when duplicate_object then null; end $$",
        quote_ident(name),
        quote_ident(owner)
    )
}

/// The ` owner "…"` clause of `CREATE DATABASE` for clone `name` (empty without sandbox roles).
pub(crate) fn owner_clause(endpoint: &Endpoint, name: &str) -> String {
    match &endpoint.sandbox {
        Some(_) => format!(" owner {}", quote_ident(name)),
        None => String::new(),
    }
}

/// Makes the role of clone `name` (before its `CREATE DATABASE … OWNER`).
pub(crate) async fn create_clone_role(
    endpoint: &Endpoint,
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<(), PoolError> {
    let Some(roles) = &endpoint.sandbox else {
        return Ok(());
    };
    admin
        .batch_execute(&create_clone_role_sql(name, &roles.owner))
        .await
        .map_err(|e| PoolError::db(format!("creating the role of {name}"), &e))
}

/// Gives an existing clone (an adopted spare, renamed) a role of its own name.
pub(crate) async fn give_clone_its_role(
    endpoint: &Endpoint,
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<(), PoolError> {
    if endpoint.sandbox.is_none() {
        return Ok(());
    }
    create_clone_role(endpoint, admin, name).await?;
    admin
        .batch_execute(&format!(
            "alter database {0} owner to {0}",
            quote_ident(name)
        ))
        .await
        .map_err(|e| PoolError::db(format!("giving {name} its role"), &e))
}

/// Grants the role of database `source` to the role of its copy `name`: what the key's clients
/// created in the source belongs to the source's role, and the copy's clients connect as the
/// copy's.
pub(crate) async fn inherit_role_of(
    endpoint: &Endpoint,
    admin: &tokio_postgres::Client,
    name: &str,
    source: &str,
) -> Result<(), PoolError> {
    if endpoint.sandbox.is_none() || drop_role_sql(source).is_none() {
        return Ok(());
    }
    admin
        .batch_execute(&format!(
            "grant {} to {}",
            quote_ident(source),
            quote_ident(name)
        ))
        .await
        .map_err(|e| PoolError::db(format!("giving {name} the role of {source}"), &e))
}

/// Drops the role of a dropped clone; quietly, since there may be none (a `--superuser` clone,
/// an admin role that may not drop roles) and a leftover is swept by [`drop_orphan_roles`].
pub(crate) async fn drop_clone_role(admin: &tokio_postgres::Client, name: &str) {
    if let Some(sql) = drop_role_sql(name) {
        if let Err(e) = admin.batch_execute(&sql).await {
            tracing::debug!("dropping the role of {name}: {e}");
        }
    }
}

/// `DROP ROLE IF EXISTS` for a clone's name; `None` for any other name.
pub(crate) fn drop_role_sql(name: &str) -> Option<String> {
    name.starts_with(&format!("{NAME_PREFIX}c_"))
        .then(|| format!("drop role if exists {}", quote_ident(name)))
}

/// Drops clone roles whose clone is gone (their clone was dropped by a process that died, or
/// by `gc`).
pub(crate) async fn drop_orphan_roles(endpoint: &Endpoint, admin: &tokio_postgres::Client) {
    if endpoint.sandbox.is_none() {
        return;
    }
    let orphans = admin
        .query(
            "select rolname::text from pg_roles r where rolname like $1 \
             and not exists (select 1 from pg_database d where d.datname = r.rolname)",
            &[&format!("{}c\\_%", NAME_PREFIX.replace('_', "\\_"))],
        )
        .await;
    match orphans {
        Ok(rows) => {
            for row in rows {
                drop_clone_role(admin, row.get::<_, &str>(0)).await;
            }
        }
        Err(e) => tracing::debug!("looking for roles of dropped clones: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_clone_names_get_their_role_dropped() {
        assert_eq!(
            super::drop_role_sql("dbsandbox_c_ab_12").as_deref(),
            Some("drop role if exists \"dbsandbox_c_ab_12\"")
        );
        assert_eq!(super::drop_role_sql("dbsandbox_t_x"), None);
        assert_eq!(super::drop_role_sql("dbsandbox_sandbox"), None);
    }
}
