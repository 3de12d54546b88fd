//! Where every setting comes from: command-line flags, then `DBSANDBOX_*` environment variables
//! (clap reads both), then `dbsandbox.toml` at the project root, then defaults.
//!
//! The project root is the nearest directory from the current one upwards that holds a
//! `dbsandbox.toml` (or the current directory when there is none). Relative paths in the file are
//! relative to the file; relative paths on the command line are relative to the current directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

/// Bad input the user must fix (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

macro_rules! usage {
    ($($arg:tt)*) => { return Err(UsageError(format!($($arg)*)).into()) };
}

/// Options shared by every command that talks to a server.
#[derive(Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// Use this PostgreSQL server (13+) instead of the embedded one, e.g. postgres://admin@db:5432/postgres.
    /// dbsandbox only creates and drops databases that carry its own marker there.
    #[arg(long, env = "DBSANDBOX_SERVER", value_name = "URL", global = true)]
    pub server: Option<String>,
    /// Directory holding initdb and postgres (searched in PATH, pg_config --bindir, /usr/lib/postgresql/*/bin, Homebrew otherwise).
    #[arg(long, env = "DBSANDBOX_PG_BIN", value_name = "DIR", global = true)]
    pub pg_bin: Option<PathBuf>,
    /// Cache directory [default: $XDG_CACHE_HOME/dbsandbox or ~/.cache/dbsandbox].
    #[arg(long, env = "DBSANDBOX_CACHE_DIR", value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Run the embedded PostgreSQL as this user when dbsandbox runs as root [default: postgres].
    #[arg(long, env = "DBSANDBOX_RUN_AS", value_name = "USER", global = true)]
    pub run_as: Option<String>,
    /// Read settings from this file instead of the nearest dbsandbox.toml.
    #[arg(long, env = "DBSANDBOX_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Sandbox clients and migrations connect as the server's superuser instead of unprivileged
    /// roles (for migrations that need one: untrusted extensions, event triggers, ALTER SYSTEM).
    /// A sandbox can then run programs and read files as the server's OS user: see the README.
    #[arg(long, env = "DBSANDBOX_SUPERUSER", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub superuser: bool,
    /// TLS for the proxy's clients (sslmode=require, verify-full), with a CA and certificate
    /// generated under the cache directory: on by default (see the README's TLS section);
    /// `--tls=false` or DBSANDBOX_TLS=0 turns it off, as --no-tls does.
    #[arg(long, env = "DBSANDBOX_TLS", global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", value_parser = clap::builder::BoolishValueParser::new())]
    pub tls: Option<bool>,
    /// No TLS: an SSLRequest is answered 'N', as by a server without `ssl = on` (wins over
    /// --tls, DBSANDBOX_TLS and `tls = true`).
    #[arg(long, global = true)]
    pub no_tls: bool,
    /// PEM certificate (chain) the proxy serves TLS with, instead of the one generated under the
    /// cache directory (needs --tls-key).
    #[arg(long, env = "DBSANDBOX_TLS_CERT", value_name = "FILE", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "DBSANDBOX_TLS_KEY", value_name = "FILE", global = true)]
    pub tls_key: Option<PathBuf>,
}

/// Options that say how templates are built.
#[derive(Args, Debug, Clone, Default)]
pub struct SchemaArgs {
    /// Directory of .sql migrations, applied in version order, one transaction per file
    /// (0001_x.sql, 20240101_x.up.sql, V1__x.sql; .down.sql skipped).
    #[arg(long, env = "DBSANDBOX_MIGRATIONS", value_name = "DIR")]
    pub migrations: Option<PathBuf>,
    /// A command that migrates the database named by $DATABASE_URL (alembic upgrade head, sqlx migrate run, …).
    #[arg(long, env = "DBSANDBOX_MIGRATE_CMD", value_name = "CMD")]
    pub migrate_cmd: Option<String>,
    /// SQL files applied after the migrations (repeatable).
    #[arg(
        long,
        env = "DBSANDBOX_SEED",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub seed: Vec<PathBuf>,
    /// Files or directories whose contents count in the template's fingerprint, for
    /// --migrate-cmd tools whose inputs dbsandbox cannot see (repeatable).
    #[arg(
        long,
        env = "DBSANDBOX_WATCH",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub watch: Vec<PathBuf>,
    /// Clones kept ready [default: 2 × CPU cores].
    #[arg(long, env = "DBSANDBOX_POOL_SIZE", value_name = "N")]
    pub pool_size: Option<usize>,
    /// Templates kept per project, newest first [default: 3].
    #[arg(long, env = "DBSANDBOX_KEEP_TEMPLATES", value_name = "N")]
    pub keep_templates: Option<usize>,
}

