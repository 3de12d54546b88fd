//! A minimal blocking HTTP/1.1 client for the daemon's control API.
//!
//! The daemon listens on loopback (axum); one request per connection (`Connection: close`),
//! bodies sent with `Content-Length`, responses read to EOF and decoded from either
//! `Content-Length` or `Transfer-Encoding: chunked`. No TLS, no redirects, no keep-alive: a
//! handful of requests per test do not need more, and it keeps the crate free of an HTTP stack.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Error;

/// Responses larger than this are refused (the API's biggest answers are a few kilobytes).
const MAX_RESPONSE: u64 = 16 * 1024 * 1024;

/// Where the daemon's API listens: `http://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `http://127.0.0.1:41234`, `http://[::1]:41234/`, or a bare `127.0.0.1:41234`.
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        let bad = |why: &str| Error::Daemon(format!("bad daemon API URL {url:?}: {why}"));
        let rest = url.trim();
        if rest.starts_with("https://") {
            return Err(bad("https is not supported (the daemon serves plain HTTP)"));
        }
        let rest = rest.strip_prefix("http://").unwrap_or(rest);
        let authority = rest.split('/').next().unwrap_or("");
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = after.strip_prefix(':').ok_or_else(|| bad("missing port"))?;
            (host, port)
        } else {
            authority
                .rsplit_once(':')
                .ok_or_else(|| bad("missing port"))?
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }

    fn host_header(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub status: u16,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request and reads the whole response.
pub(crate) fn send(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, Error> {
    let io = |what: &str, e: std::io::Error| {
        Error::Http(format!(
            "{what} {}:{} ({method} {path}): {e}",
            endpoint.host, endpoint.port
        ))
    };
    let addrs: Vec<_> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .map_err(|e| io("cannot resolve", e))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(io("cannot connect to the dbsandbox daemon at", e)),
        (None, None) => {
            return Err(Error::Http(format!(
                "no address for the dbsandbox daemon at {}",
                endpoint.host_header()
            )))
        }
    };
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| io("cannot configure the connection to", e))?;

    let request = build_request(endpoint, method, path, token, body);
    stream
        .write_all(&request)
        .and_then(|()| stream.flush())
        .map_err(|e| io("cannot send the request to", e))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut raw)
        .map_err(|e| io("cannot read the answer of", e))?;
    if raw.len() as u64 > MAX_RESPONSE {
        return Err(Error::Http(format!(
            "the answer to {method} {path} is larger than {MAX_RESPONSE} bytes"
        )));
    }
    parse_response(&raw).map_err(|e| match e {
        Error::Http(m) => Error::Http(format!("{method} {path}: {m}")),
        other => other,
    })
}

/// The bytes of one request.
pub(crate) fn build_request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let body = body.unwrap_or(&[]);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\nUser-Agent: dbsandbox-rust/{}\r\n",
        endpoint.host_header(),
        env!("CARGO_PKG_VERSION")
    );
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a complete HTTP/1.x response (everything the server sent before closing).
pub(crate) fn parse_response(raw: &[u8]) -> Result<Response, Error> {
    let bad = |why: String| Error::Http(format!("malformed HTTP response: {why}"));
    let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| {
        if raw.is_empty() {
            bad("the daemon closed the connection without answering".into())
        } else {
            bad("no end of headers".into())
        }
    })?;
    let head =
        std::str::from_utf8(&raw[..head_end]).map_err(|_| bad("headers are not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| bad(format!("status line {status_line:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("header line {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[head_end + 4..];
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    response.body = if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("Content-Length {len:?}")))?;
        if rest.len() < len {
            return Err(bad(format!(
                "body cut short: {} of {len} bytes",
                rest.len()
            )));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

/// Decodes a `Transfer-Encoding: chunked` body (chunk extensions and trailers ignored).
pub(crate) fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, Error> {
    let bad = |why: &str| Error::Http(format!("malformed chunked body: {why}"));
    let mut out = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or_else(|| bad("missing chunk size line"))?;
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad("chunk size"))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad("chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if rest.len() < size + 2 {
            return Err(bad("chunk cut short"));
        }
        out.extend_from_slice(&rest[..size]);
        if &rest[size..size + 2] != b"\r\n" {
            return Err(bad("missing CRLF after chunk"));
        }
        rest = &rest[size + 2..];
    }
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub(crate) fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:41234").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 41234));
        let e = Endpoint::parse("http://localhost:80/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("localhost", 80));
        let e = Endpoint::parse("http://[::1]:9/x").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
        assert_eq!(e.host_header(), "[::1]:9");
        let e = Endpoint::parse("10.0.0.1:5").unwrap();
        assert_eq!(e.port, 5);
        for bad in [
            "",
            "http://",
            "http://host",
            "http://host:x",
            "http://:80",
            "http://[::1",
            "https://a:1",
            "http://h:99999",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parses_content_length_response() {
        let raw = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":true}\nEXTRA";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Content-Type"), Some("application/json"));
        assert_eq!(r.body, b"{\"a\":true}\n");
    }

    #[test]
    fn parses_chunked_response() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\nA\r\n:1234567}\n\r\n0\r\nX-Trailer: y\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{\"a\":1234567}\n");
    }

    #[test]
    fn parses_body_to_eof_without_length() {
        let r = parse_response(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"nope");
    }

    #[test]
    fn rejects_malformed_responses() {
        for raw in [
            &b""[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno-colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
        ] {
            assert!(
                parse_response(raw).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn builds_requests() {
        let e = Endpoint::parse("http://127.0.0.1:8").unwrap();
        let r = build_request(&e, "POST", "/v1/sandboxes", Some("t0k"), Some(b"{}"));
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("POST /v1/sandboxes HTTP/1.1\r\nHost: 127.0.0.1:8\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.contains("Authorization: Bearer t0k\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
        let text = String::from_utf8(build_request(&e, "GET", "/v1/health", None, None)).unwrap();
        assert!(!text.contains("Content-Length"));
        assert!(!text.contains("Authorization"));
        let text = String::from_utf8(build_request(&e, "POST", "/x", None, None)).unwrap();
        assert!(text.contains("Content-Length: 0\r\n"));
    }

    #[test]
    fn round_trip_over_a_socket() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while find(&buf, b"\r\n\r\n{\"k\":1}").is_none() {
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "client closed early");
                buf.extend_from_slice(&chunk[..n]);
            }
            s.write_all(
                b"HTTP/1.1 409 Conflict\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            )
            .unwrap();
            String::from_utf8(buf).unwrap()
        });
        let e = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let r = send(
            &e,
            "POST",
            "/v1/sandboxes",
            None,
            Some(b"{\"k\":1}"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.status, 409);
        assert_eq!(r.body, b"abc");
        let seen = server.join().unwrap();
        assert!(seen.starts_with("POST /v1/sandboxes HTTP/1.1\r\n"));
    }

    #[test]
    fn connection_refused_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let e = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let err = send(&e, "GET", "/v1/health", None, None, Duration::from_secs(2)).unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode_query_value("r3"), "r3");
        assert_eq!(encode_query_value("a b&c"), "a%20b%26c");
    }
}
