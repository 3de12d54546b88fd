//! Templates and clones: the databases dbsandbox makes, and the only ones it ever drops.
//!
//! A **template** is built once from a [`SchemaSource`] and named after its [`Fingerprint`];
//! changed inputs mean a new template (drift) and old ones are collected. A [`ClonePool`] keeps
//! ready `CREATE DATABASE … TEMPLATE` copies of one template and hands them out in about a
//! millisecond. Every database made here carries a [`Marker`] in its comment; anything without
//! one is never dropped or altered.

mod inventory;
mod marker;
mod named_lock;
mod notify;
mod pool;
mod roles;
mod source;
mod template;

pub use inventory::{
    collect_old_templates, gc, list, reap_dead_owners, reap_unfinished_clones, DatabaseInfo,
    GcReport,
};
pub use marker::{DbKind, DbState, Marker};
pub use named_lock::CLONE_LOCK_CLASS;
pub use notify::{
    install_sql as sandbox_notify_sql, NOTIFY_SQLSTATE, REAL_PG_NOTIFY, ROLLBACK_SANDBOX_SETTING,
};
pub use pool::{choose_strategy, ClonePool, CloneStrategy, PoolConfig, PoolStats};
pub use source::{migration_files, Fingerprint, MigrationFile, SchemaSource};
pub use template::{ensure_template, Template};

/// Errors of template building and pooling.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Bad input from the user: a missing directory, an unversioned migration file, …
    #[error("{0}")]
    Input(String),
    /// A migration or seed failed; the half-built template has been removed.
    #[error("{file}{}: {message}\n(the template was not built; nothing was left behind)", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Migration {
        file: String,
        line: Option<usize>,
        message: String,
    },
    #[error("the migrate command `{command}` failed ({status}); the template was not built; nothing was left behind")]
    MigrateCommand { command: String, status: String },
    #[error("{context}: {message}")]
    Database { context: String, message: String },
    /// The template a pool clones no longer exists (someone dropped it).
    #[error("the template {0} does not exist (it was dropped)")]
    TemplateMissing(String),
}

impl PoolError {
    pub(crate) fn db(context: impl Into<String>, e: &tokio_postgres::Error) -> PoolError {
        PoolError::Database {
            context: context.into(),
            message: dbsandbox_server::describe_pg_error(e),
        }
    }

    /// Exit code for the CLI: 2 for input the user must fix, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            PoolError::Input(_) => 2,
            _ => 1,
        }
    }
}

/// Quotes an identifier for SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal for SQL.
pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
