//! The benchmark harness: measures dbsandbox against baselines in the same run, on schema40, and
//! prints a Markdown report of medians and ratios (these machines are noisy: never one sample).
//!
//! Run it with `bash bench/run.sh` (builds the release binaries first). Measured:
//! - connect-to-first-row for a fresh key with a warm pool, against CREATE DATABASE from the same
//!   template + connect + first row, and against a plain connection to an existing database;
//! - `dbsandbox run -- true` wall time, cold (empty cache: initdb, template build) and warm;
//! - pgbench select-only `-c 8` through the proxy against direct to the same database.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

struct Options {
    samples: usize,
    pgbench_seconds: u32,
    pgbench_rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let mut options = Options {
        samples: 30,
        pgbench_seconds: 10,
        pgbench_rounds: 3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                options = Options {
                    samples: 10,
                    pgbench_seconds: 3,
                    pgbench_rounds: 1,
                }
            }
            "--samples" => options.samples = args.next().context("--samples N")?.parse()?,
            "--help" | "-h" => {
                println!("dbsandbox-bench [--quick] [--samples N]\nRun through bench/run.sh, which builds the release binaries.");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(bench(options))
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

fn schema40() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pytest-shared/migrations")
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
        .args(["run", "-q", "--port", "0", "--migrations"])
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

fn start_background(cache: &Path) -> anyhow::Result<BackgroundRun> {
    let child = dbsandbox(cache)?
        .args([
            "run",
            "-q",
            "--port",
            "0",
            "--pool-size",
            "8",
            "--migrations",
        ])
        .arg(schema40())
        .args(["--", "sleep", "3600"])
        .stdout(Stdio::null())
        .spawn()?;
    let record = cache.join("runs").join(format!("{}.json", child.id()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !record.exists() {
        if Instant::now() > deadline {
            bail!("the background run did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&record)?)?;
    let proxy: std::net::SocketAddr = json["proxy"].as_str().context("proxy address")?.parse()?;
    Ok(BackgroundRun {
        child,
        port: proxy.port(),
    })
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
    fn start(backend_port: &str) -> anyhow::Result<PgBouncer> {
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
                "[databases]\n* = host=127.0.0.1 port={backend_port} user=dbsandbox\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = trust\nauth_file = {}\npool_mode = session\nmax_client_conn = 200\n\
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

/// pgbench select-only with 8 clients on 2 threads against 127.0.0.1:`port`.
fn select_only_tps(port: &str, user: &str, database: &str, seconds: &str) -> anyhow::Result<f64> {
    pgbench_tps(&[
        "-S",
        "-n",
        "-c",
        "8",
        "-j",
        "2",
        "-T",
        seconds,
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-U",
        user,
        database,
    ])
}

fn pgbench_tps(args: &[&str]) -> anyhow::Result<f64> {
    let output = Command::new("pgbench")
        .args(args)
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
    let run = start_background(cache.path())?;
    std::thread::sleep(Duration::from_secs(2)); // let the pool fill
    let status = status_json(cache.path())?;
    let endpoint = &status["endpoint"];
    let direct = |db: &str| {
        format!(
            "host=127.0.0.1 port={} user={} dbname={db}",
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
    let mut fresh_key = Vec::new();
    for i in 0..options.samples {
        tokio::time::sleep(Duration::from_millis(250)).await; // the refill replaces the last clone taken
        let started = Instant::now();
        let client = connect(&format!(
            "host=127.0.0.1 port={} user=bench dbname=bench_{i}",
            run.port
        ))
        .await?;
        client.query_one("select count(*) from t0", &[]).await?;
        fresh_key.push(started.elapsed().as_secs_f64() * 1000.0);
    }
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

    // 3. pgbench select-only, through the proxy and direct to the very same clone.
    let proxy_port = run.port.to_string();
    let init = Command::new("pgbench")
        .args([
            "-i",
            "-s",
            "10",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &proxy_port,
            "-U",
            "bench",
            "pgb",
        ])
        .output()?;
    if !init.status.success() {
        bail!(
            "pgbench -i through the proxy failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let status = status_json(cache.path())?;
    let clone = status["runs"]
        .as_array()
        .and_then(|runs| runs.iter().find_map(|r| r["keys"]["pgb"]["clone"].as_str()))
        .context("no clone for key pgb")?
        .to_string();
    let seconds = options.pgbench_seconds.to_string();
    let backend_port = endpoint["port"].to_string();
    let bouncer = PgBouncer::start(&endpoint["port"].to_string()).ok();
    let mut proxied = Vec::new();
    let mut direct_tps = Vec::new();
    let mut bounced = Vec::new();
    for _ in 0..options.pgbench_rounds {
        if let Some(bouncer) = &bouncer {
            bounced.push(select_only_tps(
                &bouncer.port,
                "dbsandbox",
                &clone,
                &seconds,
            )?);
        }
        direct_tps.push(select_only_tps(
            &backend_port,
            "dbsandbox",
            &clone,
            &seconds,
        )?);
        proxied.push(select_only_tps(&proxy_port, "bench", "pgb", &seconds)?);
    }
    drop(run);

    let (cold_p50, warm_p50) = (median(&mut cold), median(&mut warm));
    let (fresh_p50, fresh_p90) = (
        median(&mut fresh_key.clone()),
        percentile(&mut fresh_key, 0.9),
    );
    let (create_p50, plain_p50) = (median(&mut create_database), median(&mut plain_connect));
    let (proxied_tps, direct_tps) = (median(&mut proxied), median(&mut direct_tps));
    let bounced_tps = median(&mut bounced);
    println!("| measurement | dbsandbox | baseline (same run) | ratio | goal |");
    println!("|---|---|---|---|---|");
    println!(
        "| connect → first row, fresh key, warm pool (p50 / p90, n={}) | {fresh_p50:.1} ms / {fresh_p90:.1} ms | CREATE DATABASE from template + connect → first row: {create_p50:.1} ms (p50, n={}) | {:.1}× faster | p50 ≤ 10 ms |",
        options.samples,
        options.samples.div_ceil(2),
        create_p50 / fresh_p50
    );
    println!(
        "| … for reference | | plain connect → first row, existing database: {plain_p50:.1} ms (p50) | proxy + clone hand-out costs {:.1} ms | |",
        fresh_p50 - plain_p50
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
        "| pgbench -S -c 8 -j 2, {} s × {} rounds (median TPS) | {proxied_tps:.0} TPS through the proxy | {direct_tps:.0} TPS direct | {:.2}× direct | ≥ 0.85× |",
        options.pgbench_seconds,
        options.pgbench_rounds,
        proxied_tps / direct_tps
    );
    match bouncer {
        Some(bouncer) => println!(
            "| … PgBouncer {} (session mode, same server and database, same rounds) | {proxied_tps:.0} TPS through dbsandbox | {bounced_tps:.0} TPS through PgBouncer | {:.2}× PgBouncer | |",
            bouncer.version,
            proxied_tps / bounced_tps
        ),
        None => println!("| … PgBouncer | | not measured: pgbouncer is not installed (apt-get install pgbouncer) | | |"),
    }
    Ok(())
}
