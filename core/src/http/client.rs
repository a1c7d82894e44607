//! The HTTP client: routing a request to an endpoint and running it under a deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use super::request::check_header;
use super::{Request, Response};
use crate::config::{ClientConfig, ServiceConfig, Validate, parse_http_url, redact_url};
use crate::error::{Error, Result};

const DEFAULT_DEADLINE: Duration = Duration::from_millis(10_000);

/// Calls services over HTTP. Cheap to clone: clones share connections and state.
///
/// # Examples
/// ```no_run
/// # async fn demo() -> courier::Result<()> {
/// use courier::{Client, ClientConfig, Request, Validate};
/// let config = ClientConfig::from_json(r#"{"services": {"orders": {"endpoints": ["http://127.0.0.1:8081"]}}}"#)?;
/// let client = Client::new(config)?;
/// let resp = client.call(Request::new("GET", "orders", "/v1/items")).await?;
/// println!("{} from {}", resp.status, resp.endpoint);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    services: HashMap<String, Service>,
    closed: AtomicBool,
}

struct Service {
    endpoints: Vec<Endpoint>,
    /// Rotates through endpoints; weighted balancing replaces this in `balance/`.
    next: AtomicUsize,
    deadline: Duration,
    timeout: Option<Duration>,
    headers: HeaderMap,
}

struct Endpoint {
    url: Url,
    /// `url` with credentials redacted, computed once: it goes into every response.
    display: String,
    version: Option<String>,
}

/// Where one attempt goes, and the limits it runs under.
struct Route<'a> {
    url: Url,
    endpoint: String,
    deadline: Duration,
    timeout: Option<Duration>,
    headers: Option<&'a HeaderMap>,
}

impl Client {
    /// Builds a client; validates `config` again, since Rust callers can build one by hand.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config, [`Error::Tls`] when TLS cannot be set up.
    pub fn new(config: ClientConfig) -> Result<Client> {
        config.validate()?;
        let tls = crate::tls::client_config(&[b"h2", b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        let services = config
            .services
            .into_iter()
            .map(|(name, svc)| Service::new(svc).map(|s| (name, s)))
            .collect::<Result<_>>()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                services,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Sends `req` and returns the response, whatever its status.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid request or unknown service, [`Error::NoEndpoint`]
    /// when no endpoint has the requested version, [`Error::Timeout`] when the deadline or
    /// per-attempt timeout passes, [`Error::Connect`] or [`Error::Tls`] for transport
    /// failures, [`Error::Closed`] after [`Client::close`].
    ///
    /// # Cancel safety
    /// Dropping the future aborts the request; the connection is discarded, not reused.
    pub async fn call(&self, req: Request) -> Result<Response> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "client" });
        }
        let method =
            Method::from_bytes(req.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                Error::config("method", format!("not an HTTP method: {:?}", req.method))
            })?;
        let route = self.route(&req)?;
        let deadline = req
            .deadline_ms
            .map_or(route.deadline, Duration::from_millis);
        let timeout = req.timeout_ms.map(Duration::from_millis).or(route.timeout);
        let mut headers = route.headers.cloned().unwrap_or_default();
        for (name, value) in &req.headers {
            let (n, v) = check_header(name, value)
                .map_err(|reason| Error::config(format!("headers.{name}"), reason))?;
            headers.insert(n, v);
        }
        if let Some(key) = &req.idempotency_key {
            let value = HeaderValue::from_str(key)
                .map_err(|_| Error::config("idempotency_key", "not a valid header value"))?;
            headers.insert(HeaderName::from_static("idempotency-key"), value);
        }
        let attempt = self.attempt(method, route.url, headers, req.body, &route.endpoint);
        let attempt = async {
            match timeout {
                Some(t) => tokio::time::timeout(t, attempt)
                    .await
                    .unwrap_or(Err(Error::Timeout {
                        operation: "attempt",
                        after: t,
                    })),
                None => attempt.await,
            }
        };
        tokio::time::timeout(deadline, attempt)
            .await
            .unwrap_or(Err(Error::Timeout {
                operation: "call",
                after: deadline,
            }))
    }

    /// Marks the client closed; later calls fail with [`Error::Closed`]. Calls in flight finish.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }

    fn route<'a>(&'a self, req: &Request) -> Result<Route<'a>> {
        if req.target.contains("://") {
            let base = Url::parse(&req.target)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .ok_or_else(|| {
                    Error::config(
                        "target",
                        format!("not an http(s) URL: {}", redact_url(&req.target)),
                    )
                })?;
            return Ok(Route {
                url: join(&base, &req.path, &req.query),
                endpoint: redact_url(base.as_str()),
                deadline: DEFAULT_DEADLINE,
                timeout: None,
                headers: None,
            });
        }
        let svc = self.inner.services.get(&req.target).ok_or_else(|| {
            let mut known: Vec<_> = self.inner.services.keys().map(String::as_str).collect();
            known.sort_unstable();
            Error::config(
                "target",
                format!(
                    "unknown service {:?} (configured: {})",
                    req.target,
                    known.join(", ")
                ),
            )
        })?;
        let endpoint = svc
            .pick(req.version.as_deref())
            .ok_or_else(|| Error::NoEndpoint {
                service: req.target.clone(),
                reason: format!(
                    "no endpoint has version {:?}",
                    req.version.as_deref().unwrap_or_default()
                ),
            })?;
        Ok(Route {
            url: join(&endpoint.url, &req.path, &req.query),
            endpoint: endpoint.display.clone(),
            deadline: svc.deadline,
            timeout: svc.timeout,
            headers: Some(&svc.headers),
        })
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: bytes::Bytes,
        endpoint: &str,
    ) -> Result<Response> {
        let transport = |e: reqwest::Error| transport_error(e, endpoint);
        let resp = self
            .inner
            .http
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
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
        let body = resp.bytes().await.map_err(transport)?;
        Ok(Response {
            status,
            headers,
            body,
            attempts: 1,
            endpoint: endpoint.to_owned(),
        })
    }
}

