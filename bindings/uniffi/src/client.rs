//! `Client`: HTTP calls to named services, as a uniffi object.

use std::collections::HashMap;
use std::sync::Arc;

use courierkit::{ClientConfig, Validate};

use crate::cancel::{CancelToken, cancellable};
use crate::duration::Millis;
use crate::error::CourierError;
use crate::telemetry::{ConfigJson, ConfigPath};

/// One query parameter. A list of pairs rather than a map, so order and repeated names
/// (`?tag=a&tag=b`) reach the server as given.
#[derive(Debug, Clone, uniffi::Record)]
pub struct QueryParam {
    /// Parameter name, unencoded.
    pub name: String,
    /// Parameter value, unencoded.
    pub value: String,
}

/// One HTTP call; the fields of core's `Request`. Every field but `method` and `target`
/// has a default, so Kotlin and Swift callers name only what they set.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Request {
    /// HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// A service name from the config, or an absolute `http(s)://` URL.
    pub target: String,
    /// Path appended to the endpoint's base URL.
    #[uniffi(default = "")]
    pub path: String,
    /// Request headers; they override the service's configured headers.
    #[uniffi(default)]
    pub headers: HashMap<String, String>,
    /// Query parameters, appended in order.
    #[uniffi(default)]
    pub query: Vec<QueryParam>,
    /// Request body; none sends an empty body.
    #[uniffi(default = None)]
    pub body: Option<Vec<u8>>,
    /// Whole-call deadline covering every attempt, overriding the service's
    /// `deadline_ms`.
    #[uniffi(default = None)]
    pub deadline: Option<Millis>,
    /// Per-attempt timeout, overriding the service's `timeout_ms`.
    #[uniffi(default = None)]
    pub timeout: Option<Millis>,
    /// Sent as `Idempotency-Key`; makes POST and PATCH retryable.
    #[uniffi(default = None)]
    pub idempotency_key: Option<String>,
    /// Without `idempotency_key`: courier makes one key (a UUIDv7) for the call and sends
    /// it on every attempt and hedge, so a POST or PATCH is retried and hedged safely.
    #[uniffi(default = false)]
    pub idempotent: bool,
    /// Route only to endpoints labelled with this version.
    #[uniffi(default = None)]
    pub version: Option<String>,
    /// Take the rate limit's token from this key's bucket (a tenant, a user); only for
    /// a service with a `rate_limit`.
    #[uniffi(default = None)]
    pub rate_key: Option<String>,
    /// The caller's trace carrier (`traceparent`, `tracestate`, `baggage`; a
    /// `TraceContext` gives it with `toCarrier()`); every attempt sends a child of it, or
    /// a new trace. The Kotlin `call` fills it from the current OpenTelemetry span.
    #[uniffi(default = None)]
    pub trace: Option<HashMap<String, String>>,
}

impl TryFrom<Request> for courierkit::Request {
    type Error = CourierError;

    fn try_from(r: Request) -> Result<Self, CourierError> {
        Ok(courierkit::Request {
            method: r.method,
            target: r.target,
            path: r.path,
            query: r.query.into_iter().map(|q| (q.name, q.value)).collect(),
            headers: r.headers.into_iter().collect(),
            body: r.body.map(Into::into).unwrap_or_default(),
            deadline: Millis::optional(r.deadline, "deadline_ms")?,
            timeout: Millis::optional(r.timeout, "timeout_ms")?,
            idempotency_key: r.idempotency_key,
            idempotent: r.idempotent,
            version: r.version,
            rate_key: r.rate_key,
            trace: r.trace.map(courierkit::TraceContext::from_carrier),
        })
    }
}

/// A completed exchange, whatever its status: a final 4xx or 5xx is a response, not an
/// error.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers with lowercase names; repeated names joined with `", "` by core.
    pub headers: HashMap<String, String>,
    /// Response body.
    pub body: Vec<u8>,
    /// Attempts made, 1 when the first attempt answered.
    pub attempts: u32,
    /// Base URL of the endpoint that answered, credentials redacted.
    pub endpoint: String,
    /// The `Idempotency-Key` every attempt sent (the caller's or courier's); none when
    /// none was sent.
    pub idempotency_key: Option<String>,
    /// The trace carrier the answered attempt sent. The Kotlin and Swift wrappers add
    /// `traceContext()`, the same as a `TraceContext` (not a field or a record method
    /// here: a record that refers to an object loses Swift's `Equatable` and `Hashable`).
    pub trace: HashMap<String, String>,
}

