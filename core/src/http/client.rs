//! The HTTP client: routing each attempt to an endpoint and running the resilience
//! loop (breaker, retry with backoff and budget, Retry-After, deadline) around it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use tokio::time::Instant;
use tracing::Instrument;

use super::config::{ClientConfig, ServiceConfig};
use super::request::{check_header, check_path};
use super::stats::{ClientStats, ServiceStats};
use super::{Request, Response};
use crate::balance::{Discovery, Endpoint, EndpointSet, InFlight};
use crate::config::Validate;
use crate::error::{Error, Result};
use crate::limits::{HttpLimits, check_duration_ms};
use crate::resilience::{
    BreakerConfig, BudgetConfig, Counters, MAX_RETRY_AFTER_MS, Outcome, Policy, RetryConfig,
    is_idempotent, parse_retry_after,
};
use crate::trace::TraceContext;
use crate::urls::{parse_http_url, redact_url};

const DEFAULT_DEADLINE: Duration = Duration::from_millis(10_000);
const DEFAULT_MAX_CONCURRENCY: u32 = 1024;

/// The remaining deadline, sent on every attempt so a courier-based server can stop
/// working on a request its caller has given up on.
/// How many configured service names an "unknown service" error lists.
const KNOWN_SERVICES_SHOWN: usize = 10;
const DEADLINE_HEADER: HeaderName = HeaderName::from_static("x-courier-deadline-ms");

/// Calls services over HTTP. Cheap to clone: clones share connections and state.
///
/// Each call: fails fast with [`Error::Overloaded`] past the service's
/// `max_concurrency`; then per attempt asks the circuit breaker (failing fast with
/// [`Error::CircuitOpen`]), picks an endpoint, and sends the request under the
/// per-attempt timeout and the remaining deadline. A retryable failure is retried
/// after a full-jitter backoff (at least the `Retry-After` of a 429 or 503) when the
/// request is safe to repeat, attempts remain, the wait fits in the deadline and the
/// retry budget allows it; otherwise the last response or error is returned.
///
/// A service configured with `discovery` finds its endpoints in DNS (see
/// [`crate::DiscoveryConfig`]); its first calls wait, within their deadline, for the
/// first resolution.
///
/// # Examples
/// ```no_run
/// # async fn demo() -> courierkit::Result<()> {
/// use courierkit::{Client, ClientConfig, Request, Validate};
/// let config = ClientConfig::from_json(r#"{"services": {"orders": {"endpoints": ["http://127.0.0.1:8081"]}}}"#)?;
/// let client = Client::new(config)?;
/// let resp = client.call(Request::new("GET", "orders", "/v1/items")).await?;
/// println!("{} from {} after {} attempt(s)", resp.status, resp.endpoint, resp.attempts);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    services: HashMap<String, Service>,
    /// Policies for absolute-URL targets, by `host:port`, created on first use.
    hosts: Mutex<HashMap<String, Arc<Policy>>>,
    closed: AtomicBool,
    limits: HttpLimits,
}

struct Service {
    /// Shared with the discovery task, if any, which replaces its list.
    endpoints: Arc<EndpointSet>,
    deadline: Duration,
    timeout: Option<Duration>,
    headers: HeaderMap,
    policy: Arc<Policy>,
    /// Keeps a discovered service's DNS task running; dropping it (with the client's
    /// last clone) aborts the task.
    _discovery: Option<Discovery>,
}

/// Where a call goes: a configured service or an absolute URL.
enum Target<'a> {
    Service(&'a Service),
    Url { base: Url, display: String },
}

