//! One attempt: the request sent to one endpoint, the response read within the limits,
//! and a failure classified where it is known. A failed attempt carries its typed
//! [`Outcome`] (nothing reached the server, the connection broke mid-request, the
//! attempt timed out, or never retryable), so retrying, the breaker and balancing read
//! one judgement instead of re-deriving it from the error's text.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::Response;
use crate::error::Error;
use crate::limits::HttpLimits;
use crate::resilience::{Outcome, RetryOn};
use crate::trace::TraceContext;
use crate::urls::redact_url;

/// An attempt that produced no response: the error the caller may get, and how
/// retrying, the breaker and the balancer judge it.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) error: Error,
    pub(super) outcome: Outcome,
}

impl Failed {
    /// A failure that is never retried and is not the endpoint's fault.
    pub(super) fn fatal(error: Error) -> Failed {
        Failed {
            error,
            outcome: Outcome::Fatal,
        }
    }
}

/// What one attempt sends.
pub(super) struct Sending {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) headers: HeaderMap,
    pub(super) body: bytes::Bytes,
    /// The endpoint as shown in errors and responses (credentials redacted).
    pub(super) endpoint: String,
    pub(super) trace: TraceContext,
}

/// Sends one attempt and reads its response within `limits`.
pub(super) async fn send(
    http: &reqwest::Client,
    limits: &HttpLimits,
    attempt: Sending,
) -> Result<Response, Failed> {
    let endpoint = attempt.endpoint.as_str();
    let transport = |e: reqwest::Error| {
        if head_too_large(&e) {
            Failed::fatal(limits.response_head_exceeded())
        } else {
            transport_failure(e, endpoint)
        }
    };
    let resp = http
        .request(attempt.method, attempt.url)
        .headers(attempt.headers)
        .body(attempt.body)
        .send()
        .await
        .map_err(transport)?;
    let status = resp.status().as_u16();
    let head_bytes: usize = resp
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if head_bytes as u64 > u64::from(limits.max_response_header_bytes) {
        return Err(Failed::fatal(limits.response_head_exceeded()));
    }
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = read_body(resp, limits, transport).await?;
    Ok(Response {
        status,
        headers,
        body,
        attempts: 1,
        endpoint: attempt.endpoint,
        trace: attempt.trace,
        idempotency_key: None,
    })
}

/// Reads a response body up to `limits.max_response_body_bytes`: refused from its
/// `Content-Length` before reading when that is already over, else read chunk by chunk
/// and abandoned (closing the connection) as soon as it passes the limit, so an endless
/// or huge body costs at most the limit in memory.
async fn read_body(
    mut resp: reqwest::Response,
    limits: &HttpLimits,
    transport: impl Fn(reqwest::Error) -> Failed,
) -> Result<bytes::Bytes, Failed> {
    let max = limits.max_response_body_bytes;
    if resp.content_length().is_some_and(|len| len > max) {
        return Err(Failed::fatal(limits.response_body_exceeded()));
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(&transport)? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(Failed::fatal(limits.response_body_exceeded()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Whether hyper refused an HTTP/1 response head as too large (over its 400 KiB buffer
/// or its 100 headers). HTTP/2 heads are bounded by h2's own header list limit and then
/// checked against courier's like any other.
fn head_too_large(e: &reqwest::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            // hyper's `is_parse_too_large` exists only for servers; a client learns the
            // kind of parse error from its fixed message.
            return h.is_parse() && h.to_string().contains("too large");
        }
        next = err.source();
    }
    false
}

/// Maps a reqwest failure, without its URL (which may carry credentials), and judges
/// it: a failed connection or TLS handshake sent nothing (safe to retry any request); a
/// failure after connecting may have reached the server.
fn transport_failure(e: reqwest::Error, endpoint: &str) -> Failed {
    let e = e.without_url();
    if let Some(reason) = crate::tls::tls_failure(&e) {
        return Failed {
            error: Error::Tls {
                reason,
                source: Some(Box::new(e)),
            },
            outcome: Outcome::Failure(RetryOn::Connect),
        };
    }
    let (operation, class) = if e.is_connect() {
        ("connect", RetryOn::Connect)
    } else {
        ("request", RetryOn::Reset)
    };
    Failed {
        error: Error::Connect {
            operation,
            target: endpoint.to_owned(),
            reason: chain(&e),
            source: Some(Box::new(e)),
        },
        outcome: Outcome::Failure(class),
    }
}

/// The messages of an error and its sources, joined: reqwest's own message alone is
/// usually just "error sending request".
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        parts.push(s.to_string());
        next = s.source();
    }
    parts.join(": ")
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// Adds the W3C headers for `trace`. Written here rather than through a carrier map:
/// this runs on every attempt, and the names are static.
pub(super) fn insert_trace(headers: &mut HeaderMap, trace: &TraceContext) {
    // courier writes these values itself from validated parts: they are always valid
    // header values, so a failed conversion cannot happen and would only drop a header.
    if let Ok(v) = HeaderValue::try_from(trace.traceparent()) {
        headers.insert(TRACEPARENT, v);
    }
    if !trace.tracestate().is_empty()
        && let Ok(v) = HeaderValue::try_from(trace.tracestate().header())
    {
        headers.insert(TRACESTATE, v);
    }
    if !trace.baggage().is_empty()
        && let Ok(v) = HeaderValue::try_from(trace.baggage().header())
    {
        headers.insert(BAGGAGE, v);
    }
}

/// A CLIENT span for one attempt, named and attributed by the OpenTelemetry HTTP
/// semantic conventions (<https://opentelemetry.io/docs/specs/semconv/http/http-spans/>).
/// The status and error fields are recorded when the attempt ends. Without a
/// subscriber this is a disabled span and costs a branch.
pub(super) fn attempt_span(
    method: &Method,
    url: &Url,
    endpoint: &str,
    attempt: u32,
    trace: &TraceContext,
) -> tracing::Span {
    let span = tracing::info_span!(
        "http.client",
        otel.name = %method,
        otel.kind = "client",
        http.request.method = %method,
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or_default(),
        url.full = %redact_url(url.as_str()),
        network.peer.address = endpoint,
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
        sampled = trace.sampled(),
        parent_span_id = tracing::field::Empty,
        http.request.resend_count = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if attempt > 1 {
        span.record("http.request.resend_count", attempt - 1);
    }
    span
}
