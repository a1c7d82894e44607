//! One queue: its messages, its consumers and what happens to a delivery afterwards.
//!
//! Nothing here reaches another queue. Whatever must leave the queue (an expired
//! message, a rejected one, one over the delivery limit) is handed back to the caller
//! as a [`DeadLetter`], and the broker decides where it goes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{Broker, Ticket, already_settled, consumer_closed};
use crate::error::Result;
use crate::messaging::message::{Incoming, Outcome, Outgoing};
use crate::messaging::queue::{DEFAULT_DELIVERY_LIMIT, QueueOptions};

/// A message leaving its queue, with RabbitMQ's `x-first-death-reason` for it.
pub(super) type DeadLetter = (Envelope, &'static str);

const EXPIRED: &str = "expired";
const REJECTED: &str = "rejected";
const DELIVERY_LIMIT: &str = "delivery_limit";

/// A message as one queue holds it.
#[derive(Clone)]
pub(super) struct Envelope {
    /// Enqueue order: a classic queue puts a requeued message back where this says.
    pub(super) seq: u64,
    pub(super) exchange: String,
    pub(super) routing_key: String,
    pub(super) body: Bytes,
    pub(super) headers: BTreeMap<String, String>,
    pub(super) message_id: String,
    pub(super) correlation_id: Option<String>,
    pub(super) reply_to: Option<String>,
    pub(super) expires_at: Option<Instant>,
    /// Times a delivery of it went back to the queue unsettled: the earlier deliveries
    /// a quorum queue reports and limits.
    pub(super) returns: u32,
}

impl Envelope {
    /// A copy of `message` for one queue; the queue sets `seq` and `expires_at`.
    pub(super) fn new(message: &Outgoing) -> Self {
        Envelope {
            seq: 0,
            exchange: message.exchange.clone(),
            routing_key: message.routing_key.clone(),
            body: message.body.clone(),
            headers: message.headers.clone(),
            message_id: message.message_id.clone(),
            correlation_id: message.correlation_id.clone(),
            reply_to: message.reply_to.clone(),
            expires_at: None,
            returns: 0,
        }
    }

    /// Expired once its expiry has passed, not at the instant itself: a message with
    /// TTL 0 still reaches a consumer ready in the same operation, as in RabbitMQ.
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at < now)
    }

    /// RabbitMQ sets no `x-delivery-count` on a first delivery, and only quorum queues
    /// count at all.
    fn incoming(&self, quorum: bool, ticket: Ticket) -> Incoming {
        let delivery_count = (quorum && self.returns > 0).then_some(self.returns);
        let mut headers = self.headers.clone();
        if let Some(count) = delivery_count {
            headers.insert("x-delivery-count".to_owned(), count.to_string());
        }
        Incoming {
            body: self.body.clone(),
            headers,
            message_id: Some(self.message_id.clone()),
            correlation_id: self.correlation_id.clone(),
            reply_to: self.reply_to.clone(),
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            redelivered: self.returns > 0,
            delivery_count,
            settle: Some(Box::new(ticket)),
        }
    }
}

/// A consumer: where its deliveries go and which of them it has not settled.
pub(super) struct Consumer {
    id: u64,
    queue: Arc<str>,
    /// 0 means no limit, as for `basic.qos`.
    prefetch: u16,
    deliveries: UnboundedSender<Incoming>,
    /// By delivery tag, so a cancelled consumer's messages go back in delivery order.
    unsettled: BTreeMap<u64, Envelope>,
    last_tag: u64,
}

impl Consumer {
    pub(super) fn new(
        id: u64,
        queue: Arc<str>,
        prefetch: u16,
        deliveries: UnboundedSender<Incoming>,
    ) -> Self {
        Consumer {
            id,
            queue,
            prefetch,
            deliveries,
            unsettled: BTreeMap::new(),
            last_tag: 0,
        }
    }

    fn has_room(&self) -> bool {
        self.prefetch == 0 || self.unsettled.len() < usize::from(self.prefetch)
    }

    /// Pushes a delivery, keeping the message until it is settled. A consumer whose
    /// receiver is gone can settle nothing, so it gives back everything it holds.
    fn deliver(
        &mut self,
        message: Envelope,
        broker: &Weak<Broker>,
        quorum: bool,
    ) -> Result<(), Vec<Envelope>> {
        self.last_tag += 1;
        let ticket = Ticket::new(broker.clone(), self.queue.clone(), self.id, self.last_tag);
        let incoming = message.incoming(quorum, ticket);
        self.unsettled.insert(self.last_tag, message);
        match self.deliveries.send(incoming) {
            Ok(()) => Ok(()),
            Err(_) => Err(std::mem::take(&mut self.unsettled).into_values().collect()),
        }
    }
}

/// A scheduled expiry check for the queue's head (RabbitMQ expires messages only there).
pub(super) struct Timer {
    pub(super) deadline: Instant,
    pub(super) token: u64,
    pub(super) task: AbortHandle,
}

