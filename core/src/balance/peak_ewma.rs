//! Peak-EWMA latency estimate.
//!
//! An exponentially weighted moving average that jumps straight up to a sample slower
//! than the estimate and decays toward faster ones with time constant `tau`, weighting
//! by elapsed time rather than by sample count so a rarely chosen endpoint is judged on
//! how recent its data is. From Finagle's `PeakEwma` balancer
//! (<https://github.com/twitter/finagle/blob/develop/finagle-core/src/main/scala/com/twitter/finagle/loadbalancer/PeakEwma.scala>,
//! Apache-2.0), as also used by linkerd and tower (`tower/src/load/peak_ewma.rs`).

use std::time::Duration;

use tokio::time::Instant;

/// Decay time constant: the weight of a sample halves in about 7 s.
pub(crate) const TAU: Duration = Duration::from_secs(10);
/// Estimate of an endpoint with no samples yet: optimistic enough to be tried soon,
/// pessimistic enough not to flood it (Finagle's and linkerd's default).
pub(crate) const INITIAL: Duration = Duration::from_millis(30);
/// A failure counts as this slow. Without it, an endpoint answering errors in 1 ms
/// would look like the fastest and attract all traffic: plain EWMA's known trap.
pub(crate) const FAILURE_PENALTY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub(crate) struct PeakEwma {
    estimate_ns: f64,
    stamp: Instant,
}

impl PeakEwma {
    pub(crate) fn new(now: Instant) -> PeakEwma {
        PeakEwma {
            estimate_ns: INITIAL.as_nanos() as f64,
            stamp: now,
        }
    }

    /// Folds in one latency sample.
    pub(crate) fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_nanos() as f64;
        if rtt > self.estimate_ns {
            self.estimate_ns = rtt;
        } else {
            let w = self.decay(now);
            self.estimate_ns = self.estimate_ns * w + rtt * (1.0 - w);
        }
        self.stamp = now;
    }

    /// Folds in a latency known only to be at least `rtt` (an attempt cancelled after
    /// `rtt`): it can raise the estimate, never lower it.
    pub(crate) fn observe_at_least(&mut self, rtt: Duration, now: Instant) {
        if rtt.as_nanos() as f64 > self.decayed_ns(now) {
            self.observe(rtt, now);
        }
    }

    /// The estimate in nanoseconds as of the last sample.
    #[cfg(test)]
    fn estimate_ns(&self) -> f64 {
        self.estimate_ns
    }

    /// The estimate decayed toward zero for the time since the last sample. Without
    /// this an endpoint penalised by a failure would never be chosen again to show it
    /// recovered; with it, an idle endpoint becomes worth a probe after a while
    /// (Finagle decays the same way when it reads the load).
    pub(crate) fn decayed_ns(&self, now: Instant) -> f64 {
        self.estimate_ns * self.decay(now)
    }

    fn decay(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.stamp).as_secs_f64();
        (-elapsed / TAU.as_secs_f64()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn jumps_to_slow_samples_and_decays_toward_fast_ones() {
        let mut e = PeakEwma::new(Instant::now());
        e.observe(Duration::from_millis(200), Instant::now());
        assert_eq!(e.estimate_ns(), 200e6, "a slower sample is taken at once");
        tokio::time::advance(TAU).await;
        e.observe(Duration::from_millis(10), Instant::now());
        let expected = 200e6 * (-1f64).exp() + 10e6 * (1.0 - (-1f64).exp());
        assert!(
            (e.estimate_ns() - expected).abs() < 1.0,
            "one time constant later: {}",
            e.estimate_ns()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_estimate_decays_toward_zero() {
        let mut e = PeakEwma::new(Instant::now());
        e.observe(FAILURE_PENALTY, Instant::now());
        tokio::time::advance(TAU * 7).await;
        assert!(
            e.decayed_ns(Instant::now()) < 1e6,
            "after 7 tau a failed endpoint is worth a probe"
        );
        assert_eq!(e.estimate_ns(), 1e9, "reading does not change the estimate");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_sample_right_after_a_slow_one_barely_moves_it() {
        let mut e = PeakEwma::new(Instant::now());
        e.observe(FAILURE_PENALTY, Instant::now());
        tokio::time::advance(Duration::from_millis(1)).await;
        e.observe(Duration::from_millis(1), Instant::now());
        assert!(
            e.estimate_ns() > 0.99e9,
            "recent failures dominate: {}",
            e.estimate_ns()
        );
    }
}
