//! A deliberately tiny HTTP/1.1 server.
//!
//! Hand-written instead of hyper/axum because fault injection needs the raw socket: a
//! reset has to happen at an exact point of the exchange (before any response byte, or
//! in the middle of a body), which a full server framework hides from its handlers.
//! Only what courier's clients send is supported: keep-alive, `Content-Length` and
//! chunked request bodies, `Expect: 100-continue`. Responses always carry
//! `Content-Length` so the clients never depend on connection close for framing.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Request heads beyond this are refused: real clients stay far below it, so anything
/// larger is a bug in a test that should fail loudly rather than eat memory.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Larger bodies get a 413; big enough for every upload test, small enough to be safe.
pub(crate) const MAX_BODY: usize = 16 * 1024 * 1024;
/// httparse needs a fixed header array; clients send a dozen at most.
const MAX_HEADERS: usize = 128;

/// One parsed request, body included: handlers never need streaming.
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    /// Names lowercased so lookups and the request log are case-insensitive.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// Whether the client allows another request on this connection.
    pub(crate) keep_alive: bool,
}

impl Request {
    /// The first value of a header; `name` must be lowercase.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Headers as one value per name (repeats joined with ", " as HTTP allows), in a
    /// stable order so logs and echoes compare equal across runs.
    pub(crate) fn header_map(&self) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &self.headers {
            map.entry(name.clone())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        map
    }
}

/// A response to be written in one go.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    pub(crate) fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn json(status: u16, value: &impl Serialize) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body,
            },
            // Only maps with non-string keys fail, which no caller builds.
            Err(e) => Response {
                status: 500,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: e.to_string().into_bytes(),
            },
        }
    }

    /// Errors are JSON too, so every language's test can show the message it got.
    pub(crate) fn error(status: u16, message: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": message.into() }))
    }
}

/// Why no request could be read. Only some of these still allow an answer.
enum ReadError {
    /// The peer went away or the socket failed: nobody to answer.
    Gone,
    BadRequest(String),
    HeadTooLarge,
    BodyTooLarge,
}

impl ReadError {
    /// The response owed to the client before closing, if it can still hear one.
    fn response(&self) -> Option<Response> {
        match self {
            ReadError::Gone => None,
            ReadError::BadRequest(msg) => Some(Response::error(400, msg.clone())),
            ReadError::HeadTooLarge => Some(Response::error(
                431,
                format!("request head exceeds {MAX_HEAD} bytes"),
            )),
            ReadError::BodyTooLarge => Some(Response::error(
                413,
                format!("request body exceeds {MAX_BODY} bytes"),
            )),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Gone
    }
}

/// What HTTP is spoken over: plain TCP, or TLS on top of it.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// The socket underneath, which a reset has to reach past any TLS layer.
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

/// A server-side connection with its read buffer, which persists across requests
/// because a pipelining client may already have sent the next one.
pub(crate) struct Conn<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: Transport> Conn<S> {
    pub(crate) fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next request, or `None` when the connection is over. Requests that cannot
    /// be read get their error response here, so handlers only see valid ones.
    pub(crate) async fn next_request(&mut self) -> Option<Request> {
        match self.read_request().await {
            Ok(request) => request,
            Err(e) => {
                if let Some(response) = e.response() {
                    let _ = self.respond(&response, false, true).await;
                }
                None
            }
        }
    }

    /// Reads the next request; `Ok(None)` is a clean close between requests.
    async fn read_request(&mut self) -> Result<Option<Request>, ReadError> {
        let Some(head) = self.read_head().await? else {
            return Ok(None);
        };
        let body = match head.framing()? {
            Framing::Empty => Vec::new(),
            Framing::Length(len) => {
                self.continue_if_expected(&head).await?;
                self.take(len).await?
            }
            Framing::Chunked => {
                self.continue_if_expected(&head).await?;
                self.read_chunked().await?
            }
        };
        let (path, query) = match head.target.split_once('?') {
            Some((path, query)) => (path.to_owned(), query.to_owned()),
            None => (head.target.clone(), String::new()),
        };
        let keep_alive = head.keep_alive();
        Ok(Some(Request {
            method: head.method,
            path,
            query,
            headers: head.headers,
            body,
            keep_alive,
        }))
    }

