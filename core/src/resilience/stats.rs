//! The snapshot `Client::stats()` returns, the same fields in every language.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::balance::EndpointStats;

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
    /// Calls in flight now.
    pub in_flight: u64,
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