impl Service {
    fn new(cfg: ServiceConfig) -> Result<Service> {
        let endpoints = cfg
            .endpoints
            .into_iter()
            .map(|ep| {
                // Validated already; the error arm only guards hand-built configs.
                let url =
                    parse_http_url(&ep.url).map_err(|reason| Error::config("endpoints", reason))?;
                Ok(Endpoint {
                    display: redact_url(url.as_str()),
                    url,
                    version: ep.version,
                })
            })
            .collect::<Result<_>>()?;
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let (n, v) = check_header(name, value)
                .map_err(|reason| Error::config(format!("headers.{name}"), reason))?;
            headers.insert(n, v);
        }
        Ok(Service {
            endpoints,
            next: AtomicUsize::new(0),
            deadline: Duration::from_millis(cfg.deadline_ms),
            timeout: cfg.timeout_ms.map(Duration::from_millis),
            headers,
        })
    }

    fn pick(&self, version: Option<&str>) -> Option<&Endpoint> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(version) = version else {
            return Some(&self.endpoints[n % self.endpoints.len()]);
        };
        let matching = || {
            self.endpoints
                .iter()
                .filter(|ep| ep.version.as_deref() == Some(version))
        };
        let count = matching().count();
        if count == 0 {
            return None;
        }
        matching().nth(n % count)
    }
}

/// Appends `path` to the base URL's path and `query` to its query.
fn join(base: &Url, path: &str, query: &[(String, String)]) -> Url {
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

/// Maps a reqwest failure without its URL, which may carry credentials.
fn transport_error(e: reqwest::Error, endpoint: &str) -> Error {
    let e = e.without_url();
    if crate::tls::is_tls_failure(&e) {
        return Error::Tls { reason: chain(&e) };
    }
    Error::Connect {
        operation: if e.is_connect() { "connect" } else { "request" },
        target: endpoint.to_owned(),
        reason: chain(&e),
        source: Some(Box::new(e)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_base_prefix_and_appends_query() {
        let base = Url::parse("http://h:1/api/").unwrap();
        let url = join(&base, "/v1/items", &[("a".into(), "1 2".into())]);
        assert_eq!(url.as_str(), "http://h:1/api/v1/items?a=1+2");
    }
}
