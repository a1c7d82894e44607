//! A call as a pipeline: the request checked into a [`Plan`], then attempts until the
//! policy says stop. [`Attempts`] carries what passes from one attempt to the next (how
//! many, which endpoints were tried, the last result) and makes the decisions around
//! each attempt: may it start (the breaker), what did it mean (one typed [`Outcome`],
//! reported to the breaker and to the endpoint set), and what comes next (a retry
//! after a wait, or the result).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;

use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;
use tracing::Instrument;

use super::attempt::{self, Failed, Sending, attempt_span, insert_trace};
use super::request::{check_header, join};
use super::service::Target;
use super::{Request, Response};
use crate::balance::{Endpoint, InFlight};
use crate::deadline;
use crate::error::{Error, Result};
use crate::limits::HttpLimits;
use crate::resilience::{
    Counters, MAX_RETRY_AFTER_MS, Outcome, Permit, Policy, RetryOn, parse_retry_after,
};
use crate::telemetry::metrics;
use crate::trace::TraceContext;

/// The remaining deadline, sent on every attempt so a courier-based server can stop
/// working on a request its caller has given up on (`crate::deadline_from_headers`).
const DEADLINE_HEADER: HeaderName = HeaderName::from_static(deadline::DEADLINE_HEADER);

/// A checked request and everything its attempts share.
pub(super) struct Plan<'a> {
    pub(super) req: &'a Request,
    pub(super) method: Method,
    pub(super) target: Target<'a>,
    pub(super) policy: Arc<Policy>,
    pub(super) deadline: Duration,
    pub(super) per_try: Option<Duration>,
    /// The service's headers overlaid with the request's, plus `Idempotency-Key`.
    pub(super) headers: HeaderMap,
    /// Whether repeating the request cannot repeat its effect (an idempotent method, or
    /// an idempotency key).
    pub(super) repeatable: bool,
    /// The `Idempotency-Key` every attempt sends: the caller's, or one courier made
    /// for a request marked idempotent. Returned on the response.
    pub(super) idempotency_key: Option<String>,
}

/// What follows an attempt.
pub(super) enum Next {
    /// Try again after this wait.
    Retry(Duration),
    /// The call's result.
    Return(Result<Response>),
    /// Hedged attempts are still running: wait for them.
    Wait,
}

/// What an attempt comes to: a response, or a failure judged where it is known.
pub(super) type AttemptResult = std::result::Result<Response, Failed>;

/// An attempt the breaker let start, or the breaker's refusal (and when it may let one
/// through).
pub(super) enum Launch<'p, F> {
    Sent(Sent<'p>, F),
    Refused(Duration),
}

/// What an attempt's end is reported to, kept beside the attempt while it runs.
pub(super) struct Sent<'p> {
    permit: Option<Permit<'p>>,
    flight: Option<InFlight>,
    span: tracing::Span,
    server: Option<(String, u16)>,
    started: Instant,
    hedge: bool,
}

/// One call's attempts so far.
pub(super) struct Attempts<'p> {
    plan: &'p Plan<'p>,
    deadline_at: Instant,
    trace: TraceContext,
    count: u32,
    /// Endpoints this call tried or is trying: a retry or hedge goes elsewhere when it can.
    tried: Vec<Arc<Endpoint>>,
    last: Option<Result<Response>>,
}

