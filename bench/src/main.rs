//! The benchmark harness: measures dbsandbox against baselines in the same run, on schema40, and
//! prints a Markdown report of medians and ratios (these machines are noisy: never one sample).
//!
//! Run it with `bash bench/run.sh` (builds the release binaries first). Measured:
//! - connect-to-first-row for a fresh key with a warm pool, against CREATE DATABASE from the same
//!   template + connect + first row, and against a plain connection to an existing database;
//! - `dbsandbox run -- true` wall time, cold (empty cache: initdb, template build) and warm;
//! - pgbench select-only `-c 8` through the proxy against direct to the same database;
//! - the warm loop (issue 4, `warm_loop.rs`): `dbsandbox run -- true` with the project's daemon
//!   running, against `run --no-daemon` and a plain spawn. `--only warm-loop` runs it alone;
//! - `--only pgbench-c1` (`pgbench_c1.rs`, issue 10): pgbench `-S -c 1` direct, through a database
//!   key and a rollback key (plain and TLS) and PgBouncer, and the cost of a connection.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

mod pgbench_c1;
mod warm_loop;

struct Options {
    samples: usize,
    /// `--only warm-loop`: run that scenario alone.
    only: Option<String>,
    pgbench_seconds: u32,
    pgbench_rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let mut options = Options {
        samples: 30,
        pgbench_seconds: 10,
        pgbench_rounds: 3,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                options = Options {
                    samples: 10,
                    pgbench_seconds: 3,
                    pgbench_rounds: 1,
                    only: options.only,
                }
            }
            "--only" => match args.next().as_deref() {
                Some(scenario @ ("warm-loop" | "pgbench-c1")) => {
                    options.only = Some(scenario.into())
                }
                other => bail!("--only takes a scenario: warm-loop or pgbench-c1 (got {other:?})"),
            },
            "--samples" => options.samples = args.next().context("--samples N")?.parse()?,
            "--help" | "-h" => {
                println!("dbsandbox-bench [--quick] [--samples N] [--only warm-loop|pgbench-c1]\nRun through bench/run.sh, which builds the release binaries.");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if options.only.as_deref() == Some("warm-loop") {
        return warm_loop::warm_loop(options.samples);
    }
    if options.only.as_deref() == Some("pgbench-c1") {
        let (seconds, rounds) = (options.pgbench_seconds, options.pgbench_rounds.max(3));
        return runtime.block_on(pgbench_c1::pgbench_c1(seconds, rounds));
    }
    let samples = options.samples;
    runtime.block_on(bench(options))?;
    println!();
    warm_loop::warm_loop(samples)
}

fn dbsandbox_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let binary = exe.with_file_name("dbsandbox");
    if !binary.exists() {
        bail!(
            "{} not found: build it first (bash bench/run.sh does)",
            binary.display()
        );
    }
    Ok(binary)
}

/// schema40 plus pgbench's tables at scale 1 (100,000 accounts), so that rollback sandboxes have
/// them: `pgbench -i` cannot run through one (it VACUUMs, and its tables would vanish at reset).
fn schema40_with_pgbench(dir: &Path) -> anyhow::Result<PathBuf> {
    let migrations = schema40_migrations(dir)?;
    std::fs::write(
        migrations.join("0002_pgbench.sql"),
        "create table pgbench_branches(bid int primary key, bbalance int, filler char(88));\n\
         create table pgbench_tellers(tid int primary key, bid int, tbalance int, filler char(84));\n\
         create table pgbench_accounts(aid int primary key, bid int, abalance int, filler char(84));\n\
         create table pgbench_history(tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));\n\
         insert into pgbench_branches select 1, 0, '';\n\
         insert into pgbench_tellers select g, 1, 0, '' from generate_series(1, 10) g;\n\
         insert into pgbench_accounts select g, 1, 0, '' from generate_series(1, 100000) g;\n\
         analyze;\n",
    )?;
    Ok(migrations)
}

fn schema40() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pytest-shared/migrations")
}

/// `dir/migrations` holding a copy of schema40's migration, for projects that add their own.
fn schema40_migrations(dir: &Path) -> anyhow::Result<PathBuf> {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations)?;
    std::fs::copy(
        schema40().join("0001_schema40.sql"),
        migrations.join("0001_schema40.sql"),
    )?;
    Ok(migrations)
}

