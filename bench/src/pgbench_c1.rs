//! `--only pgbench-c1`: pgbench select-only with one client (`-S -c 1`), in the same run and
//! against the same server: directly to a key's clone, through a database key and a rollback
//! key (plain and with TLS, `sslmode=require`), and through PgBouncer (session mode to the
//! database key's clone, transaction mode to the rollback key's) when it is installed. Plus the
//! cost of a connection (`-C`: one per transaction) directly and through a database key, plain
//! and with TLS (on by default, so libpq's default `sslmode=prefer` gets TLS too). Rounds
//! alternate the configurations so a slow minute of the VM hits all of them.

use std::time::Duration;

use anyhow::Context;

use super::{
    median, pgbench_tps_env, schema40_with_pgbench, start_background, status_json, PgBouncer,
};

struct Config {
    label: &'static str,
    port: String,
    user: &'static str,
    database: String,
    options: &'static str,
    sslmode: &'static str,
    reconnect: bool,
    samples: Vec<f64>,
}

pub async fn pgbench_c1(seconds: u32, rounds: usize) -> anyhow::Result<()> {
    let cache = tempfile::tempdir()?;
    let schema = tempfile::tempdir()?;
    let migrations = schema40_with_pgbench(schema.path())?;
    // TLS for the rows that ask for it (the default; said here so the bench does not depend on it).
    let run = start_background(cache.path(), &migrations, &["--tls"])?;
    std::thread::sleep(Duration::from_secs(2)); // let the pool fill
    let database_isolation = "-c dbsandbox.isolation=database";
    for (key, options) in [("c1db", database_isolation), ("c1rb", "")] {
        let client = super::connect(&format!(
            "host=127.0.0.1 port={} user=bench dbname={key} options='{options}'",
            run.port
        ))
        .await?;
        client
            .query_one("select count(*) from pgbench_accounts", &[])
            .await?;
    }
    let status = status_json(cache.path())?;
    let endpoint = &status["endpoint"];
    let password = endpoint["url"]
        .as_str()
        .and_then(|url| url.parse::<tokio_postgres::Config>().ok())
        .and_then(|c| {
            c.get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
        })
        .unwrap_or_default();
    let clone_of = |key: &str| {
        status["daemons"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|d| d["sandboxes"].as_array().into_iter().flatten())
            .find(|s| s["key"] == key)
            .and_then(|s| s["database"].as_str())
            .map(str::to_string)
            .with_context(|| format!("no clone for key {key}"))
    };
    let (clone_db, clone_rb) = (clone_of("c1db")?, clone_of("c1rb")?);
    let backend_port = endpoint["port"].to_string();
    let proxy_port = run.port.to_string();
    let session_bouncer = PgBouncer::start(&backend_port, &password, "session").ok();
    let transaction_bouncer = PgBouncer::start(&backend_port, &password, "transaction").ok();
    let config = |label, port: &str, user, database: &str, options, sslmode, reconnect| Config {
        label,
        port: port.to_string(),
        user,
        database: database.to_string(),
        options,
        sslmode,
        reconnect,
        samples: Vec::new(),
    };
    let mut configs = vec![
        config(
            "direct to the database key's clone",
            &backend_port,
            "dbsandbox",
            &clone_db,
            "",
            "disable",
            false,
        ),
        config(
            "database key",
            &proxy_port,
            "bench",
            "c1db",
            database_isolation,
            "disable",
            false,
        ),
        config(
            "database key, TLS (sslmode=require)",
            &proxy_port,
            "bench",
            "c1db",
            database_isolation,
            "require",
            false,
        ),
        config(
            "rollback key",
            &proxy_port,
            "bench",
            "c1rb",
            "",
            "disable",
            false,
        ),
        config(
            "rollback key, TLS (sslmode=require)",
            &proxy_port,
            "bench",
            "c1rb",
            "",
            "require",
            false,
        ),
    ];
    if let Some(bouncer) = &session_bouncer {
        configs.push(config(
            "PgBouncer session mode, to the database key's clone",
            &bouncer.port,
            "dbsandbox",
            &clone_db,
            "",
            "disable",
            false,
        ));
    }
    if let Some(bouncer) = &transaction_bouncer {
        configs.push(config(
            "PgBouncer transaction mode, to the rollback key's clone",
            &bouncer.port,
            "dbsandbox",
            &clone_rb,
            "",
            "disable",
            false,
        ));
    }
    configs.extend([
        config(
            "-C (a connection per transaction): direct",
            &backend_port,
            "dbsandbox",
            &clone_db,
            "",
            "disable",
            true,
        ),
        config(
            "-C: database key",
            &proxy_port,
            "bench",
            "c1db",
            database_isolation,
            "disable",
            true,
        ),
        config(
            "-C: database key, TLS (sslmode=require)",
            &proxy_port,
            "bench",
            "c1db",
            database_isolation,
            "require",
            true,
        ),
    ]);
    let seconds_text = seconds.to_string();
    for _ in 0..rounds {
        for c in &mut configs {
            let mut args = vec!["-S", "-n", "-c", "1", "-j", "1", "-T", &seconds_text];
            if c.reconnect {
                args.push("-C");
            }
            args.extend(["-h", "127.0.0.1", "-p", &c.port, "-U", c.user, &c.database]);
            // The server's admin password for the direct rows (its TCP needs one); the proxy and
            // PgBouncer ignore it.
            let env = [
                ("PGOPTIONS", c.options),
                ("PGSSLMODE", c.sslmode),
                ("PGPASSWORD", password.as_str()),
            ];
            let tps = pgbench_tps_env(&args, &env).with_context(|| c.label)?;
            c.samples.push(tps);
        }
    }
    drop(run);
    let version = session_bouncer
        .as_ref()
        .map(|b| format!("PgBouncer {}", b.version))
        .unwrap_or_else(|| "PgBouncer: not installed".into());
    println!("## pgbench -S -c 1 ({seconds} s × {rounds} rounds, median TPS; {version})\n");
    println!("| configuration | TPS (median) | samples | ratio to direct |");
    println!("|---|---|---|---|");
    let mut direct = f64::NAN;
    for c in &mut configs {
        let samples = c
            .samples
            .iter()
            .map(|s| format!("{s:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        let tps = median(&mut c.samples);
        if c.label.starts_with("direct") || c.label.starts_with("-C (") {
            direct = tps;
        }
        println!(
            "| {} | {tps:.0} | {samples} | {:.2}× |",
            c.label,
            tps / direct
        );
    }
    Ok(())
}