impl From<courierkit::Response> for Response {
    fn from(r: courierkit::Response) -> Self {
        Response {
            status: r.status,
            headers: r.header_map().into_iter().collect(),
            body: r.body.into(),
            attempts: r.attempts,
            endpoint: r.endpoint,
            idempotency_key: r.idempotency_key,
            trace: r.trace.to_carrier().into_iter().collect(),
        }
    }
}

/// Resilience counters for one service, as core's `ServiceStats`.
///
/// Counters keep core's `u64` (Kotlin `ULong`, Swift `UInt64`) rather than a signed
/// type, so the values match core's exactly and can never read as negative. Unlike
/// `CourierError`, the breaker state stays core's string rather than a generated enum:
/// dashboards and logs compare it with what Python and Node report, and a state core
/// adds later reaches callers without a binding release.
///
/// `PartialEq` but not `Eq`: each endpoint's `ewma_ms` is a float.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ServiceStats {
    /// Calls started; a call counts once however many attempts it took.
    pub requests: u64,
    /// Attempts sent to the network.
    pub attempts: u64,
    /// Attempts beyond each call's first.
    pub retries: u64,
    /// Retries the retry budget refused.
    pub budget_denied: u64,
    /// Calls refused by the concurrency limit (`Overloaded`).
    pub overloaded: u64,
    /// Attempts refused because the breaker was open (`CircuitOpen`).
    pub circuit_rejected: u64,
    /// Hedged attempts sent (each also counts in `attempts`).
    pub hedges: u64,
    /// Calls whose answer came from a hedged attempt.
    pub hedges_won: u64,
    /// Calls refused by the rate limit (`RateLimited`).
    pub rate_limited: u64,
    /// The rate limit's current calls per second (lower while it recovers from a 429);
    /// none without a rate limit.
    pub rate_per_sec: Option<f64>,
    /// Calls in flight when the snapshot was taken.
    pub in_flight: u64,
    /// The calls that may be in flight: `max_concurrency`, or the adaptive limit now.
    pub concurrency_limit: u64,
    /// `closed`, `open`, `half_open`, or `disabled` (no breaker configured).
    pub breaker_state: String,
    /// Transitions to open.
    pub breaker_opened: u64,
    /// Transitions to half-open.
    pub breaker_half_opened: u64,
    /// Transitions back to closed.
    pub breaker_closed: u64,
    /// Per endpoint, in core's order; empty for absolute-URL targets, which are not
    /// balanced.
    pub endpoints: Vec<EndpointStats>,
}

impl From<courierkit::ServiceStats> for ServiceStats {
    fn from(s: courierkit::ServiceStats) -> Self {
        ServiceStats {
            requests: s.requests,
            attempts: s.attempts,
            retries: s.retries,
            budget_denied: s.budget_denied,
            overloaded: s.overloaded,
            circuit_rejected: s.circuit_rejected,
            hedges: s.hedges,
            hedges_won: s.hedges_won,
            rate_limited: s.rate_limited,
            rate_per_sec: s.rate_per_sec,
            in_flight: s.in_flight,
            concurrency_limit: s.concurrency_limit,
            breaker_state: s.breaker_state,
            breaker_opened: s.breaker_opened,
            breaker_half_opened: s.breaker_half_opened,
            breaker_closed: s.breaker_closed,
            endpoints: s.endpoints.into_iter().map(EndpointStats::from).collect(),
        }
    }
}

/// One endpoint of a service, as core's `EndpointStats`.
///
/// Counters keep core's unsigned types, as in [`ServiceStats`].
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct EndpointStats {
    /// Base URL, credentials redacted.
    pub url: String,
    /// Version label, if any.
    pub version: Option<String>,
    /// Balancing weight.
    pub weight: u32,
    /// Attempts sent to it (retries included, so they sum to the service's `attempts`).
    pub requests: u64,
    /// Attempts that failed (errors, 5xx, 429).
    pub failures: u64,
    /// Current peak-EWMA latency estimate, in milliseconds.
    pub ewma_ms: f64,
    /// Attempts in flight when the snapshot was taken.
    pub in_flight: u64,
    /// Whether outlier ejection has taken it out of rotation now.
    pub ejected: bool,
    /// Times outlier ejection took it out of rotation.
    pub times_ejected: u32,
}

impl From<courierkit::EndpointStats> for EndpointStats {
    fn from(e: courierkit::EndpointStats) -> Self {
        EndpointStats {
            url: e.url,
            version: e.version,
            weight: e.weight,
            requests: e.requests,
            failures: e.failures,
            ewma_ms: e.ewma_ms,
            in_flight: e.in_flight,
            ejected: e.ejected,
            times_ejected: e.times_ejected,
        }
    }
}

