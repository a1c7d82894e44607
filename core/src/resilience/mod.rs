//! Resilience for HTTP calls: retries with backoff and a budget, hedging, a circuit
//! breaker, a concurrency limit (fixed or adaptive) and a rate limit, all per service.
//!
//! The pieces and where each comes from are documented in their modules:
//! [`backoff`] (full jitter), [`budget`] (Finagle's retry budget), [`breaker`]
//! (count-over-window breaker with a growing open period), [`classify`] (what is safe
//! to retry), [`hedge`] (when to send a hedged attempt), [`rate`] (token buckets slowed
//! by 429s), [`adaptive`] (a concurrency limit that follows latency). `http::Client` runs the loop; nothing here does I/O.

mod adaptive;
mod backoff;
mod breaker;
mod budget;
mod classify;
mod config;
mod hedge;
mod policy;
mod rate;
mod retry_after;
mod window;

pub(crate) use backoff::Backoff;
pub(crate) use breaker::Permit;
pub(crate) use classify::{Outcome, is_idempotent};
pub use config::{
    AdaptiveConcurrencyConfig, BreakerConfig, BudgetConfig, HedgeConfig, MAX_RETRY_AFTER_MS,
    RateLimitConfig, RetryConfig, RetryOn,
};
pub(crate) use hedge::Hedging;
pub(crate) use policy::{Concurrency, Counters, Policy};
pub(crate) use retry_after::parse as parse_retry_after;
