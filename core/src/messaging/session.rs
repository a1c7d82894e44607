//! What a bus shares with its consumers and deliveries: the transport, the counters, the
//! dedup store, request/reply, the one path every outgoing message takes (publishes,
//! requests and replies alike), and the bus's lifecycle.
//!
//! It sits below `Bus`, `Consumer` and `Delivery` so that none of them reaches into
//! another: each holds the session, and the session knows none of them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::dedup::DedupStore;
use super::message::{Confirm, Outgoing};
use super::rpc::Rpc;
use super::stats::Counters;
use super::transport::{ReplyLane, Transport};
use crate::error::{Error, Result};
use crate::limits::MessageLimits;
use crate::resilience::Backoff;
use crate::telemetry::metrics;

/// How long a declaration or a new consumer's first subscription may wait for a
/// reconnecting broker: the caller learns about an outage instead of waiting for it.
pub(crate) const SETUP_DEADLINE: Duration = Duration::from_secs(30);

/// The backoff between re-publishes of a nacked message: full jitter from 50 ms doubling
/// up to 2 s, long enough for a quorum queue's leader election (a few seconds) to
/// finish within a default 30 s publish deadline without a storm of re-sends.
const REPUBLISH: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

pub(crate) struct Session {
    pub(crate) transport: Box<dyn Transport>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) dedup: Arc<DedupStore>,
    pub(crate) rpc: Rpc,
    /// Bounds messages awaiting confirms (`max_unconfirmed`).
    unconfirmed: Semaphore,
    /// The bus's default for consumers that set none.
    pub(crate) prefetch: u16,
    /// How long a publish may wait in all when the caller sets no deadline.
    pub(crate) publish_deadline: Duration,
    /// Body and header sizes every outgoing message is checked against.
    pub(crate) limits: MessageLimits,
    /// The delay queues this bus declared (`super::delay`).
    delay_queues: Mutex<HashSet<String>>,
    /// Held while a delay queue is declared for the first time.
    pub(crate) delay_declaring: tokio::sync::Mutex<()>,
    /// The retry delays of the queues this bus declared with `retry_delays_ms`, for
    /// their consumers.
    retry_delays: Mutex<HashMap<String, Arc<[u64]>>>,
    /// The process that connected; a child forked from it cannot use this bus.
    pid: u32,
    closed: AtomicBool,
    /// Set by `close()`, so consumers blocked in `next()` wake and end.
    shutdown: watch::Sender<bool>,
}

/// The settings a session takes from the bus's config.
pub(crate) struct Settings {
    pub max_unconfirmed: usize,
    pub prefetch: u16,
    pub publish_deadline: Duration,
    pub limits: MessageLimits,
}

impl Session {
    pub(crate) fn new(
        transport: Box<dyn Transport>,
        counters: Arc<Counters>,
        dedup: Arc<DedupStore>,
        settings: Settings,
    ) -> Session {
        Session {
            transport,
            counters,
            dedup,
            rpc: Rpc::default(),
            unconfirmed: Semaphore::new(settings.max_unconfirmed),
            prefetch: settings.prefetch,
            publish_deadline: settings.publish_deadline,
            limits: settings.limits,
            delay_queues: Mutex::default(),
            delay_declaring: tokio::sync::Mutex::new(()),
            retry_delays: Mutex::default(),
            pid: std::process::id(),
            closed: AtomicBool::new(false),
            shutdown: watch::Sender::new(false),
        }
    }

