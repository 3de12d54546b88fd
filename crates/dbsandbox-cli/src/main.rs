//! The `dbsandbox` command: run, serve, stop, status, gc, reset, release, analyze, explain and flaky.
//!
//! `run` wraps a test command (server, template, warm pool, proxy) using the project's daemon,
//! which `serve` runs and `stop` ends; `status`, `gc`, `reset` and `release` look after what they
//! made; `analyze` and `explain` diagnose database failures in test logs; `flaky` hunts the
//! order-dependent and flaky tests of a suite.

mod admin;
mod daemon;
mod flaky;
mod output;
mod progress;
mod run;
mod settings;

use clap::{Parser, Subcommand};
use output::errln;
use settings::{SchemaArgs, ServerArgs, Settings};

const ABOUT: &str =
    "Isolated PostgreSQL databases for test suites, in any language, with no Docker.

dbsandbox starts a PostgreSQL server from the binaries on this machine (or uses yours), builds a
template database once from your migrations, keeps a warm pool of clones, and puts a
wire-protocol proxy in front: every connection string's database name is a sandbox key. By
default a key is a rollback sandbox: all its connections share one transaction in the key's clone
that is never committed (their COMMITs become savepoints), reset between tests with one statement,
`SELECT dbsandbox_reset()`, in well under a millisecond.";

const RUN_HELP: &str = "Examples:
  dbsandbox run --migrations db/migrations -- pytest -n 4
  dbsandbox run --migrate-cmd 'alembic upgrade head' --watch alembic -- pytest
  dbsandbox run -- npx jest            # settings from ./dbsandbox.toml

The command gets:
  DATABASE_URL    postgres://dbsandbox@127.0.0.1:PORT/default
  DBSANDBOX_HOST, DBSANDBOX_PORT, and PGHOST/PGPORT/PGUSER/PGDATABASE for libpq tools
  DBSANDBOX_URL, DBSANDBOX_RUN (and DBSANDBOX_TOKEN) for the control API and the integrations
The database name is the sandbox key ([A-Za-z0-9_-]{1,48}): give each parallel worker its own,
e.g. pytest-xdist's PYTEST_XDIST_WORKER (gw0, gw1, …) or Jest's JEST_WORKER_ID. Connections
with the same key share one sandbox: reset it per test with `SELECT dbsandbox_reset()` (it is
also reset when its last connection closes). dbsandbox exits with the command's exit status.

The server, template and warm pool live in the project's daemon, which `run` attaches to or
starts (`dbsandbox serve --detach`), so the next run starts in milliseconds; an idle daemon exits
after 15 minutes (--idle-timeout), `dbsandbox stop` ends it now. --no-daemon keeps everything
inside this process instead, for this command only.

Settings: flags, then DBSANDBOX_* environment variables, then dbsandbox.toml (nearest in the
current directory or above), then defaults.";

const SERVE_HELP: &str = "Examples:
  dbsandbox serve                      # in the foreground, until Ctrl-C or `dbsandbox stop`
  dbsandbox serve --detach             # attach or start in the background; prints one JSON line
  dbsandbox serve --idle-timeout 1h

The daemon serves one project (the directory of the nearest dbsandbox.toml, with its settings):
`dbsandbox run`, the pytest plugin, the Node helper and the Rust crate find it through
<cache>/daemons/<project>.json, or start it. Its HTTP JSON API (see /openapi.json on it) acquires,
resets and releases sandboxes: POST /v1/sandboxes {\"key\",\"isolation\"} gives a connection URL.";

/// `dbsandbox --version`: the release, the commit it was built from (build.rs) and the control
/// API version the integrations check.
static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (commit {}, control API v{})",
        env!("CARGO_PKG_VERSION"),
        env!("DBSANDBOX_GIT_COMMIT"),
        dbsandbox_control::API_VERSION
    )
});

