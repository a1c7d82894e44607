//! The in-process broker behind `memory://` URLs.
//!
//! It lets services, examples and tests run without RabbitMQ, so it copies RabbitMQ's
//! observable behaviour instead of inventing a simpler one: the default exchange and
//! direct, fanout, topic and headers routing; per-consumer prefetch with round-robin
//! dispatch; requeueing to the head with `redelivered`; quorum queues' delivery count
//! and delivery limit; message TTL; dead-lettering to `<queue>.dlq`; direct reply-to;
//! and RabbitMQ's reply codes and texts when it refuses something. One behavioural test
//! suite can then run against both transports.
//!
//! A broker's state sits under one `std::sync::Mutex`. Every operation is short and
//! synchronous (a delivery is a push into the consumer's unbounded channel, the way
//! RabbitMQ pushes up to the prefetch to a consumer), so the lock is never held across
//! an `.await`.

mod fifo;
mod routing;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use self::state::State;
use super::message::{Confirm, Incoming, Outcome, Outgoing, Settle};
use super::queue::{ExchangeKind, QueueOptions};
use super::transport::{self, Declaration, Replies, ReplyLane, Transport};
use crate::error::{Error, Result};

/// The in-process broker a `memory://` URL names, behind the [`Transport`] boundary.
/// Every operation completes at once; nothing reconnects.
pub(crate) struct Memory {
    broker: Arc<Broker>,
}

impl Memory {
    /// The broker `url` names (see [`Broker::named`]).
    pub(crate) fn named(url: &url::Url) -> Memory {
        Memory {
            broker: Broker::named(url),
        }
    }
}

impl Transport for Memory {
    fn declare(&self, declaration: Declaration, _deadline: Instant) -> BoxFuture<'_, Result<()>> {
        let declared = match &declaration {
            Declaration::Exchange { name, kind } => self.broker.declare_exchange(name, *kind),
            Declaration::Queue { name, options } => self.broker.declare_queue(name, options),
            Declaration::Bind {
                queue,
                exchange,
                routing_key,
            } => self.broker.bind(queue, exchange, routing_key),
            Declaration::Delay { name, target } => self.broker.state().declare_delay(name, target),
        };
        Box::pin(std::future::ready(declared))
    }

    fn publish<'a>(
        &'a self,
        message: &'a Outgoing,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Confirm>> {
        Box::pin(std::future::ready(self.broker.publish(message.clone())))
    }

    fn subscribe<'a>(
        &'a self,
        queue: &'a str,
        prefetch: u16,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Box<dyn transport::Subscription>>> {
        let subscribed = self
            .broker
            .subscribe(queue, prefetch)
            .map(|s| Box::new(s) as Box<dyn transport::Subscription>);
        Box::pin(std::future::ready(subscribed))
    }

    fn reply_lane(&self, _deadline: Instant) -> BoxFuture<'_, Result<Replies>> {
        let (address, receiver) = self.broker.reply_address();
        let replies = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|reply| (reply, receiver))
        })
        .boxed();
        let lane = Lane {
            broker: self.broker.clone(),
            address,
        };
        Box::pin(std::future::ready(Ok(Replies {
            lane: Box::new(lane),
            replies,
        })))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        // The broker outlives every bus on it, as RabbitMQ outlives its connections.
        Box::pin(std::future::ready(()))
    }
}

/// A registered reply-to address; it stays routable while its replies are received.
struct Lane {
    broker: Arc<Broker>,
    address: String,
}

impl ReplyLane for Lane {
    fn address(&self) -> &str {
        &self.address
    }

    fn generation(&self) -> u64 {
        0
    }

    fn target(&self) -> &str {
        "memory"
    }

    fn is_current(&self) -> bool {
        true
    }

    fn publish<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Confirm>> {
        Box::pin(std::future::ready(self.broker.publish(message.clone())))
    }
}

/// An in-process AMQP-like broker.
pub(crate) struct Broker {
    state: Mutex<State>,
}

impl Broker {
    fn new() -> Arc<Broker> {
        Arc::new_cyclic(|me| Broker {
            state: Mutex::new(State::new(me.clone())),
        })
    }

    /// The broker a `memory://` URL names: `memory://` and `memory://default` are the
    /// process's default broker, `memory://NAME` another one. Brokers live as long as
    /// the process, so two buses on one URL share queues the way two connections to
    /// one RabbitMQ do.
    pub(crate) fn named(url: &url::Url) -> Arc<Broker> {
        static BROKERS: OnceLock<Mutex<HashMap<String, Arc<Broker>>>> = OnceLock::new();
        let name = url
            .host_str()
            .filter(|h| !h.is_empty())
            .unwrap_or("default");
        BROKERS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(Broker::new)
            .clone()
    }

    /// A panic elsewhere while holding the lock leaves the state consistent (every
    /// operation mutates it in steps that are each complete), so a poisoned lock is
    /// still used.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Idempotent, like `exchange.declare`.
    ///
    /// # Errors
    /// [`Error::Broker`] 406 when it exists with another kind, 403 for the default
    /// exchange and `amq.` names.
    pub(crate) fn declare_exchange(&self, name: &str, kind: ExchangeKind) -> Result<()> {
        self.state().declare_exchange(name, kind)
    }