impl Client {
    /// Builds a client; validates `config` again, since Rust callers can build one by hand.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config, or when a discovered service names no
    /// resolver and the system's DNS configuration cannot be read; [`Error::Tls`] when
    /// TLS cannot be set up.
    pub fn new(config: ClientConfig) -> Result<Client> {
        config.validate()?;
        let limits = config.limits.clone();
        let tls = crate::tls::client_config(config.tls.as_ref(), &[b"h2", b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?;
        let services = config
            .services
            .into_iter()
            .map(|(name, svc)| Service::new(&name, svc).map(|s| (name, s)))
            .collect::<Result<_>>()?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                services,
                hosts: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
                limits,
            }),
        })
    }

    /// Sends `req` with retries and returns the final response, whatever its status.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid request or unknown service,
    /// [`Error::Overloaded`], [`Error::CircuitOpen`], [`Error::NoEndpoint`],
    /// [`Error::Timeout`] when the deadline (or the last per-attempt timeout) passes,
    /// [`Error::BudgetExhausted`] carrying the failure the budget would not retry,
    /// [`Error::Connect`] or [`Error::Tls`] for the last transport failure,
    /// [`Error::Closed`] after [`Client::close`].
    ///
    /// # Cancel safety
    /// Dropping the future aborts the attempt in flight (its connection is discarded)
    /// and releases the concurrency slot and any breaker probe it held.
    pub async fn call(&self, req: Request) -> Result<Response> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "client" });
        }
        let method = parse_method(&req.method)?;
        check_path(&req.path)?;
        self.inner.limits.check_request_body(req.body.len())?;
        let target = self.target(&req)?;
        let host_policy;
        let (deadline, per_try, base_headers, policy): (_, _, _, &Policy) = match &target {
            Target::Service(svc) => (svc.deadline, svc.timeout, Some(&svc.headers), &svc.policy),
            Target::Url { base, .. } => {
                host_policy = self.host_policy(base);
                (DEFAULT_DEADLINE, None, None, &host_policy)
            }
        };
        if let Some(ms) = req.deadline_ms {
            check_duration_ms("deadline_ms", ms, false)?;
        }
        if let Some(ms) = req.timeout_ms {
            check_duration_ms("timeout_ms", ms, false)?;
        }
        let deadline = req.deadline_ms.map_or(deadline, Duration::from_millis);
        let per_try = req.timeout_ms.map(Duration::from_millis).or(per_try);
        let headers = request_headers(base_headers, &req)?;
        let repeatable = is_idempotent(&method) || req.idempotency_key.is_some();

        let _slot = policy.admit()?;
        Counters::bump(&policy.counters.requests);
        policy.budget.deposit();
        let deadline_at = Instant::now() + deadline;
        if let Target::Service(svc) = &target
            && !svc.endpoints.is_ready()
        {
            // A discovered service's first DNS answer is still on its way.
            tokio::time::timeout_at(deadline_at, svc.endpoints.ready())
                .await
                .map_err(|_| Error::Timeout {
                    operation: "call",
                    after: deadline,
                })?;
        }
        let call_trace = req.trace.clone().unwrap_or_else(TraceContext::new_root);
        let mut attempts = 0u32;
        // Endpoints this call already tried: a retry goes elsewhere when it can.
        let mut tried: Vec<Arc<Endpoint>> = Vec::new();
        let mut last: Option<Result<Response>> = None;
        loop {
            let permit = match policy.breaker.as_ref().map(|b| b.acquire()).transpose() {
                Ok(permit) => permit,
                Err(retry_after) => {
                    Counters::bump(&policy.counters.circuit_rejected);
                    return last.unwrap_or_else(|| {
                        Err(Error::CircuitOpen {
                            service: policy.service.clone(),
                            retry_after,
                        })
                    });
                }
            };
            let (url, endpoint, flight) = self.pick(&target, &req, &tried)?;
            let remaining = deadline_at.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Error::Timeout {
                    operation: "call",
                    after: deadline,
                });
            }
            let limit = per_try.map_or(remaining, |t| t.min(remaining));
            let mut attempt_headers = headers.clone();
            attempt_headers.insert(DEADLINE_HEADER, HeaderValue::from(limit.as_millis() as u64));
            // Each attempt is a span of its own: same trace, new parent-id.
            let attempt_trace = call_trace.child();
            insert_trace(&mut attempt_headers, &attempt_trace);

            attempts += 1;
            Counters::bump(&policy.counters.attempts);
            let span = attempt_span(&method, &url, &endpoint, attempts, &attempt_trace);
            // The id is formatted only for a subscriber that wants the span.
            if req.trace.is_some() && !span.is_disabled() {
                span.record("parent_span_id", call_trace.span_id());
            }
            let sent = self.attempt(
                method.clone(),
                url,
                attempt_headers,
                req.body.clone(),
                &endpoint,
                attempt_trace,
            );
            let result = match tokio::time::timeout(limit, sent)
                .instrument(span.clone())
                .await
            {
                Ok(result) => result,
                Err(_) if limit < remaining => Err(Error::Timeout {
                    operation: "attempt",
                    after: limit,
                }),
                Err(_) => Err(Error::Timeout {
                    operation: "call",
                    after: deadline,
                }),
            };
            let outcome = match &result {
                Ok(resp) => Outcome::Status(resp.status),
                Err(e) => Outcome::of_error(e),
            };
            match &result {
                Ok(resp) => {
                    span.record("http.response.status_code", resp.status);
                    if resp.status >= 500 {
                        span.record("error.type", resp.status);
                    }
                }
                Err(e) => {
                    span.record("error.type", e.kind().code());
                }
            }
            if let Some(permit) = permit {
                permit.record(outcome.is_service_failure());
            }
            if let (Some(flight), Target::Service(svc)) = (flight, &target) {
                // Errors, 5xx and 429 count as a slow, failed sample for balancing.
                let failed = result
                    .as_ref()
                    .map_or(true, |r| r.status >= 500 || r.status == 429);
                let endpoint = flight.endpoint.clone();
                if flight.finish(failed, svc.endpoints.outlier()) {
                    svc.endpoints.try_eject(&endpoint);
                }
                tried.push(endpoint);
            }
            let result = result.map(|mut resp| {
                resp.attempts = attempts;
                resp
            });
            if attempts >= policy.retry.max_attempts
                || !outcome.is_retryable(&policy.retry, repeatable)
            {
                return result;
            }
            let Some(wait) = retry_wait(policy, attempts, &result) else {
                return result;
            };
            if Instant::now() + wait >= deadline_at {
                // Sleeping would use up the deadline: the caller gets the failure now.
                return result;
            }
            if !policy.budget.withdraw() {
                Counters::bump(&policy.counters.budget_denied);
                return result.map_err(|last| Error::BudgetExhausted {
                    service: policy.service.clone(),
                    attempts,
                    last: Box::new(last),
                });
            }
            Counters::bump(&policy.counters.retries);
            tracing::debug!(service = %policy.service, attempt = attempts, wait_ms = wait.as_millis() as u64, ?outcome, "retry");
            tokio::time::sleep(wait).await;
            last = Some(result);
        }
    }

    /// Counters per service since the client was created.
    pub fn stats(&self) -> ClientStats {
        let mut stats = ClientStats::default();
        for (name, svc) in &self.inner.services {
            let mut service = ServiceStats::of(&svc.policy);
            service.endpoints = svc.endpoints.stats();
            stats.services.insert(name.clone(), service);
        }
        let hosts = self
            .inner
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (host, policy) in hosts.iter() {
            stats
                .services
                .insert(host.clone(), ServiceStats::of(policy));
        }
        stats
    }

    /// Marks the client closed; later calls fail with [`Error::Closed`]. Calls in flight finish.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
    }

    fn target<'a>(&'a self, req: &Request) -> Result<Target<'a>> {
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
            let display = redact_url(base.as_str());
            return Ok(Target::Url { base, display });
        }
        self.inner
            .services
            .get(&req.target)
            .map(Target::Service)
            .ok_or_else(|| {
                let mut known: Vec<_> = self.inner.services.keys().map(String::as_str).collect();
                known.sort_unstable();
                // A few names help with a typo; thousands only bloat the message.
                let shown = known.len().min(KNOWN_SERVICES_SHOWN);
                let more = match known.len() - shown {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                Error::config(
                    "target",
                    format!(
                        "unknown service {:?} (configured: {}{more})",
                        truncated(&req.target, 256),
                        known[..shown].join(", ")
                    ),
                )
            })
    }

    /// The URL and displayed endpoint of the next attempt.
    /// The URL and displayed endpoint of the next attempt, and for a balanced service
    /// the in-flight guard that reports its outcome.
    fn pick(
        &self,
        target: &Target<'_>,
        req: &Request,
        tried: &[Arc<Endpoint>],
    ) -> Result<(Url, String, Option<InFlight>)> {
        match target {
            Target::Url { base, display } => {
                Ok((join(base, &req.path, &req.query), display.clone(), None))
            }
            Target::Service(svc) => {
                let endpoint = svc
                    .endpoints
                    .select(req.version.as_deref(), tried)
                    .map_err(|reason| Error::NoEndpoint {
                        service: req.target.clone(),
                        reason,
                    })?;
                let url = join(&endpoint.url, &req.path, &req.query);
                let display = endpoint.display.clone();
                Ok((url, display, Some(endpoint.start())))
            }
        }
    }

    /// Absolute-URL targets still get retries, a budget and a breaker, keyed by host.
    fn host_policy(&self, base: &Url) -> Arc<Policy> {
        let key = format!(
            "{}:{}",
            base.host_str().unwrap_or_default(),
            base.port_or_known_default().unwrap_or(0)
        );
        let mut hosts = self
            .inner
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        hosts
            .entry(key)
            .or_insert_with_key(|key| {
                Arc::new(Policy::new(
                    key,
                    RetryConfig::default(),
                    &BudgetConfig::default(),
                    Some(BreakerConfig::default()),
                    DEFAULT_MAX_CONCURRENCY,
                ))
            })
            .clone()
    }

    async fn attempt(
        &self,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: bytes::Bytes,
        endpoint: &str,
        trace: TraceContext,
    ) -> Result<Response> {
        let limits = &self.inner.limits;
        let transport = |e: reqwest::Error| {
            if head_too_large(&e) {
                limits.response_head_exceeded()
            } else {
                transport_error(e, endpoint)
            }
        };
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
        let head_bytes: usize = resp
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if head_bytes as u64 > u64::from(limits.max_response_header_bytes) {
            return Err(limits.response_head_exceeded());
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
            endpoint: endpoint.to_owned(),
            trace,
        })
    }
}