/// The contents of `dbsandbox.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct FileSettings {
    pub migrations: Option<PathBuf>,
    pub migrate_cmd: Option<String>,
    #[serde(default)]
    pub seed: Vec<PathBuf>,
    #[serde(default)]
    pub watch: Vec<PathBuf>,
    pub server: Option<String>,
    pub pg_bin: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub run_as: Option<String>,
    /// Sandbox clients are superusers (see [`ServerArgs::superuser`]).
    pub superuser: Option<bool>,
    /// TLS for the proxy's clients (see [`ServerArgs::tls`]).
    pub tls: Option<bool>,
    /// The proxy's own TLS certificate and key (PEM), instead of generated ones.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub pool_size: Option<usize>,
    pub keep_templates: Option<usize>,
    pub port: Option<u16>,
    pub listen: Option<String>,
    /// `rollback` or `database`.
    pub isolation: Option<String>,
    pub reset_on_close: Option<bool>,
    /// How long an idle daemon waits before it exits: seconds, or `90s`, `15m`, `1h`; 0: never.
    pub idle_timeout: Option<toml::Value>,
}

/// Settings after precedence is applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub project_root: PathBuf,
    pub config_file: Option<PathBuf>,
    pub server: dbsandbox_server::ServerConfig,
    pub schema: dbsandbox_pool::SchemaSource,
    pub pool_size: Option<usize>,
    pub keep_templates: usize,
    pub port: Option<u16>,
    pub listen: Option<String>,
    pub isolation: Option<dbsandbox_proxy::Isolation>,
    pub reset_on_close: Option<bool>,
    /// From the file; the flag or environment variable wins (see [`parse_duration`]).
    pub idle_timeout: Option<String>,
    pub tls: dbsandbox_control::daemon::TlsSource,
}

impl Settings {
    pub fn resolve(server: &ServerArgs, schema: &SchemaArgs) -> anyhow::Result<Settings> {
        let cwd = std::env::current_dir().context("reading the current directory")?;
        let config_file = match &server.config {
            Some(path) => Some(cwd.join(path)),
            None => find_config(&cwd),
        };
        let (file, project_root) = match &config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let file: FileSettings = match toml::from_str(&text) {
                    Ok(file) => file,
                    Err(e) => usage!("{}: {e}", path.display()),
                };
                (
                    file,
                    path.parent().map(Path::to_path_buf).unwrap_or(cwd.clone()),
                )
            }
            None => (FileSettings::default(), cwd.clone()),
        };
        let from_file = |p: &PathBuf| project_root.join(p);
        let from_cli = |p: &PathBuf| cwd.join(p);

        let migrations = schema
            .migrations
            .as_ref()
            .map(from_cli)
            .or(file.migrations.as_ref().map(from_file));
        let migrate_cmd = schema.migrate_cmd.clone().or(file.migrate_cmd);
        if migrations.is_none() && migrate_cmd.is_none() {
            // An empty template is legal (tests that create their own schema), but say so.
            tracing::debug!("no migrations and no migrate command: templates are empty databases");
        }
        if let Some(dir) = &migrations {
            if !dir.is_dir() {
                usage!("the migrations directory {} does not exist", dir.display());
            }
        }
        let seeds: Vec<PathBuf> = if schema.seed.is_empty() {
            file.seed.iter().map(from_file).collect()
        } else {
            schema.seed.iter().map(from_cli).collect()
        };
        for seed in &seeds {
            if !seed.is_file() {
                usage!("the seed file {} does not exist", seed.display());
            }
        }
        let superuser = server.superuser || file.superuser.unwrap_or(false);
        let watch = if schema.watch.is_empty() {
            file.watch.iter().map(from_file).collect()
        } else {
            schema.watch.iter().map(from_cli).collect()
        };
        let tls = tls_source(
            !server.no_tls && server.tls.or(file.tls).unwrap_or(true),
            server.tls_cert.as_ref().map(from_cli),
            server.tls_key.as_ref().map(from_cli),
            file.tls_cert.as_ref().map(from_file),
            file.tls_key.as_ref().map(from_file),
        )?;
        let settings = Settings {
            tls,
            server: dbsandbox_server::ServerConfig {
                external: server.server.clone().or(file.server),
                pg_bin: server
                    .pg_bin
                    .as_ref()
                    .map(from_cli)
                    .or(file.pg_bin.as_ref().map(from_file)),
                cache_dir: server
                    .cache_dir
                    .as_ref()
                    .map(from_cli)
                    .or(file.cache_dir.as_ref().map(from_file)),
                run_as: server.run_as.clone().or(file.run_as),
                private: false,
                superuser,
            },
            schema: dbsandbox_pool::SchemaSource {
                project_root: project_root.clone(),
                migrations,
                migrate_cmd,
                seeds,
                watch,
                superuser,
            },
            pool_size: schema.pool_size.or(file.pool_size),
            keep_templates: schema.keep_templates.or(file.keep_templates).unwrap_or(3),
            port: file.port,
            listen: file.listen,
            isolation: match file.isolation.as_deref() {
                None => None,
                Some("rollback") => Some(dbsandbox_proxy::Isolation::Rollback),
                Some("database") => Some(dbsandbox_proxy::Isolation::Database),
                Some(other) => usage!(
                    "isolation = \"{other}\" in dbsandbox.toml: use \"rollback\" or \"database\""
                ),
            },
            reset_on_close: file.reset_on_close,
            idle_timeout: match file.idle_timeout {
                None => None,
                Some(toml::Value::Integer(n)) => Some(n.to_string()),
                Some(toml::Value::String(text)) => Some(text),
                Some(other) => usage!(
                    "idle_timeout = {other} in dbsandbox.toml: use seconds or a text like \"15m\""
                ),
            },
            project_root,
            config_file,
        };
        let cache = settings.cache_dir();
        if cache.exists() && !cache.is_dir() {
            usage!(
                "the cache directory {} is not a directory (--cache-dir, DBSANDBOX_CACHE_DIR or \
                 cache_dir in dbsandbox.toml)",
                cache.display()
            );
        }
        Ok(settings)
    }

    /// The cache directory for dbsandbox's own small files (run records, measurements).
    pub fn cache_dir(&self) -> PathBuf {
        self.server
            .cache_dir
            .clone()
            .unwrap_or_else(dbsandbox_server::default_cache_dir)
    }
}

