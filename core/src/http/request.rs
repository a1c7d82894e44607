//! What a caller asks for; validated when the call starts.

use std::time::Duration;

use bytes::Bytes;

use crate::trace::TraceContext;
use reqwest::Url;
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
    /// Whole-call deadline covering every attempt, overriding the service's
    /// `deadline_ms`; 1 ms to 30 days ([`crate::MAX_DURATION_MS`]).
    pub deadline: Option<Duration>,
    /// Per-attempt timeout, overriding the service's `timeout_ms`; 1 ms to 30 days.
    pub timeout: Option<Duration>,
    /// Sent as `Idempotency-Key` on every attempt; makes a POST or PATCH retryable.
    pub idempotency_key: Option<String>,
    /// Marks the request safe to repeat with a key courier makes: without an
    /// `idempotency_key`, every attempt and hedge of the call sends one new UUIDv7 as
    /// `Idempotency-Key` (returned as [`crate::Response::idempotency_key`]), so a POST
    /// or PATCH is retried and hedged without the caller inventing keys.
    pub idempotent: bool,
    /// Route only to endpoints labelled with this version.
    pub version: Option<String>,
    /// Take the rate limit's token from this key's bucket (a tenant, a user) instead of
    /// the service's; only for a service with a `rate_limit`.
    pub rate_key: Option<String>,
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
/// Rejects a path that would leave the endpoint's base path: a `.` or `..` segment,
/// plain or percent-encoded (`%2e%2e`), or hidden behind an encoded separator
/// (`..%2fadmin`, `..%5cadmin`). URL normalisation resolves such segments before the
/// request is sent, so with endpoint `http://h/api/v1` the path `../../admin` would reach
/// `GET /admin`.
pub(crate) fn check_path(path: &str) -> crate::Result<()> {
    // URL parsing drops tabs and newlines (WHATWG), so "\t.." would become ".." after
    // the check below; no control character belongs in a path anyway.
    if path.chars().any(|c| c.is_ascii_control()) {
        return Err(crate::Error::config(
            "path",
            "must not contain control characters (tabs and newlines are dropped by URL parsing)",
        ));
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    if decoded
        .split(['/', '\\'])
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(crate::Error::config(
            "path",
            "must not contain '.' or '..' segments (plain or percent-encoded): they would leave the endpoint's base path",
        ));
    }
    Ok(())
}

pub(crate) fn check_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| "invalid header name".to_owned())?;
    let value = HeaderValue::from_str(value)
        .map_err(|_| "invalid header value (control characters or non-visible ASCII)".to_owned())?;
    Ok((name, value))
}

/// Appends `path` to the base URL's path and `query` to its query.
pub(crate) fn join(base: &Url, path: &str, query: &[(String, String)]) -> Url {
    let mut url = base.clone();
    if !path.is_empty() {
        let joined = format!(
            "{}/{}",
            base.path().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        url.set_path(&joined);
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::{Url, check_path, join};

    #[test]
    fn paths_that_climb_out_of_the_base_path_are_refused() {
        for path in [
            "..",
            "../../admin",
            "/v1/../../admin",
            "%2e%2e/%2e%2e/admin",
            "%2E%2E/admin",
            ".%2e/admin",
            "..%2fadmin",
            "..%5cadmin",
            "..\\admin",
            "a/./b",
        ] {
            let err = check_path(path).expect_err(path).to_string();
            assert!(err.starts_with("path: must not contain"), "{path}: {err}");
        }
    }

    /// Found by the request_path fuzz target: the URL parser removes the tab, leaving "..".
    #[test]
    fn fuzz_regression_tab_before_dot_dot() {
        for path in ["\t..", "..\t", ".\n.", "/v1/\r../admin"] {
            let err = check_path(path).expect_err(path).to_string();
            assert!(
                err.starts_with("path: must not contain control characters"),
                "{err}"
            );
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "",
            "/",
            "/v1/items/42",
            "a..b/c",
            "/files/.hidden",
            "/v1/x..",
            "%2e%2ex",
        ] {
            check_path(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }

    #[test]
    fn join_keeps_base_prefix_and_appends_query() {
        let base = Url::parse("http://h:1/api/").unwrap();
        let url = join(&base, "/v1/items", &[("a".into(), "1 2".into())]);
        assert_eq!(url.as_str(), "http://h:1/api/v1/items?a=1+2");
    }
}
