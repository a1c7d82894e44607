//! When to hedge: a fixed delay, or a percentile of the service's recent attempt
//! latencies (never below the fixed delay). The call loop in `http` sends the hedges;
//! this decides only how long to wait.
//!
//! The percentile is taken over the last [`SAMPLES`] answered attempts and recomputed
//! every [`RECOMPUTE_EVERY`] samples, so a call reads one atomic instead of sorting, and
//! the delay follows a latency shift within a few hundred calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::config::HedgeConfig;

/// Latencies kept for the percentile: enough for a stable p99 estimate (2-3 samples
/// above it), few enough to sort in microseconds.
const SAMPLES: usize = 256;
/// Samples between two recomputations of the percentile.
const RECOMPUTE_EVERY: usize = 16;
/// Samples needed before the percentile replaces the fixed delay.
const MIN_SAMPLES: usize = 32;

/// One service's hedging settings and, with a percentile, its recent latencies.
#[derive(Debug)]
pub(crate) struct Hedging {
    pub(crate) max_hedges: u32,
    floor: Duration,
    percentile: Option<f64>,
    /// The current delay in microseconds.
    delay_us: AtomicU64,
    samples: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    /// Latencies in microseconds, at most [`SAMPLES`]; `next` is the oldest once full.
    latencies: Vec<u64>,
    next: usize,
    since_recompute: usize,
}

impl Hedging {
    pub(crate) fn new(cfg: &HedgeConfig) -> Hedging {
        let floor = Duration::from_millis(cfg.delay_ms);
        Hedging {
            max_hedges: cfg.max_hedges,
            floor,
            percentile: cfg.percentile,
            delay_us: AtomicU64::new(micros(floor)),
            samples: Mutex::new(Ring::default()),
        }
    }

    /// How long the newest attempt may go unanswered before a hedge is sent.
    pub(crate) fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    /// Records an answered attempt's latency (only with a percentile configured).
    pub(crate) fn observe(&self, latency: Duration) {
        let Some(percentile) = self.percentile else {
            return;
        };
        let mut ring = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let us = micros(latency);
        if ring.latencies.len() < SAMPLES {
            ring.latencies.push(us);
        } else {
            let at = ring.next;
            ring.latencies[at] = us;
        }
        ring.next = (ring.next + 1) % SAMPLES;
        ring.since_recompute += 1;
        if ring.since_recompute < RECOMPUTE_EVERY || ring.latencies.len() < MIN_SAMPLES {
            return;
        }
        ring.since_recompute = 0;
        let mut sorted = ring.latencies.clone();
        drop(ring);
        let rank = ((percentile / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        let (_, at, _) = sorted.select_nth_unstable(rank);
        self.delay_us
            .store((*at).max(micros(self.floor)), Ordering::Relaxed);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hedging(delay_ms: u64, percentile: Option<f64>) -> Hedging {
        Hedging::new(&HedgeConfig {
            max_hedges: 1,
            delay_ms,
            percentile,
        })
    }

    #[test]
    fn a_fixed_delay_ignores_latencies() {
        let h = hedging(20, None);
        for _ in 0..1000 {
            h.observe(Duration::from_millis(500));
        }
        assert_eq!(h.delay(), Duration::from_millis(20));
    }

    #[test]
    fn the_percentile_replaces_the_delay_once_enough_latencies_are_seen() {
        let h = hedging(1, Some(95.0));
        for ms in 1..MIN_SAMPLES as u64 {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.delay(), Duration::from_millis(1), "too few samples yet");
        // 96 answers of 1..=96 ms (a multiple of RECOMPUTE_EVERY): p95 is the value at
        // rank round(0.95 * 95) = 90, 91 ms.
        let h = hedging(1, Some(95.0));
        for ms in 1..=96 {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.delay(), Duration::from_millis(91));
    }

    #[test]
    fn the_delay_never_falls_below_the_configured_one_and_follows_a_shift() {
        let h = hedging(30, Some(90.0));
        for _ in 0..SAMPLES {
            h.observe(Duration::from_millis(2));
        }
        assert_eq!(h.delay(), Duration::from_millis(30), "the floor holds");
        for _ in 0..SAMPLES {
            h.observe(Duration::from_millis(80));
        }
        assert_eq!(
            h.delay(),
            Duration::from_millis(80),
            "old samples are forgotten"
        );
    }
}
