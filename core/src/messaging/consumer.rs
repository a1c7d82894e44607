//! Pulling deliveries from a queue: resubscribing after a reconnect, and skipping or
//! holding back duplicates (the idempotent consumer).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as SyncMutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::batch::Batch;
use super::dedup::Claim as Claimed;
use super::delay;
use super::delivery::{Claim, Delivery};
use super::message::{Incoming, Outcome};
use super::session::{SETUP_DEADLINE, Session};
use super::transport::Subscription;
use crate::deadline;
use crate::error::{Error, Result};
use crate::limits::{MAX_BATCH, check_duration};
use crate::runtime::{self, Task};
use crate::telemetry::metrics;

/// Deliveries from one queue, pulled with [`Consumer::next`].
///
/// Pulling rather than pushing is what lets each binding wrap a consumer in its own
/// idiom (Python iterators, Node async iterators, Kotlin Flow, Swift AsyncSequence)
/// without calling into foreign code from Rust threads.
pub struct Consumer {
    shared: Arc<Shared>,
    state: Mutex<State>,
}

struct Shared {
    session: Arc<Session>,
    queue: String,
    dedup: bool,
    /// Unsettled deliveries the broker sends at most: the largest useful batch.
    prefetch: u16,
    /// The queue's retry delays, if this bus declared it with some.
    retry_delays: Option<Arc<[u64]>>,
    /// Duplicates whose first copy was nacked come back through here.
    released: mpsc::UnboundedSender<Delivery>,
    /// Tasks holding duplicates back until their first copy settles.
    holders: SyncMutex<JoinSet<()>>,
    /// Set by `close()`; wakes a `next()` blocked on the broker.
    closed: watch::Sender<bool>,
}

struct State {
    source: Box<dyn Subscription>,
    released: mpsc::UnboundedReceiver<Delivery>,
    /// A delivery being checked against the dedup store. The check runs as a task so
    /// that a `next()` dropped halfway (a timeout, a cancelled coroutine) neither loses
    /// the delivery nor leaves a claim behind: the next call picks the result up.
    admitting: Option<Task<Result<Option<Delivery>>>>,
    /// A batch being gathered: kept here, not in the `next_batch` future, so a call
    /// dropped halfway loses nothing (the next call returns them).
    gathered: Vec<Delivery>,
}

impl Consumer {
    pub(crate) async fn start(
        session: Arc<Session>,
        queue: &str,
        prefetch: u16,
        dedup: bool,
    ) -> Result<Consumer> {
        let deadline = Instant::now() + SETUP_DEADLINE;
        let source = session
            .transport
            .subscribe(queue, prefetch, deadline)
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(Consumer {
            shared: Arc::new(Shared {
                retry_delays: session.retry_delays(queue),
                session,
                queue: queue.to_owned(),
                dedup,
                prefetch,
                released: tx,
                holders: SyncMutex::new(JoinSet::new()),
                closed: watch::Sender::new(false),
            }),
            state: Mutex::new(State {
                source,
                released: rx,
                admitting: None,
                gathered: Vec::new(),
            }),
        })
    }

    /// The next delivery; `None` once the consumer or its bus is closed, or the broker
    /// cancelled the subscription (its queue was deleted). A lost connection is not the
    /// end: the consumer subscribes again once the bus has reconnected.
    ///
    /// # Errors
    /// [`Error::Timeout`] when `timeout` passes with nothing delivered;
    /// [`Error::Connect`] when the dedup store cannot be reached (the delivery is
    /// returned to the queue first).
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery taken from the broker is kept for the next call.
    pub async fn next(&self, timeout: Option<Duration>) -> Result<Option<Delivery>> {
        self.shared.session.check_not_forked()?;
        match timeout {
            Some(t) => tokio::time::timeout(t, self.pull())
                .await
                .map_err(|_| Error::Timeout {
                    operation: "next delivery",
                    after: t,
                })?,
            None => self.pull().await,
        }
    }

