//! Settling a client connection's encryption (SSLRequest answered 'S' with TLS configured, 'N'
//! otherwise; GSSENCRequest always 'N'), and the client's side of the connection afterwards:
//! the plain TCP socket, or a TLS session over it. Both lend out read and write halves ([`SplitStream`]) so each relay
//! direction runs in one task without locks on the plain path, and both expose the TCP socket
//! underneath (the rollback admission watches it for the client's departure).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;

use crate::startup::{self, StartupError, StartupPacket};
use crate::tls::TlsConfig;
use crate::wire::PROTOCOL_VIOLATION;

/// A stream that can lend out independent read and write halves (TcpStream::split and
/// UnixStream::split are free).
pub trait SplitStream: AsyncRead + AsyncWrite + Unpin + Send {
    type Read<'a>: AsyncRead + Unpin + Send
    where
        Self: 'a;
    type Write<'a>: AsyncWrite + Unpin + Send
    where
        Self: 'a;
    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>);
}

impl SplitStream for TcpStream {
    type Read<'a> = tokio::net::tcp::ReadHalf<'a>;
    type Write<'a> = tokio::net::tcp::WriteHalf<'a>;
    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        self.split()
    }
}

impl SplitStream for UnixStream {
    type Read<'a> = tokio::net::unix::ReadHalf<'a>;
    type Write<'a> = tokio::net::unix::WriteHalf<'a>;
    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        self.split()
    }
}

/// A client connection: plain or TLS.
pub trait ClientStream: SplitStream {
    fn tcp(&self) -> &TcpStream;
    fn encrypted(&self) -> bool;
}

impl ClientStream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
    fn encrypted(&self) -> bool {
        false
    }
}

/// A TLS session with a client whose writes are complete when they return: tokio-rustls
/// reports bytes written once rustls holds them, and would keep them there until the next
/// write or an explicit flush, which code written for sockets never calls (a reply would wait
/// for the client's next message, and both would wait forever). Here a write is ready only
/// once its records reached the socket.
pub struct TlsClient {
    inner: TlsStream<TcpStream>,
    /// The write whose records are still being flushed: how much of it rustls has taken.
    accepted: Option<AcceptedWrite>,
}

/// A write rustls has taken part of, and the buffer it came from: a caller that gives up on a
/// write (a dropped future: the relay's other direction ended, the proxy is stopping) and writes
/// something else must not be told that the earlier write's count is the new one's.
#[derive(Clone, Copy)]
struct AcceptedWrite {
    bytes: usize,
    buffer: (usize, usize),
}

fn buffer_identity(buf: &[u8]) -> (usize, usize) {
    (buf.as_ptr() as usize, buf.len())
}

impl TlsClient {
    pub fn new(inner: TlsStream<TcpStream>) -> TlsClient {
        TlsClient {
            inner,
            accepted: None,
        }
    }
}

impl AsyncRead for TlsClient {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsClient {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let accepted = match self.accepted {
            Some(earlier) if earlier.buffer == buffer_identity(buf) => earlier.bytes,
            _ => {
                // An abandoned write's bytes stay in rustls and go first, as the bytes of an
                // abandoned write to a socket stay sent.
                self.accepted = None;
                let bytes = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
                self.accepted = Some(AcceptedWrite {
                    bytes,
                    buffer: buffer_identity(buf),
                });
                bytes
            }
        };
        let flushed = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        self.accepted = None;
        flushed.map(|()| accepted).into()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl SplitStream for TlsClient {
    type Read<'a> = tokio::io::ReadHalf<&'a mut TlsClient>;
    type Write<'a> = tokio::io::WriteHalf<&'a mut TlsClient>;
    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>) {
        tokio::io::split(self)
    }
}

impl ClientStream for TlsClient {
    fn tcp(&self) -> &TcpStream {
        self.inner.get_ref().0
    }
    fn encrypted(&self) -> bool {
        true
    }
}

/// How the client's connection goes on after its first packets.
pub enum Encryption {
    /// In plain text, with the first packet that was not an encryption request.
    Plain(Option<StartupPacket>),
    /// The client asked for TLS and was answered 'S': the handshake comes next.
    Tls(tokio_rustls::TlsAcceptor),
}

/// Answers the client's SSLRequest and GSSENCRequest (at most one of each, in either order, as
/// libpq sends them): 'S' to an SSLRequest when TLS is configured, 'N' otherwise. GSSAPI
/// encryption is never offered.
pub async fn negotiate_encryption(
    tls: Option<&TlsConfig>,
    client: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Encryption, StartupError> {
    let mut ssl_declined = false;
    let mut gss_declined = false;
    loop {
        match startup::read_startup_packet(client, buf).await? {
            StartupPacket::SslRequest if !ssl_declined => match tls {
                Some(tls) => {
                    // Bytes sent after the request but before the handshake were not encrypted:
                    // taking them as the session's would let someone on the path inject them
                    // (CVE-2021-23222), so PostgreSQL refuses them, and so does the proxy.
                    if !buf.is_empty() {
                        return Err(StartupError::refuse(
                            PROTOCOL_VIOLATION,
                            "received unencrypted data after SSL request",
                        ));
                    }
                    client.write_all(b"S").await?;
                    return Ok(Encryption::Tls(tokio_rustls::TlsAcceptor::from(
                        Arc::clone(tls),
                    )));
                }
                None => {
                    client.write_all(b"N").await?;
                    ssl_declined = true;
                }
            },
            StartupPacket::GssEncRequest if !gss_declined => {
                client.write_all(b"N").await?;
                gss_declined = true;
            }
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                return Err(StartupError::refuse(
                    PROTOCOL_VIOLATION,
                    "duplicate SSL or GSS encryption request",
                ))
            }
            other => return Ok(Encryption::Plain(Some(other))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use tokio::io::AsyncReadExt;

    /// A TLS session over loopback: the proxy's side as a [`TlsClient`], and the client's.
    async fn tls_pair() -> (TlsClient, tokio_rustls::client::TlsStream<TcpStream>) {
        let dir = tempfile::tempdir().unwrap();
        let files =
            crate::tls::ensure_generated(dir.path(), &crate::tls::server_names(None)).unwrap();
        let server_config = crate::tls::load(&files.server_cert, &files.server_key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(&files.ca_cert).unwrap();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connect = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(client_config))
                .connect("localhost".try_into().unwrap(), tcp)
                .await
                .unwrap()
        };
        let accept = async {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio_rustls::TlsAcceptor::from(server_config)
                .accept(tcp)
                .await
                .unwrap()
        };
        let (client, server) = tokio::join!(connect, accept);
        (TlsClient::new(server), client)
    }

    #[tokio::test]
    async fn a_write_after_an_abandoned_one_is_written_and_counted_as_its_own() {
        let (mut proxy_side, mut client) = tls_pair().await;
        // More than the socket buffers hold while the client reads nothing: the write cannot
        // finish, and is dropped after its first poll, as a relay direction is when the other
        // one ends.
        let big = vec![b'b'; 16 << 20];
        let mut abandoned = Box::pin(proxy_side.write_all(&big));
        let polled = abandoned
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()));
        assert!(polled.is_pending());
        drop(abandoned);
        let farewell = b"farewell";
        let reading = async {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.ok();
            received
        };
        let writing = async {
            proxy_side.write_all(farewell).await.unwrap();
            proxy_side.shutdown().await.unwrap();
            drop(proxy_side);
        };
        let (received, ()) = tokio::join!(reading, writing);
        assert!(
            received.ends_with(farewell),
            "the last write did not arrive ({} bytes received)",
            received.len()
        );
    }
}
