//! What the fuzzer and its corpus check on a key afterwards, and how they set keys up: one
//! database per key, fresh tokio-postgres connections that must answer, resident memory.

use crate::support::{MapRouter, PgServer, TestProxy};
use std::sync::Arc;
use std::time::Duration;

/// This process's resident memory (VmRSS), in KiB.
pub fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One database per key, with the table the scripts write.
pub async fn key_databases(server: &PgServer, keys: &[String]) -> Arc<MapRouter> {
    let router = Arc::new(MapRouter::default());
    for key in keys {
        let database = format!("fuzz_{key}");
        server.create_database(&database).await;
        let (client, connection) = tokio_postgres::Config::new()
            .host_path(&server.socket_dir)
            .port(server.port)
            .user("postgres")
            .dbname(&database)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "create table items(id serial primary key, name text unique not null, n int);\
                 insert into items(name) values ('dup')",
            )
            .await
            .unwrap();
        router
            .routes
            .lock()
            .unwrap()
            .insert(key.clone(), server.unix_target(&database));
    }
    router
}

pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// A fresh tokio-postgres connection of `key` that has answered SELECT 1.
pub async fn answering(proxy: &TestProxy, key: &str) -> Result<tokio_postgres::Client, String> {
    let client = match tokio::time::timeout(ANSWER_WITHIN, proxy.connect(key)).await {
        Err(_) => return Err("the connection did not get through startup within 5 s".into()),
        Ok(Err(e)) => return Err(format!("the connection was refused: {e:?}")),
        Ok(Ok(client)) => client,
    };
    select_one(&client).await?;
    Ok(client)
}

pub async fn select_one(client: &tokio_postgres::Client) -> Result<(), String> {
    match tokio::time::timeout(ANSWER_WITHIN, client.simple_query("SELECT 1")).await {
        Err(_) => Err("SELECT 1 got no answer within 5 s (the key is frozen)".into()),
        Ok(Err(e)) => Err(format!("SELECT 1 failed: {e:?}")),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Two fresh connections of the key, the second while the first is open, then the first again.
pub async fn check_key(proxy: &TestProxy, key: &str) -> Result<(), String> {
    let first = answering(proxy, key)
        .await
        .map_err(|e| format!("first fresh connection: {e}"))?;
    answering(proxy, key)
        .await
        .map_err(|e| format!("second fresh connection (the first open): {e}"))?;
    select_one(&first)
        .await
        .map_err(|e| format!("first connection after the second: {e}"))
}