    /// Up to `max` deliveries (1..=the consumer's prefetch, since the broker sends no
    /// more unsettled ones than that): returns as soon as `max` have come, or when
    /// `timeout` has passed with fewer (possibly none: an empty batch). `None` once the
    /// consumer or its bus is closed, or its queue deleted, with nothing left to return.
    /// A `timeout` of zero takes only what has arrived already.
    ///
    /// # Errors
    /// [`Error::Config`] on `max` or `timeout_ms`; [`Error::Connect`] when the dedup
    /// store cannot be reached and nothing was gathered (with deliveries in hand, the
    /// batch is returned and the next call reports the store).
    ///
    /// # Cancel safety
    /// Cancel safe: deliveries gathered by a dropped call are returned by the next.
    pub async fn next_batch(&self, max: usize, timeout: Duration) -> Result<Option<Batch>> {
        self.shared.session.check_not_forked()?;
        let prefetch = usize::from(self.shared.prefetch);
        if max == 0 || max > prefetch.min(MAX_BATCH) {
            return Err(Error::config(
                "max",
                format!(
                    "must be 1..={} (the consumer's prefetch, at most {MAX_BATCH}), got {max}",
                    prefetch.min(MAX_BATCH)
                ),
            ));
        }
        check_duration("timeout_ms", timeout, true)?;
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().await;
        let mut ended = false;
        while state.gathered.len() < max {
            // `timeout_at` polls the pull before its clock, so a zero timeout still
            // takes what is ready.
            match tokio::time::timeout_at(deadline, self.pull_locked(&mut state)).await {
                Err(_elapsed) => break,
                Ok(Ok(Some(delivery))) => state.gathered.push(delivery),
                Ok(Ok(None)) => {
                    ended = true;
                    break;
                }
                Ok(Err(e)) if state.gathered.is_empty() => return Err(e),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "batch cut short; the next call reports it");
                    break;
                }
            }
        }
        if ended && state.gathered.is_empty() {
            return Ok(None);
        }
        // A dropped call may have gathered more than this call's `max`: the rest waits.
        let take = state.gathered.len().min(max);
        let deliveries = state.gathered.drain(..take).map(Arc::new).collect();
        Ok(Some(Batch::new(deliveries)))
    }

    async fn pull(&self) -> Result<Option<Delivery>> {
        let mut state = self.state.lock().await;
        if !state.gathered.is_empty() {
            // Left by a `next_batch` that was dropped, in delivery order.
            return Ok(Some(state.gathered.remove(0)));
        }
        self.pull_locked(&mut state).await
    }

    async fn pull_locked(&self, state: &mut State) -> Result<Option<Delivery>> {
        let State {
            source,
            released,
            admitting,
            ..
        } = state;
        loop {
            if let Some(task) = admitting.as_mut() {
                let admitted = task.await;
                *admitting = None;
                match admitted? {
                    Ok(Some(delivery)) => return Ok(Some(self.shared.hand_over(delivery))),
                    Ok(None) => continue,
                    Err(e) => return Err(e),
                }
            }
            if self.is_closed() {
                return Ok(None);
            }
            let incoming = tokio::select! {
                biased;
                () = self.shared.session.closing() => return Ok(None),
                () = self.shared.closing() => return Ok(None),
                Some(delivery) = released.recv() => return Ok(Some(self.shared.hand_over(delivery))),
                incoming = source.next() => incoming?,
            };
            let Some(incoming) = incoming else {
                return Ok(None);
            };
            let Some(incoming) = self.shared.unexpired(incoming) else {
                continue;
            };
            match incoming.message_id.clone() {
                Some(id) if self.shared.dedup => {
                    let shared = self.shared.clone();
                    *admitting = Some(runtime::spawn(shared.admit(incoming, id))?);
                }
                _ => {
                    let delivery = Delivery::new(incoming, self.shared.session.clone(), None);
                    return Ok(Some(self.shared.hand_over(delivery)));
                }
            }
        }
    }

    fn is_closed(&self) -> bool {
        *self.shared.closed.borrow() || self.shared.session.is_closed()
    }

    /// Cancels the subscription and closes its channel, and returns once the broker has
    /// (within a bounded wait). Deliveries not yet acknowledged return to the queue;
    /// [`Consumer::next`] returns `None` afterwards.
    ///
    /// # Errors
    /// None in practice: an already-closed channel counts as closed.
    pub async fn close(&self) -> Result<()> {
        self.shared.closed.send_replace(true);
        self.shared
            .holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .abort_all();
        let cancelled = {
            let mut state = self.state.lock().await;
            state.admitting = None;
            state.source.cancel()
        };
        // Returns once the broker has dropped the subscription: a message published
        // after `close` returns is not taken by this consumer's prefetch.
        cancelled.await;
        Ok(())
    }
}