    async fn read_head(&mut self) -> Result<Option<Head>, ReadError> {
        loop {
            if !self.buf.is_empty() {
                if let Some((head, len)) = parse_head(&self.buf)? {
                    self.buf.drain(..len);
                    return Ok(Some(head));
                }
                if self.buf.len() >= MAX_HEAD {
                    return Err(ReadError::HeadTooLarge);
                }
            }
            if self.fill().await? == 0 {
                // EOF before a request started is how keep-alive connections end.
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Gone)
                };
            }
        }
    }

    /// curl (and some others) wait for this before sending a large body.
    async fn continue_if_expected(&mut self, head: &Head) -> Result<(), ReadError> {
        let expects = head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if expects && head.version == 1 {
            self.stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        Ok(())
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.buf.drain(..used);
                        break size;
                    }
                    Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => {
                        self.fill_or_gone().await?;
                    }
                    _ => return Err(ReadError::BadRequest("invalid chunk size line".into())),
                }
            };
            if size == 0 {
                self.skip_trailers().await?;
                return Ok(body);
            }
            let size = usize::try_from(size)
                .ok()
                .filter(|size| body.len().saturating_add(*size) <= MAX_BODY)
                .ok_or(ReadError::BodyTooLarge)?;
            body.extend_from_slice(&self.take(size).await?);
            if self.take(2).await? != b"\r\n" {
                return Err(ReadError::BadRequest("chunk not followed by CRLF".into()));
            }
        }
    }

    /// Trailers carry nothing the testkit records, but must be consumed so the next
    /// request on the connection starts at the right byte.
    async fn skip_trailers(&mut self) -> Result<(), ReadError> {
        loop {
            match self.buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.buf.drain(..2);
                    return Ok(());
                }
                Some(end) => {
                    self.buf.drain(..end + 2);
                }
                None if self.buf.len() < MAX_HEAD => self.fill_or_gone().await?,
                None => return Err(ReadError::HeadTooLarge),
            }
        }
    }

    /// Removes and returns exactly `len` bytes from the front of the stream.
    async fn take(&mut self, len: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < len {
            self.fill_or_gone().await?;
        }
        let rest = self.buf.split_off(len);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(16 * 1024);
        self.stream.read_buf(&mut self.buf).await
    }

    /// For reads in the middle of a request, where EOF means the client gave up.
    async fn fill_or_gone(&mut self) -> Result<(), ReadError> {
        match self.fill().await? {
            0 => Err(ReadError::Gone),
            _ => Ok(()),
        }
    }

    /// Writes a complete response. HEAD answers keep the real `Content-Length` but no
    /// body, and 1xx/204/304 get neither, as RFC 9110 requires; clients otherwise read
    /// the stray bytes as the start of the next response.
    pub(crate) async fn respond(
        &mut self,
        response: &Response,
        head_only: bool,
        close: bool,
    ) -> io::Result<()> {
        let bodiless = matches!(response.status, 100..=199 | 204 | 304);
        let mut out = status_and_headers(response);
        if !bodiless {
            out.extend_from_slice(
                format!("Content-Length: {}\r\n", response.body.len()).as_bytes(),
            );
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !bodiless && !head_only {
            out.extend_from_slice(&response.body);
        }
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    /// Writes a response with a chunked body of `total` filler bytes, stopping early when
    /// the client goes away or 60 s have passed; the caller closes the connection after.
    pub(crate) async fn respond_streamed(
        &mut self,
        response: &Response,
        total: u64,
    ) -> io::Result<()> {
        const CHUNK: usize = 64 * 1024;
        let mut out = status_and_headers(response);
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        self.stream.write_all(&out).await?;
        let filler = vec![b'x'; CHUNK];
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut left = total;
        while left > 0 && tokio::time::Instant::now() < give_up {
            let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
            self.stream
                .write_all(format!("{n:x}\r\n").as_bytes())
                .await?;
            self.stream.write_all(&filler[..n]).await?;
            self.stream.write_all(b"\r\n").await?;
            left -= n as u64;
        }
        self.stream.write_all(b"0\r\n\r\n").await?;
        self.stream.flush().await
    }

    /// Starts a response that promises `declared` body bytes but carries only `sent`,
    /// for the caller to [`reset`](Conn::reset) right after.
    pub(crate) async fn respond_truncated(
        &mut self,
        response: &Response,
        declared: usize,
        sent: usize,
    ) -> io::Result<()> {
        let mut out = status_and_headers(response);
        out.extend_from_slice(format!("Content-Length: {declared}\r\n\r\n").as_bytes());
        out.extend(
            response
                .body
                .iter()
                .copied()
                .chain(std::iter::repeat(b' '))
                .take(sent),
        );
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    /// Closes with a TCP RST instead of a FIN, which is what a crashed upstream or a
    /// load balancer killing the connection looks like to the client. Over TLS no
    /// close_notify goes out either: the connection just dies.
    pub(crate) fn reset(self) {
        // The deprecation is about a non-zero linger blocking the runtime thread on
        // drop; a zero linger never blocks. (`set_zero_linger` needs tokio 1.50, newer
        // than the workspace's minimum.)
        #[allow(deprecated)]
        let _ = self.stream.tcp().set_linger(Some(Duration::ZERO));
    }

    /// Ends the connection cleanly. Over TLS that means a close_notify first, without
    /// which TLS clients read the end as an error (an unexpected EOF), not a close.
    pub(crate) async fn close(mut self) {
        // Failing means the peer already went away, which is the end wanted anyway.
        let _ = self.stream.shutdown().await;
    }
}

fn status_and_headers(response: &Response) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    )
    .into_bytes();
    for (name, value) in &response.headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out
}