impl Settings {
    /// The identity of this project's daemon: everything that shapes its server and templates.
    /// Two commands resolving to the same settings share one daemon.
    pub fn daemon_id(&self) -> String {
        let root =
            std::fs::canonicalize(&self.project_root).unwrap_or_else(|_| self.project_root.clone());
        let identity = format!(
            "{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}",
            root.display(),
            self.config_file,
            self.schema.migrations,
            self.schema.migrate_cmd,
            self.schema.seeds,
            self.schema.watch,
            self.server.external,
            self.server.pg_bin,
            self.server.run_as,
            self.cache_dir(),
            self.pool_size,
            self.keep_templates,
            if self.server.superuser {
                "superuser"
            } else {
                "sandbox-roles"
            },
        );
        // A daemon with other TLS is another daemon (the default's identity is the bare one).
        let identity = match &self.tls {
            dbsandbox_control::daemon::TlsSource::Generated => identity,
            tls => format!("{identity}|{tls:?}"),
        };
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let name: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(24)
            .collect();
        format!("{name}-{}", dbsandbox_server::short_hash(&identity))
    }
}

/// `--flag value` pairs for the options that are set, in order.
pub fn flag_args(flags: &[(&str, Option<String>)]) -> Vec<String> {
    flags
        .iter()
        .filter_map(|(flag, value)| Some([flag.to_string(), value.clone()?]))
        .flatten()
        .collect()
}

fn path_text(path: &Option<PathBuf>) -> Option<String> {
    path.as_ref().map(|p| p.display().to_string())
}

impl ServerArgs {
    /// The flags that reproduce these options (for the daemon `run` starts).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = flag_args(&[
            ("--server", self.server.clone()),
            ("--pg-bin", path_text(&self.pg_bin)),
            ("--cache-dir", path_text(&self.cache_dir)),
            ("--run-as", self.run_as.clone()),
            ("--config", path_text(&self.config)),
            ("--tls-cert", path_text(&self.tls_cert)),
            ("--tls-key", path_text(&self.tls_key)),
        ]);
        if self.superuser {
            args.push("--superuser".to_string());
        }
        if let Some(tls) = self.tls {
            args.push(format!("--tls={tls}"));
        }
        if self.no_tls {
            args.push("--no-tls".to_string());
        }
        args
    }
}