impl Service {
    fn new(name: &str, cfg: ServiceConfig) -> Result<Service> {
        let endpoints = cfg
            .endpoints
            .into_iter()
            .map(|ep| {
                // Validated already; the error arm only guards hand-built configs.
                let url =
                    parse_http_url(&ep.url).map_err(|reason| Error::config("endpoints", reason))?;
                Ok(Arc::new(Endpoint::new(
                    url.clone(),
                    redact_url(url.as_str()),
                    ep.version,
                    ep.weight,
                )))
            })
            .collect::<Result<_>>()?;
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let (n, v) = check_header(name, value)
                .map_err(|reason| Error::config(format!("headers.{name}"), reason))?;
            headers.insert(n, v);
        }
        let endpoints = Arc::new(EndpointSet::new(
            endpoints,
            cfg.balancer,
            cfg.outlier,
            cfg.versions,
        ));
        let discovery = cfg
            .discovery
            .map(|d| {
                let at = format!("services.{name}.discovery");
                Discovery::spawn(name, &at, &d, Arc::clone(&endpoints))
            })
            .transpose()?;
        Ok(Service {
            endpoints,
            deadline: Duration::from_millis(cfg.deadline_ms),
            timeout: cfg.timeout_ms.map(Duration::from_millis),
            headers,
            policy: Arc::new(Policy::new(
                name,
                cfg.retry,
                &cfg.budget,
                cfg.breaker,
                cfg.max_concurrency,
            )),
            _discovery: discovery,
        })
    }
}

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

