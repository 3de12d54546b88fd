//! Runs the proxy standalone in front of one PostgreSQL database, routing every valid key there.
//! For benchmarks and manual poking (psql, pgbench) without the rest of dbsandbox:
//!
//! ```text
//! cargo run --release -p dbsandbox-proxy --example forward -- \
//!     LISTEN_ADDR BACKEND_HOST BACKEND_PORT USER DATABASE [PASSWORD]
//! pgbench -h 127.0.0.1 -p 6543 -S -c 8 -T 20 anykey
//! ```
//! `BACKEND_HOST` may be a Unix socket directory. `FORWARD_WORKERS=N` picks a multi-threaded
//! runtime with N workers (default: a single-threaded runtime). Stops on Ctrl-C.

use dbsandbox_proxy::{BackendTarget, Proxy, ProxyConfig, RouteError, Router};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

struct FixedRouter(BackendTarget);

impl Router for FixedRouter {
    fn route<'a>(
        &'a self,
        _key: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<BackendTarget, RouteError>> + Send + 'a>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

fn main() -> std::io::Result<()> {
    let workers: usize = std::env::var("FORWARD_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    let runtime = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?
    };
    runtime.block_on(run())
}

async fn run() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: forward LISTEN_ADDR BACKEND_HOST BACKEND_PORT USER DATABASE [PASSWORD]");
        std::process::exit(2);
    }
    let listen = args[0].parse().expect("LISTEN_ADDR like 127.0.0.1:6543");
    let target = BackendTarget {
        host: args[1].clone(),
        port: args[2].parse().expect("BACKEND_PORT"),
        user: args[3].clone(),
        database: args[4].clone(),
        isolation: None,
        reset_on_close: None,
        password: args.get(5).cloned(),
    };
    let proxy = Proxy::bind(
        listen,
        ProxyConfig::default(),
        Arc::new(FixedRouter(target)),
    )
    .await?;
    let stats = proxy.stats_handle();
    eprintln!("proxy listening on {}", proxy.local_addr());
    proxy
        .serve(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    eprintln!("{:?}", stats.snapshot());
    Ok(())
}
