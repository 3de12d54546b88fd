//! A small HTTP/1.1 client for the control API (loopback, JSON, one request per connection), so
//! the CLI needs no HTTP client library.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An API answer: the status and the JSON body (`Null` when there was none).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's error message, for non-2xx replies.
    pub fn error_message(&self) -> String {
        let code = self.body["error"]["code"].as_str().unwrap_or("error");
        let message = self.body["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string());
        format!("{message} ({code}, HTTP {})", self.status)
    }
}

/// A daemon's API: `http://host:port` and its token.
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub base: String,
    pub token: Option<String>,
    pub timeout: Duration,
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> ApiClient {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            token,
            timeout: Duration::from_secs(300),
        }
    }

    fn authority(&self) -> anyhow::Result<&str> {
        match self.base.strip_prefix("http://") {
            Some(rest) => Ok(rest.split('/').next().unwrap_or(rest)),
            None => bail!("{}: only http:// control URLs are supported", self.base),
        }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.request("POST", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        self.request("DELETE", path, None).await
    }

    /// Sends one request and reads the whole reply.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let authority = self.authority()?.to_string();
        let exchange = async {
            let mut stream = TcpStream::connect(&authority)
                .await
                .with_context(|| format!("connecting to the dbsandbox daemon at {}", self.base))?;
            let payload = body.map(|b| b.to_string()).unwrap_or_default();
            let mut head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
                 Accept: application/json\r\nContent-Length: {}\r\n",
                payload.len()
            );
            if body.is_some() {
                head.push_str("Content-Type: application/json\r\n");
            }
            if let Some(token) = &self.token {
                head.push_str(&format!("Authorization: Bearer {token}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(payload.as_bytes()).await?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await?;
            parse_reply(&raw)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .with_context(|| format!("{method} {path}: the daemon did not answer in time"))?
            .with_context(|| format!("{method} {}{path}", self.base))
    }
}

/// Parses a whole HTTP/1.1 response (Content-Length, chunked, or read-to-close body).
pub fn parse_reply(raw: &[u8]) -> anyhow::Result<Reply> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("incomplete HTTP response")?;
    let head = std::str::from_utf8(&raw[..split]).context("HTTP head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad HTTP status line: {status_line}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                chunked = true;
            } else if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            }
        }
    }
    let rest = &raw[split + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        match length {
            Some(n) if n <= rest.len() => rest[..n].to_vec(),
            Some(_) => bail!("HTTP body shorter than its Content-Length"),
            None => rest.to_vec(),
        }
    };
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).with_context(|| {
            format!(
                "HTTP {status} body is not JSON: {}",
                String::from_utf8_lossy(&body)
            )
        })?
    };
    Ok(Reply { status, body })
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("bad chunked body")?;
        let size_text = std::str::from_utf8(&data[..end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        data = &data[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            bail!("truncated chunked body");
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_chunked_and_empty_bodies() {
        let r =
            parse_reply(b"HTTP/1.1 201 Created\r\ncontent-length: 8\r\n\r\n{\"a\":1}\n").unwrap();
        assert_eq!((r.status, r.body["a"].as_i64()), (201, Some(1)));
        let r = parse_reply(
            b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"err\r\n6\r\nor\":2}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body["error"].as_i64()), (409, Some(2)));
        let r = parse_reply(b"HTTP/1.1 202 Accepted\r\n\r\n").unwrap();
        assert!(r.body.is_null() && r.is_success());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n{}").is_err());
        assert!(parse_reply(b"garbage").is_err());
    }
}
