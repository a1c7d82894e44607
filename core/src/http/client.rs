//! The HTTP client: routing each attempt to an endpoint and running the resilience
//! loop (breaker, retry with backoff and budget, Retry-After, deadline, hedging) around it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use reqwest::Url;
use tokio::time::Instant;

use super::call::{
    AttemptResult, Attempts, Launch, Next, Plan, Sent, parse_method, request_headers,
};
use super::config::ClientConfig;
use super::request::check_path;
use super::service::Target;
use super::state::State;
use super::stats::{ClientStats, ServiceStats};
use super::{Request, Response};
use crate::config::Validate;
use crate::error::{Error, Result};
use crate::limits::{HttpLimits, check_duration};
use crate::resilience::{
    BreakerConfig, BudgetConfig, Concurrency, Hedging, Policy, RetryConfig, is_idempotent,
};
use crate::urls::redact_url;

const DEFAULT_DEADLINE: Duration = Duration::from_millis(10_000);
const DEFAULT_MAX_CONCURRENCY: u32 = 1024;

/// How many configured service names an "unknown service" error lists.
const KNOWN_SERVICES_SHOWN: usize = 10;

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
    /// The services and connection pool calls use; each call loads it once, and
    /// [`Client::reconfigure`] swaps it.
    state: ArcSwap<State>,
    /// One reconfiguration at a time: each builds on the state before it.
    reconfiguring: Mutex<()>,
    /// Policies for absolute-URL targets, by `host:port`, created on first use.
    hosts: Mutex<HashMap<String, Arc<Policy>>>,
    closed: AtomicBool,
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
        let state = State::build(config, None)?;
        Ok(Client {
            inner: Arc::new(Inner {
                state: ArcSwap::from_pointee(state),
                reconfiguring: Mutex::new(()),
                hosts: Mutex::new(HashMap::new()),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Replaces the configuration of a live client, atomically: calls that start
    /// afterwards use the new services, endpoints and policies; calls in flight finish
    /// under the ones they started with. What did not change is kept: a service with
    /// the same settings keeps its state whole (breaker, limits, latencies); a changed
    /// one keeps its counters and the endpoints it still lists with the same URL,
    /// version and weight (their latency estimates and ejections); the connection pool
    /// is kept unless `tls` changed. A service that is gone stops taking calls.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field for an invalid config, [`Error::Tls`] when its
    /// TLS cannot be set up, [`Error::Closed`] after [`Client::close`]. On any error
    /// the client keeps its current configuration whole.
    pub fn reconfigure(&self, config: ClientConfig) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "client" });
        }
        config.validate()?;
        let _one = self
            .inner
            .reconfiguring
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let next = State::build(config, Some(&self.inner.state.load()))?;
        self.inner.state.store(Arc::new(next));
        Ok(())
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
        let state = self.inner.state.load_full();
        let plan = self.plan(&state, &req)?;
        let deadline_at = Instant::now() + plan.deadline;
        // The rate limit's wait comes before the concurrency slot: a call waiting for
        // its token holds no slot, and its wait is not latency the adaptive limit reads.
        plan.policy
            .pace(plan.req.rate_key.as_deref(), plan.deadline)
            .await?;
        let slot = plan.policy.admit()?;
        let result = run(&state, &plan, deadline_at).await;
        slot.finish();
        result
    }

    /// `GET target + path`: [`Client::call`] with `Request::new("GET", target, path)`.
    ///
    /// Each verb has a shortcut, the same seven as in every binding (`get`, `head`,
    /// `options`, `delete` without a body; `post`, `put`, `patch` with one). They take
    /// the service's settings as they are; for headers, a query, a deadline, an
    /// idempotency key or a parent trace, build a [`Request`] and pass it to
    /// [`Client::call`].
    ///
    /// # Errors
    /// As [`Client::call`]. A final 4xx or 5xx is an `Ok` response.
    ///
    /// # Cancel safety
    /// As [`Client::call`].
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: courierkit::Client) -> courierkit::Result<()> {
    /// let resp = client.get("orders", "/v1/items").await?;
    /// if resp.status == 200 {
    ///     println!("{}", resp.text());
    /// }
    /// let created = client.post("orders", "/v1/orders", r#"{"sku": "a"}"#).await?;
    /// println!("{} after {} attempt(s)", created.status, created.attempts);
    /// # Ok(()) }
    /// ```
    pub async fn get(
        &self,
        target: impl Into<String>,
        path: impl Into<String>,
    ) -> Result<Response> {
        self.call(Request::new("GET", target, path)).await
    }

    /// `HEAD target + path`; see [`Client::get`].
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn head(
        &self,
        target: impl Into<String>,
        path: impl Into<String>,
    ) -> Result<Response> {
        self.call(Request::new("HEAD", target, path)).await
    }

    /// `OPTIONS target + path`; see [`Client::get`].
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn options(
        &self,
        target: impl Into<String>,
        path: impl Into<String>,
    ) -> Result<Response> {
        self.call(Request::new("OPTIONS", target, path)).await
    }

    /// `DELETE target + path`; see [`Client::get`]. DELETE is idempotent, so it is
    /// retried like GET.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn delete(
        &self,
        target: impl Into<String>,
        path: impl Into<String>,
    ) -> Result<Response> {
        self.call(Request::new("DELETE", target, path)).await
    }

    /// `POST target + path` with `body`; see [`Client::get`].
    ///
    /// A POST is not idempotent: once it may have reached the server it is not sent
    /// again. To make it retryable, give it an idempotency key
    /// ([`Request::idempotency_key`]) through [`Client::call`].
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn post(
        &self,
        target: impl Into<String>,
        path: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Result<Response> {
        self.call(Request::new("POST", target, path).body(body))
            .await
    }

    /// `PUT target + path` with `body`; see [`Client::get`]. PUT is idempotent, so it
    /// is retried like GET.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn put(
        &self,
        target: impl Into<String>,
        path: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Result<Response> {
        self.call(Request::new("PUT", target, path).body(body))
            .await
    }

    /// `PATCH target + path` with `body`; see [`Client::get`]. Like POST, a PATCH is
    /// retried only with an idempotency key (through [`Client::call`]).
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn patch(
        &self,
        target: impl Into<String>,
        path: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> Result<Response> {
        self.call(Request::new("PATCH", target, path).body(body))
            .await
    }

    /// Checks `req` and settles what every attempt shares: target, policy, time limits,
    /// headers, and whether the request may be repeated.
    fn plan<'a>(&'a self, state: &'a State, req: &'a Request) -> Result<Plan<'a>> {
        let method = parse_method(&req.method)?;
        check_path(&req.path)?;
        state.limits.check_request_body(req.body.len())?;
        // Named as the bindings' arguments and the service settings are, as messaging does.
        if let Some(deadline) = req.deadline {
            check_duration("deadline_ms", deadline, false)?;
        }
        if let Some(timeout) = req.timeout {
            check_duration("timeout_ms", timeout, false)?;
        }
        let target = self.target(state, req)?;
        if req.rate_key.is_some()
            && !matches!(&target, Target::Service(svc) if svc.policy.rate.is_some())
        {
            return Err(Error::config(
                "rate_key",
                "the target has no rate_limit configured",
            ));
        }
        let (deadline, per_try, headers, policy) = match &target {
            Target::Service(svc) => (
                svc.deadline,
                svc.timeout,
                Some(&svc.headers),
                Arc::clone(&svc.policy),
            ),
            Target::Url { base, .. } => (DEFAULT_DEADLINE, None, None, self.host_policy(base)),
        };
        // One key for every attempt and hedge of the call, so the server can tell them
        // apart from a new call.
        let idempotency_key = match &req.idempotency_key {
            Some(key) => Some(key.clone()),
            None if req.idempotent => Some(uuid::Uuid::now_v7().to_string()),
            None => None,
        };
        Ok(Plan {
            repeatable: is_idempotent(&method) || idempotency_key.is_some(),
            method,
            headers: request_headers(headers, req, idempotency_key.as_deref())?,
            idempotency_key,
            target,
            policy,
            deadline: req.deadline.unwrap_or(deadline),
            per_try: req.timeout.or(per_try),
            req,
        })
    }

    /// Counters per service since the client was created.
    pub fn stats(&self) -> ClientStats {
        let mut stats = ClientStats::default();
        for (name, svc) in &self.inner.state.load().services {
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
    /// With the `telemetry` feature, the spans and metrics recorded so far are exported
    /// in the background (a close never waits on a collector; [`crate::telemetry::flush`]
    /// does).
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        #[cfg(feature = "telemetry")]
        crate::telemetry::flush_in_background();
    }

    fn target<'a>(&'a self, state: &'a State, req: &Request) -> Result<Target<'a>> {
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
        state
            .services
            .get(&req.target)
            .map(|svc| Target::Service(svc))
            .ok_or_else(|| {
                let mut known: Vec<_> = state.services.keys().map(String::as_str).collect();
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
                    None,
                    None,
                    Concurrency::Fixed(DEFAULT_MAX_CONCURRENCY),
                ))
            })
            .clone()
    }
}