/// Reason phrases are informational only; clients ignore them, so a short table does.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// The request line and headers, owned so the read buffer can be drained.
struct Head {
    method: String,
    target: String,
    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    version: u8,
    headers: Vec<(String, String)>,
}

/// How the request body is delimited.
enum Framing {
    Empty,
    Length(usize),
    Chunked,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn framing(&self) -> Result<Framing, ReadError> {
        if let Some(codings) = self.header("transfer-encoding") {
            // RFC 9112: chunked must be the final coding, and it overrides Content-Length.
            let last = codings.rsplit(',').next().unwrap_or_default().trim();
            return if last.eq_ignore_ascii_case("chunked") {
                Ok(Framing::Chunked)
            } else {
                Err(ReadError::BadRequest(format!(
                    "unsupported transfer-encoding {codings:?}"
                )))
            };
        }
        let mut length: Option<u64> = None;
        for (_, value) in self.headers.iter().filter(|(n, _)| n == "content-length") {
            let parsed: u64 = value
                .trim()
                .parse()
                .map_err(|_| ReadError::BadRequest(format!("invalid content-length {value:?}")))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(ReadError::BadRequest(
                    "conflicting content-length headers".into(),
                ));
            }
            length = Some(parsed);
        }
        match length {
            None | Some(0) => Ok(Framing::Empty),
            Some(len) => usize::try_from(len)
                .ok()
                .filter(|len| *len <= MAX_BODY)
                .map(Framing::Length)
                .ok_or(ReadError::BodyTooLarge),
        }
    }

    fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.headers
                .iter()
                .filter(|(n, _)| n == "connection")
                .flat_map(|(_, v)| v.split(','))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.version == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
}

/// Parses a complete request head from the front of `buf`, returning it and its length,
/// or `None` if more bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::HeadTooLarge),
        Err(e) => return Err(ReadError::BadRequest(format!("malformed request: {e}"))),
    };
    if len > MAX_HEAD {
        return Err(ReadError::HeadTooLarge);
    }
    // A complete parse always fills these three; the fallbacks only satisfy the types.
    let head = Head {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        version: req.version.unwrap_or(1),
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    };
    Ok(Some((head, len)))
}

/// Accepts connections until `shutdown` resolves, then closes the listener and every
/// open connection before returning, so a caller awaiting this knows the port is dead.
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    handle: H,
) where
    H: Fn(TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Small writes are whole responses; Nagle would only add latency.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(handle(stream));
                }
                // Usually fd exhaustion: back off instead of spinning on the error.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}
