//! Idempotent consumer: remembers which message ids a queue's consumers have processed.
//!
//! A broker redelivers a message after a lost ack, a consumer crash or a publisher's
//! re-send, so "at least once" means duplicates. The consumer layer asks the store about
//! every delivery's message id before the application sees it:
//!
//! - [`Claim::Fresh`]: deliver it; the delivery now holds the claim and its ack calls
//!   [`DedupStore::complete`], its nack, reject or drop [`DedupStore::release`].
//! - [`Claim::Processed`]: a copy was acked within the window; ack this one and skip it.
//! - [`Claim::InProgress`]: a copy is being processed right now; hold this one back
//!   ([`DedupStore::wait_settled`]) and claim again, which then answers `Processed` (the
//!   first was acked) or `Fresh` (it was nacked, so this copy is the one to process).
//!
//! Ids are kept per queue: a message fanned out to two queues is processed once by each.
//! The in-memory store serves one process; the Redis store lets every consumer process
//! pointing at the same Redis share one window.

mod memory;
mod redis;

use std::fmt;
use std::sync::Arc;

use super::config::DedupConfig;
use crate::error::Result;

/// What the store knows about a message id on one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Not seen (or forgotten): the caller now holds the claim and must later
    /// [`DedupStore::complete`] or [`DedupStore::release`] it.
    Fresh,
    /// Acked within the window.
    Processed,
    /// Another delivery, in this process or another, holds the claim.
    InProgress,
}

/// The dedup store a consumer consults, chosen by [`DedupConfig`].
///
/// An enum rather than a trait object: there are exactly two stores, both known here,
/// and the consumer's hot path then needs no boxed futures.
pub(crate) struct DedupStore {
    inner: Inner,
}

enum Inner {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
}

impl DedupStore {
    /// Opens the store. For Redis this connects, so a wrong URL or an unreachable server
    /// is reported when the consumer starts rather than on its first delivery. Call it on
    /// courier's runtime: the Redis connection runs its reconnect task on the runtime
    /// that opened it.
    ///
    /// # Errors
    /// [`crate::Error::Connect`] (target redacted) when Redis cannot be reached;
    /// [`crate::Error::Config`] for a URL the Redis client refuses.
    pub(crate) async fn open(config: &DedupConfig) -> Result<Arc<DedupStore>> {
        let inner = match config {
            DedupConfig::Memory { capacity, ttl_ms } => {
                Inner::Memory(memory::MemoryStore::new(*capacity, *ttl_ms))
            }
            DedupConfig::Redis {
                url,
                ttl_ms,
                claim_ttl_ms,
                prefix,
            } => Inner::Redis(redis::RedisStore::open(url, *ttl_ms, *claim_ttl_ms, prefix).await?),
        };
        Ok(Arc::new(DedupStore { inner }))
    }

    /// Claims `id` on `queue` for processing, or says why it must not be processed now.
    ///
    /// # Errors
    /// [`crate::Error::Connect`] when Redis fails; the in-memory store never fails.
    pub(crate) async fn claim(&self, queue: &str, id: &str) -> Result<Claim> {
        match &self.inner {
            Inner::Memory(store) => Ok(store.claim(queue, id)),
            Inner::Redis(store) => store.claim(queue, id).await,
        }
    }

    /// Returns once `id` is no longer in progress: completed, released, or (Redis) its
    /// claim expired. The caller then claims again to learn which.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches, and dropping it leaves the store unchanged.
    pub(crate) async fn wait_settled(&self, queue: &str, id: &str) {
        match &self.inner {
            Inner::Memory(store) => store.wait_settled(queue, id).await,
            Inner::Redis(store) => store.wait_settled(queue, id).await,
        }
    }

    /// Marks `id` processed for the store's `ttl_ms` and drops the claim.
    ///
    /// # Errors
    /// [`crate::Error::Connect`] when Redis fails; the in-memory store never fails.
    pub(crate) async fn complete(&self, queue: &str, id: &str) -> Result<()> {
        match &self.inner {
            Inner::Memory(store) => {
                store.complete(queue, id);
                Ok(())
            }
            Inner::Redis(store) => store.complete(queue, id).await,
        }
    }

    /// Drops the claim without marking `id` processed, so a held-back copy is delivered.
    ///
    /// Synchronous because a delivery dropped unsettled releases its claim from `Drop`.
    /// The Redis store deletes the key in a background task; if that fails, the claim
    /// still expires after `claim_ttl_ms`.
    pub(crate) fn release(&self, queue: &str, id: &str) {
        match &self.inner {
            Inner::Memory(store) => store.release(queue, id),
            Inner::Redis(store) => store.release(queue, id),
        }
    }
}

// By hand: the stores' contents are no one's business in a log line, and the Redis URL
// may hold a password.
impl fmt::Debug for DedupStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Memory(_) => f
                .debug_struct("DedupStore")
                .field("store", &"memory")
                .finish(),
            Inner::Redis(store) => f
                .debug_struct("DedupStore")
                .field("store", &"redis")
                .field("target", &store.target())
                .finish(),
        }
    }
}