/// The attempts of a planned call, admitted under the concurrency limit.
async fn run(state: &State, plan: &Plan<'_>, deadline_at: Instant) -> Result<Response> {
    let mut attempts = Attempts::start(plan, deadline_at).await?;
    let (http, limits) = (&state.http, &state.limits);
    match plan.policy.hedging.as_ref().filter(|_| plan.repeatable) {
        Some(hedging) => hedged(&mut attempts, hedging, http, limits).await,
        None => loop {
            match attempts.next(http, limits).await? {
                Next::Return(result) => return result,
                Next::Retry(wait) => tokio::time::sleep(wait).await,
                // Only a hedged call has other attempts to wait for; were one asked
                // to wait here, its last failure is the answer.
                Next::Wait => return attempts.last_result(),
            }
        },
    }
}

/// Runs a call's attempts with hedging: while the newest attempt has not answered
/// within the hedge delay, another is sent (to an endpoint the call is not already
/// trying, when there is one), up to `max_hedges`, each paid for from the retry budget.
/// The first answer that would not be retried wins; returning drops the other attempts,
/// which cancels them and closes their connections. A retryable failure waits for the
/// attempts still running; when none is left, the ordinary retry rules apply.
async fn hedged(
    attempts: &mut Attempts<'_>,
    hedging: &Hedging,
    http: &reqwest::Client,
    limits: &HttpLimits,
) -> Result<Response> {
    let mut running = FuturesUnordered::new();
    let mut hedges = 0;
    // One timer for the call, re-armed after each launch: no timer per loop turn.
    let timer = tokio::time::sleep(hedging.delay());
    tokio::pin!(timer);
    let mut armed = false;
    loop {
        if running.is_empty() {
            match attempts.launch(http, limits, false)? {
                Launch::Refused(retry_after) => return attempts.refused(retry_after),
                Launch::Sent(sent, attempt) => running.push(paired(sent, attempt)),
            }
            timer.as_mut().reset(Instant::now() + hedging.delay());
            armed = hedges < hedging.max_hedges;
        }
        tokio::select! {
            Some((sent, result)) = running.next() => {
                match attempts.conclude(sent, result, !running.is_empty()) {
                    Next::Return(result) => return result,
                    Next::Retry(wait) => tokio::time::sleep(wait).await,
                    Next::Wait => {}
                }
            }
            () = &mut timer, if armed => {
                armed = false;
                if !attempts.pay_for_hedge() {
                    hedges = hedging.max_hedges;
                    continue;
                }
                match attempts.launch(http, limits, true)? {
                    Launch::Sent(sent, attempt) => {
                        hedges += 1;
                        running.push(paired(sent, attempt));
                        timer.as_mut().reset(Instant::now() + hedging.delay());
                        armed = hedges < hedging.max_hedges;
                    }
                    // The breaker opened meanwhile: no more hedges, the running
                    // attempt decides.
                    Launch::Refused(_) => hedges = hedging.max_hedges,
                }
            }
        }
    }
}

/// An attempt with what its end is reported to: one future type for every attempt a
/// hedged call runs side by side.
async fn paired<'p>(
    sent: Sent<'p>,
    attempt: impl Future<Output = AttemptResult>,
) -> (Sent<'p>, AttemptResult) {
    (sent, attempt.await)
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
        let state = client.inner.state.load();
        let err = client
            .target(&state, &Request::new("GET", "nope", "/"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.len() < 400, "{} bytes: {err}", err.len());
        assert!(
            err.contains("svc-00000") && err.ends_with("and 9990 more)"),
            "{err}"
        );
    }
}
