//! One endpoint's live state: latency estimate, load, health and counters.
//!
//! The state is shared (`Arc`) between the balancer, calls in flight and discovery,
//! so a refresh that keeps an endpoint keeps its history, and a removed endpoint's
//! in-flight calls still finish and report.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::Url;
use serde::Serialize;
use tokio::time::Instant;

use super::config::OutlierConfig;
use super::peak_ewma::{FAILURE_PENALTY, PeakEwma};

#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) url: Url,
    /// `url` with credentials redacted, computed once: it goes into every response.
    pub(crate) display: String,
    pub(crate) version: Option<String>,
    pub(crate) weight: u32,
    in_flight: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Smooth weighted round robin's running weight; changed only under the set's
    /// round-robin lock.
    pub(crate) rr_current: AtomicI64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    ewma: PeakEwma,
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    times_ejected: u32,
}

/// One endpoint in `stats()`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointStats {
    /// Base URL, credentials redacted.
    pub url: String,
    /// Version label, if any.
    pub version: Option<String>,
    /// Weight.
    pub weight: u32,
    /// Attempts sent to it.
    pub requests: u64,
    /// Attempts that failed (errors, 5xx, 429).
    pub failures: u64,
    /// Current peak-EWMA latency estimate.
    pub ewma_ms: f64,
    /// Attempts in flight now.
    pub in_flight: u64,
    /// Whether outlier ejection has taken it out of rotation now.
    pub ejected: bool,
    /// How many times it was ejected.
    pub times_ejected: u32,
}

impl Endpoint {
    pub(crate) fn new(url: Url, display: String, version: Option<String>, weight: u32) -> Endpoint {
        Endpoint {
            url,
            display,
            version,
            weight,
            in_flight: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rr_current: AtomicI64::new(0),
            state: Mutex::new(State {
                ewma: PeakEwma::new(Instant::now()),
                consecutive_failures: 0,
                ejected_until: None,
                times_ejected: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Peak-EWMA cost: latency estimate times (in-flight + 1), divided by weight.
    pub(crate) fn cost(&self) -> f64 {
        let estimate = self.state().ewma.decayed_ns(Instant::now());
        estimate * (self.in_flight() + 1) as f64 / f64::from(self.weight)
    }

    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        self.state().ejected_until.is_some_and(|until| now < until)
    }

    /// Failing now (ejected, or as many failures in a row as ejection takes): used for
    /// panic mode, which ignores health when most endpoints look unhealthy.
    pub(crate) fn is_unhealthy(&self, now: Instant, outlier: &OutlierConfig) -> bool {
        let s = self.state();
        s.ejected_until.is_some_and(|until| now < until)
            || s.consecutive_failures >= outlier.consecutive_failures
    }

    /// Marks an attempt as started; the guard reports its outcome.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight {
            endpoint: self.clone(),
            started: Instant::now(),
            finished: false,
        }
    }

    /// Records an outcome; returns whether this failure crossed the ejection
    /// threshold (the set decides whether ejecting is allowed).
    fn finish(&self, rtt: Duration, failed: bool, outlier: Option<&OutlierConfig>) -> bool {
        let now = Instant::now();
        let mut s = self.state();
        if failed {
            self.failures.fetch_add(1, Ordering::Relaxed);
            s.ewma.observe(FAILURE_PENALTY.max(rtt), now);
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            outlier.is_some_and(|o| s.consecutive_failures == o.consecutive_failures)
        } else {
            s.ewma.observe(rtt, now);
            s.consecutive_failures = 0;
            false
        }
    }

    /// An attempt cancelled after `elapsed` (a hedge answered first, or the caller gave
    /// up): its latency is at least that, so a slow endpoint whose attempts keep losing
    /// to hedges still looks slow to the balancer. Not a failure.
    fn cancelled(&self, elapsed: Duration) {
        self.state().ewma.observe_at_least(elapsed, Instant::now());
    }

    /// Takes the endpoint out of rotation for `base × times ejected` (capped).
    pub(crate) fn eject(&self, outlier: &OutlierConfig) {
        let mut s = self.state();
        s.times_ejected = s.times_ejected.saturating_add(1);
        let period = Duration::from_millis(outlier.base_ejection_ms)
            .saturating_mul(s.times_ejected)
            .min(Duration::from_millis(outlier.max_ejection_ms));
        s.ejected_until = Some(Instant::now() + period);
        // Start counting afresh after re-admission.
        s.consecutive_failures = 0;
        tracing::info!(endpoint = %self.display, period_ms = period.as_millis() as u64, "outlier ejected");
        crate::telemetry::metrics::ejected(&self.display);
    }

    pub(crate) fn stats(&self) -> EndpointStats {
        let s = self.state();
        EndpointStats {
            url: self.display.clone(),
            version: self.version.clone(),
            weight: self.weight,
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            ewma_ms: s.ewma.decayed_ns(Instant::now()) / 1e6,
            in_flight: self.in_flight(),
            ejected: s.ejected_until.is_some_and(|until| Instant::now() < until),
            times_ejected: s.times_ejected,
        }
    }
}

/// An attempt in flight on an endpoint. Dropped without [`InFlight::finish`] (the
/// attempt was cancelled), it stops counting as in flight and its time so far counts
/// as a lower bound of the endpoint's latency.
#[must_use = "report the attempt's outcome with finish()"]
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) endpoint: Arc<Endpoint>,
    started: Instant,
    finished: bool,
}

impl InFlight {
    /// Reports the outcome; returns whether the endpoint reached the ejection threshold.
    pub(crate) fn finish(mut self, failed: bool, outlier: Option<&OutlierConfig>) -> bool {
        self.finished = true;
        self.endpoint
            .finish(self.started.elapsed(), failed, outlier)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            self.endpoint.cancelled(self.started.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_attempt_can_only_raise_the_estimate() {
        let url = Url::parse("http://127.0.0.1:1").unwrap();
        let ep = Arc::new(Endpoint::new(url, "http://127.0.0.1:1".into(), None, 1));
        let quick = ep.start();
        tokio::time::advance(Duration::from_millis(1)).await;
        drop(quick);
        assert_eq!(
            ep.stats().ewma_ms.round(),
            30.0,
            "1 ms says nothing: the initial 30 stays"
        );
        let hung = ep.start();
        tokio::time::advance(Duration::from_millis(80)).await;
        drop(hung);
        assert_eq!(ep.stats().ewma_ms.round(), 80.0, "at least 80 ms");
        assert_eq!((ep.stats().failures, ep.stats().in_flight), (0, 0));
    }

    /// On a paused clock, so the estimate is read before it decays (the integration test
    /// compared it against a real clock while it decayed).
    #[tokio::test(start_paused = true)]
    async fn a_failure_weighs_like_a_one_second_sample_and_repeated_ones_cross_the_threshold() {
        let url = Url::parse("http://127.0.0.1:1").unwrap();
        let ep = Arc::new(Endpoint::new(url, "http://127.0.0.1:1".into(), None, 1));
        let outlier = OutlierConfig {
            consecutive_failures: 2,
            ..OutlierConfig::default()
        };
        assert!(
            !ep.start().finish(true, Some(&outlier)),
            "one failure is not enough"
        );
        assert_eq!(ep.stats().ewma_ms, 1000.0);
        assert!(
            ep.start().finish(true, Some(&outlier)),
            "the second one crosses it"
        );
        ep.eject(&outlier);
        let stats = ep.stats();
        assert!(stats.ejected && stats.times_ejected == 1, "{stats:?}");
        assert_eq!((stats.requests, stats.failures), (2, 2));
    }
}
