//! TLS between clients and the proxy (rustls): loading a certificate and key from PEM files into
//! a server configuration, and generating, once per cache directory, a private CA and a server
//! certificate it signs, so `sslmode=require` works with nothing to set up and `verify-full`
//! works by pointing `sslrootcert` at the CA. Keys are written with mode 0600.
//!
//! The CA is made once and kept: a user's `sslrootcert` stays valid. The server certificate is
//! reissued by the same CA when the names it must carry change (a new listen address).

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS configuration handed to [`crate::ProxyConfig::tls`].
pub type TlsConfig = Arc<rustls::ServerConfig>;

/// Files of a generated CA and server certificate.
#[derive(Debug, Clone)]
pub struct GeneratedTls {
    /// What clients point `sslrootcert` at.
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";
/// The names the current server certificate carries, one a line, to know when to reissue it.
const SERVER_NAMES: &str = "server.names";
const CA_NAME: &str = "dbsandbox local CA";

/// The most plaintext one TLS record sent to a client carries: what PostgreSQL's server sends
/// (its 8 kB send buffer is one `SSL_write`). With longer records (rustls's default is 16 kB)
/// libpq's non-blocking reads can leave part of a record decrypted inside OpenSSL, where the
/// client's `poll` on the socket cannot see it: an asynchronous client (psycopg) then waits for
/// ever for the end of a result that has arrived. See pgsql-hackers, "libpq: Process buffered
/// SSL read bytes to support records >8kB on async API".
pub const MAX_RECORD_PLAINTEXT: usize = 8192;
/// A TLS record header: content type, version, length.
const RECORD_HEADER: usize = 5;

fn tls_error(context: impl std::fmt::Display, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{context}: {e}"))
}

/// Loads a PEM certificate chain and private key into a rustls server configuration.
pub fn load(cert: &Path, key: &Path) -> io::Result<TlsConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| tls_error(format!("reading TLS certificate {}", cert.display()), e))?;
    if chain.is_empty() {
        return Err(tls_error(
            format!("reading TLS certificate {}", cert.display()),
            "no PEM certificate in the file",
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_error(format!("reading TLS key {}", key.display()), e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, key_der)
        })
        .map_err(|e| {
            tls_error(
                format!(
                    "TLS certificate {} with key {}",
                    cert.display(),
                    key.display()
                ),
                e,
            )
        })?;
    // rustls counts the header in this limit.
    config.max_fragment_size = Some(MAX_RECORD_PLAINTEXT + RECORD_HEADER);
    Ok(Arc::new(config))
}

/// The names a generated server certificate carries: loopback in every spelling, plus `listen`
/// (and, for an unspecified address such as 0.0.0.0, the machine's host name).
pub fn server_names(listen: Option<IpAddr>) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(listen) = listen {
        if listen.is_unspecified() {
            if let Ok(host) = fs::read_to_string("/proc/sys/kernel/hostname") {
                names.push(host.trim().to_owned());
            }
        } else {
            names.push(listen.to_string());
        }
    }
    names.retain(|n| !n.is_empty());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Makes (or reuses) the CA and a server certificate for `names` under `dir`.
pub fn ensure_generated(dir: &Path, names: &[String]) -> io::Result<GeneratedTls> {
    fs::create_dir_all(dir).map_err(|e| tls_error(format!("creating {}", dir.display()), e))?;
    let files = GeneratedTls {
        ca_cert: dir.join(CA_CERT),
        server_cert: dir.join(SERVER_CERT),
        server_key: dir.join(SERVER_KEY),
    };
    let ca_key_path = dir.join(CA_KEY);
    if !files.ca_cert.exists() || !ca_key_path.exists() {
        let key = KeyPair::generate().map_err(|e| tls_error("generating the CA key", e))?;
        let cert = ca_params(&key)
            .self_signed(&key)
            .map_err(|e| tls_error("making the CA certificate", e))?;
        // Key first: a CA certificate on disk always has its key.
        write_new(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_new(&files.ca_cert, cert.pem().as_bytes(), 0o644)?;
    }
    let wanted = names.join("\n");
    let current = fs::read_to_string(dir.join(SERVER_NAMES)).unwrap_or_default();
    if current != wanted || !files.server_cert.exists() || !files.server_key.exists() {
        issue_server_cert(dir, &ca_key_path, names)?;
        write_new(&dir.join(SERVER_NAMES), wanted.as_bytes(), 0o644)?;
    }
    Ok(files)
}

/// The CA's name carries a digest of its key: verifiers look an issuer up by name, and two
/// caches' CAs of one name would make a certificate of one fail against the other's with a
/// confusing signature error instead of "unknown CA". Derived from the key, it is the same each
/// time the server certificate is reissued.
fn ca_params(key: &KeyPair) -> CertificateParams {
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.public_key_der());
    let id: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{CA_NAME} {id}"));
    dn.push(DnType::OrganizationName, "dbsandbox");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params
}

fn issue_server_cert(dir: &Path, ca_key_path: &Path, names: &[String]) -> io::Result<()> {
    let ca_pem = fs::read_to_string(ca_key_path)
        .map_err(|e| tls_error(format!("reading {}", ca_key_path.display()), e))?;
    let ca_key = KeyPair::from_pem(&ca_pem)
        .map_err(|e| tls_error(format!("reading {}", ca_key_path.display()), e))?;
    // The issuer is named by its distinguished name and key, both the same as the CA's on disk.
    let issuer = ca_params(&ca_key)
        .self_signed(&ca_key)
        .map_err(|e| tls_error("loading the CA", e))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "dbsandbox proxy");
    params.distinguished_name = dn;
    params.subject_alt_names = names
        .iter()
        .map(|name| match name.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| tls_error(format!("server name {name}"), e)),
        })
        .collect::<io::Result<_>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let key = KeyPair::generate().map_err(|e| tls_error("generating the server key", e))?;
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .map_err(|e| tls_error("signing the server certificate", e))?;
    write_new(&dir.join(SERVER_KEY), key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&dir.join(SERVER_CERT), cert.pem().as_bytes(), 0o644)
}

/// Writes through a temporary file and a rename, so a reader never sees half a file and a key
/// is never readable by others, even for an instant.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(|e| tls_error(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_keeps_the_ca_and_reissues_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let names = server_names(None);
        let files = ensure_generated(dir.path(), &names).unwrap();
        for key in [dir.path().join(CA_KEY), files.server_key.clone()] {
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
        let ca = fs::read(&files.ca_cert).unwrap();
        let server = fs::read(&files.server_cert).unwrap();
        ensure_generated(dir.path(), &names).unwrap();
        assert_eq!(fs::read(&files.server_cert).unwrap(), server, "reused");
        let more = server_names(Some("10.1.2.3".parse().unwrap()));
        ensure_generated(dir.path(), &more).unwrap();
        assert_ne!(fs::read(&files.server_cert).unwrap(), server, "reissued");
        assert_eq!(fs::read(&files.ca_cert).unwrap(), ca, "the CA is kept");
        load(&files.server_cert, &files.server_key).unwrap();
    }

    #[test]
    fn a_missing_or_bad_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let err = load(&missing, &missing).unwrap_err().to_string();
        assert!(err.contains("nope.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "").unwrap();
        let err = load(&empty, &empty).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
