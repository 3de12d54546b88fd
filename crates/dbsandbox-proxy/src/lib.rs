//! The dbsandbox wire-protocol proxy: a PostgreSQL endpoint on loopback whose database name is a
//! sandbox key. Each client connection is authenticated by the proxy, routed by its key to a
//! backend database (the [`Router`] decides where, the CLI implements it over the clone pool), and
//! then relayed message by message in both directions (database isolation), or joined to the
//! key's rollback sandbox, one never-committed backend transaction shared by every connection of
//! the key ([`rollback`]).
//!
//! Module map: [`key`] (sandbox key rules and routing errors), `wire` (the few server-side
//! messages postgres-protocol does not write), `framing` (buffered message framing), `startup`
//! (client startup packets and client authentication), `backend` (connecting and authenticating
//! to PostgreSQL), `cancel` (proxy-issued cancel keys), `client_stream` (plain or TLS client sockets), [`tls`]
//! (certificates and the rustls configuration), `relay` (the steady-state pump),
//! `unnamed_portal` (keeping pass-through clients off a stale unnamed portal),
//! [`classify`] (statement classification), [`rollback`] (rollback sandboxes), `stats` and
//! `server` (listener, per-connection driver, shutdown).

mod backend;
mod cancel;
pub mod classify;
mod client_stream;
mod framing;
pub mod key;
mod relay;
pub mod rollback;
mod server;
mod startup;
mod stats;
pub mod tls;
mod unnamed_portal;
mod wire;

pub use key::{validate_key, RouteError};
pub use rollback::{Isolation, SandboxStats, Sandboxes};
pub use server::{BackendTarget, ClientAuth, Proxy, ProxyConfig, Router};
pub use stats::{ProxyStats, StatsHandle};
