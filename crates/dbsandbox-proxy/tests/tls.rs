//! TLS between clients and the proxy, with real drivers in both isolations: tokio-postgres
//! (rustls, verifying against the generated CA), psycopg 3 (libpq's `sslmode=require`,
//! `verify-full` with `sslrootcert`, `disable`) and node-postgres (`ssl: {ca}`), plus a wrong CA
//! failing `verify-full` and a proxy without TLS still answering 'N'; and the size of the TLS
//! records a large COPY TO or result arrives in (libpq waits for ever past an 8 kB record).

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use dbsandbox_proxy::tls::{self, GeneratedTls};
use dbsandbox_proxy::{Isolation, ProxyConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use support::{MapRouter, PgServer, TestProxy};
use tokio_postgres::config::SslMode;

struct TlsProxy {
    proxy: TestProxy,
    files: GeneratedTls,
    /// A CA the proxy's certificate is not signed by.
    other_ca: GeneratedTls,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn tls_proxy(pg: &PgServer, isolation: Isolation) -> TlsProxy {
    pg.create_database("tls_db").await;
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let names = tls::server_names(None);
    let files = tls::ensure_generated(dir.path(), &names).unwrap();
    let other_ca = tls::ensure_generated(other.path(), &names).unwrap();
    let config = ProxyConfig {
        tls: Some(tls::load(&files.server_cert, &files.server_key).unwrap()),
        default_isolation: isolation,
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::start(config, MapRouter::with([("k1", pg.tcp_target("tls_db"))])).await;
    TlsProxy {
        proxy,
        files,
        other_ca,
        _dirs: (dir, other),
    }
}

fn rustls_connector(ca: &Path) -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

async fn tokio_postgres_over_tls(
    proxy: &TestProxy,
    ca: &Path,
    host: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = proxy.config("k1");
    config.host(host).ssl_mode(SslMode::Require);
    let (client, connection) = config.connect(rustls_connector(ca)).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn check_tokio_postgres(isolation: Isolation) {
    let pg = PgServer::start().await;
    let t = tls_proxy(&pg, isolation).await;
    for host in ["localhost", "127.0.0.1"] {
        let client = tokio_postgres_over_tls(&t.proxy, &t.files.ca_cert, host)
            .await
            .unwrap_or_else(|e| panic!("{isolation:?} via {host}: {e}"));
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS t (v int); INSERT INTO t VALUES (1)")
            .await
            .unwrap();
        // A reply larger than rustls's buffers: the whole of it must reach the client.
        let big: i64 = client
            .query_one(
                "SELECT sum(length(repeat('x', 1000) || g)) FROM generate_series(1, 2000) g",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(big > 2_000_000);
        let rows = client
            .query(
                "SELECT repeat('y', 100000) FROM generate_series(1, 20)",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 20);
    }
    let err = tokio_postgres_over_tls(&t.proxy, &t.other_ca.ca_cert, "localhost")
        .await
        .expect_err("a certificate from another CA must not verify");
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );
    // Plain text still works on a proxy that offers TLS.
    let client = t.proxy.connect("k1").await.expect("sslmode=disable");
    client.simple_query("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn tokio_postgres_verifies_the_generated_ca_in_database_isolation() {
    check_tokio_postgres(Isolation::Database).await;
}

#[tokio::test]
async fn tokio_postgres_verifies_the_generated_ca_in_rollback_isolation() {
    check_tokio_postgres(Isolation::Rollback).await;
}

#[tokio::test]
async fn without_tls_configured_sslmode_require_is_refused_as_before() {
    let pg = PgServer::start().await;
    pg.create_database("tls_db").await;
    let proxy = TestProxy::trust(MapRouter::with([("k1", pg.tcp_target("tls_db"))])).await;
    let dir = tempfile::tempdir().unwrap();
    let files = tls::ensure_generated(dir.path(), &tls::server_names(None)).unwrap();
    let err = tokio_postgres_over_tls(&proxy, &files.ca_cert, "localhost")
        .await
        .expect_err("the proxy answers 'N' without a certificate");
    assert!(format!("{err}").contains("TLS"), "{err}");
}

const PSYCOPG_CHECKS: &str = r#"
import sys, psycopg
base, ca, wrong_ca = sys.argv[1], sys.argv[2], sys.argv[3]
def run(extra):
    with psycopg.connect(base + " " + extra, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        big = conn.execute("SELECT repeat('z', 300000)").fetchone()[0]
        assert len(big) == 300000
        return conn.pgconn.ssl_in_use
assert run("sslmode=require") is True, "require: TLS in use"
assert run("sslmode=prefer") is True, "prefer: TLS in use"
assert run(f"sslmode=verify-full sslrootcert={ca}") is True, "verify-full"
assert run(f"sslmode=verify-ca sslrootcert={ca} host=127.0.0.1") is True, "verify-ca"
assert run("sslmode=disable") is False, "disable: plain text"
assert run("sslmode=require gssencmode=prefer") is True, "GSSENCRequest answered N, then TLS"
try:
    run(f"sslmode=verify-full sslrootcert={wrong_ca}")
except psycopg.OperationalError as e:
    assert "certificate verify failed" in str(e), str(e)
else:
    raise AssertionError("verify-full with another CA connected")
print("psycopg ok")
"#;

fn python_has_psycopg() -> bool {
    Command::new("python3")
        .args(["-c", "import psycopg"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

async fn check_psycopg(isolation: Isolation) {
    assert!(
        python_has_psycopg(),
        "psycopg 3 must be installed for python3"
    );
    let pg = PgServer::start().await;
    let t = tls_proxy(&pg, isolation).await;
    let base = format!(
        "host=localhost port={} user=tester dbname=k1",
        t.proxy.addr.port()
    );
    let output = tokio::process::Command::new("python3")
        .args(["-c", PSYCOPG_CHECKS, &base])
        .arg(&t.files.ca_cert)
        .arg(&t.other_ca.ca_cert)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{isolation:?}: {text}");
    assert!(text.contains("psycopg ok"), "{text}");
}

#[tokio::test]
async fn psycopg_sslmodes_in_database_isolation() {
    check_psycopg(Isolation::Database).await;
}

#[tokio::test]
async fn psycopg_sslmodes_in_rollback_isolation() {
    check_psycopg(Isolation::Rollback).await;
}

const NODE_CHECKS: &str = r#"
const { Client } = require('pg');
const fs = require('fs');
const [port, ca, wrongCa] = process.argv.slice(1);
async function run(ssl) {
  const client = new Client({ host: 'localhost', port: +port, user: 'tester', database: 'k1', ssl });
  await client.connect();
  try {
    const { rows } = await client.query("SELECT length(repeat('n', 200000)) AS n");
    if (rows[0].n !== 200000) throw new Error('short reply');
    return client.connection.stream.encrypted === true;
  } finally {
    await client.end();
  }
}
(async () => {
  if (!(await run({ ca: fs.readFileSync(ca) }))) throw new Error('ssl {ca}: not encrypted');
  if (!(await run({ rejectUnauthorized: false }))) throw new Error('require: not encrypted');
  if (await run(false)) throw new Error('ssl false: encrypted');
  try {
    await run({ ca: fs.readFileSync(wrongCa) });
    throw new Error('another CA connected');
  } catch (e) {
    if (!/self[- ]signed|unable to (get|verify)|certificate/i.test(e.message)) throw e;
  }
  console.log('node-postgres ok');
})().catch((e) => { console.error(e); process.exit(1); });
"#;

/// node-postgres from the example project (`npm ci` in examples/node-test).
fn node_postgres_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/node-test")
}

async fn check_node_postgres(isolation: Isolation) {
    let dir = node_postgres_dir();
    assert!(
        dir.join("node_modules/pg").exists(),
        "node-postgres is missing: run `npm ci` in {}",
        dir.display()
    );
    let pg = PgServer::start().await;
    let t = tls_proxy(&pg, isolation).await;
    let output = tokio::process::Command::new("node")
        .current_dir(&dir)
        .args(["-e", NODE_CHECKS])
        .arg(t.proxy.addr.port().to_string())
        .arg(&t.files.ca_cert)
        .arg(&t.other_ca.ca_cert)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{isolation:?}: {text}");
    assert!(text.contains("node-postgres ok"), "{text}");
}

#[tokio::test]
async fn node_postgres_ssl_ca_in_database_isolation() {
    check_node_postgres(Isolation::Database).await;
}

#[tokio::test]
async fn node_postgres_ssl_ca_in_rollback_isolation() {
    check_node_postgres(Isolation::Rollback).await;
}

fn request_packet(code: i32) -> Vec<u8> {
    let mut packet = 8i32.to_be_bytes().to_vec();
    packet.extend_from_slice(&code.to_be_bytes());
    packet
}

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;

#[tokio::test]
async fn gssenc_is_declined_and_ssl_accepted_in_libpq_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pg = PgServer::start().await;
    let t = tls_proxy(&pg, Isolation::Database).await;
    let mut stream = tokio::net::TcpStream::connect(t.proxy.addr).await.unwrap();
    for (code, expected) in [(GSSENC_REQUEST, b"N"), (SSL_REQUEST, b"S")] {
        stream.write_all(&request_packet(code)).await.unwrap();
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, expected, "request code {code}");
    }
}

#[tokio::test]
async fn plain_bytes_sent_with_the_ssl_request_are_refused() {
    let pg = PgServer::start().await;
    let t = tls_proxy(&pg, Isolation::Database).await;
    let mut raw = support::RawConnection::open(t.proxy.addr).await;
    let mut bytes = request_packet(SSL_REQUEST);
    let mut startup = bytes::BytesMut::new();
    postgres_protocol::message::frontend::startup_message(
        [("user", "tester"), ("database", "k1")],
        &mut startup,
    )
    .unwrap();
    bytes.extend_from_slice(&startup);
    raw.send(&bytes).await;
    let (code, message) = raw.expect_fatal().await;
    assert_eq!(code, "08P01");
    assert!(
        message.contains("unencrypted data after SSL request"),
        "{message}"
    );
}

#[tokio::test]
async fn password_authentication_runs_inside_tls() {
    let pg = PgServer::start().await;
    pg.create_database("tls_db").await;
    let dir = tempfile::tempdir().unwrap();
    let files = tls::ensure_generated(dir.path(), &tls::server_names(None)).unwrap();
    let config = ProxyConfig {
        tls: Some(tls::load(&files.server_cert, &files.server_key).unwrap()),
        ..support::password_auth("s3cret")
    };
    let proxy = TestProxy::start(config, MapRouter::with([("k1", pg.tcp_target("tls_db"))])).await;
    let connect = |password: &'static str| {
        let mut config = support::password_config(&proxy, "k1", password);
        config.host("localhost").ssl_mode(SslMode::Require);
        let tls = rustls_connector(&files.ca_cert);
        async move {
            let (client, connection) = config.connect(tls).await?;
            tokio::spawn(connection);
            Ok::<_, tokio_postgres::Error>(client)
        }
    };
    let client = connect("s3cret")
        .await
        .expect("the right password over TLS");
    client.simple_query("SELECT 1").await.unwrap();
    let err = connect("wrong")
        .await
        .expect_err("a wrong password over TLS");
    assert_eq!(support::sqlstate(&err), "28P01");
}

/// Watches the bytes a TLS client receives for the TLS records they form, and keeps the length
/// of the longest one. The first byte is the proxy's plain 'S' to the SSLRequest.
struct RecordWatcher {
    inner: tokio::net::TcpStream,
    /// The 'S' still to come, then a record header being assembled.
    header: Vec<u8>,
    skip_answer: bool,
    /// Bytes of the current record's body still to come.
    body_left: usize,
    longest: Arc<std::sync::atomic::AtomicUsize>,
}

impl RecordWatcher {
    fn observe(&mut self, mut bytes: &[u8]) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.skip_answer && !bytes.is_empty() {
            self.skip_answer = false;
            bytes = &bytes[1..];
        }
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == 5 {
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.longest.fetch_max(self.body_left, Relaxed);
                self.header.clear();
            }
        }
    }
}

impl tokio::io::AsyncRead for RecordWatcher {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let received = buf.filled()[before..].to_vec();
        self.observe(&received);
        polled
    }
}

impl tokio::io::AsyncWrite for RecordWatcher {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The most a record may add to its plaintext (RFC 8446, 5.2).
const TLS_RECORD_EXPANSION: usize = 256;

/// A large COPY TO and a large result through `isolation`, read over TLS by a client whose
/// socket takes little at a time, so the proxy is the one waiting and reads the server's
/// output in big batches (what a busy machine does to any client). Returns the longest record.
async fn longest_record_of_large_replies(isolation: Isolation) -> usize {
    use futures_util::StreamExt;
    let pg = PgServer::start().await;
    let t = tls_proxy(&pg, isolation).await;
    let longest = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let watcher = RecordWatcher {
        inner: socket.connect(t.proxy.addr).await.unwrap(),
        header: Vec::new(),
        skip_answer: true,
        body_left: 0,
        longest: Arc::clone(&longest),
    };
    let mut config = t.proxy.config("k1");
    config.ssl_mode(SslMode::Require);
    let tls = tokio_postgres::tls::MakeTlsConnect::<RecordWatcher>::make_tls_connect(
        &mut rustls_connector(&t.files.ca_cert),
        "localhost",
    )
    .unwrap();
    let (client, connection) = config.connect_raw(watcher, tls).await.unwrap();
    tokio::spawn(connection);
    let copy = client
        .copy_out("COPY (SELECT g, repeat('c', 300) FROM generate_series(1, 20000) g) TO STDOUT")
        .await
        .unwrap();
    let copied: usize = copy
        .map(|chunk| chunk.unwrap().len())
        .collect::<Vec<_>>()
        .await
        .iter()
        .sum();
    assert!(
        copied > 20000 * 300,
        "{isolation:?}: COPY TO delivered {copied} bytes"
    );
    let rows = client
        .query(
            "SELECT repeat('r', 100000) FROM generate_series(1, 20)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 20);
    longest.load(std::sync::atomic::Ordering::Relaxed)
}

async fn check_record_sizes(isolation: Isolation) {
    let longest = longest_record_of_large_replies(isolation).await;
    assert!(
        longest <= tls::MAX_RECORD_PLAINTEXT + TLS_RECORD_EXPANSION,
        "{isolation:?}: a TLS record of {longest} bytes; libpq's asynchronous clients (psycopg) \
         can wait for ever for the tail of a record over {} bytes of plaintext",
        tls::MAX_RECORD_PLAINTEXT
    );
    // A watcher that saw nothing would pass as well.
    assert!(
        longest > tls::MAX_RECORD_PLAINTEXT / 2,
        "{isolation:?}: longest record {longest}"
    );
}

#[tokio::test]
async fn large_copy_to_arrives_in_records_libpq_reads_whole_in_database_isolation() {
    check_record_sizes(Isolation::Database).await;
}

#[tokio::test]
async fn large_copy_to_arrives_in_records_libpq_reads_whole_in_rollback_isolation() {
    check_record_sizes(Isolation::Rollback).await;
}
