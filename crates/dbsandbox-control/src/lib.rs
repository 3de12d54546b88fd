//! The dbsandbox daemon and its HTTP JSON control API.
//!
//! [`daemon::Daemon`] keeps a server, the project's current template and a warm clone pool, and
//! serves sandboxes in scopes: the API scope (keys acquired with `POST /v1/sandboxes`) and one
//! scope per `dbsandbox run`. [`api`] is the HTTP surface (documented in `API.md` and
//! `openapi.json`), [`registry`] tracks keys and their clones, [`record`] is how clients find a
//! project's daemon, and [`client`] is the small HTTP client the CLI uses to talk to it.

pub mod api;
pub mod client;
pub mod daemon;
pub mod record;
pub mod registry;

pub use client::{ApiClient, Reply};
pub use daemon::{Daemon, DaemonConfig, InputError};
pub use record::{live_daemons, starting_daemons, DaemonFiles, DaemonLock, DaemonRecord};

/// The version of the control API this daemon speaks, reported by `GET /v1/health` and
/// `serve --detach` (`api_version`). Raised on any change a client written for the previous
/// version would misread; the integrations refuse a daemon whose version they do not speak.
pub const API_VERSION: u32 = 1;

/// Serves the API on `listener` until the daemon is asked to stop.
pub async fn serve_api(
    daemon: std::sync::Arc<Daemon>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let stopping = daemon.clone();
    axum::serve(listener, api::router(daemon))
        .with_graceful_shutdown(async move { stopping.stopped().await })
        .await
}