impl Shared {
    async fn closing(&self) {
        let mut rx = self.closed.subscribe();
        // The sender lives as long as `self`: an error cannot happen while we wait.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Dead-letters a message past its deadline (`PublishOptions::ttl`, a request's
    /// timeout) instead of handing it over: its caller has given up on it. The broker
    /// drops expired messages only at a queue's head, so late ones still arrive (behind
    /// longer-lived messages, from the prefetch buffer, back from a retry delay).
    fn unexpired(&self, incoming: Incoming) -> Option<Incoming> {
        let deadline =
            deadline::message_deadline(incoming.headers.get(deadline::MESSAGE_DEADLINE_HEADER));
        if deadline.is_none_or(|at| at > SystemTime::now()) || parked(&incoming.headers) {
            return Some(incoming);
        }
        tracing::debug!(message_id = ?incoming.message_id, queue = %self.queue, "expired message dead-lettered");
        self.session.counters.expired.inc();
        // Settled on the side so `next` stays cancel safe; a failed reject leaves the
        // message to the broker, which redelivers it (and it is discarded again).
        let session = self.session.clone();
        let reject = async move {
            if let Err(e) = settle_raw(&session, incoming, Outcome::Reject).await {
                tracing::debug!(error = %e, "reject of an expired message failed");
            }
        };
        if let Ok(task) = runtime::spawn(reject) {
            drop(task.detach());
        }
        None
    }

    fn hand_over(&self, delivery: Delivery) -> Delivery {
        let counters = &self.session.counters;
        counters.delivered.inc();
        metrics::consumed(&self.queue);
        if delivery.redelivered {
            counters.redelivered.inc();
        }
        delivery
            .processing(&self.queue)
            .retrying(&self.queue, self.retry_delays.clone())
    }

    /// Checks a delivery against the dedup store: a first copy is handed over holding
    /// the claim; an already-processed copy is acked and skipped; a copy of a message
    /// still being processed is held back until that one settles.
    async fn admit(self: Arc<Self>, incoming: Incoming, id: String) -> Result<Option<Delivery>> {
        let store = self.session.dedup.clone();
        match store.claim(&self.queue, &id).await {
            Ok(Claimed::Fresh) => Ok(Some(self.claimed(incoming, id))),
            Ok(Claimed::Processed) => {
                self.skip(incoming).await;
                Ok(None)
            }
            Ok(Claimed::InProgress) => {
                let shared = self.clone();
                let handle = runtime::handle()?;
                self.holders
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .spawn_on(shared.hold(incoming, id), &handle);
                Ok(None)
            }
            Err(e) => {
                // Without the store nothing can be promised: give the message back.
                let _ = settle_raw(&self.session, incoming, Outcome::Nack { requeue: true }).await;
                Err(e)
            }
        }
    }

    async fn hold(self: Arc<Self>, incoming: Incoming, id: String) {
        let store = self.session.dedup.clone();
        loop {
            store.wait_settled(&self.queue, &id).await;
            match store.claim(&self.queue, &id).await {
                Ok(Claimed::Fresh) => {
                    let delivery = self.claimed(incoming, id);
                    // The consumer may be gone; the delivery's drop then releases it.
                    let _ = self.released.send(delivery);
                    return;
                }
                Ok(Claimed::Processed) => {
                    self.skip(incoming).await;
                    return;
                }
                Ok(Claimed::InProgress) => {}
                Err(e) => {
                    tracing::warn!(error = %e, message_id = %id, "dedup store unreachable; requeueing a held duplicate");
                    let _ =
                        settle_raw(&self.session, incoming, Outcome::Nack { requeue: true }).await;
                    return;
                }
            }
        }
    }

    fn claimed(&self, incoming: Incoming, id: String) -> Delivery {
        let claim = Claim {
            store: self.session.dedup.clone(),
            queue: self.queue.clone(),
            id,
        };
        Delivery::new(incoming, self.session.clone(), Some(claim))
    }

    /// Acks a duplicate the application never sees.
    async fn skip(&self, incoming: Incoming) {
        tracing::debug!(message_id = ?incoming.message_id, queue = %self.queue, "duplicate skipped");
        self.session.counters.deduplicated.inc();
        metrics::dedup_hit(&self.queue);
        if let Err(e) = settle_raw(&self.session, incoming, Outcome::Ack).await {
            tracing::debug!(error = %e, "ack of a duplicate failed; the broker redelivers it");
        }
    }
}

/// Whether a message sits in a dead-letter queue: dead-lettered last from a queue that is
/// not a courier delay queue. Such a message is kept for inspection however late it is
/// (discarding it there would lose it, since a DLQ dead-letters nowhere). RabbitMQ 3.13+
/// and memory:// name that queue in `x-last-death-queue`; RabbitMQ 3.10 only in the
/// newest (first) entry of `x-death`, read here as the JSON text courier renders it.
fn parked(headers: &BTreeMap<String, String>) -> bool {
    let last = match headers.get("x-last-death-queue") {
        Some(queue) => Some(queue.clone()),
        None => headers
            .get("x-death")
            .and_then(|deaths| serde_json::from_str::<serde_json::Value>(deaths).ok())
            .and_then(|deaths| deaths.get(0)?.get("queue")?.as_str().map(str::to_owned)),
    };
    last.is_some_and(|queue| !delay::is_delay_queue(&queue))
}

/// Settles a delivery courier handles itself, outside the application's counters.
async fn settle_raw(session: &Arc<Session>, incoming: Incoming, outcome: Outcome) -> Result<()> {
    Delivery::new(incoming, session.clone(), None)
        .settle_quietly(outcome)
        .await
}