impl<'p> Attempts<'p> {
    /// Counts the call, feeds the retry budget, and waits (until `deadline_at`) for a
    /// discovered service's first DNS answer.
    pub(super) async fn start(plan: &'p Plan<'p>, deadline_at: Instant) -> Result<Attempts<'p>> {
        let policy = &*plan.policy;
        Counters::bump(&policy.counters.requests);
        policy.budget.deposit();
        if let Target::Service(svc) = &plan.target
            && !svc.endpoints.is_ready()
        {
            tokio::time::timeout_at(deadline_at, svc.endpoints.ready())
                .await
                .map_err(|_| call_timeout(plan.deadline))?;
        }
        Ok(Attempts {
            plan,
            deadline_at,
            trace: plan
                .req
                .trace
                .clone()
                .unwrap_or_else(TraceContext::new_root),
            count: 0,
            tried: Vec::new(),
            last: None,
        })
    }

    /// Runs one attempt, if the breaker lets it start, and says what follows.
    pub(super) async fn next(
        &mut self,
        http: &reqwest::Client,
        limits: &HttpLimits,
    ) -> Result<Next> {
        Ok(match self.launch(http, limits, false)? {
            Launch::Refused(retry_after) => Next::Return(self.refused(retry_after)),
            Launch::Sent(sent, attempt) => {
                let result = attempt.await;
                self.conclude(sent, result, false)
            }
        })
    }

    /// The result of a call whose next attempt the open breaker refused: the last
    /// attempt's result if there was one (more useful than "open"), else `CircuitOpen`.
    pub(super) fn refused(&mut self, retry_after: Duration) -> Result<Response> {
        let policy = &*self.plan.policy;
        Counters::bump(&policy.counters.circuit_rejected);
        let open = Error::CircuitOpen {
            service: policy.service.to_string(),
            retry_after,
        };
        self.last.take().unwrap_or(Err(open))
    }

    /// Starts an attempt, if the breaker lets it: picks an endpoint (one this call has
    /// not tried or is not trying, when there is one), and returns the attempt as a
    /// future that owns everything it sends. `hedge` marks a hedged attempt.
    pub(super) fn launch<'h>(
        &mut self,
        http: &'h reqwest::Client,
        limits: &'h HttpLimits,
        hedge: bool,
    ) -> Result<Launch<'p, Pin<Box<impl Future<Output = AttemptResult> + use<'h>>>>> {
        let plan = self.plan;
        let policy = &*plan.policy;
        let permit = match policy.breaker.as_ref().map(|b| b.acquire()).transpose() {
            Ok(permit) => permit,
            Err(retry_after) => return Ok(Launch::Refused(retry_after)),
        };
        let (url, endpoint, flight) = self.pick()?;
        let remaining = self.deadline_at.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(call_timeout(plan.deadline));
        }
        let limit = plan.per_try.map_or(remaining, |t| t.min(remaining));
        self.count += 1;
        Counters::bump(&policy.counters.attempts);
        // Each attempt is a span of its own: same trace, new parent-id.
        let trace = self.trace.child();
        let mut headers = plan.headers.clone();
        headers.insert(DEADLINE_HEADER, HeaderValue::from(limit.as_millis() as u64));
        insert_trace(&mut headers, &trace);
        let span = attempt_span(&plan.method, &url, &endpoint, self.count, &trace);
        // The id is formatted only for a subscriber that wants the span.
        if plan.req.trace.is_some() && !span.is_disabled() {
            span.record("parent_span_id", self.trace.span_id());
        }
        // Only metrics need the server's address once the URL has moved into the attempt.
        let server = metrics::active().then(|| {
            (
                url.host_str().unwrap_or_default().to_owned(),
                url.port_or_known_default().unwrap_or_default(),
            )
        });
        let sending = Sending {
            method: plan.method.clone(),
            url,
            headers,
            body: plan.req.body.clone(),
            endpoint,
            trace,
        };
        let deadline = plan.deadline;
        let attempt = attempt::send(http, limits, sending).instrument(span.clone());
        // A combinator, not an `async move` block, which would hold `attempt` twice (as
        // its capture and inside the timeout it awaits); boxed, so the attempt (reqwest's
        // future, the body read) is stored once, not three times in the caller's state,
        // which keeps `?` and the match on `Launch` alive across the await. Measured with
        // `-Zprint-type-sizes`: `Client::call`'s future was 10,664 bytes, now 2,336 plus
        // this 1,528-byte box; every move of the future copies it whole (memmove was 9%
        // of a Python async GET's CPU).
        let attempt = Box::pin(tokio::time::timeout(limit, attempt).map(move |timed| {
            timed.unwrap_or_else(|_| {
                if limit < remaining {
                    Err(Failed {
                        error: Error::Timeout {
                            operation: "attempt",
                            after: limit,
                        },
                        outcome: Outcome::Failure(RetryOn::Timeout),
                    })
                } else {
                    Err(Failed::fatal(call_timeout(deadline)))
                }
            })
        }));
        let sent = Sent {
            permit,
            flight,
            span,
            server,
            started: Instant::now(),
            hedge,
        };
        Ok(Launch::Sent(sent, attempt))
    }

    /// Reports an attempt's end (span, metrics, breaker, endpoint) and says what follows.
    /// With `others_running` (hedged attempts still in flight), a failure that would be
    /// retried is kept as the last result and the call waits for the others instead.
    pub(super) fn conclude(
        &mut self,
        sent: Sent<'p>,
        result: AttemptResult,
        others_running: bool,
    ) -> Next {
        let plan = self.plan;
        let policy = &*plan.policy;
        let outcome = match &result {
            Ok(resp) => Outcome::Status(resp.status),
            Err(failed) => failed.outcome,
        };
        let elapsed = sent.started.elapsed();
        record(&sent.span, &result);
        metrics::http_attempt(
            &policy.service,
            &plan.method,
            sent.server,
            result.as_ref().ok().map(|resp| resp.status),
            result
                .as_ref()
                .err()
                .map(|failed| failed.error.kind().code()),
            elapsed,
        );
        if let Some(permit) = sent.permit {
            permit.record(outcome.is_service_failure());
        }
        if let (Some(flight), Target::Service(svc)) = (sent.flight, &plan.target) {
            svc.endpoints.finish(flight, outcome.is_endpoint_failure());
        }
        if let (Some(hedging), Ok(_)) = (&policy.hedging, &result) {
            hedging.observe(elapsed);
        }
        if let (Some(rate), Ok(resp)) = (&policy.rate, &result)
            && resp.status == 429
        {
            let retry_after =
                asked_wait(resp).map(|asked| asked.min(Duration::from_millis(MAX_RETRY_AFTER_MS)));
            rate.throttled(plan.req.rate_key.as_deref(), retry_after);
        }
        let count = self.count;
        let result = result
            .map(|mut resp| {
                resp.attempts = count;
                resp.idempotency_key.clone_from(&plan.idempotency_key);
                resp
            })
            .map_err(|failed| failed.error);
        if others_running && outcome.is_retryable(&policy.retry, plan.repeatable) {
            self.last = Some(result);
            return Next::Wait;
        }
        let next = self.after(result, outcome);
        if sent.hedge && matches!(next, Next::Return(Ok(_))) {
            Counters::bump(&policy.counters.hedges_won);
        }
        next
    }

    /// The failure kept while waiting for other attempts, as the call's result.
    pub(super) fn last_result(&mut self) -> Result<Response> {
        self.last.take().unwrap_or_else(|| {
            Err(Error::Internal(
                "a call waited for attempts it did not have".into(),
            ))
        })
    }

    /// Whether a hedge may be sent now: hedging is configured, the request is safe to
    /// repeat, and the retry budget pays for it (a refusal counts as `budget_denied`).
    pub(super) fn pay_for_hedge(&self) -> bool {
        let policy = &*self.plan.policy;
        if !policy.budget.withdraw() {
            Counters::bump(&policy.counters.budget_denied);
            metrics::budget_denied(&policy.service);
            return false;
        }
        Counters::bump(&policy.counters.hedges);
        true
    }

    /// The endpoint of the next attempt: its URL, how it is shown, and for a balanced
    /// service the in-flight guard its outcome is reported through.
    fn pick(&mut self) -> Result<(reqwest::Url, String, Option<InFlight>)> {
        let req = self.plan.req;
        match &self.plan.target {
            Target::Url { base, display } => {
                Ok((join(base, &req.path, &req.query), display.clone(), None))
            }
            Target::Service(svc) => {
                let endpoint = svc
                    .endpoints
                    .select(req.version.as_deref(), &self.tried)
                    .map_err(|reason| Error::NoEndpoint {
                        service: req.target.clone(),
                        reason,
                    })?;
                let url = join(&endpoint.url, &req.path, &req.query);
                let flight = endpoint.start();
                let display = endpoint.display.clone();
                self.tried.push(endpoint);
                Ok((url, display, Some(flight)))
            }
        }
    }

    /// Retry or return: a retryable outcome of a request safe to repeat is retried while
    /// attempts remain, the wait fits in the deadline and the budget allows it.
    fn after(&mut self, result: Result<Response>, outcome: Outcome) -> Next {
        let policy = &*self.plan.policy;
        if self.count >= policy.retry.max_attempts
            || !outcome.is_retryable(&policy.retry, self.plan.repeatable)
        {
            return Next::Return(result);
        }
        let Some(wait) = retry_wait(policy, self.count, &result) else {
            return Next::Return(result);
        };
        if Instant::now() + wait >= self.deadline_at {
            // Sleeping would use up the deadline: the caller gets the failure now.
            return Next::Return(result);
        }
        if !policy.budget.withdraw() {
            Counters::bump(&policy.counters.budget_denied);
            metrics::budget_denied(&policy.service);
            return Next::Return(result.map_err(|last| Error::BudgetExhausted {
                service: policy.service.to_string(),
                attempts: self.count,
                last: Box::new(last),
            }));
        }
        Counters::bump(&policy.counters.retries);
        metrics::retry(&policy.service);
        tracing::debug!(service = %policy.service, attempt = self.count, wait_ms = wait.as_millis() as u64, ?outcome, "retry");
        self.last = Some(result);
        Next::Retry(wait)
    }
}

