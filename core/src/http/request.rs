//! What a caller asks for; validated when the call starts.

use bytes::Bytes;

use crate::trace::TraceContext;
use reqwest::header::{HeaderName, HeaderValue};

/// One HTTP call to a service or an absolute URL.
///
/// # Examples
/// ```
/// let req = courierkit::Request::new("GET", "orders", "/v1/items").header("accept", "application/json");
/// assert_eq!(req.method, "GET");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// A service name from the config, or an absolute `http(s)://` URL.
    pub target: String,
    /// Path appended to the endpoint's base URL.
    pub path: String,
    /// Query parameters, appended in order.
    pub query: Vec<(String, String)>,
    /// Request headers; they override the service's configured headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Bytes,
    /// Whole-call deadline, overriding the service's `deadline_ms`.
    pub deadline_ms: Option<u64>,
    /// Per-attempt timeout, overriding the service's `timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// Sent as `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Route only to endpoints labelled with this version.
    pub version: Option<String>,
    /// The caller's trace context: every attempt sends a child of it (a new trace
    /// when `None`).
    pub trace: Option<TraceContext>,
}

impl Request {
    /// A request with no headers, query or body.
    pub fn new(
        method: impl Into<String>,
        target: impl Into<String>,
        path: impl Into<String>,
    ) -> Request {
        Request {
            method: method.into(),
            target: target.into(),
            path: path.into(),
            ..Request::default()
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = body.into();
        self
    }
}

/// Checks a header name and value, returning the reason when invalid.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| "invalid header name".to_owned())?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| "invalid header value (control characters or non-visible ASCII)".to_owned())?;
    Ok((name, value))
}
