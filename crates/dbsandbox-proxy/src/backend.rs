//! The proxy's side of a backend connection: where a backend lives (TCP or Unix socket), opening
//! the connection, and the startup handshake (StartupMessage with the routed user and database,
//! authentication by cleartext, MD5 or SCRAM-SHA-256, then the ParameterStatus/BackendKeyData/
//! ReadyForQuery burst the client must see). Backend messages are parsed with postgres-protocol;
//! everything the client should see is kept as raw bytes so it is relayed verbatim.

use crate::server::BackendTarget;
use bytes::{Buf, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::backend::{Header, Message};
use postgres_protocol::message::frontend;
use std::io;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Cap on any single message during the backend handshake. The backend is trusted, but a
/// misconfigured target (pointing at something that is not PostgreSQL) must not make the proxy
/// allocate gigabytes.
const MAX_STARTUP_MESSAGE: usize = 1 << 20;

/// Startup parameters that are never passed from the client to the backend: the routed target
/// decides user and database, and replication connections are not offered.
const RESERVED_PARAMS: [&str; 3] = ["user", "database", "replication"];

/// Network address of a backend server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendAddr {
    Tcp(String, u16),
    /// Path of the socket file itself (`<dir>/.s.PGSQL.<port>`).
    Unix(PathBuf),
}

impl BackendAddr {
    /// A host starting with `/` is a socket directory, as in libpq.
    pub fn of(target: &BackendTarget) -> Self {
        if target.host.starts_with('/') {
            BackendAddr::Unix(PathBuf::from(&target.host).join(format!(".s.PGSQL.{}", target.port)))
        } else {
            BackendAddr::Tcp(target.host.clone(), target.port)
        }
    }
}

impl std::fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendAddr::Tcp(host, port) => write!(f, "{host}:{port}"),
            BackendAddr::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// An open backend connection of either kind.
pub enum BackendStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

pub async fn connect(addr: &BackendAddr) -> io::Result<BackendStream> {
    match addr {
        BackendAddr::Tcp(host, port) => {
            let stream = TcpStream::connect((host.as_str(), *port)).await?;
            // Requests and replies are small and latency-bound; Nagle would add delays.
            stream.set_nodelay(true)?;
            Ok(BackendStream::Tcp(stream))
        }
        BackendAddr::Unix(path) => Ok(BackendStream::Unix(UnixStream::connect(path).await?)),
    }
}

/// Forwards a CancelRequest with the backend's own key. Waits for the backend to close the
/// connection, which it does once the cancel is processed, so the client's cancel call returns
/// only after the cancel took effect (libpq and tokio-postgres wait the same way).
pub async fn send_cancel(addr: &BackendAddr, process_id: i32, secret_key: i32) -> io::Result<()> {
    let mut packet = BytesMut::with_capacity(16);
    frontend::cancel_request(process_id, secret_key, &mut packet);
    async fn send<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, packet: &[u8]) -> io::Result<()> {
        s.write_all(packet).await?;
        let mut sink = [0u8; 64];
        while s.read(&mut sink).await? > 0 {}
        Ok(())
    }
    let cancel = async {
        match connect(addr).await? {
            BackendStream::Tcp(s) => send(s, &packet).await,
            BackendStream::Unix(s) => send(s, &packet).await,
        }
    };
    tokio::time::timeout(Duration::from_secs(10), cancel)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "backend did not close"))?
}

/// Why the backend handshake failed.
#[derive(Debug)]
pub enum BackendError {
    Io(io::Error),
    /// The backend sent an ErrorResponse (raw message), to be relayed to the client verbatim.
    Rejected(BytesMut),
    /// Something the proxy cannot do or the target is misconfigured; the text is for the client.
    Failed(String),
}

impl From<io::Error> for BackendError {
    fn from(e: io::Error) -> Self {
        BackendError::Io(e)
    }
}

/// A backend session that completed startup.
#[derive(Debug)]
pub struct Established {
    /// The backend's own cancel key, if it sent one.
    pub key_data: Option<(i32, i32)>,
    /// ParameterStatus and NoticeResponse messages, raw, in order, for the client.
    pub greeting: BytesMut,
    /// The ReadyForQuery that ended startup, raw.
    pub ready_for_query: BytesMut,
    /// Bytes read past ReadyForQuery (normally none); they belong to the relay.
    pub leftover: BytesMut,
}

/// Reads one whole backend message (tag, length, body) from `stream`, buffering in `buf`.
async fn next_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<BytesMut, BackendError> {
    loop {
        if let Some(header) = Header::parse(buf)? {
            let total = header.len() as usize + 1;
            if total > MAX_STARTUP_MESSAGE {
                return Err(BackendError::Failed(format!(
                    "backend sent a {total}-byte message during startup; is the target a PostgreSQL server?"
                )));
            }
            if buf.len() >= total {
                return Ok(buf.split_to(total));
            }
            buf.reserve(total - buf.len());
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(BackendError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "backend closed the connection during startup",
            )));
        }
    }
}