#[derive(Parser, Debug)]
#[command(name = "dbsandbox", version = VERSION.as_str(), about = ABOUT, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    server: ServerArgs,
    /// More logging (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum IsolationArg {
    Rollback,
    Database,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a test command with a sandboxed database per key.
    #[command(after_help = RUN_HELP)]
    Run {
        #[command(flatten)]
        schema: SchemaArgs,
        /// Proxy address; anything but loopback requires --password [default: 127.0.0.1].
        #[arg(long, env = "DBSANDBOX_LISTEN")]
        listen: Option<String>,
        /// Proxy port [default: 6543, or any free port when 6543 is taken]; 0: any free port.
        #[arg(long, env = "DBSANDBOX_PROXY_PORT")]
        port: Option<u16>,
        /// Password clients must give the proxy (required off loopback).
        #[arg(long, env = "DBSANDBOX_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// No progress or summary lines on stderr.
        #[arg(short, long)]
        quiet: bool,
        /// Isolation of a key's connections: `rollback` (one shared transaction per key, rolled
        /// back at reset; commits are absorbed) or `database` (a whole clone per key, real commits).
        /// A connection can choose for its key with options=-c dbsandbox.isolation=database.
        /// [default: rollback]
        #[arg(long, env = "DBSANDBOX_ISOLATION", value_enum)]
        isolation: Option<IsolationArg>,
        /// Keep a rollback sandbox's state when its key's last connection closes (reset only by
        /// `SELECT dbsandbox_reset()` or `dbsandbox reset`): for code under test that closes its own
        /// connection before the test checks what it committed.
        #[arg(long, env = "DBSANDBOX_NO_RESET_ON_CLOSE", value_parser = clap::builder::BoolishValueParser::new())]
        no_reset_on_close: bool,
        /// Start the server, template and pool inside this process for this command only,
        /// instead of attaching to (or starting) the project's daemon.
        #[arg(long, env = "DBSANDBOX_NO_DAEMON", value_parser = clap::builder::BoolishValueParser::new())]
        no_daemon: bool,
        /// For a daemon this run starts: exit after this long idle (90s, 15m, 1h; 0: never) [default: 15m].
        #[arg(long, env = "DBSANDBOX_IDLE_TIMEOUT", value_name = "TIME")]
        idle_timeout: Option<String>,
        /// The test command and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Keep the server, template and warm pool of this project ready for runs and integrations.
    #[command(after_help = SERVE_HELP)]
    Serve {
        #[command(flatten)]
        schema: SchemaArgs,
        /// Attach to the project's daemon or start one in the background, print one JSON line
        /// ({"api","token","proxy","pid","project","started","template"}) and exit.
        #[arg(long)]
        detach: bool,
        #[command(flatten)]
        options: daemon::ServeOptions,
    },
    /// Stop this project's daemon (releasing its sandboxes and clones, stopping its server).
    #[command(
        after_help = "Examples:\n  dbsandbox stop\n  dbsandbox stop --all     # every project's daemon"
    )]
    Stop {
        /// Stop the daemons of every project (under this cache directory).
        #[arg(long)]
        all: bool,
    },
    /// Show the server, templates, clones (with sizes), and the live daemons with their sandboxes.
    #[command(
        after_help = "Examples:\n  dbsandbox status\n  dbsandbox status --json | jq '.databases[] | select(.kind == \"template\")'"
    )]
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Drop every database dbsandbox made on the server (never anything else), except what a
    /// live daemon uses.
    #[command(
        after_help = "Examples:\n  dbsandbox gc                 # keeps what a running dbsandbox uses\n  dbsandbox gc --force         # also what other live processes hold, never a live daemon's\n  dbsandbox gc --server postgres://admin@ci-db/postgres\n\nThe live daemons under the cache directory are asked which databases they use (templates\nand clones): those are kept, with --force too."
    )]
    Gc {
        /// Also drop databases other live dbsandbox processes hold according to their markers
        /// (a run on another machine); what a live daemon says it uses is kept all the same.
        #[arg(long)]
        force: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Roll a key's sandbox back to the template's state.
    #[command(
        after_help = "Examples:\n  dbsandbox reset gw0\n  dbsandbox reset gw0 --run r3   # when several runs have the key\n\nIn a test, the in-band statement `SELECT dbsandbox_reset()` does the same through the test's own connection."
    )]
    Reset {
        /// The sandbox key (the database name the client used).
        key: String,
        /// The run to ask, when several runs of the daemon have the key.
        #[arg(long)]
        run: Option<String>,
    },
    /// Release a key: its clone is dropped, its next connection gets a fresh database.
    #[command(
        after_help = "Examples:\n  dbsandbox release gw0\n  dbsandbox release gw0 --run r3   # when several runs have the key"
    )]
    Release {
        /// The sandbox key (the database name the client used).
        key: String,
        /// The run to ask, when several runs of the daemon have the key.
        #[arg(long)]
        run: Option<String>,
    },
    /// Name the database failures in test logs, with their fix.
    #[command(after_help = dbsandbox_diagnose::cli::ANALYZE_EXAMPLES)]
    Analyze(dbsandbox_diagnose::AnalyzeArgs),
    /// Find the suite's order-dependent and flaky tests, the test that polluted each, and the
    /// rows it left behind: each run on a fresh clone, bisected to the culprit.
    #[command(after_help = flaky::FLAKY_HELP)]
    Flaky(flaky::FlakyArgs),
    /// Print a failure class's playbook (diagnosis, fix, validation), or list them.
    #[command(after_help = dbsandbox_diagnose::cli::EXPLAIN_EXAMPLES)]
    Explain(dbsandbox_diagnose::ExplainArgs),
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let code = match cli.command {
        Command::Analyze(args) => {
            dbsandbox_diagnose::run_analyze(&args, &mut output::stdout(), &mut output::stderr())
        }
        Command::Explain(args) => {
            dbsandbox_diagnose::run_explain(&args, &mut output::stdout(), &mut output::stderr())
        }
        command => match runtime() {
            Ok(runtime) => runtime
                .block_on(dispatch(command, cli.server))
                .unwrap_or_else(report_error),
            Err(e) => report_error(e),
        },
    };
    std::process::exit(code);
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn dispatch(command: Command, server: ServerArgs) -> anyhow::Result<i32> {
    let command_is_reset = matches!(command, Command::Reset { .. });
    match command {
        Command::Run {
            schema,
            listen,
            port,
            password,
            quiet,
            isolation,
            no_reset_on_close,
            no_daemon,
            idle_timeout,
            command,
        } => {
            let settings = Settings::resolve(&server, &schema)?;
            let listen = listen
                .or(settings.listen.clone())
                .unwrap_or_else(|| "127.0.0.1".to_string());
            let port = port.or(settings.port);
            let isolation = match isolation {
                Some(IsolationArg::Rollback) => dbsandbox_proxy::Isolation::Rollback,
                Some(IsolationArg::Database) => dbsandbox_proxy::Isolation::Database,
                None => settings
                    .isolation
                    .unwrap_or(dbsandbox_proxy::Isolation::Rollback),
            };
            let reset_on_close = !no_reset_on_close && settings.reset_on_close.unwrap_or(true);
            run::run(
                settings,
                run::RunOptions {
                    listen,
                    port,
                    password,
                    command,
                    quiet,
                    reset_on_close,
                    isolation,
                    no_daemon,
                    serve: daemon::ServeOptions {
                        idle_timeout,
                        ..Default::default()
                    },
                    server_args: server,
                    schema_args: schema,
                },
            )
            .await
        }
        Command::Serve {
            schema,
            detach,
            options,
        } => {
            let settings = Settings::resolve(&server, &schema)?;
            if detach {
                daemon::detach(settings, &server, &schema, options).await
            } else {
                daemon::serve(settings, options).await
            }
        }
        Command::Stop { all } => {
            daemon::stop(Settings::resolve(&server, &SchemaArgs::default())?, all).await
        }
        Command::Status { json } => {
            admin::status(&Settings::resolve(&server, &SchemaArgs::default())?, json).await
        }
        Command::Gc { force, json } => {
            admin::gc(
                &Settings::resolve(&server, &SchemaArgs::default())?,
                force,
                json,
            )
            .await
        }
        Command::Reset { key, run } | Command::Release { key, run } => {
            let action = if command_is_reset {
                admin::KeyAction::Reset
            } else {
                admin::KeyAction::Release
            };
            let settings = Settings::resolve(&server, &SchemaArgs::default())?;
            admin::key_action(&settings, action, &key, run.as_deref()).await
        }
        Command::Flaky(args) => flaky::flaky(server, args).await,
        Command::Analyze(_) | Command::Explain(_) => unreachable!("handled without a runtime"),
    }
}

/// Prints an error chain and picks the exit code: 2 for problems the user must fix in their
/// set-up or input, 1 for the rest.
fn report_error(error: anyhow::Error) -> i32 {
    errln!("dbsandbox: error: {error}");
    for cause in error.chain().skip(1) {
        errln!("  caused by: {cause}");
    }
    let bad_input = error.chain().any(|cause| {
        cause.is::<settings::UsageError>() || cause.is::<dbsandbox_control::InputError>()
    });
    if bad_input {
        return 2;
    }
    if let Some(e) = error.downcast_ref::<dbsandbox_server::ServerError>() {
        return e.exit_code();
    }
    if let Some(e) = error.downcast_ref::<dbsandbox_pool::PoolError>() {
        return e.exit_code();
    }
    1
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
