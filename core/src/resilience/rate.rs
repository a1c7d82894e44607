//! Client-side rate limiting: a token bucket per service, and optionally one per key a
//! call names (a tenant, a user), so one caller cannot spend the whole service's rate.
//!
//! A call takes one token before its first attempt (retries and hedges are bounded by
//! the retry budget instead). Tokens are reserved: a call that must wait is told how
//! long, and later calls queue behind it, so waiting callers are served in order at the
//! configured rate instead of racing. A 429 from the service slows its bucket: the rate
//! halves (down to 1/16 of the configured rate), and a `Retry-After` empties the bucket
//! until then; the rate recovers to the configured one over [`RECOVERY`] without 429s.
//! This is AIMD, as TCP and Finagle's and Envoy's adaptive limiters do, so a client
//! settles just under the rate the server accepts.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::config::RateLimitConfig;
use crate::error::{Error, Result};
use crate::limits::MAX_RATE_KEYS;

/// How long a slowed bucket takes to climb back to the configured rate.
pub(crate) const RECOVERY: Duration = Duration::from_secs(10);
/// The lowest rate a 429 can slow a bucket to, as a fraction of the configured rate.
const FLOOR_FRACTION: f64 = 1.0 / 16.0;

/// One service's buckets.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    service: String,
    rate: f64,
    burst: f64,
    wait: bool,
    bucket: Mutex<Bucket>,
    keyed: Mutex<HashMap<String, Bucket>>,
}

/// Tokens and the rate they come at. `last` may lie in the future: after a
/// `Retry-After`, refilling starts only then.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, rate: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            rate,
            last: now,
        }
    }

    /// Adds the tokens earned since `last` and lets a slowed rate recover.
    fn refill(&mut self, now: Instant, configured: f64, burst: f64) {
        if now <= self.last {
            return;
        }
        let elapsed = (now - self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(burst);
        self.rate = (self.rate + configured * elapsed / RECOVERY.as_secs_f64()).min(configured);
        self.last = now;
    }

    /// Reserves one token, returning how long to wait for it; refuses (with the wait it
    /// would have needed) when that is over `max_wait`.
    fn take(
        &mut self,
        now: Instant,
        max_wait: Duration,
    ) -> std::result::Result<Duration, Duration> {
        let wait = if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            self.last.saturating_duration_since(now)
                + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        };
        if wait > max_wait {
            return Err(wait);
        }
        self.tokens -= 1.0;
        Ok(wait)
    }

    fn slow_down(&mut self, now: Instant, configured: f64, retry_after: Option<Duration>) {
        self.rate = (self.rate / 2.0).max(configured * FLOOR_FRACTION);
        if let Some(pause) = retry_after {
            self.tokens = self.tokens.min(0.0);
            self.last = self.last.max(now + pause);
        }
    }

    /// A bucket that would be full now and is not paused holds nothing a new one would
    /// not: it can be dropped from the key map.
    fn is_idle(&self, now: Instant, configured: f64, burst: f64) -> bool {
        let mut probe = self.clone();
        probe.refill(now, configured, burst);
        probe.last <= now && probe.tokens >= burst && probe.rate >= configured
    }
}