/// The proxy's TLS certificate: none when TLS is turned off (`--no-tls`, `tls = false`,
/// DBSANDBOX_TLS=0), else the flags' (or environment's) pair, else the file's pair, else a
/// generated one. Half a pair, or a file that is not there, is bad input.
fn tls_source(
    tls: bool,
    cli_cert: Option<PathBuf>,
    cli_key: Option<PathBuf>,
    file_cert: Option<PathBuf>,
    file_key: Option<PathBuf>,
) -> anyhow::Result<dbsandbox_control::daemon::TlsSource> {
    let (cert, key, origin) = if cli_cert.is_some() || cli_key.is_some() {
        (
            cli_cert,
            cli_key,
            "--tls-cert and --tls-key (or DBSANDBOX_TLS_CERT and DBSANDBOX_TLS_KEY)",
        )
    } else {
        (
            file_cert,
            file_key,
            "tls_cert and tls_key in dbsandbox.toml",
        )
    };
    match (cert, key) {
        _ if !tls => Ok(dbsandbox_control::daemon::TlsSource::Off),
        (None, None) => Ok(dbsandbox_control::daemon::TlsSource::Generated),
        (Some(cert), Some(key)) => {
            for path in [&cert, &key] {
                if !path.is_file() {
                    usage!("the TLS file {} does not exist ({origin})", path.display());
                }
            }
            Ok(dbsandbox_control::daemon::TlsSource::Files { cert, key })
        }
        _ => usage!("{origin} go together: give both, or neither for a generated certificate"),
    }
}

impl SchemaArgs {
    /// The flags that reproduce these options (for the daemon `run` starts).
    pub fn to_args(&self) -> Vec<String> {
        let mut flags = vec![
            ("--migrations", path_text(&self.migrations)),
            ("--migrate-cmd", self.migrate_cmd.clone()),
        ];
        flags.extend(
            self.seed
                .iter()
                .map(|p| ("--seed", Some(p.display().to_string()))),
        );
        flags.extend(
            self.watch
                .iter()
                .map(|p| ("--watch", Some(p.display().to_string()))),
        );
        flags.push(("--pool-size", self.pool_size.map(|n| n.to_string())));
        flags.push((
            "--keep-templates",
            self.keep_templates.map(|n| n.to_string()),
        ));
        flag_args(&flags)
    }
}

/// `90`, `90s`, `15m`, `1h`, `2d` → a duration; `0` → `None` (never).
pub fn parse_duration(text: &str) -> Result<Option<std::time::Duration>, UsageError> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number.parse().map_err(|_| {
        UsageError(format!(
            "idle timeout \"{text}\": use seconds or a number with s, m, h or d (e.g. 15m); 0 means never"
        ))
    })?;
    let seconds = match unit.trim() {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        other => {
            return Err(UsageError(format!(
                "idle timeout \"{text}\": unknown unit \"{other}\" (use s, m, h or d)"
            )))
        }
    };
    Ok((seconds > 0).then(|| std::time::Duration::from_secs(seconds)))
}

fn find_config(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("dbsandbox.toml"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_reject_unknown_keys_with_their_name() {
        let err = toml::from_str::<FileSettings>("migratons = 'x'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("migratons"), "{err}");
        let ok: FileSettings =
            toml::from_str("migrations = 'db'\nseed = ['a.sql']\npool_size = 4").unwrap();
        assert_eq!(ok.migrations, Some(PathBuf::from("db")));
        assert_eq!(ok.pool_size, Some(4));
    }

    #[test]
    fn durations_take_units_and_zero_means_never() {
        use std::time::Duration;
        assert_eq!(parse_duration("90").unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_duration("15m").unwrap(),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            parse_duration("1h").unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_duration("0").unwrap(), None);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn schema_flags_round_trip_through_to_args() {
        let args = SchemaArgs {
            migrations: Some("db".into()),
            seed: vec!["a.sql".into(), "b.sql".into()],
            pool_size: Some(3),
            ..Default::default()
        };
        assert_eq!(
            args.to_args(),
            [
                "--migrations",
                "db",
                "--seed",
                "a.sql",
                "--seed",
                "b.sql",
                "--pool-size",
                "3"
            ]
        );
        let server = ServerArgs {
            cache_dir: Some("c".into()),
            superuser: true,
            ..Default::default()
        };
        assert_eq!(server.to_args(), ["--cache-dir", "c", "--superuser"]);
    }
}