    /// Idempotent, like `queue.declare`; with `dead_letter` it also declares
    /// `<name>.dlq` (same queue type, no dead-letter queue of its own).
    ///
    /// # Errors
    /// [`Error::Broker`] 406 when the queue (or its dead-letter queue) exists with
    /// other options, 403 for `amq.` names; [`Error::Config`] for options AMQP would
    /// refuse to encode.
    pub(crate) fn declare_queue(&self, name: &str, options: &QueueOptions) -> Result<()> {
        self.state().declare_queue(name, options)
    }

    /// # Errors
    /// [`Error::Broker`] 404 when the exchange or the queue does not exist, 403 for the
    /// default exchange (every queue is bound to it implicitly).
    pub(crate) fn bind(&self, queue: &str, exchange: &str, routing_key: &str) -> Result<()> {
        self.state().bind(queue, exchange, routing_key)
    }

    /// Routes and enqueues `message` before returning, so the answer is final, like a
    /// publisher confirm. A message published to the default exchange with a missing
    /// queue's name is unroutable, not an error, as in AMQP.
    ///
    /// # Errors
    /// [`Error::Broker`] 404 when the exchange does not exist.
    pub(crate) fn publish(&self, message: Outgoing) -> Result<Confirm> {
        self.state().publish(message, Instant::now())
    }

    /// Starts a consumer on `queue` with at most `prefetch` unsettled deliveries (0 for
    /// no limit, as with `basic.qos`).
    ///
    /// # Errors
    /// [`Error::Broker`] 404 when the queue does not exist.
    pub(crate) fn subscribe(&self, queue: &str, prefetch: u16) -> Result<Subscription> {
        self.state().subscribe(queue, prefetch, Instant::now())
    }

    /// Registers a direct reply-to address and returns it with the receiver of the
    /// replies published to it (default exchange, the address as routing key). Replies
    /// need no settling. Once the receiver is dropped the address is unroutable.
    pub(crate) fn reply_address(&self) -> (String, UnboundedReceiver<Incoming>) {
        self.state().reply_address()
    }
}

/// One consumer's deliveries.
pub(crate) struct Subscription {
    broker: Weak<Broker>,
    queue: Arc<str>,
    consumer: u64,
    deliveries: UnboundedReceiver<Incoming>,
    cancelled: AtomicBool,
}

impl Subscription {
    /// The next delivery; `None` after [`Subscription::cancel`].
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery stays in the channel until this returns it.
    pub(crate) async fn next(&mut self) -> Option<Incoming> {
        if self.cancelled.load(Ordering::Acquire) {
            return None;
        }
        self.deliveries.recv().await
    }

    /// Like `basic.cancel` followed by closing the channel: no more deliveries, and the
    /// unsettled ones go back to the head of the queue, in order, marked redelivered.
    /// Deliveries still buffered here are never returned by [`Subscription::next`]: the
    /// queue has them again.
    pub(crate) fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(broker) = self.broker.upgrade() {
            broker
                .state()
                .cancel(&self.queue, self.consumer, Instant::now());
        }
    }
}

impl transport::Subscription for Subscription {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Incoming>>> {
        Box::pin(async move { Ok(Subscription::next(self).await) })
    }

    fn cancel(&mut self) -> BoxFuture<'static, ()> {
        // In process: nothing is delivered to it once this returns.
        Subscription::cancel(self);
        Box::pin(std::future::ready(()))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// The right to settle one delivery.
pub(crate) struct Ticket {
    broker: Weak<Broker>,
    queue: Arc<str>,
    consumer: u64,
    tag: u64,
    settled: AtomicBool,
}

impl Ticket {
    fn new(broker: Weak<Broker>, queue: Arc<str>, consumer: u64, tag: u64) -> Self {
        Ticket {
            broker,
            queue,
            consumer,
            tag,
            settled: AtomicBool::new(false),
        }
    }

    /// Settles the delivery.
    ///
    /// # Errors
    /// [`Error::Closed`] when it was settled before, or when its subscription was
    /// cancelled first (the queue has the message again, as RabbitMQ requeues a
    /// closed channel's deliveries).
    pub(crate) fn settle(&self, outcome: Outcome) -> Result<()> {
        if self.settled.load(Ordering::Acquire) {
            return Err(already_settled());
        }
        let broker = self.broker.upgrade().ok_or_else(consumer_closed)?;
        broker.state().settle(
            &self.queue,
            self.consumer,
            self.tag,
            outcome,
            Instant::now(),
        )?;
        self.settled.store(true, Ordering::Release);
        Ok(())
    }
}

impl Settle for Ticket {
    fn settle(&self, outcome: Outcome) -> BoxFuture<'_, Result<()>> {
        Box::pin(std::future::ready(Ticket::settle(self, outcome)))
    }
}

fn consumer_closed() -> Error {
    Error::Closed {
        what: "delivery (its consumer was closed; the message was requeued)",
    }
}

fn already_settled() -> Error {
    Error::Closed {
        what: "delivery (already settled)",
    }
}

fn refused(operation: &'static str, reply_code: u16, reply_text: String) -> Error {
    Error::Broker {
        operation,
        reply_code,
        reply_text,
    }
}
