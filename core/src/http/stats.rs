//! The snapshot `Client::stats()` returns, the same fields in every language.

use std::collections::BTreeMap;

use serde::Serialize;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::balance::EndpointStats;
use crate::resilience::Policy;

/// Counters for one service since the client was created.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServiceStats {
    /// Calls started (each counts once, however many attempts it took).
    pub requests: u64,
    /// Attempts sent to the network.
    pub attempts: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Retries the budget refused.
    pub budget_denied: u64,
    /// Calls refused by the concurrency limit.
    pub overloaded: u64,
    /// Attempts refused because the breaker was open.
    pub circuit_rejected: u64,
    /// Hedged attempts sent (each also counts in `attempts`).
    pub hedges: u64,
    /// Calls whose answer came from a hedged attempt.
    pub hedges_won: u64,
    /// Calls refused by the rate limit (`rate_limited`).
    pub rate_limited: u64,
    /// The rate limit's current calls per second: the configured rate, or less while
    /// it recovers from a 429; `None` without a rate limit.
    pub rate_per_sec: Option<f64>,
    /// Calls in flight now.
    pub in_flight: u64,
    /// The calls that may be in flight: `max_concurrency`, or the adaptive limit now.
    pub concurrency_limit: u64,
    /// `closed`, `open`, `half_open`, or `disabled`.
    pub breaker_state: String,
    /// Transitions to open.
    pub breaker_opened: u64,
    /// Transitions to half-open.
    pub breaker_half_opened: u64,
    /// Transitions back to closed.
    pub breaker_closed: u64,
    /// Per endpoint (empty for absolute-URL targets, which are not balanced).
    pub endpoints: Vec<EndpointStats>,
}

/// Counters per service (absolute-URL targets appear under `host:port`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClientStats {
    /// By service name.
    pub services: BTreeMap<String, ServiceStats>,
}

impl ServiceStats {
    /// A snapshot of a service's policy counters (endpoints are added by the caller).
    pub(crate) fn of(policy: &Policy) -> ServiceStats {
        let c = &policy.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let breaker = policy.breaker.as_ref();
        ServiceStats {
            requests: load(&c.requests),
            attempts: load(&c.attempts),
            retries: load(&c.retries),
            budget_denied: load(&c.budget_denied),
            overloaded: load(&c.overloaded),
            circuit_rejected: load(&c.circuit_rejected),
            hedges: load(&c.hedges),
            hedges_won: load(&c.hedges_won),
            rate_limited: load(&c.rate_limited),
            rate_per_sec: policy.rate.as_ref().map(|rate| rate.current_rate()),
            in_flight: policy.in_flight(),
            concurrency_limit: policy.concurrency_limit(),
            breaker_state: breaker
                .map(|b| b.state().as_str())
                .unwrap_or("disabled")
                .to_owned(),
            breaker_opened: breaker.map_or(0, |b| load(&b.transitions.opened)),
            breaker_half_opened: breaker.map_or(0, |b| load(&b.transitions.half_opened)),
            breaker_closed: breaker.map_or(0, |b| load(&b.transitions.closed)),
            endpoints: Vec::new(),
        }
    }
}
