//! Bus counters and the snapshot `Bus::stats()` returns, the same fields in every
//! language.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A monotonically increasing count, bumped from any task without a lock.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The live counters, shared by the bus, its link, consumers and deliveries.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: Counter,
    pub confirmed: Counter,
    pub resent: Counter,
    pub returned: Counter,
    pub publish_rejected: Counter,
    pub republished: Counter,
    pub delivered: Counter,
    pub acked: Counter,
    pub nacked: Counter,
    pub rejected: Counter,
    pub redelivered: Counter,
    pub deduplicated: Counter,
    pub retried: Counter,
    pub delayed: Counter,
    pub expired: Counter,
    pub reconnects: Counter,
}

/// Counters since the bus connected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BusStats {
    /// `publish` and `request` calls that reached the broker at least once.
    pub published: u64,
    /// Publishes the broker confirmed (including unroutable ones it returned).
    pub confirmed: u64,
    /// Messages sent again after a reconnect because their confirm was lost.
    pub resent: u64,
    /// Mandatory publishes returned as unroutable.
    pub returned: u64,
    /// Nacks the broker sent (each try of a message counts).
    pub publish_rejected: u64,
    /// Nacked messages sent again (same message id) within their publish deadline.
    pub republished: u64,
    /// Deliveries handed to the application.
    pub delivered: u64,
    /// Deliveries acknowledged.
    pub acked: u64,
    /// Deliveries negatively acknowledged.
    pub nacked: u64,
    /// Deliveries rejected (dead-lettered).
    pub rejected: u64,
    /// Deliveries handed over with the broker's `redelivered` flag.
    pub redelivered: u64,
    /// Duplicates acked and skipped without reaching the application.
    pub deduplicated: u64,
    /// Nacked deliveries sent to a delay queue to come back later (`retry_delays_ms`).
    pub retried: u64,
    /// Publishes confirmed into a delay queue (`delay`), retries not included.
    pub delayed: u64,
    /// Messages dead-lettered unprocessed because their deadline (`ttl`, a request's
    /// timeout) had passed when they were delivered.
    pub expired: u64,
    /// RPC requests awaiting their reply now.
    pub rpc_in_flight: u64,
    /// Reconnections after a lost connection.
    pub reconnects: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self, rpc_in_flight: usize) -> BusStats {
        BusStats {
            published: self.published.get(),
            confirmed: self.confirmed.get(),
            resent: self.resent.get(),
            returned: self.returned.get(),
            publish_rejected: self.publish_rejected.get(),
            republished: self.republished.get(),
            delivered: self.delivered.get(),
            acked: self.acked.get(),
            nacked: self.nacked.get(),
            rejected: self.rejected.get(),
            redelivered: self.redelivered.get(),
            deduplicated: self.deduplicated.get(),
            retried: self.retried.get(),
            delayed: self.delayed.get(),
            expired: self.expired.get(),
            rpc_in_flight: rpc_in_flight as u64,
            reconnects: self.reconnects.get(),
        }
    }
}
