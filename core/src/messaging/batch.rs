//! A batch of deliveries from `Consumer::next_batch`, settled with one call.

use std::sync::Arc;

use futures_util::future::join_all;

use super::delivery::Delivery;
use crate::error::Result;

/// Up to `max` deliveries from one consumer, in delivery order. Each can be settled on
/// its own (nack the one that failed); [`Batch::ack`], [`Batch::nack`] and
/// [`Batch::reject`] then settle all the others at once.
///
/// The deliveries are shared (`Arc`) so a binding can hand each to its language while
/// the batch still settles them.
#[derive(Debug, Default)]
pub struct Batch {
    deliveries: Vec<Arc<Delivery>>,
}

impl Batch {
    pub(crate) fn new(deliveries: Vec<Arc<Delivery>>) -> Batch {
        Batch { deliveries }
    }

    /// The deliveries, in the order the broker sent them.
    pub fn deliveries(&self) -> &[Arc<Delivery>] {
        &self.deliveries
    }

    /// How many deliveries the batch holds.
    pub fn len(&self) -> usize {
        self.deliveries.len()
    }

    /// True when the wait ended before anything was delivered.
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }

    /// Acks every delivery not settled yet, all at once (as [`Delivery::ack`] each): an
    /// ack changes nothing anyone sees in order, so they go concurrently (with a Redis
    /// dedup store, one round trip for the batch rather than one per delivery).
    ///
    /// # Errors
    /// The first failure among them; the others are settled regardless.
    pub async fn ack(&self) -> Result<()> {
        first_error(join_all(self.unsettled().map(|d| d.ack())).await)
    }

    /// Nacks every delivery not settled yet (as [`Delivery::nack`] each: on a queue
    /// with `retry_delays_ms`, `requeue` sends each to its next delay), one after the
    /// other in delivery order, so requeued messages keep their order.
    ///
    /// # Errors
    /// As [`Batch::ack`].
    pub async fn nack(&self, requeue: bool) -> Result<()> {
        let mut results = Vec::with_capacity(self.len());
        for d in self.unsettled() {
            results.push(d.nack(requeue).await);
        }
        first_error(results)
    }

    /// Rejects (dead-letters) every delivery not settled yet, in delivery order, so the
    /// dead-letter queue holds them in the order they came.
    ///
    /// # Errors
    /// As [`Batch::ack`].
    pub async fn reject(&self) -> Result<()> {
        let mut results = Vec::with_capacity(self.len());
        for d in self.unsettled() {
            results.push(d.reject().await);
        }
        first_error(results)
    }

    /// Deliveries the application has not settled on its own. Settling one while the
    /// batch call runs is the application's race: that delivery's second settle fails.
    fn unsettled(&self) -> impl Iterator<Item = &Arc<Delivery>> {
        self.deliveries.iter().filter(|d| !d.is_settled())
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a Arc<Delivery>;
    type IntoIter = std::slice::Iter<'a, Arc<Delivery>>;

    fn into_iter(self) -> Self::IntoIter {
        self.deliveries.iter()
    }
}

fn first_error(results: Vec<Result<()>>) -> Result<()> {
    results.into_iter().collect()
}
