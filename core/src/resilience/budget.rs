//! The retry budget: retries may add only a fraction of the traffic.
//!
//! Why a budget and not just `max_attempts`: with 3 attempts, a total outage triples the
//! load on the failing service exactly when it can least take it, and every layer of
//! retrying callers multiplies that again. A budget caps retries at `ratio` of recent
//! requests (plus a small per-second floor so a quiet client can still retry a blip),
//! so an outage adds at most ~20% load instead of 200%. This is Finagle's
//! `RetryBudget` (and tower's `TpsBudget`), keyed per process and per service: every
//! `Client` in the process that calls the same service draws on the same budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use super::config::BudgetConfig;
use super::window::Window;

const REQUESTS: usize = 0;
const RETRIES: usize = 1;

/// Deposits one per request, withdraws one per retry.
#[derive(Debug)]
pub(crate) struct RetryBudget {
    ratio: f64,
    /// Retries always allowed per window: `min_per_sec` times the window in seconds.
    reserve: f64,
    window: Mutex<Window>,
}

impl RetryBudget {
    pub(crate) fn new(cfg: &BudgetConfig) -> RetryBudget {
        let length = Duration::from_millis(cfg.window_ms);
        RetryBudget {
            ratio: cfg.ratio,
            reserve: f64::from(cfg.min_per_sec) * length.as_secs_f64(),
            window: Mutex::new(Window::new(length)),
        }
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a request (not an attempt).
    pub(crate) fn deposit(&self) {
        self.window().add(REQUESTS, 1);
    }

    /// Takes one retry from the budget; false means the retry must not happen.
    pub(crate) fn withdraw(&self) -> bool {
        let mut window = self.window();
        let [requests, retries] = window.totals();
        if (retries as f64) < self.reserve + self.ratio * requests as f64 {
            window.add(RETRIES, 1);
            true
        } else {
            false
        }
    }
}

type Key = (String, u64, u32, u64);

static BUDGETS: Mutex<Option<HashMap<Key, Weak<RetryBudget>>>> = Mutex::new(None);

/// The process-wide budget for `service` with this config. Clients with the same
/// service name and settings share one; it is freed when the last of them is dropped.
pub(crate) fn shared(service: &str, cfg: &BudgetConfig) -> Arc<RetryBudget> {
    let key = (
        service.to_owned(),
        cfg.ratio.to_bits(),
        cfg.min_per_sec,
        cfg.window_ms,
    );
    let mut registry = BUDGETS.lock().unwrap_or_else(PoisonError::into_inner);
    let map = registry.get_or_insert_with(HashMap::new);
    if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
        return existing;
    }
    map.retain(|_, b| b.strong_count() > 0);
    let budget = Arc::new(RetryBudget::new(cfg));
    map.insert(key, Arc::downgrade(&budget));
    budget
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_per_sec: u32) -> RetryBudget {
        RetryBudget::new(&BudgetConfig {
            ratio,
            min_per_sec,
            window_ms: 10_000,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_by_ratio_plus_reserve() {
        let b = budget(0.2, 1);
        for _ in 0..100 {
            b.deposit();
        }
        let granted = (0..1000).filter(|_| b.withdraw()).count();
        assert_eq!(granted, 30, "20% of 100 requests plus 1/s over 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_expire_after_the_window() {
        let b = budget(1.0, 0);
        b.deposit();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(!b.withdraw(), "expired deposits must not fund retries");
    }

    #[test]
    fn clients_of_one_service_share_a_budget() {
        let cfg = BudgetConfig::default();
        let a = shared("budget-test-svc", &cfg);
        let b = shared("budget-test-svc", &cfg);
        assert!(Arc::ptr_eq(&a, &b));
        let other = shared("budget-test-other", &cfg);
        assert!(!Arc::ptr_eq(&a, &other));
    }
}
