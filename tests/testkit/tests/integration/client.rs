//! A raw HTTP/1.1 client, so these tests see exactly the bytes (or resets) the
//! testkit produces, with no client library smoothing faults over.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bounds every exchange so a bug shows up as a failure, not a hung test run.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `host:port` of an `http://host:port` base URL.
pub fn authority(url: &str) -> &str {
    url.strip_prefix("http://").expect("an http:// URL")
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the reply.
pub async fn send(
    url: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        authority(url),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    let (received, error) = exchange(url, &bytes).await;
    assert!(error.is_none(), "{method} {target}: {error:?}");
    let (reply, used) = parse(&received).expect("a complete response");
    assert_eq!(used, received.len(), "bytes after the response");
    reply
}

pub async fn get(url: &str, target: &str) -> Reply {
    send(url, "GET", target, &[], b"").await
}

/// Writes `request` verbatim, then reads until EOF or an error, returning what
/// arrived and the error, if any.
pub async fn exchange(url: &str, request: &[u8]) -> (Vec<u8>, Option<io::Error>) {
    let run = async {
        let mut stream = TcpStream::connect(authority(url)).await.expect("connect");
        stream.write_all(request).await.expect("write request");
        let mut received = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return (received, None),
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) => return (received, Some(e)),
            }
        }
    };
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("exchange within the time limit")
}

/// Parses one response from the front of `bytes`, returning it and the bytes it used.
/// The body is whatever is there up to `Content-Length`, so a truncated body shows as
/// a short one rather than an error.
pub fn parse(bytes: &[u8]) -> Option<(Reply, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(bytes).ok()? else {
        return None;
    };
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().expect("numeric content-length"));
    let end = bytes.len().min(head_len + length);
    let reply = Reply {
        status: response.code?,
        headers,
        body: bytes[head_len..end].to_vec(),
    };
    Some((reply, end))
}
