//! Everything that guards calls to one service: retry settings, the shared retry
//! budget, hedging, the breaker, the concurrency and rate limits, and the counters behind
//! `stats()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::adaptive::AdaptiveLimit;
use super::backoff::Backoff;
use super::breaker::CircuitBreaker;
use super::budget::{self, RetryBudget};
use super::config::{
    AdaptiveConcurrencyConfig, BreakerConfig, BudgetConfig, HedgeConfig, RateLimitConfig,
    RetryConfig,
};
use super::hedge::Hedging;
use super::rate::RateLimiter;
use crate::error::Error;

/// The resilience state of one service (or one host, for absolute-URL targets).
#[derive(Debug)]
pub(crate) struct Policy {
    /// Shared, not copied, into every metric recorded for the service.
    pub(crate) service: Arc<str>,
    pub(crate) retry: RetryConfig,
    pub(crate) backoff: Backoff,
    pub(crate) budget: Arc<RetryBudget>,
    pub(crate) breaker: Option<CircuitBreaker>,
    /// Hedged requests, when configured.
    pub(crate) hedging: Option<Hedging>,
    /// The client-side rate limit, when configured.
    pub(crate) rate: Option<RateLimiter>,
    limit: Limit,
    /// Shared with the policy a reconfiguration replaces this one with.
    pub(crate) counters: Arc<Counters>,
}

/// How many calls may be in flight: a fixed number, or one that follows latency.
pub(crate) enum Concurrency<'a> {
    Fixed(u32),
    Adaptive(&'a AdaptiveConcurrencyConfig),
}

#[derive(Debug)]
enum Limit {
    Fixed {
        slots: Semaphore,
        max: u32,
    },
    Adaptive {
        limit: AdaptiveLimit,
        in_flight: AtomicU64,
    },
}

/// A call's place under the concurrency limit, held for the whole call (all attempts).
/// [`Slot::finish`] reports a call that ended (its latency, for an adaptive limit);
/// dropped without it (a cancelled call), the place is freed and nothing is learned.
pub(crate) enum Slot<'a> {
    Fixed {
        _permit: SemaphorePermit<'a>,
    },
    Adaptive {
        limit: &'a AdaptiveLimit,
        in_flight: &'a AtomicU64,
        started: Instant,
        /// Calls in flight when this one was admitted, itself included.
        at_start: u64,
    },
}

impl Slot<'_> {
    pub(crate) fn finish(self) {
        if let Slot::Adaptive {
            limit,
            started,
            at_start,
            ..
        } = &self
        {
            limit.sample(started.elapsed(), *at_start);
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Slot::Adaptive { in_flight, .. } = self {
            in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
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
        concurrency: Concurrency<'_>,
    ) -> Policy {
        Policy {
            service: Arc::from(service),
            backoff: Backoff::new(
                Duration::from_millis(retry.base_delay_ms),
                Duration::from_millis(retry.max_delay_ms),
            ),
            retry,
            budget: budget::shared(service, budget),
            breaker: breaker.map(|cfg| CircuitBreaker::new(service, cfg)),
            hedging: hedge.map(Hedging::new),
            rate: rate.map(|cfg| RateLimiter::new(service, cfg)),
            limit: match concurrency {
                Concurrency::Fixed(max) => Limit::Fixed {
                    slots: Semaphore::new(max as usize),
                    max,
                },
                Concurrency::Adaptive(cfg) => Limit::Adaptive {
                    limit: AdaptiveLimit::new(cfg),
                    in_flight: AtomicU64::new(0),
                },
            },
            counters: Arc::default(),
        }
    }

    /// Takes the call's token from the rate limit, if there is one, waiting for it
    /// within `deadline` when the limit waits.
    ///
    /// # Errors
    /// [`Error::RateLimited`] when no token comes in time.
    pub(crate) async fn pace(&self, key: Option<&str>, deadline: Duration) -> Result<(), Error> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let wait = rate
            .acquire(key, deadline)
            .inspect_err(|_| Counters::bump(&self.counters.rate_limited))?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// A slot under the concurrency limit, held for the whole call (all attempts).
    ///
    /// # Errors
    /// [`Error::Overloaded`] when the limit's calls are already in flight.
    pub(crate) fn admit(&self) -> Result<Slot<'_>, Error> {
        let admitted = match &self.limit {
            Limit::Fixed { slots, .. } => slots
                .try_acquire()
                .ok()
                .map(|permit| Slot::Fixed { _permit: permit }),
            Limit::Adaptive { limit, in_flight } => {
                let before = in_flight.fetch_add(1, Ordering::Relaxed);
                if before < limit.current() {
                    Some(Slot::Adaptive {
                        limit,
                        in_flight,
                        started: Instant::now(),
                        at_start: before + 1,
                    })
                } else {
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    None
                }
            }
        };
        admitted.ok_or_else(|| {
            Counters::bump(&self.counters.overloaded);
            Error::Overloaded {
                service: self.service.to_string(),
                limit: u32::try_from(self.concurrency_limit()).unwrap_or(u32::MAX),
            }
        })
    }

    /// Calls holding a slot under the concurrency limit now.
    pub(crate) fn in_flight(&self) -> u64 {
        match &self.limit {
            Limit::Fixed { slots, max } => {
                u64::from(*max).saturating_sub(slots.available_permits() as u64)
            }
            Limit::Adaptive { in_flight, .. } => in_flight.load(Ordering::Relaxed),
        }
    }

    /// The calls that may be in flight now: `max_concurrency`, or the adaptive limit.
    pub(crate) fn concurrency_limit(&self) -> u64 {
        match &self.limit {
            Limit::Fixed { max, .. } => u64::from(*max),
            Limit::Adaptive { limit, .. } => limit.current(),
        }
    }
}
