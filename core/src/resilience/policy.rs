//! Everything that guards calls to one service: retry settings, the shared retry
//! budget, hedging, the breaker, the concurrency and rate limits, and the counters behind
//! `stats()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::backoff::Backoff;
use super::breaker::CircuitBreaker;
use super::budget::{self, RetryBudget};
use super::config::{BreakerConfig, BudgetConfig, HedgeConfig, RateLimitConfig, RetryConfig};
use super::hedge::Hedging;
use super::rate::RateLimiter;
use crate::error::Error;

/// The resilience state of one service (or one host, for absolute-URL targets).
#[derive(Debug)]
pub(crate) struct Policy {
    pub(crate) service: String,
    pub(crate) retry: RetryConfig,
    pub(crate) backoff: Backoff,
    pub(crate) budget: Arc<RetryBudget>,
    pub(crate) breaker: Option<CircuitBreaker>,
    /// Hedged requests, when configured.
    pub(crate) hedging: Option<Hedging>,
    /// The client-side rate limit, when configured.
    pub(crate) rate: Option<RateLimiter>,
    limit: Semaphore,
    max_concurrency: u32,
    pub(crate) counters: Counters,
}

/// Monotonic counters; relaxed ordering is enough for statistics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) attempts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) budget_denied: AtomicU64,
    pub(crate) overloaded: AtomicU64,
    pub(crate) circuit_rejected: AtomicU64,
    pub(crate) hedges: AtomicU64,
    pub(crate) hedges_won: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Policy {
    pub(crate) fn new(
        service: &str,
        retry: RetryConfig,
        budget: &BudgetConfig,
        breaker: Option<BreakerConfig>,
        hedge: Option<&HedgeConfig>,
        rate: Option<&RateLimitConfig>,
        max_concurrency: u32,
    ) -> Policy {
        Policy {
            service: service.to_owned(),
            backoff: Backoff::new(
                Duration::from_millis(retry.base_delay_ms),
                Duration::from_millis(retry.max_delay_ms),
            ),
            retry,
            budget: budget::shared(service, budget),
            breaker: breaker.map(|cfg| CircuitBreaker::new(service, cfg)),
            hedging: hedge.map(Hedging::new),
            rate: rate.map(|cfg| RateLimiter::new(service, cfg)),
            limit: Semaphore::new(max_concurrency as usize),
            max_concurrency,
            counters: Counters::default(),
        }
    }

    /// A slot under the concurrency limit, held for the whole call (all attempts).
    ///
    /// # Errors
    /// [`Error::Overloaded`] when `max_concurrency` calls are already in flight.
    pub(crate) fn admit(&self) -> Result<SemaphorePermit<'_>, Error> {
        self.limit.try_acquire().map_err(|_| {
            Counters::bump(&self.counters.overloaded);
            Error::Overloaded {
                service: self.service.clone(),
                limit: self.max_concurrency,
            }
        })
    }

    /// Calls holding a slot under the concurrency limit now.
    pub(crate) fn in_flight(&self) -> u64 {
        u64::from(self.max_concurrency).saturating_sub(self.limit.available_permits() as u64)
    }
}