fn call_timeout(deadline: Duration) -> Error {
    Error::Timeout {
        operation: "call",
        after: deadline,
    }
}

/// The attempt's status, or its error type, on its span.
fn record(span: &tracing::Span, result: &std::result::Result<Response, Failed>) {
    match result {
        Ok(resp) => {
            span.record("http.response.status_code", resp.status);
            if resp.status >= 500 {
                span.record("error.type", resp.status);
            }
        }
        Err(failed) => {
            span.record("error.type", failed.error.kind().code());
        }
    }
}

/// Parses a method case-insensitively; the uppercase copy is made only when needed.
pub(super) fn parse_method(raw: &str) -> Result<Method> {
    let parsed = if raw.bytes().any(|b| b.is_ascii_lowercase()) {
        Method::from_bytes(raw.to_ascii_uppercase().as_bytes())
    } else {
        Method::from_bytes(raw.as_bytes())
    };
    parsed.map_err(|_| Error::config("method", format!("not an HTTP method: {raw:?}")))
}

/// The service's headers overlaid with the request's, plus `Idempotency-Key`.
pub(super) fn request_headers(
    base: Option<&HeaderMap>,
    req: &Request,
    idempotency_key: Option<&str>,
) -> Result<HeaderMap> {
    let mut headers = base.cloned().unwrap_or_default();
    for (name, value) in &req.headers {
        let (n, v) = check_header(name, value)
            .map_err(|reason| Error::config(format!("headers.{name}"), reason))?;
        headers.insert(n, v);
    }
    if let Some(key) = idempotency_key {
        let value = HeaderValue::from_str(key)
            .map_err(|_| Error::config("idempotency_key", "not a valid header value"))?;
        headers.insert(HeaderName::from_static("idempotency-key"), value);
    }
    Ok(headers)
}

/// The wait a response's `Retry-After` asks for (seconds or an HTTP date), if any.
fn asked_wait(resp: &Response) -> Option<Duration> {
    resp.header("retry-after")
        .and_then(|value| parse_retry_after(value, SystemTime::now()))
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
        .and_then(asked_wait);
    match retry_after {
        Some(asked) if asked > Duration::from_millis(MAX_RETRY_AFTER_MS) => None,
        Some(asked) => Some(backoff.max(asked)),
        None => Some(backoff),
    }
}