    /// Sends one message and turns the broker's answer into the caller's result,
    /// holding one of the `max_unconfirmed` slots meanwhile. `lane` carries a request on
    /// its reply lane; everything else goes through the transport's publish, which
    /// re-sends across reconnects.
    pub(crate) async fn send(
        &self,
        message: &Outgoing,
        deadline: Instant,
        lane: Option<&dyn ReplyLane>,
    ) -> Result<()> {
        let started = Instant::now();
        let _permit = tokio::time::timeout_at(deadline, self.unconfirmed.acquire())
            .await
            .map_err(|_| Error::Timeout {
                operation: "publish",
                after: started.elapsed(),
            })?
            .map_err(|_| Error::Closed { what: "bus" })?;
        self.counters.published.inc();
        let mut nacks = 0;
        let confirm = loop {
            let confirm = match lane {
                Some(lane) => lane.publish(message).await,
                None => self.transport.publish(message, deadline).await,
            };
            // A nack is the broker saying "not now" (a quorum queue electing a leader, a
            // node going away, a full queue that rejects publishes): the same message,
            // same id, goes again after a backoff while the deadline allows, as the
            // RabbitMQ reliability guide tells publishers to. With dedup on the consumer,
            // a copy that did land is discarded. Refusals that cannot heal (unroutable,
            // access refused, a missing exchange, a message over the limit) are not
            // nacks and fail at once.
            if let Ok(Confirm::Nack) = confirm {
                let wait = REPUBLISH.delay(nacks, &mut rand::rng());
                if Instant::now() + wait < deadline {
                    self.counters.publish_rejected.inc();
                    self.counters.republished.inc();
                    nacks += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            break confirm;
        };
        let result = confirm
            .map_err(|e| match e {
                // The transport knows which wait ran out; the caller's clock started here.
                Error::Timeout { operation, .. } => Error::Timeout {
                    operation,
                    after: started.elapsed(),
                },
                other => other,
            })
            .and_then(|confirm| self.receipt(message, confirm));
        // The default exchange routes by queue name: the routing key is the destination.
        let destination = if message.exchange.is_empty() {
            &message.routing_key
        } else {
            &message.exchange
        };
        metrics::published(
            destination,
            result.as_ref().err().map(|e| e.kind().code()),
            started.elapsed(),
        );
        result
    }

    /// Counts the broker's answer and turns a refusal into its error.
    fn receipt(&self, message: &Outgoing, confirm: Confirm) -> Result<()> {
        let counters = &self.counters;
        match confirm {
            Confirm::Ack => {
                counters.confirmed.inc();
                Ok(())
            }
            Confirm::Returned(reply_text) => {
                counters.confirmed.inc();
                counters.returned.inc();
                Err(Error::Unroutable {
                    message_id: message.message_id.clone(),
                    exchange: message.exchange.clone(),
                    routing_key: message.routing_key.clone(),
                    reply_text,
                })
            }
            Confirm::Nack => {
                counters.publish_rejected.inc();
                Err(Error::PublishRejected {
                    message_id: message.message_id.clone(),
                    exchange: message.exchange.clone(),
                })
            }
        }
    }

    /// The delay queues declared so far; the lock is never held across an `.await`.
    pub(crate) fn delay_queues(&self) -> MutexGuard<'_, HashSet<String>> {
        self.delay_queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `queue`'s retry delays (none: a nack requeues at once).
    pub(crate) fn set_retry_delays(&self, queue: &str, delays: &[u64]) {
        let mut map = self
            .retry_delays
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if delays.is_empty() {
            map.remove(queue);
        } else {
            map.insert(queue.to_owned(), delays.into());
        }
    }

    /// The retry delays this bus declared `queue` with, if any.
    pub(crate) fn retry_delays(&self, queue: &str) -> Option<Arc<[u64]>> {
        self.retry_delays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(queue)
            .cloned()
    }

    /// Closes once: stops publishes, wakes consumers, fails waiting requests, closes
    /// the transport. Returns false when it was closed already.
    pub(crate) async fn close(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.unconfirmed.close();
        self.shutdown.send_replace(true);
        self.rpc.close().await;
        self.transport.close().await;
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once the bus is closed.
    pub(crate) async fn closing(&self) {
        let mut rx = self.shutdown.subscribe();
        // An error means the sender is gone, which only happens with the session itself.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// Refuses operations on a closed bus, or in a process forked after it connected.
    pub(crate) fn check_open(&self) -> Result<()> {
        self.check_not_forked()?;
        if self.is_closed() {
            return Err(Error::Closed { what: "bus" });
        }
        Ok(())
    }

    pub(crate) fn check_not_forked(&self) -> Result<()> {
        if self.pid != std::process::id() {
            // After fork() the child has none of the parent's threads: the connection's
            // reader and the confirm tracking are gone, so every operation would hang or
            // time out. Say so instead. (A Client works after fork: it builds anew on the
            // child's runtime.)
            return Err(Error::Closed {
                what: "bus (it was connected before fork(); connect a new one in the child)",
            });
        }
        Ok(())
    }
}
