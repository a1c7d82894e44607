//! One received message and its acknowledgement.

use std::collections::BTreeMap;

use bytes::Bytes;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};

use super::amqp;
use crate::error::{Error, Result};
use crate::trace::TraceContext;

/// A message delivered to a [`super::Consumer`]. Settle it exactly once with
/// [`Delivery::ack`], [`Delivery::nack`] or [`Delivery::reject`].
#[derive(Debug)]
pub struct Delivery {
    /// Message body.
    pub body: Bytes,
    /// Application headers, as text.
    pub headers: BTreeMap<String, String>,
    /// The message id, if the publisher set one (courier always does).
    pub message_id: Option<String>,
    /// The correlation id, if set.
    pub correlation_id: Option<String>,
    /// The exchange it was published to (`""` is the default exchange).
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Whether the broker delivered it before (to this or another consumer).
    pub redelivered: bool,
    /// Earlier delivery attempts, from quorum queues' `x-delivery-count`.
    pub delivery_count: Option<u32>,
    /// The trace context the publisher sent (a new trace when it sent none or an
    /// invalid one); a consumer continues the trace with `trace.child()`.
    pub trace: TraceContext,
    acker: lapin::Acker,
    target: String,
}

impl Delivery {
    pub(crate) fn new(d: lapin::message::Delivery, target: String) -> Delivery {
        let props = &d.properties;
        let headers = amqp::from_table(props.headers().as_ref());
        Delivery {
            trace: TraceContext::from_carrier(&headers),
            headers,
            delivery_count: amqp::delivery_count(props.headers().as_ref()),
            message_id: props.message_id().as_ref().map(ToString::to_string),
            correlation_id: props.correlation_id().as_ref().map(ToString::to_string),
            exchange: d.exchange.to_string(),
            routing_key: d.routing_key.to_string(),
            redelivered: d.redelivered,
            body: Bytes::from(d.data),
            acker: d.acker,
            target,
        }
    }

    /// Acknowledges: the broker forgets the message.
    ///
    /// # Errors
    /// [`Error::Closed`] when already settled; [`Error::Connect`] when the channel is
    /// gone (the broker will redeliver the message).
    pub async fn ack(&self) -> Result<()> {
        let done = self.acker.ack(BasicAckOptions::default()).await;
        self.settled("basic.ack", done)
    }

    /// Negatively acknowledges; with `requeue` the message goes back to the queue,
    /// otherwise it is dead-lettered (or dropped when the queue has no dead-letter queue).
    ///
    /// # Errors
    /// As [`Delivery::ack`].
    pub async fn nack(&self, requeue: bool) -> Result<()> {
        let done = self
            .acker
            .nack(BasicNackOptions {
                requeue,
                ..Default::default()
            })
            .await;
        self.settled("basic.nack", done)
    }

    /// Rejects without requeueing: a poison message goes to the dead-letter queue.
    ///
    /// # Errors
    /// As [`Delivery::ack`].
    pub async fn reject(&self) -> Result<()> {
        let done = self
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await;
        self.settled("basic.reject", done)
    }

    fn settled(&self, operation: &'static str, done: lapin::Result<bool>) -> Result<()> {
        match done {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Closed {
                what: "delivery (already settled)",
            }),
            Err(e) => Err(amqp::error(operation, &self.target, e)),
        }
    }
}