/// A snapshot of [`Client::stats`], as core's `ClientStats`.
///
/// A record rather than a live object, so reading it takes no further FFI calls and it
/// cannot change while a test or a metrics exporter walks it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ClientStats {
    /// By service name; absolute-URL targets appear under `host:port`. A map rather than
    /// core's sorted map because uniffi maps are unordered in Kotlin and Swift anyway;
    /// sort the keys to print them stably.
    pub services: HashMap<String, ServiceStats>,
}

impl From<courierkit::ClientStats> for ClientStats {
    fn from(s: courierkit::ClientStats) -> Self {
        ClientStats {
            services: s
                .services
                .into_iter()
                .map(|(name, stats)| (name, stats.into()))
                .collect(),
        }
    }
}

/// Sends requests to the services named in its config.
///
/// Kotlin: `Client(configJson)` and `suspend fun call`; its `close()` is renamed
/// `shutdown()` there, because uniffi objects already implement `AutoCloseable.close()`
/// (which frees the Rust handle). Swift: `Client(configJson:)`, `call` is `async throws`.
#[derive(uniffi::Object)]
pub struct Client {
    inner: courierkit::Client,
}

impl Client {
    /// Core's client, for the JVM fast path (jvm.rs).
    pub(crate) fn core(&self) -> &courierkit::Client {
        &self.inner
    }

    fn build(config: courierkit::Result<ClientConfig>) -> Result<Self, CourierError> {
        crate::telemetry::install();
        Ok(Client {
            inner: config.and_then(courierkit::Client::new)?,
        })
    }
}

#[uniffi::export]
impl Client {
    /// Builds a client from a `ClientConfig` as JSON text (the schema is in docs/api.md).
    ///
    /// # Errors
    /// `Config` naming the field path of the first invalid value; `Tls` when TLS
    /// cannot be set up.
    #[uniffi::constructor]
    pub fn new(config_json: ConfigJson) -> Result<Self, CourierError> {
        Self::build(ClientConfig::from_json(&config_json.0))
    }

    /// Builds a client from a `.toml` or JSON config file, through core's loader.
    ///
    /// # Errors
    /// `Config` when the file cannot be read or holds an invalid config.
    #[uniffi::constructor]
    pub fn from_file(path: ConfigPath) -> Result<Self, CourierError> {
        Self::build(ClientConfig::from_file(path.0))
    }

    /// Sends `request` and returns the response, whatever its status.
    ///
    /// # Errors
    /// `Config` for an invalid request or unknown service, `NoEndpoint`, `Timeout`
    /// when the deadline passes, `Connect` or `Tls` for transport failures, `Closed`
    /// after `close()`.
    ///
    /// # Cancel safety
    /// Cancelling the coroutine aborts the request, and so does cancelling `cancel` (the
    /// Swift wrapper cancels it with its task).
    #[uniffi::method(default(cancel = None))]
    pub async fn call(
        &self,
        request: Request,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Response, CourierError> {
        let client = self.inner.clone();
        let request = courierkit::Request::try_from(request)?;
        crate::run(cancellable(
            cancel,
            async move { client.call(request).await },
        ))
        .await
        .map(Response::from)
    }

    /// Replaces the configuration of the live client atomically, from a `ClientConfig`
    /// as JSON text: later calls use it, calls in flight finish under the old one, and
    /// what did not change (services, endpoints, counters) is kept.
    ///
    /// # Errors
    /// `Config` naming the field path of the first invalid value, `Tls`, `Closed`; the
    /// client then keeps its current configuration whole.
    pub fn reconfigure(&self, config_json: ConfigJson) -> Result<(), CourierError> {
        let config = ClientConfig::from_json(&config_json.0)?;
        Ok(self.inner.reconfigure(config)?)
    }

    /// Counters per service since the client was created.
    ///
    /// Synchronous (not `suspend`/`async`): it reads atomic counters and takes core's
    /// short-held locks, never waits on I/O, so a metrics scrape or a UI thread can call
    /// it directly. It still answers after `close()`, so the final counts can be read.
    pub fn stats(&self) -> ClientStats {
        self.inner.stats().into()
    }

    /// Marks the client closed: later calls fail with `Closed`; calls in flight finish.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// The caller's remaining budget from an incoming HTTP request's headers
/// (`x-courier-deadline-ms`, which courier clients send; names match case-insensitively),
/// for a server to pass on as the deadline of its own calls and publishes; none when the
/// caller sent none.
///
/// # Errors
/// `Config` naming the header when its value is not whole milliseconds up to 30 days.
#[uniffi::export]
pub fn deadline_from_headers(
    headers: HashMap<String, String>,
) -> Result<Option<Millis>, CourierError> {
    let budget =
        courierkit::deadline_from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    Ok(budget.map(Millis::from))
}
