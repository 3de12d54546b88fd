//! Building a template database from a schema source, once, however many processes ask.
//!
//! The fast path is one catalogue query: a ready template with the right fingerprint is reused.
//! Otherwise the builder takes a session advisory lock named after the template (so processes and
//! machines sharing a server build it once; the others wait and then reuse it), builds under the
//! final name with a `building` marker, and on any failure drops what it made. A `building`
//! template found while holding the lock was left by a builder that died, and is rebuilt.

use std::time::{Duration, Instant};

use dbsandbox_server::Endpoint;
use tokio_postgres::error::ErrorPosition;

use crate::marker::{DbKind, DbState, Marker, NAME_PREFIX};
use crate::{named_lock, quote_ident, Fingerprint, PoolError, SchemaSource};

/// A ready template.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub project: String,
    pub fingerprint: Fingerprint,
    /// True when this call built it; false when it was reused.
    pub built: bool,
    pub elapsed: Duration,
}

/// Returns the current template for `source`, building it when needed. `progress` hears one line
/// per step of a build (nothing when the template is reused).
pub async fn ensure_template(
    endpoint: &Endpoint,
    source: &SchemaSource,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Template, PoolError> {
    let started = Instant::now();
    let fingerprint = source.fingerprint(endpoint.major_version())?;
    let project = source.project_id();
    let name = format!("{NAME_PREFIX}t_{project}_{}", fingerprint.short());
    let template = |built| Template {
        name: name.clone(),
        project: project.clone(),
        fingerprint: fingerprint.clone(),
        built,
        elapsed: started.elapsed(),
    };
    let admin = endpoint
        .admin()
        .await
        .map_err(|e| PoolError::db("connecting to the server", &e))?;
    if current_state(&admin, &name).await? == Some(Some(DbState::Ready)) {
        return Ok(template(false));
    }

    progress(&format!(
        "waiting for the template lock ({})",
        fingerprint.summary
    ));
    let build = build_locked(
        endpoint,
        &admin,
        source,
        &name,
        &project,
        &fingerprint,
        progress,
    );
    let result = named_lock::holding(&admin, named_lock::TEMPLATE_BUILD, &name, build).await;
    result.map(template)
}

/// Whether a builder (in any process, on any machine using this server) holds the build lock of
/// template `name` now: then the template is being built and must be left alone.
pub(crate) async fn build_in_progress(
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<bool, PoolError> {
    let row = admin
        .query_one(
            &format!(
                "select {}",
                named_lock::held_sql(named_lock::TEMPLATE_BUILD, "$1::text")
            ),
            &[&name],
        )
        .await
        .map_err(|e| PoolError::db("reading the template build locks", &e))?;
    Ok(row.get(0))
}

/// `None`: no such database; `Some(None)`: exists without our marker; `Some(Some(state))`: ours.
async fn current_state(
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<Option<Option<DbState>>, PoolError> {
    let row = admin
        .query_opt(
            "select shobj_description(oid, 'pg_database') from pg_database where datname = $1",
            &[&name],
        )
        .await
        .map_err(|e| PoolError::db("reading the catalogue", &e))?;
    Ok(row.map(|r| {
        let comment: Option<String> = r.get(0);
        Marker::parse(name, comment.as_deref()).map(|m| m.state)
    }))
}

async fn build_locked(
    endpoint: &Endpoint,
    admin: &tokio_postgres::Client,
    source: &SchemaSource,
    name: &str,
    project: &str,
    fingerprint: &Fingerprint,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<bool, PoolError> {
    match current_state(admin, name).await? {
        Some(Some(DbState::Ready)) => return Ok(false),
        Some(Some(_)) => {
            tracing::info!(template = name, "removing a template whose builder died");
            drop_database(admin, name).await?;
        }
        Some(None) => {
            return Err(PoolError::Input(format!(
                "a database named {name} exists but was not made by dbsandbox; refusing to touch it"
            )))
        }
        None => {}
    }
    let marker = Marker::new(
        DbKind::Template,
        DbState::Building,
        project,
        &fingerprint.hex,
        "",
    );
    admin
        .batch_execute(&format!(
            "create database {} template template0 encoding 'UTF8'",
            quote_ident(name)
        ))
        .await
        .map_err(|e| PoolError::db(format!("creating template {name}"), &e))?;
    let outcome = async {
        admin
            .batch_execute(&marker.comment_sql(name))
            .await
            .map_err(|e| PoolError::db("marking the template", &e))?;
        hand_to_owner_role(endpoint, name).await?;
        apply_schema(endpoint, source, name, progress).await?;
        crate::notify::install(endpoint, name).await?;
        admin
            .batch_execute(&format!(
                "alter database {} with allow_connections false",
                quote_ident(name)
            ))
            .await
            .map_err(|e| PoolError::db("closing the template to connections", &e))?;
        admin
            .batch_execute(&marker.with_state(DbState::Ready).comment_sql(name))
            .await
            .map_err(|e| PoolError::db("marking the template ready", &e))
    }
    .await;
    if let Err(e) = outcome {
        if let Err(cleanup) = drop_database(admin, name).await {
            tracing::warn!("could not remove the half-built template {name}: {cleanup}");
        }
        return Err(e);
    }
    Ok(true)
}

/// Lets the sandbox owner role build the template: it may create in the database and owns its
/// `public` schema, so every object the migrations make is its own (and, through membership,
/// each clone's role's). The database itself stays the admin's: no sandbox can drop a template.
async fn hand_to_owner_role(endpoint: &Endpoint, name: &str) -> Result<(), PoolError> {
    let Some(roles) = &endpoint.sandbox else {
        return Ok(());
    };
    let owner = quote_ident(&roles.owner);
    let fail = |e: &tokio_postgres::Error| PoolError::db("handing the template to its role", e);
    let admin = endpoint
        .admin()
        .await
        .map_err(|e| PoolError::db("connecting to the server", &e))?;
    admin
        .batch_execute(&format!(
            "grant create, connect, temporary on database {} to {owner}",
            quote_ident(name)
        ))
        .await
        .map_err(|e| fail(&e))?;
    endpoint
        .connect(name)
        .await
        .map_err(|e| PoolError::db("connecting to the new template", &e))?
        .batch_execute(&format!("alter schema public owner to {owner}"))
        .await
        .map_err(|e| fail(&e))
}

/// Applies migrations, the migrate command and seeds as the sandbox owner role.
async fn apply_schema(
    endpoint: &Endpoint,
    source: &SchemaSource,
    name: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), PoolError> {
    let endpoint = &endpoint.owner();
    let files = source.migration_files()?;
    let client = endpoint
        .connect(name)
        .await
        .map_err(|e| PoolError::db("connecting to the new template", &e))?;
    let total = files.len();
    for (i, file) in files.iter().enumerate() {
        progress(&format!(
            "applying migration {}/{total}: {}",
            i + 1,
            file.path.file_name().unwrap_or_default().to_string_lossy()
        ));
        run_sql_file(&client, &file.path).await?;
    }
    if let Some(command) = &source.migrate_cmd {
        progress(&format!("running {command}"));
        run_migrate_command(command, &endpoint.url(name), &source.project_root).await?;
    }
    for seed in &source.seeds {
        progress(&format!("applying seed {}", seed.display()));
        run_sql_file(&client, seed).await?;
    }
    Ok(())
}

/// Runs a file as one simple-protocol query: PostgreSQL runs a multi-statement query as one
/// implicit transaction, so a file applies entirely or not at all.
async fn run_sql_file(
    client: &tokio_postgres::Client,
    path: &std::path::Path,
) -> Result<(), PoolError> {
    let sql = std::fs::read_to_string(path)
        .map_err(|e| PoolError::Input(format!("cannot read {}: {e}", path.display())))?;
    client.batch_execute(&sql).await.map_err(|e| {
        let (line, message) = match e.as_db_error() {
            Some(db) => {
                let line = match db.position() {
                    Some(ErrorPosition::Original(position)) => {
                        Some(line_of(&sql, *position as usize))
                    }
                    _ => None,
                };
                let mut message = format!("{} ({})", db.message(), db.code().code());
                if let Some(detail) = db.detail() {
                    message.push_str(&format!("\nDETAIL: {detail}"));
                }
                if let Some(hint) = db.hint() {
                    message.push_str(&format!("\nHINT: {hint}"));
                }
                (line, message)
            }
            None => (None, e.to_string()),
        };
        PoolError::Migration {
            file: path.display().to_string(),
            line,
            message,
        }
    })
}

/// The 1-based line of the 1-based character `position` in `text`.
fn line_of(text: &str, position: usize) -> usize {
    text.chars()
        .take(position.saturating_sub(1))
        .filter(|&c| c == '\n')
        .count()
        + 1
}

async fn run_migrate_command(
    command: &str,
    url: &str,
    cwd: &std::path::Path,
) -> Result<(), PoolError> {
    // The tool's output goes to stderr: stdout belongs to the test command that runs later.
    let stderr = std::io::stderr();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("DATABASE_URL", url)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(
            std::os::fd::AsFd::as_fd(&stderr)
                .try_clone_to_owned()
                .map_err(|e| PoolError::Input(format!("cannot redirect output: {e}")))?,
        ))
        .status()
        .await
        .map_err(|e| PoolError::Input(format!("cannot run `{command}`: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(PoolError::MigrateCommand {
            command: command.to_string(),
            status: status.to_string(),
        })
    }
}

/// Drops one of our databases (the caller has checked the marker), and a clone's role.
pub(crate) async fn drop_database(
    admin: &tokio_postgres::Client,
    name: &str,
) -> Result<(), PoolError> {
    admin
        .batch_execute(&drop_sql(name))
        .await
        .map_err(|e| PoolError::db(format!("dropping {name}"), &e))?;
    crate::roles::drop_clone_role(admin, name).await;
    Ok(())
}

pub(crate) fn drop_sql(name: &str) -> String {
    format!("drop database if exists {} with (force)", quote_ident(name))
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_positions_become_lines() {
        let sql = "create table a();\n\ncreate table b(x nosuchtype);";
        let position = sql.find("nosuchtype").unwrap() + 1;
        assert_eq!(super::line_of(sql, position), 3);
        assert_eq!(super::line_of(sql, 1), 1);
    }
}