impl RateLimiter {
    pub(crate) fn new(service: &str, cfg: &RateLimitConfig) -> RateLimiter {
        let burst = f64::from(cfg.burst());
        let now = Instant::now();
        RateLimiter {
            service: service.to_owned(),
            rate: cfg.per_second,
            burst,
            wait: cfg.wait,
            bucket: Mutex::new(Bucket::full(burst, cfg.per_second, now)),
            keyed: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for one call, from the service's bucket or `key`'s. Returns how
    /// long the call must wait for it (zero when one is there).
    ///
    /// # Errors
    /// [`Error::RateLimited`] when the token would come later than `within` (or at all
    /// later, for a limiter that does not wait), or when a new key would pass
    /// [`MAX_RATE_KEYS`] busy keys.
    pub(crate) fn acquire(&self, key: Option<&str>, within: Duration) -> Result<Duration> {
        let max_wait = if self.wait { within } else { Duration::ZERO };
        let now = Instant::now();
        let taken = match key {
            None => {
                let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
                bucket.refill(now, self.rate, self.burst);
                bucket.take(now, max_wait)
            }
            Some(key) => {
                let mut keyed = self.keyed.lock().unwrap_or_else(PoisonError::into_inner);
                if !keyed.contains_key(key) && keyed.len() >= MAX_RATE_KEYS {
                    keyed.retain(|_, b| !b.is_idle(now, self.rate, self.burst));
                    if keyed.len() >= MAX_RATE_KEYS {
                        // Every tracked key is busy: a new one waits, like a busy key,
                        // for about one bucket's refill.
                        return Err(Error::RateLimited {
                            service: self.service.clone(),
                            retry_after: Duration::from_secs_f64(self.burst / self.rate),
                        });
                    }
                }
                let bucket = keyed
                    .entry(key.to_owned())
                    .or_insert_with(|| Bucket::full(self.burst, self.rate, now));
                bucket.refill(now, self.rate, self.burst);
                bucket.take(now, max_wait)
            }
        };
        taken.map_err(|retry_after| Error::RateLimited {
            service: self.service.clone(),
            retry_after,
        })
    }

    /// The service answered 429: slows the bucket the call drew from.
    pub(crate) fn throttled(&self, key: Option<&str>, retry_after: Option<Duration>) {
        let now = Instant::now();
        let slow = |bucket: &mut Bucket| {
            bucket.refill(now, self.rate, self.burst);
            bucket.slow_down(now, self.rate, retry_after);
        };
        match key {
            None => slow(&mut self.bucket.lock().unwrap_or_else(PoisonError::into_inner)),
            Some(key) => {
                if let Some(bucket) = self
                    .keyed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_mut(key)
                {
                    slow(bucket);
                }
            }
        }
    }

    /// The service bucket's current rate, per second (below the configured rate while
    /// it recovers from a 429).
    pub(crate) fn current_rate(&self) -> f64 {
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        bucket.refill(Instant::now(), self.rate, self.burst);
        bucket.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn limiter(per_second: f64, burst: u32, wait: bool) -> RateLimiter {
        RateLimiter::new(
            "svc",
            &RateLimitConfig {
                per_second,
                burst: Some(burst),
                wait,
            },
        )
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_calls_wait_in_turn() {
        let l = limiter(10.0, 3, true);
        for _ in 0..3 {
            assert_eq!(l.acquire(None, SECOND).unwrap(), Duration::ZERO);
        }
        // Reservations queue: the 4th waits 100 ms, the 5th 200 ms.
        assert_eq!(l.acquire(None, SECOND).unwrap(), Duration::from_millis(100));
        assert_eq!(l.acquire(None, SECOND).unwrap(), Duration::from_millis(200));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(l.acquire(None, SECOND).unwrap(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_the_deadline_or_any_wait_without_waiting_is_refused() {
        let l = limiter(1.0, 1, true);
        l.acquire(None, SECOND).unwrap();
        let err = l.acquire(None, Duration::from_millis(500)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited);
        assert_eq!(
            err.to_string(),
            "svc is rate limited; next token in 1000 ms"
        );
        let fast = limiter(1.0, 1, false);
        fast.acquire(None, SECOND).unwrap();
        assert_eq!(
            fast.acquire(None, SECOND).unwrap_err().kind(),
            ErrorKind::RateLimited,
            "wait: false fails at once"
        );
        tokio::time::advance(SECOND).await;
        assert!(fast.acquire(None, SECOND).is_ok(), "the token came back");
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_buckets_of_their_own() {
        let l = limiter(1.0, 1, false);
        l.acquire(Some("tenant-a"), SECOND).unwrap();
        assert!(l.acquire(Some("tenant-a"), SECOND).is_err());
        l.acquire(Some("tenant-b"), SECOND).unwrap();
        l.acquire(None, SECOND).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_keys_make_room_and_busy_ones_are_a_limit() {
        let l = limiter(1.0, 1, true);
        for i in 0..MAX_RATE_KEYS {
            l.acquire(Some(&format!("k{i}")), SECOND).unwrap();
        }
        let err = l.acquire(Some("one-more"), SECOND).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
        tokio::time::advance(SECOND).await;
        l.acquire(Some("one-more"), SECOND).unwrap();
        assert_eq!(
            l.keyed.lock().unwrap().len(),
            1,
            "the refilled keys were dropped"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_halves_the_rate_and_retry_after_pauses_the_bucket() {
        let l = limiter(100.0, 100, false);
        l.throttled(None, None);
        assert_eq!(l.current_rate(), 50.0);
        for _ in 0..10 {
            l.throttled(None, None);
        }
        assert_eq!(l.current_rate(), 100.0 / 16.0, "the floor");
        // Recovers linearly to the configured rate over RECOVERY.
        tokio::time::advance(RECOVERY / 2).await;
        assert!((l.current_rate() - (6.25 + 50.0)).abs() < 1e-9);
        tokio::time::advance(RECOVERY).await;
        assert_eq!(l.current_rate(), 100.0);

        l.throttled(None, Some(Duration::from_secs(2)));
        let err = l.acquire(None, SECOND).unwrap_err();
        assert!(
            matches!(err, Error::RateLimited { retry_after, .. } if retry_after >= Duration::from_secs(2)),
            "{err:?}"
        );
        tokio::time::advance(Duration::from_secs(2) + Duration::from_millis(50)).await;
        assert!(
            l.acquire(None, SECOND).is_ok(),
            "after Retry-After tokens come again"
        );
    }
}
