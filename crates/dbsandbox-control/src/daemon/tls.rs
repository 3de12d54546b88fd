//! The daemon's TLS for its proxies' clients: the user's certificate and key, or a CA and
//! server certificate generated once under `<cache>/tls/` (see [`dbsandbox_proxy::tls`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use dbsandbox_proxy::tls::{self, TlsConfig};

/// Where the proxies' TLS certificate comes from, if they offer TLS at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TlsSource {
    /// No TLS (`--no-tls`): an SSLRequest is answered 'N', as by a server without `ssl = on`.
    Off,
    /// A CA and a server certificate generated into the cache directory (the default).
    #[default]
    Generated,
    /// The user's own PEM certificate chain and private key.
    Files { cert: PathBuf, key: PathBuf },
}

/// The TLS a proxy serves with, and the CA certificate clients may verify it against (only
/// known for a generated certificate).
#[derive(Clone)]
pub struct ProxyTls {
    pub config: TlsConfig,
    pub ca_cert: Option<PathBuf>,
}

/// The directory of the generated CA and certificate.
pub fn generated_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("tls")
}

/// Loads the TLS for a proxy listening on `listen`. The user's files must load (their error is
/// the daemon's); a generated certificate that cannot be made (a read-only cache) leaves the
/// proxy without TLS, with a warning, since clients that did not ask for TLS lose nothing.
pub fn resolve(
    source: &TlsSource,
    cache_dir: &Path,
    listen: IpAddr,
) -> anyhow::Result<Option<ProxyTls>> {
    match source {
        TlsSource::Off => Ok(None),
        TlsSource::Files { cert, key } => Ok(Some(ProxyTls {
            config: tls::load(cert, key)?,
            ca_cert: None,
        })),
        TlsSource::Generated => {
            let made =
                tls::ensure_generated(&generated_dir(cache_dir), &tls::server_names(Some(listen)))
                    .and_then(|files| {
                        Ok(ProxyTls {
                            config: tls::load(&files.server_cert, &files.server_key)?,
                            ca_cert: Some(files.ca_cert),
                        })
                    });
            match made {
                Ok(made) => Ok(Some(made)),
                Err(e) => {
                    tracing::warn!("no TLS for the proxy's clients: {e}");
                    Ok(None)
                }
            }
        }
    }
}
