//! An adaptive concurrency limit: instead of a fixed `max_concurrency`, the number of
//! calls let in flight follows the service's latency, the gradient method of Netflix's
//! concurrency-limits (`Gradient2`) and Envoy's adaptive concurrency filter.
//!
//! Each finished call is a latency sample. A slow average (the baseline, ~[`LONG`]
//! samples) says what latency the service has when it is not queueing; a fast one (the
//! current latency, ~[`SHORT`] samples) what it has now. Their ratio, the gradient,
//! clamped to 0.5..=1, scales the limit down as soon as latency rises above the
//! baseline (times a tolerance), and a headroom of √limit lets it grow while latency
//! stays flat. The baseline is an average rather than Envoy's periodically re-measured
//! minimum: it follows a service whose normal latency changes without the throughput
//! dips of a measurement window. A limit that was not being used (fewer than half its
//! calls in flight) is not raised: an idle client learns nothing about the service's
//! capacity. It is lowered all the same when latency rises.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::config::AdaptiveConcurrencyConfig;

/// Samples the baseline averages over.
const LONG: f64 = 600.0;
/// Samples the current latency averages over.
const SHORT: f64 = 10.0;
/// Latency may be this many times the baseline before the limit falls.
const TOLERANCE: f64 = 1.5;
/// The share of a newly computed limit taken per sample.
const SMOOTHING: f64 = 0.2;

/// The limit and the averages behind it.
#[derive(Debug)]
pub(crate) struct AdaptiveLimit {
    min: f64,
    max: f64,
    /// The current limit, rounded, for admission without the lock.
    limit: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    limit: f64,
    /// Baseline latency, seconds; `None` before the first sample.
    long: Option<f64>,
    /// Current latency, seconds.
    short: Option<f64>,
}

impl AdaptiveLimit {
    pub(crate) fn new(cfg: &AdaptiveConcurrencyConfig) -> AdaptiveLimit {
        let initial = f64::from(cfg.initial_limit);
        AdaptiveLimit {
            min: f64::from(cfg.min_limit),
            max: f64::from(cfg.max_limit),
            limit: AtomicU64::new(u64::from(cfg.initial_limit)),
            state: Mutex::new(State {
                limit: initial,
                long: None,
                short: None,
            }),
        }
    }

    /// The calls that may be in flight now.
    pub(crate) fn current(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Records a finished call: its latency and how many calls were in flight when it
    /// started (itself included).
    pub(crate) fn sample(&self, latency: Duration, in_flight: u64) {
        let rtt = latency.as_secs_f64().max(1e-6);
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let long = ewma(s.long, rtt, LONG);
        let short = ewma(s.short, rtt, SHORT);
        // A baseline far above the current latency is stale (the service got faster
        // for good): let it fall faster than its window would.
        let long = if long / short > 2.0 {
            long * 0.95
        } else {
            long
        };
        s.long = Some(long);
        s.short = Some(short);
        let gradient = (TOLERANCE * long / short).clamp(0.5, 1.0);
        let target = s.limit * gradient + s.limit.sqrt();
        let next = (s.limit * (1.0 - SMOOTHING) + target * SMOOTHING).clamp(self.min, self.max);
        if next > s.limit && (in_flight as f64) < s.limit / 2.0 {
            return;
        }
        s.limit = next;
        self.limit.store(s.limit.round() as u64, Ordering::Relaxed);
    }
}

/// An exponentially weighted average over about `window` samples.
fn ewma(previous: Option<f64>, sample: f64, window: f64) -> f64 {
    match previous {
        None => sample,
        Some(avg) => avg + (sample - avg) * 2.0 / (window + 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(min: u32, max: u32, initial: u32) -> AdaptiveLimit {
        AdaptiveLimit::new(&AdaptiveConcurrencyConfig {
            min_limit: min,
            max_limit: max,
            initial_limit: initial,
        })
    }

    /// `n` calls of `ms` each, with the limit fully used.
    fn run(l: &AdaptiveLimit, n: usize, ms: u64) {
        for _ in 0..n {
            l.sample(Duration::from_millis(ms), l.current());
        }
    }

    #[test]
    fn flat_latency_raises_the_limit_to_its_max() {
        let l = limit(1, 200, 10);
        run(&l, 50, 10);
        let grown = l.current();
        assert!(grown > 20, "{grown}");
        run(&l, 2000, 10);
        assert_eq!(l.current(), 200);
    }

    #[test]
    fn a_latency_step_lowers_the_limit_and_its_end_restores_it() {
        let l = limit(1, 200, 100);
        run(&l, 1000, 10);
        assert_eq!(l.current(), 200);
        // Five times the baseline: the gradient is at its floor, 0.5.
        run(&l, 30, 50);
        let fallen = l.current();
        assert!(fallen < 60, "{fallen}");
        run(&l, 200, 10);
        assert_eq!(l.current(), 200, "recovered");
    }

    #[test]
    fn an_unused_limit_is_not_raised_and_bounds_hold() {
        let l = limit(5, 50, 20);
        for _ in 0..500 {
            l.sample(Duration::from_millis(10), 3);
        }
        assert_eq!(l.current(), 20, "3 in flight of 20 says nothing");
        for _ in 0..500 {
            l.sample(Duration::from_secs(2), l.current());
            l.sample(Duration::from_millis(1), l.current());
        }
        assert!((5..=50).contains(&l.current()));
        let floor = limit(5, 50, 20);
        run(&floor, 100, 10);
        run(&floor, 60, 10_000);
        assert_eq!(floor.current(), 5, "the min holds");
    }
}