fn parse(raw: &BytesMut) -> Result<Message, BackendError> {
    let mut copy = raw.clone();
    Message::parse(&mut copy)?.ok_or_else(|| {
        BackendError::Failed("backend sent an incomplete message during startup".into())
    })
}

fn required_password(target: &BackendTarget) -> Result<&[u8], BackendError> {
    target
        .password
        .as_deref()
        .map(str::as_bytes)
        .ok_or_else(|| {
            BackendError::Failed(format!(
                "the backend asks for a password for user \"{}\" but the sandbox target has none",
                target.user
            ))
        })
}

/// Runs the startup handshake on a fresh backend connection.
///
/// `client_params` are the client's startup parameters; all but the reserved ones are passed on.
pub async fn establish<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    target: &BackendTarget,
    client_params: &[(String, String)],
) -> Result<Established, BackendError> {
    let mut out = BytesMut::with_capacity(256);
    let passed_through = client_params
        .iter()
        .filter(|(name, _)| !RESERVED_PARAMS.contains(&name.as_str()) && !name.starts_with("_pq_."))
        .map(|(name, value)| (name.as_str(), value.as_str()));
    let params = [
        ("user", target.user.as_str()),
        ("database", target.database.as_str()),
    ]
    .into_iter()
    .chain(passed_through);
    frontend::startup_message(params, &mut out)?;
    stream.write_all(&out).await?;

    let mut buf = BytesMut::with_capacity(4096);
    let mut greeting = BytesMut::with_capacity(512);
    authenticate(stream, &mut buf, target, &mut greeting).await?;

    let mut established = Established {
        key_data: None,
        greeting,
        ready_for_query: BytesMut::new(),
        leftover: BytesMut::new(),
    };
    loop {
        let raw = next_message(stream, &mut buf).await?;
        match raw[0] {
            b'K' => {
                if let Message::BackendKeyData(body) = parse(&raw)? {
                    established.key_data = Some((body.process_id(), body.secret_key()));
                }
            }
            b'E' => return Err(BackendError::Rejected(raw)),
            b'Z' => {
                established.ready_for_query = raw;
                established.leftover = buf;
                return Ok(established);
            }
            // ParameterStatus, NoticeResponse, and anything a newer server adds: the client
            // should see it as the server sent it.
            _ => established.greeting.extend_from_slice(&raw),
        }
    }
}

/// Answers the backend's authentication requests until AuthenticationOk. NoticeResponses sent
/// meanwhile are kept in `notices` for the client.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    target: &BackendTarget,
    notices: &mut BytesMut,
) -> Result<(), BackendError> {
    let mut out = BytesMut::with_capacity(256);
    let mut scram: Option<ScramSha256> = None;
    loop {
        let raw = next_message(stream, buf).await?;
        match raw[0] {
            b'E' => return Err(BackendError::Rejected(raw)),
            b'N' => {
                notices.extend_from_slice(&raw);
                continue;
            }
            _ => {}
        }
        if raw[0] != b'R' {
            return Err(BackendError::Failed(format!(
                "backend sent message type 0x{:02x} before authentication completed",
                raw[0]
            )));
        }
        out.clear();
        match parse(&raw)? {
            Message::AuthenticationOk => return Ok(()),
            Message::AuthenticationCleartextPassword => {
                frontend::password_message(required_password(target)?, &mut out)?;
            }
            Message::AuthenticationMd5Password(body) => {
                let password = required_password(target)?;
                let hash = md5_hash(target.user.as_bytes(), password, body.salt());
                frontend::password_message(hash.as_bytes(), &mut out)?;
            }
            Message::AuthenticationSasl(body) => {
                let offers_scram = body
                    .mechanisms()
                    .any(|mechanism| Ok(mechanism == SCRAM_SHA_256))?;
                if !offers_scram {
                    return Err(BackendError::Failed(
                        "the backend offers no SASL mechanism the proxy supports (SCRAM-SHA-256)"
                            .into(),
                    ));
                }
                // No TLS to the backend, so no channel binding: gs2 header "n,,".
                let state =
                    ScramSha256::new(required_password(target)?, ChannelBinding::unsupported());
                frontend::sasl_initial_response(SCRAM_SHA_256, state.message(), &mut out)?;
                scram = Some(state);
            }
            Message::AuthenticationSaslContinue(body) => {
                let state = scram.as_mut().ok_or_else(|| {
                    BackendError::Failed("backend sent SASLContinue without SASL".into())
                })?;
                state.update(body.data())?;
                frontend::sasl_response(state.message(), &mut out)?;
            }
            Message::AuthenticationSaslFinal(body) => {
                let mut state = scram.take().ok_or_else(|| {
                    BackendError::Failed("backend sent SASLFinal without SASL".into())
                })?;
                // Verifies the server's signature: the backend proved it knows the password.
                state.finish(body.data())?;
                continue;
            }
            _ => {
                return Err(BackendError::Failed(
                    "the backend asks for an authentication method the proxy does not support \
                     (supported: trust, password, md5, scram-sha-256)"
                        .into(),
                ))
            }
        }
        stream.write_all(&out).await?;
        out.advance(out.len());
    }
}
