//! A sliding window of counters in ten slots, shared by the budget and the breaker.
//!
//! Ten slots bound the error of the window edge to a tenth of its length while keeping
//! every update O(1) — the same trade Finagle's and tower's budgets make.

use std::time::Duration;

use tokio::time::Instant;

const SLOTS: usize = 10;

/// Counts of two things (requests and retries; attempts and failures) over a window.
#[derive(Debug)]
pub(crate) struct Window {
    slot_len: Duration,
    current: usize,
    slot_start: Instant,
    counts: [[u64; 2]; SLOTS],
}

impl Window {
    pub(crate) fn new(length: Duration) -> Window {
        Window {
            slot_len: (length / SLOTS as u32).max(Duration::from_millis(1)),
            current: 0,
            slot_start: Instant::now(),
            counts: [[0; 2]; SLOTS],
        }
    }

    /// Moves the window to `now`, clearing slots that fell out of it.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.slot_start);
        let steps = (elapsed.as_nanos() / self.slot_len.as_nanos()) as usize;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(SLOTS) {
            self.current = (self.current + 1) % SLOTS;
            self.counts[self.current] = [0; 2];
        }
        self.slot_start += self.slot_len * steps as u32;
    }

    /// Adds to counter `which` (0 or 1) now.
    pub(crate) fn add(&mut self, which: usize, n: u64) {
        self.advance(Instant::now());
        self.counts[self.current][which] += n;
    }

    /// Both totals over the window, as of now.
    pub(crate) fn totals(&mut self) -> [u64; 2] {
        self.advance(Instant::now());
        self.counts
            .iter()
            .fold([0, 0], |acc, c| [acc[0] + c[0], acc[1] + c[1]])
    }

    pub(crate) fn clear(&mut self) {
        self.counts = [[0; 2]; SLOTS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counts_expire_after_the_window() {
        let mut w = Window::new(Duration::from_secs(10));
        w.add(0, 5);
        tokio::time::advance(Duration::from_secs(5)).await;
        w.add(1, 2);
        assert_eq!(w.totals(), [5, 2]);
        tokio::time::advance(Duration::from_millis(5_500)).await;
        assert_eq!(w.totals(), [0, 2], "the first slot left the window");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(w.totals(), [0, 0]);
    }
}
