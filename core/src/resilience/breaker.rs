//! The circuit breaker: stop calling a service that is failing, then probe it.
//!
//! Closed: attempts flow; outcomes go into a sliding window. When at least `min_calls`
//! attempts ended in the window and the failure ratio reached `failure_ratio`, it opens.
//! Open: attempts fail fast with `CircuitOpen` and never touch the network. After the
//! open period (doubling per consecutive opening up to `max_open_ms`, ±20% jitter so
//! a fleet of clients does not probe in lockstep) it goes half-open. Half-open: at most
//! `probes` trial attempts pass; all succeeding closes it, any failing re-opens it.
//! The count-over-window rule with a minimum volume is resilience4j's and Envoy's
//! outlier detection's; the growing open period is Finagle's `FailureAccrual` backoff.
//!
//! Outcomes are reported through a [`Permit`] that is an RAII guard: an attempt that is
//! cancelled (dropped) reports nothing but releases its probe slot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

use super::config::BreakerConfig;
use super::window::Window;

const ATTEMPTS: usize = 0;
const FAILURES: usize = 1;

/// The breaker's state, as reported in stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few probe calls decide.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32, succeeded: u32 },
}

#[derive(Debug)]
struct Inner {
    state: State,
    window: Window,
    /// Consecutive openings without a close in between; sets the open period.
    openings: u32,
}

/// Transition counts, for stats.
#[derive(Debug, Default)]
pub(crate) struct Transitions {
    pub(crate) opened: AtomicU64,
    pub(crate) half_opened: AtomicU64,
    pub(crate) closed: AtomicU64,
}

/// One service's breaker.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    service: String,
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
    pub(crate) transitions: Transitions,
}

/// Leave to make one attempt; report how it went with [`Permit::record`].
#[must_use = "an attempt's outcome must be recorded"]
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(service: &str, cfg: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            service: service.to_owned(),
            inner: Mutex::new(Inner {
                state: State::Closed,
                window: Window::new(Duration::from_millis(cfg.window_ms)),
                openings: 0,
            }),
            cfg,
            transitions: Transitions::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state(&self) -> BreakerState {
        match self.lock().state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// A permit for one attempt, or how long until the breaker may let one through.
    pub(crate) fn acquire(&self) -> Result<Permit<'_>, Duration> {
        let mut inner = self.lock();
        let now = Instant::now();
        let probe = match inner.state {
            State::Closed => false,
            State::Open { until } if now < until => return Err(until - now),
            State::Open { .. } => {
                inner.state = State::HalfOpen {
                    in_flight: 1,
                    succeeded: 0,
                };
                self.transition("open", "half_open", &self.transitions.half_opened);
                true
            }
            State::HalfOpen {
                in_flight,
                succeeded,
            } => {
                if in_flight + succeeded >= self.cfg.probes {
                    // The probes are out; the next decision comes when they return.
                    return Err(Duration::from_millis(self.cfg.open_ms.min(1_000)));
                }
                inner.state = State::HalfOpen {
                    in_flight: in_flight + 1,
                    succeeded,
                };
                true
            }
        };
        Ok(Permit {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    fn record(&self, probe: bool, failed: bool) {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => {
                inner.window.add(ATTEMPTS, 1);
                if failed {
                    inner.window.add(FAILURES, 1);
                }
                let [attempts, failures] = inner.window.totals();
                if attempts >= u64::from(self.cfg.min_calls)
                    && failures as f64 >= self.cfg.failure_ratio * attempts as f64
                {
                    self.open(&mut inner, "closed");
                }
            }
            // A late report from an attempt that started before the breaker opened.
            State::Open { .. } => {}
            State::HalfOpen {
                in_flight,
                succeeded,
            } => {
                if !probe {
                    return;
                }
                if failed {
                    self.open(&mut inner, "half_open");
                } else if succeeded + 1 >= self.cfg.probes {
                    inner.state = State::Closed;
                    inner.openings = 0;
                    inner.window.clear();
                    self.transition("half_open", "closed", &self.transitions.closed);
                } else {
                    inner.state = State::HalfOpen {
                        in_flight: in_flight.saturating_sub(1),
                        succeeded: succeeded + 1,
                    };
                }
            }
        }
    }

    fn release_probe(&self) {
        if let State::HalfOpen { in_flight, .. } = &mut self.lock().state {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    fn open(&self, inner: &mut Inner, from: &'static str) {
        inner.openings = inner.openings.saturating_add(1);
        let base = Duration::from_millis(self.cfg.open_ms)
            .saturating_mul(1u32.checked_shl(inner.openings - 1).unwrap_or(u32::MAX))
            .min(Duration::from_millis(self.cfg.max_open_ms));
        let jittered = base.mul_f64(rand::rng().random_range(0.8..=1.2));
        inner.state = State::Open {
            until: Instant::now() + jittered,
        };
        inner.window.clear();
        self.transition(from, "open", &self.transitions.opened);
    }

    fn transition(&self, from: &'static str, to: &'static str, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::info!(service = %self.service, from, to, "circuit breaker");
        let state = match to {
            "closed" => 0,
            "open" => 1,
            _ => 2,
        };
        crate::telemetry::metrics::breaker(&self.service, from, to, state);
    }
}

impl Permit<'_> {
    /// Reports the attempt's outcome: `failed` when it counts against the service.
    pub(crate) fn record(mut self, failed: bool) {
        self.recorded = true;
        self.breaker.record(self.probe, failed);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            "svc",
            BreakerConfig {
                window_ms: 10_000,
                min_calls: 4,
                failure_ratio: 0.5,
                open_ms: 1_000,
                max_open_ms: 4_000,
                probes: 2,
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_ratio_only_after_min_calls() {
        let b = breaker();
        for _ in 0..3 {
            b.acquire().unwrap().record(true);
        }
        assert_eq!(
            b.state(),
            BreakerState::Closed,
            "3 calls are below min_calls"
        );
        b.acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Open, "3 of 4 failed");
        assert!(b.acquire().is_err(), "open fails fast");
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_probes_close_or_reopen() {
        let b = breaker();
        for _ in 0..4 {
            b.acquire().unwrap().record(true);
        }
        tokio::time::advance(Duration::from_millis(1_300)).await;
        let p1 = b.acquire().expect("first probe after the open period");
        let p2 = b.acquire().expect("second probe");
        assert!(
            b.acquire().is_err(),
            "only `probes` attempts pass half-open"
        );
        p1.record(false);
        p2.record(false);
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.transitions.closed.load(Ordering::Relaxed), 1);

        for _ in 0..4 {
            b.acquire().unwrap().record(true);
        }
        tokio::time::advance(Duration::from_millis(1_300)).await;
        b.acquire().unwrap().record(true);
        assert_eq!(b.state(), BreakerState::Open, "a failed probe re-opens");
        tokio::time::advance(Duration::from_millis(1_300)).await;
        assert!(
            b.acquire().is_err(),
            "the second opening lasts longer (2 s ±20%)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_frees_its_slot() {
        let b = breaker();
        for _ in 0..4 {
            b.acquire().unwrap().record(true);
        }
        tokio::time::advance(Duration::from_millis(1_300)).await;
        let p1 = b.acquire().unwrap();
        let p2 = b.acquire().unwrap();
        drop(p1);
        let p3 = b
            .acquire()
            .expect("the cancelled probe's slot is free again");
        p2.record(false);
        p3.record(false);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
