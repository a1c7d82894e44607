//! The transport-neutral shapes of a message going out and coming in, shared by the
//! AMQP transport and the in-process `memory://` broker so that everything above them
//! (dedup, RPC, stats, the public `Delivery`) is written once.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::error::Result;

/// A message ready to be written: every property courier sets is already decided.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub body: Bytes,
    /// Application headers, trace headers included.
    pub headers: BTreeMap<String, String>,
    pub message_id: String,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    /// Per-message TTL in milliseconds (AMQP `expiration`).
    pub expiration_ms: Option<u64>,
    pub persistent: bool,
    /// Return the message (`Unroutable`) when no queue takes it.
    pub mandatory: bool,
}

/// What the broker said about one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// Routed and taken.
    Ack,
    /// Mandatory and no queue took it; the broker's reply text.
    Returned(String),
    /// The broker refused it (`basic.nack`).
    Nack,
}

/// How a consumer settles a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ack,
    Nack { requeue: bool },
    Reject,
}

/// A received message before courier's consumer layer (dedup, stats) sees it.
pub(crate) struct Incoming {
    pub body: Bytes,
    pub headers: BTreeMap<String, String>,
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
    /// Earlier deliveries of this message (quorum queues' `x-delivery-count`).
    pub delivery_count: Option<u32>,
    /// `None` when the broker settled it already (RPC replies are consumed without acks).
    pub settle: Option<Box<dyn Settle>>,
}

/// The transport's handle for settling one delivery: an AMQP delivery tag on the
/// channel it came on, or a ticket of the in-process broker.
pub(crate) trait Settle: Send + Sync {
    /// Settles the delivery once.
    ///
    /// # Errors
    /// [`crate::Error::Closed`] when it was settled already or its subscription is gone;
    /// [`crate::Error::Connect`] when the connection it came on was lost (the broker
    /// redelivers it).
    fn settle(&self, outcome: Outcome) -> BoxFuture<'_, Result<()>>;
}
