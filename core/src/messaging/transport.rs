//! The boundary between courier's messaging semantics and a broker.
//!
//! Everything above it (the bus, consumers, deliveries, dedup, request/reply, stats) is
//! written once against these traits; below it sit the AMQP transport (lapin, a
//! connection that heals itself: `amqp/`) and the in-process `memory://` broker
//! (`memory/`). A transport owns what differs between brokers: how a message is written
//! and confirmed (and re-sent across a reconnect), how a subscription survives a
//! reconnect, how a delivery is settled, how topology is declared and replayed, and
//! where replies arrive.
//!
//! Methods return boxed futures so the bus can hold either transport behind one
//! `Arc<dyn Transport>`: one allocation per operation, against a network round trip.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio::time::Instant;

use super::message::{Confirm, Incoming, Outgoing};
use super::queue::{ExchangeKind, QueueOptions};
use crate::error::Result;

/// A broker connection as the bus sees it.
pub(crate) trait Transport: Send + Sync {
    /// Declares on the broker and, on a transport that reconnects, records the
    /// declaration so it is replayed on every new connection. Waits for a reconnecting
    /// broker until `deadline`.
    fn declare(&self, declaration: Declaration, deadline: Instant) -> BoxFuture<'_, Result<()>>;

    /// Writes `message` and waits for the broker's answer. A message whose answer was
    /// lost with the connection is written again on the next one, with the same message
    /// id, until `deadline`.
    fn publish<'a>(
        &'a self,
        message: &'a Outgoing,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Confirm>>;

    /// Starts consuming `queue` with manual acknowledgement and at most `prefetch`
    /// unsettled deliveries; the first subscription waits for a reconnecting broker
    /// until `deadline`.
    fn subscribe<'a>(
        &'a self,
        queue: &'a str,
        prefetch: u16,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>>>;

    /// Opens where replies to this connection's requests arrive: the lane to publish
    /// requests on, and the replies, which end when the lane can no longer receive any.
    fn reply_lane(&self, deadline: Instant) -> BoxFuture<'_, Result<Replies>>;

    /// Closes the connection and stops reconnecting.
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Deliveries from one queue to one consumer.
pub(crate) trait Subscription: Send {
    /// The next delivery, subscribing again after a reconnect; `None` once cancelled,
    /// closed, or cancelled by the broker (its queue was deleted).
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery is only taken from the broker when it is returned.
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Incoming>>>;

    /// Stops the deliveries; the unsettled ones return to the queue. The returned future
    /// ends once the broker has dropped the subscription (AMQP: cancel-ok and the
    /// channel's close-ok, bounded), so that after it no further message reaches this
    /// subscription; dropping it leaves the cancellation running.
    fn cancel(&mut self) -> BoxFuture<'static, ()>;
}

/// Where requests are published so that their replies come back to this connection.
pub(crate) trait ReplyLane: Send + Sync {
    /// The `reply_to` address requests carry.
    fn address(&self) -> &str;

    /// The connection generation the lane lives on; a request waits for a reply only
    /// as long as that connection does.
    fn generation(&self) -> u64;

    /// The broker, password redacted, for errors.
    fn target(&self) -> &str;

    /// False once the lane's connection or channel is gone and a new lane is needed.
    fn is_current(&self) -> bool;

    /// Publishes a request on the lane (direct reply-to needs the request and the reply
    /// consumer on one channel) and waits for the broker's answer. Not re-sent across a
    /// reconnect: the reply could not come back to a new connection.
    fn publish<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Confirm>>;
}

/// A new reply lane and the replies that will arrive on it.
pub(crate) struct Replies {
    pub lane: Box<dyn ReplyLane>,
    pub replies: BoxStream<'static, Incoming>,
}

/// A declaration to apply and, after a reconnect, replay. Declarations are idempotent
/// on the broker, so replaying them in their original order rebuilds the topology.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Declaration {
    Exchange {
        name: String,
        kind: ExchangeKind,
    },
    Queue {
        name: String,
        options: QueueOptions,
    },
    Bind {
        queue: String,
        exchange: String,
        routing_key: String,
    },
    /// A delay queue (`super::delay`): a durable fanout exchange `name`, a durable
    /// classic queue `name` bound to it that dead-letters expired messages to `target`
    /// with their own routing key.
    Delay {
        name: String,
        target: String,
    },
}