fn dbsandbox(cache: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new(dbsandbox_binary()?);
    command.arg("--cache-dir").arg(cache);
    Ok(command)
}

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 0.5)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        return f64::NAN;
    }
    values[((values.len() - 1) as f64 * p).round() as usize]
}

fn time_run(cache: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = dbsandbox(cache)?
        .args(["run", "-q", "--no-daemon", "--port", "0", "--migrations"])
        .arg(schema40())
        .args(["--", "true"])
        .status()?;
    if !status.success() {
        bail!("dbsandbox run -- true failed: {status}");
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn connect(config: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

struct BackgroundRun {
    child: Child,
    port: u16,
}

impl Drop for BackgroundRun {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A `run --no-daemon` around a long command, on a port chosen here, once its proxy answers;
/// `extra` are more flags of `run` (`--tls`).
fn start_background(
    cache: &Path,
    migrations: &Path,
    extra: &[&str],
) -> anyhow::Result<BackgroundRun> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = dbsandbox(cache)?
        .args(["run", "-q", "--no-daemon", "--port"])
        .arg(port.to_string())
        .args(["--pool-size", "8", "--migrations"])
        .arg(migrations)
        .args(extra)
        .args(["--", "sleep", "3600"])
        .stdout(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("the background run exited early: {status}");
        }
        if Instant::now() > deadline {
            bail!("the background run did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(BackgroundRun { child, port })
}

/// PgBouncer in session mode in front of the benchmark server, as a baseline for the proxy.
/// It refuses to run as root, so as root it runs as `postgres`.
struct PgBouncer {
    child: Child,
    port: String,
    version: String,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    fn start(backend_port: &str, password: &str, pool_mode: &str) -> anyhow::Result<PgBouncer> {
        let version = Command::new("pgbouncer").arg("--version").output()?;
        let version = String::from_utf8_lossy(&version.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or("?")
            .to_string();
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
            .to_string();
        let path = |name: &str| dir.path().join(name).display().to_string();
        std::fs::write(dir.path().join("users.txt"), "\"dbsandbox\" \"\"\n")?;
        std::fs::write(
            dir.path().join("pgbouncer.ini"),
            format!(
                "[databases]\n* = host=127.0.0.1 port={backend_port} user=dbsandbox password={password}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {}\npool_mode = {pool_mode}\nmax_client_conn = 200\n\
                 default_pool_size = 20\nlogfile = {}\npidfile = {}\n",
                path("users.txt"),
                path("pgbouncer.log"),
                path("pgbouncer.pid")
            ),
        )?;
        let mut command = Command::new("pgbouncer");
        command
            .arg(path("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if nix_is_root() {
            use std::os::unix::fs::PermissionsExt;
            use std::os::unix::process::CommandExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
            let uid: u32 =
                String::from_utf8(Command::new("id").args(["-u", "postgres"]).output()?.stdout)?
                    .trim()
                    .parse()?;
            command.uid(uid);
        }
        let child = command.spawn().context("starting pgbouncer")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
            if Instant::now() > deadline {
                bail!("pgbouncer did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(PgBouncer {
            child,
            port,
            version,
            _dir: dir,
        })
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn status_json(cache: &Path) -> anyhow::Result<serde_json::Value> {
    let output = dbsandbox(cache)?.args(["status", "--json"]).output()?;
    if !output.status.success() {
        bail!("status failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// pgbench select-only against 127.0.0.1:`port` with `clients` clients; `options` goes to
/// libpq's PGOPTIONS (how pgbench picks a key's isolation through the proxy).
fn select_only_tps(
    port: &str,
    user: &str,
    database: &str,
    clients: u32,
    seconds: &str,
    options: &str,
) -> anyhow::Result<f64> {
    let clients = clients.to_string();
    let threads = if clients == "1" { "1" } else { "2" };
    pgbench_tps(
        &[
            "-S",
            "-n",
            "-c",
            &clients,
            "-j",
            threads,
            "-T",
            seconds,
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-U",
            user,
            database,
        ],
        options,
    )
}

fn pgbench_tps(args: &[&str], options: &str) -> anyhow::Result<f64> {
    pgbench_tps_env(args, &[("PGOPTIONS", options)])
}

/// pgbench with these environment variables (PGOPTIONS, PGSSLMODE); its TPS.
fn pgbench_tps_env(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<f64> {
    let output = Command::new("pgbench")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .context("running pgbench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench {args:?} failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .context("no tps line in pgbench output")
}

async fn bench(options: Options) -> anyhow::Result<()> {
    println!("## dbsandbox benchmark (schema40: 40 tables, 100 seed rows each)\n");
    println!(
        "machine: {} cores; PostgreSQL: {}\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        Command::new("pgbench")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    );

    // 1. dbsandbox run -- true, cold and warm.
    let mut cold = Vec::new();
    for _ in 0..3 {
        let cache = tempfile::tempdir()?;
        cold.push(time_run(cache.path())?);
    }
    let cache = tempfile::tempdir()?;
    time_run(cache.path())?;
    let mut warm = Vec::new();
    for _ in 0..7 {
        warm.push(time_run(cache.path())?);
    }

    // 2. Connect-to-first-row for fresh keys, against CREATE DATABASE and a plain connection.
    let bench_schema = tempfile::tempdir()?;
    let migrations = schema40_with_pgbench(bench_schema.path())?;
    let run = start_background(cache.path(), &migrations, &[])?;
    std::thread::sleep(Duration::from_secs(2)); // let the pool fill
    let status = status_json(cache.path())?;
    let endpoint = &status["endpoint"];
    // The embedded server takes TCP connections with its admin password only.
    let password = endpoint["url"]
        .as_str()
        .and_then(|url| url.parse::<tokio_postgres::Config>().ok())
        .and_then(|config| {
            config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
        })
        .unwrap_or_default();
    let direct = |db: &str| {
        format!(
            "host=127.0.0.1 port={} user={} password={password} dbname={db}",
            endpoint["port"],
            endpoint["user"].as_str().unwrap_or("dbsandbox")
        )
    };
    let template = status["databases"]
        .as_array()
        .and_then(|dbs| {
            dbs.iter()
                .find(|d| d["kind"] == "template" && d["state"] == "ready")
        })
        .and_then(|d| d["name"].as_str())
        .context("no template in status")?
        .to_string();
    let fresh_key_ms = |isolation: &'static str| {
        let port = run.port;
        let samples = options.samples;
        async move {
            let mut times = Vec::new();
            for i in 0..samples {
                tokio::time::sleep(Duration::from_millis(250)).await; // the refill replaces the clone taken
                let started = Instant::now();
                let client = connect(&format!(
                    "host=127.0.0.1 port={port} user=bench dbname=fresh_{isolation}_{i} options='-c dbsandbox.isolation={isolation}'"
                ))
                .await?;
                client.query_one("select count(*) from t0", &[]).await?;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(times)
        }
    };
    let mut fresh_database = fresh_key_ms("database").await?;
    let mut fresh_rollback = fresh_key_ms("rollback").await?;
    let admin = connect(&direct("postgres")).await?;
    let mut create_database = Vec::new();
    let mut plain_connect = Vec::new();
    for i in 0..options.samples.div_ceil(2) {
        let name = format!("bench_baseline_{i}");
        let started = Instant::now();
        admin
            .batch_execute(&format!("create database {name} template {template}"))
            .await?;
        let client = connect(&direct(&name)).await?;
        client.query_one("select count(*) from t0", &[]).await?;
        create_database.push(started.elapsed().as_secs_f64() * 1000.0);
        drop(client);
        let started = Instant::now();
        let client = connect(&direct(&name)).await?;
        client.query_one("select count(*) from t0", &[]).await?;
        plain_connect.push(started.elapsed().as_secs_f64() * 1000.0);
        drop(client);
        admin
            .batch_execute(&format!("drop database {name} with (force)"))
            .await?;
    }

    // 3. Reset of a dirtied sandbox, against TRUNCATE of all 40 tables and DROP + CREATE.
    let dirty = |i: usize| {
        format!(
            "insert into t0(name) values ('dirty{i}'); insert into t1(name, parent_id) values ('dirty{i}', 1); \
             update t20 set payload = '{{\"n\": {i}}}' where id = 7; delete from t39 where id = 100"
        )
    };
    let sandbox = connect(&format!(
        "host=127.0.0.1 port={} user=bench dbname=reset_bench",
        run.port
    ))
    .await?;
    let mut reset = Vec::new();
    for i in 0..options.samples {
        sandbox.batch_execute(&dirty(i)).await?;
        let started = Instant::now();
        sandbox.simple_query("SELECT dbsandbox_reset()").await?;
        reset.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let count: i64 = sandbox
        .query_one("select count(*) from t0", &[])
        .await?
        .get(0);
    if count != 100 {
        bail!("after reset t0 has {count} rows, not the template's 100");
    }
    admin
        .batch_execute(&format!(
            "create database bench_truncate template {template}"
        ))
        .await?;
    let truncate_db = connect(&direct("bench_truncate")).await?;
    let all_tables = (0..40)
        .map(|t| format!("t{t}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut truncate = Vec::new();
    for i in 0..options.samples.div_ceil(2) {
        truncate_db
            .batch_execute(&format!(
                "{}; insert into t39(name) values ('x')",
                dirty(i).replace("delete from t39 where id = 100", "select 1")
            ))
            .await
            .ok();
        let started = Instant::now();
        truncate_db
            .batch_execute(&format!("truncate {all_tables} restart identity cascade"))
            .await?;
        truncate.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    drop(truncate_db);
    let mut recreate = Vec::new();
    for _ in 0..options.samples.div_ceil(2) {
        let started = Instant::now();
        admin
            .batch_execute("drop database bench_truncate with (force)")
            .await?;
        admin
            .batch_execute(&format!(
                "create database bench_truncate template {template}"
            ))
            .await?;
        recreate.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    admin
        .batch_execute("drop database bench_truncate with (force)")
        .await?;

    // 4. pgbench select-only: -c 8 through a database-isolated key, -c 1 through a rollback
    //    sandbox; each against the very same clone directly and through PgBouncer.
    let proxy_port = run.port.to_string();
    // Touch both keys so they hold a clone, then read which.
    for (key, isolation) in [("pgb8", "database"), ("pgb1", "rollback")] {
        let client = connect(&format!(
            "host=127.0.0.1 port={} user=bench dbname={key} options='-c dbsandbox.isolation={isolation}'",
            run.port
        ))
        .await?;
        client
            .query_one("select count(*) from pgbench_branches", &[])
            .await?;
    }
    let status = status_json(cache.path())?;
    let clone_of = |key: &str| {
        status["daemons"]
            .as_array()
            .and_then(|daemons| {
                daemons
                    .iter()
                    .flat_map(|d| d["sandboxes"].as_array().into_iter().flatten())
                    .find(|s| s["key"] == key)
                    .and_then(|s| s["database"].as_str())
            })
            .map(str::to_string)
            .with_context(|| format!("no clone for key {key}"))
    };
    let (clone8, clone1) = (clone_of("pgb8")?, clone_of("pgb1")?);
    let seconds = options.pgbench_seconds.to_string();
    let backend_port = endpoint["port"].to_string();
    let session_bouncer = PgBouncer::start(&backend_port, &password, "session").ok();
    let transaction_bouncer = PgBouncer::start(&backend_port, &password, "transaction").ok();
    let database_isolation = "-c dbsandbox.isolation=database";
    let (mut proxied8, mut direct8, mut bounced8) = (Vec::new(), Vec::new(), Vec::new());
    let (mut proxied1, mut direct1, mut bounced1) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.pgbench_rounds {
        if let Some(bouncer) = &session_bouncer {
            bounced8.push(select_only_tps(
                &bouncer.port,
                "dbsandbox",
                &clone8,
                8,
                &seconds,
                "",
            )?);
        }
        direct8.push(select_only_tps(
            &backend_port,
            "dbsandbox",
            &clone8,
            8,
            &seconds,
            "",
        )?);
        proxied8.push(select_only_tps(
            &proxy_port,
            "bench",
            "pgb8",
            8,
            &seconds,
            database_isolation,
        )?);
        if let Some(bouncer) = &transaction_bouncer {
            bounced1.push(select_only_tps(
                &bouncer.port,
                "dbsandbox",
                &clone1,
                1,
                &seconds,
                "",
            )?);
        }
        direct1.push(select_only_tps(
            &backend_port,
            "dbsandbox",
            &clone1,
            1,
            &seconds,
            "",
        )?);
        proxied1.push(select_only_tps(
            &proxy_port,
            "bench",
            "pgb1",
            1,
            &seconds,
            "",
        )?);
    }
    drop(sandbox);
    drop(run);

    let (cold_p50, warm_p50) = (median(&mut cold), median(&mut warm));
    let (fresh_p50, fresh_p90) = (
        median(&mut fresh_database.clone()),
        percentile(&mut fresh_database, 0.9),
    );
    let (rollback_p50, rollback_p90) = (
        median(&mut fresh_rollback.clone()),
        percentile(&mut fresh_rollback, 0.9),
    );
    let (create_p50, plain_p50) = (median(&mut create_database), median(&mut plain_connect));
    let (reset_p50, reset_p90) = (median(&mut reset.clone()), percentile(&mut reset, 0.9));
    let (truncate_p50, recreate_p50) = (median(&mut truncate), median(&mut recreate));
    let n = options.samples;
    let half = options.samples.div_ceil(2);
    println!("| measurement | dbsandbox | baseline (same run) | ratio | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| connect → first row, fresh key, warm pool, database isolation (p50 / p90, n={n}) | {fresh_p50:.1} ms / {fresh_p90:.1} ms | CREATE DATABASE from template + connect → first row: {create_p50:.1} ms (p50, n={half}) | {:.1}× faster | p50 ≤ 10 ms |",
        create_p50 / fresh_p50
    );
    println!(
        "| … the same, rollback isolation (opens the key's sandbox: BEGIN, sequence snapshot) | {rollback_p50:.1} ms / {rollback_p90:.1} ms | plain connect → first row, existing database: {plain_p50:.1} ms (p50) | | |"
    );
    println!(
        "| `dbsandbox run -- true`, warm (p50 of {}) | {warm_p50:.2} s | | | ≤ 1 s |",
        warm.len()
    );
    println!(
        "| `dbsandbox run -- true`, cold: empty cache, initdb + template (p50 of {}) | {cold_p50:.2} s | | | ≤ 3 s |",
        cold.len()
    );
    println!(
        "| reset of a dirtied rollback sandbox, `SELECT dbsandbox_reset()` round trip (p50 / p90, n={n}) | {reset_p50:.2} ms / {reset_p90:.2} ms | TRUNCATE of all 40 tables: {truncate_p50:.1} ms (p50, n={half}) | {:.0}× faster | p50 ≤ 1 ms, ≥ 30× |",
        truncate_p50 / reset_p50
    );
    println!(
        "| … | | DROP DATABASE + CREATE DATABASE from template: {recreate_p50:.1} ms (p50, n={half}) | {:.0}× faster | ≥ 50× |",
        recreate_p50 / reset_p50
    );
    let rounds = format!(
        "{} s × {} rounds, median TPS",
        options.pgbench_seconds, options.pgbench_rounds
    );
    let (p8, d8, b8) = (
        median(&mut proxied8),
        median(&mut direct8),
        median(&mut bounced8),
    );
    let (p1, d1, b1) = (
        median(&mut proxied1),
        median(&mut direct1),
        median(&mut bounced1),
    );
    println!(
        "| pgbench -S -c 8 -j 2 through the proxy, database isolation ({rounds}) | {p8:.0} TPS | direct to the same clone: {d8:.0} TPS; PgBouncer {} session mode: {b8:.0} TPS | {:.2}× direct, {:.2}× PgBouncer | ≥ 0.85× direct |",
        session_bouncer.as_ref().map(|b| b.version.as_str()).unwrap_or("(not installed)"),
        p8 / d8,
        p8 / b8
    );
    println!(
        "| pgbench -S -c 1 through a rollback sandbox ({rounds}) | {p1:.0} TPS | direct to the same clone: {d1:.0} TPS; PgBouncer transaction mode: {b1:.0} TPS | {:.2}× direct, {:.2}× PgBouncer | ≥ 0.8× direct |",
        p1 / d1,
        p1 / b1
    );
    Ok(())
}