pub(super) struct Queue {
    options: QueueOptions,
    ready: VecDeque<Envelope>,
    /// Messages given back, served before `ready` (RabbitMQ requeues to the head).
    returned: VecDeque<Envelope>,
    /// In round-robin order: whoever gets a delivery moves to the back.
    consumers: VecDeque<Consumer>,
    pub(super) timer: Option<Timer>,
}

impl Queue {
    pub(super) fn new(options: QueueOptions) -> Self {
        Queue {
            options,
            ready: VecDeque::new(),
            returned: VecDeque::new(),
            consumers: VecDeque::new(),
            timer: None,
        }
    }

    pub(super) fn options(&self) -> &QueueOptions {
        &self.options
    }

    pub(super) fn push(&mut self, message: Envelope) {
        self.ready.push_back(message);
    }

    pub(super) fn subscribe(&mut self, consumer: Consumer) {
        self.consumers.push_back(consumer);
    }

    pub(super) fn head(&self) -> Option<&Envelope> {
        self.returned.front().or_else(|| self.ready.front())
    }

    fn pop_head(&mut self) -> Option<Envelope> {
        self.returned.pop_front().or_else(|| self.ready.pop_front())
    }

    fn pop_expired(&mut self, now: Instant) -> Option<Envelope> {
        if self.head()?.expired(now) {
            self.pop_head()
        } else {
            None
        }
    }

    /// RabbitMQ's poison-message rule for quorum queues (`rabbit_fifo:return_one`):
    /// every return of a delivery to the queue counts, and a message whose count then
    /// exceeds the limit is dead-lettered instead of requeued. With limit N a message
    /// is delivered at most N + 1 times, the last one with `x-delivery-count` N.
    /// Classic queues have no limit.
    fn delivery_limit(&self) -> Option<u32> {
        self.options.quorum.then(|| {
            self.options
                .delivery_limit
                .unwrap_or(DEFAULT_DELIVERY_LIMIT)
        })
    }

    /// Puts an unsettled message back at the head. A classic queue restores its
    /// original position (which, with FIFO delivery, is among the other returned ones
    /// by enqueue order); a quorum queue serves returns in the order they came back.
    fn give_back(&mut self, mut message: Envelope) -> Option<DeadLetter> {
        message.returns = message.returns.saturating_add(1);
        if self
            .delivery_limit()
            .is_some_and(|limit| message.returns > limit)
        {
            return Some((message, DELIVERY_LIMIT));
        }
        if self.options.quorum {
            self.returned.push_back(message);
        } else {
            let at = self.returned.partition_point(|m| m.seq < message.seq);
            self.returned.insert(at, message);
        }
        None
    }

    fn give_back_all(&mut self, messages: impl IntoIterator<Item = Envelope>) -> Vec<DeadLetter> {
        messages
            .into_iter()
            .filter_map(|m| self.give_back(m))
            .collect()
    }

    /// Expires what reached the head and hands out messages while a consumer has room.
    pub(super) fn dispatch(&mut self, broker: &Weak<Broker>, now: Instant) -> Vec<DeadLetter> {
        let mut dead = Vec::new();
        loop {
            while let Some(message) = self.pop_expired(now) {
                dead.push((message, EXPIRED));
            }
            if self.head().is_none() {
                break;
            }
            let Some(turn) = self.consumers.iter().position(Consumer::has_room) else {
                break;
            };
            let Some(mut consumer) = self.consumers.remove(turn) else {
                break;
            };
            let Some(message) = self.pop_head() else {
                self.consumers.push_back(consumer);
                break;
            };
            match consumer.deliver(message, broker, self.options.quorum) {
                Ok(()) => self.consumers.push_back(consumer),
                Err(orphans) => dead.extend(self.give_back_all(orphans)),
            }
        }
        dead
    }

    /// Settles one delivery of `consumer`; a dead letter when the outcome sends the
    /// message away.
    pub(super) fn settle(
        &mut self,
        consumer: u64,
        tag: u64,
        outcome: Outcome,
    ) -> Result<Option<DeadLetter>> {
        let holder = self
            .consumers
            .iter_mut()
            .find(|c| c.id == consumer)
            .ok_or_else(consumer_closed)?;
        let message = holder.unsettled.remove(&tag).ok_or_else(already_settled)?;
        Ok(match outcome {
            Outcome::Ack => None,
            Outcome::Nack { requeue: true } => self.give_back(message),
            Outcome::Nack { requeue: false } | Outcome::Reject => Some((message, REJECTED)),
        })
    }

    /// Removes `consumer`, giving back what it had not settled, as RabbitMQ does when
    /// a consumer's channel closes.
    pub(super) fn cancel(&mut self, consumer: u64) -> Vec<DeadLetter> {
        let Some(at) = self.consumers.iter().position(|c| c.id == consumer) else {
            return Vec::new();
        };
        match self.consumers.remove(at) {
            Some(gone) => self.give_back_all(gone.unsettled.into_values()),
            None => Vec::new(),
        }
    }
}
