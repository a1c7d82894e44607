//! Exponential backoff with full jitter.
//!
//! The delay before retry `n` (0-based) is uniform in `[0, min(cap, base * 2^n)]`.
//! Full jitter rather than "exponential plus a little noise" because it spreads
//! synchronized clients best for the least total wait (Brooker, "Exponential Backoff
//! and Jitter", AWS Architecture Blog, 2015).

use std::time::Duration;

use rand::{Rng, RngExt};

/// Backoff parameters, from [`super::RetryConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    pub(crate) const fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff { base, cap }
    }

    /// The upper bound of the delay before retry `n`; the doubling saturates rather than
    /// overflowing for large `n`.
    pub(crate) fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A delay drawn from `rng`; tests pass a seeded generator.
    pub(crate) fn delay(&self, n: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(n).as_nanos() as u64;
        Duration::from_nanos(rng.random_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let ms: Vec<u128> = (0..8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(
            b.ceiling(1_000),
            Duration::from_secs(2),
            "large n saturates"
        );
    }

    #[test]
    fn delays_are_full_jitter_within_the_ceiling() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let mut rng = SmallRng::seed_from_u64(7);
        let delays: Vec<Duration> = (0..1000).map(|_| b.delay(3, &mut rng)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let below_half = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(200))
            .count();
        assert!(
            (400..=600).contains(&below_half),
            "uniform: about half below the midpoint, got {below_half}"
        );
    }
}