/// Adds the W3C headers for `trace`. Written here rather than through a carrier map:
/// this runs on every attempt, and the names are static.
fn insert_trace(headers: &mut HeaderMap, trace: &TraceContext) {
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
fn attempt_span(
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

/// Parses a method case-insensitively; the uppercase copy is made only when needed.
fn parse_method(raw: &str) -> Result<Method> {
    let parsed = if raw.bytes().any(|b| b.is_ascii_lowercase()) {
        Method::from_bytes(raw.to_ascii_uppercase().as_bytes())
    } else {
        Method::from_bytes(raw.as_bytes())
    };
    parsed.map_err(|_| Error::config("method", format!("not an HTTP method: {raw:?}")))
}

/// The service's headers overlaid with the request's, plus `Idempotency-Key`.
fn request_headers(base: Option<&HeaderMap>, req: &Request) -> Result<HeaderMap> {
    let mut headers = base.cloned().unwrap_or_default();
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
    Ok(headers)
}

/// How long to wait before the next attempt: full-jitter backoff, but at least the
/// `Retry-After` of a 429 or 503. `None` when the server asks for longer than courier
/// ever waits ([`MAX_RETRY_AFTER_MS`]).
fn retry_wait(policy: &Policy, attempts: u32, result: &Result<Response>) -> Option<Duration> {
    let backoff = policy.backoff.delay(attempts - 1, &mut rand::rng());
    let retry_after = result
        .as_ref()
        .ok()
        .filter(|resp| matches!(resp.status, 429 | 503))
        .and_then(|resp| resp.header("retry-after"))
        .and_then(|value| parse_retry_after(value, SystemTime::now()));
    match retry_after {
        Some(asked) if asked > Duration::from_millis(MAX_RETRY_AFTER_MS) => None,
        Some(asked) => Some(backoff.max(asked)),
        None => Some(backoff),
    }
}

/// Reads a response body up to `limits.max_response_body_bytes`: refused from its
/// `Content-Length` before reading when that is already over, else read chunk by chunk
/// and abandoned (closing the connection) as soon as it passes the limit, so an endless
/// or huge body costs at most the limit in memory.
async fn read_body(
    mut resp: reqwest::Response,
    limits: &HttpLimits,
    transport: impl Fn(reqwest::Error) -> Error,
) -> Result<bytes::Bytes> {
    let max = limits.max_response_body_bytes;
    if resp.content_length().is_some_and(|len| len > max) {
        return Err(limits.response_body_exceeded());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(&transport)? {
        if (body.len() + chunk.len()) as u64 > max {
            return Err(limits.response_body_exceeded());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// At most `max` bytes of `text` (cut at a character boundary), marked when cut, so a
/// caller's huge argument cannot make a huge error message.
fn truncated(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len()).into()
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

/// Maps a reqwest failure without its URL, which may carry credentials.
fn transport_error(e: reqwest::Error, endpoint: &str) -> Error {
    let e = e.without_url();
    if let Some(reason) = crate::tls::tls_failure(&e) {
        return Error::Tls { reason };
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
    fn long_arguments_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("short", 256), "short");
        let long = "é".repeat(200);
        let cut = truncated(&long, 255);
        assert!(cut.starts_with(&"é".repeat(127)) && cut.ends_with("... (400 bytes)"));
    }

    #[test]
    fn an_unknown_service_error_lists_a_few_names_not_thousands() {
        let services: serde_json::Map<_, _> = (0..10_000)
            .map(|i| {
                (
                    format!("svc-{i:05}"),
                    serde_json::json!({"endpoints": ["http://127.0.0.1:1"]}),
                )
            })
            .collect();
        let client = Client::new(
            ClientConfig::from_value(serde_json::json!({ "services": services })).unwrap(),
        )
        .unwrap();
        let err = client
            .target(&Request::new("GET", "nope", "/"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.len() < 400, "{} bytes: {err}", err.len());
        assert!(
            err.contains("svc-00000") && err.ends_with("and 9990 more)"),
            "{err}"
        );
    }

    #[test]
    fn join_keeps_base_prefix_and_appends_query() {
        let base = Url::parse("http://h:1/api/").unwrap();
        let url = join(&base, "/v1/items", &[("a".into(), "1 2".into())]);
        assert_eq!(url.as_str(), "http://h:1/api/v1/items?a=1+2");
    }
}
