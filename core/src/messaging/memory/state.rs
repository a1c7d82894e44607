//! Everything one broker holds, and the operations that move messages between queues.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;

use super::fifo::{Consumer, DeadLetter, Envelope, Queue, Timer};
use super::routing::Exchange;
use super::{Broker, Subscription, refused};
use crate::error::Result;
use crate::messaging::message::{Confirm, Incoming, Outcome, Outgoing};
use crate::messaging::queue::{ExchangeKind, QueueOptions, dead_letter_queue};

/// RabbitMQ's prefix for direct reply-to addresses.
const REPLY_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// The exchanges every RabbitMQ vhost starts with, so that code publishing to
/// `amq.topic` works the same on both transports.
const PREDECLARED: [(&str, ExchangeKind); 5] = [
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

pub(super) struct State {
    /// The broker this state belongs to, for the tickets, subscriptions and timers it
    /// creates; weak, so that none of them keeps a dropped broker alive.
    me: Weak<Broker>,
    exchanges: HashMap<String, Exchange>,
    queues: HashMap<String, Queue>,
    replies: HashMap<String, UnboundedSender<Incoming>>,
    /// Delay queues and the exchange each dead-letters to (`x-dead-letter-exchange`
    /// without a routing key): expired messages are routed on with their own key.
    forwards: HashMap<String, String>,
    /// Source of consumer ids, enqueue sequence numbers and timer tokens.
    last_id: u64,
}

impl State {
    pub(super) fn new(me: Weak<Broker>) -> Self {
        let exchanges = PREDECLARED
            .iter()
            .map(|&(name, kind)| (name.to_owned(), Exchange::new(kind)))
            .collect();
        State {
            me,
            exchanges,
            queues: HashMap::new(),
            replies: HashMap::new(),
            forwards: HashMap::new(),
            last_id: 0,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    pub(super) fn declare_exchange(&mut self, name: &str, kind: ExchangeKind) -> Result<()> {
        const OPERATION: &str = "exchange.declare";
        if name.is_empty() {
            return Err(default_exchange_refused(OPERATION));
        }
        if name.starts_with("amq.") {
            return Err(reserved(OPERATION, "exchange", name));
        }
        match self.exchanges.get(name) {
            Some(existing) if existing.kind() != kind => Err(refused(
                OPERATION,
                406,
                format!(
                    "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{name}' in vhost '/': received '{}' but current is '{}'",
                    kind_name(kind),
                    kind_name(existing.kind())
                ),
            )),
            Some(_) => Ok(()),
            None => {
                self.exchanges.insert(name.to_owned(), Exchange::new(kind));
                Ok(())
            }
        }
    }

    /// Declares the dead-letter queue first, then the queue, as the AMQP transport
    /// does, so a refusal leaves the same queues behind on both.
    pub(super) fn declare_queue(&mut self, name: &str, options: &QueueOptions) -> Result<()> {
        if name.starts_with("amq.") {
            return Err(reserved("queue.declare", "queue", name));
        }
        // The same validity rules as the AMQP declaration (a delivery limit needs a
        // quorum queue, the TTL must fit the wire type).
        options.check()?;
        if options.dead_letter {
            let dlq = QueueOptions {
                quorum: options.quorum,
                delivery_limit: None,
                dead_letter: false,
                ttl: None,
                retry_delays: Vec::new(),
            };
            self.declare_one(&dead_letter_queue(name), &dlq)?;
        }
        self.declare_one(name, options)
    }

    fn declare_one(&mut self, name: &str, options: &QueueOptions) -> Result<()> {
        match self.queues.get(name) {
            Some(existing) => match inequivalent_arg(existing.options(), options) {
                Some((arg, received, current)) => Err(refused(
                    "queue.declare",
                    406,
                    format!(
                        "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{name}' in vhost '/': received {received} but current is {current}"
                    ),
                )),
                None => Ok(()),
            },
            None => {
                self.queues
                    .insert(name.to_owned(), Queue::new(options.clone()));
                Ok(())
            }
        }
    }

    /// A delay queue, as the AMQP transport declares it: a fanout exchange, a classic
    /// queue of the same name bound to it, dead-lettering to `target`.
    pub(super) fn declare_delay(&mut self, name: &str, target: &str) -> Result<()> {
        self.declare_exchange(name, ExchangeKind::Fanout)?;
        let classic = QueueOptions {
            quorum: false,
            dead_letter: false,
            ..QueueOptions::default()
        };
        self.declare_one(name, &classic)?;
        self.forwards.insert(name.to_owned(), target.to_owned());
        self.bind(name, name, "")
    }

    /// RabbitMQ reports a missing exchange before a missing queue.
    pub(super) fn bind(&mut self, queue: &str, exchange: &str, routing_key: &str) -> Result<()> {
        const OPERATION: &str = "queue.bind";
        if exchange.is_empty() {
            return Err(default_exchange_refused(OPERATION));
        }
        let Some(target) = self.exchanges.get_mut(exchange) else {
            return Err(not_found(OPERATION, "exchange", exchange));
        };
        if !self.queues.contains_key(queue) {
            return Err(not_found(OPERATION, "queue", queue));
        }
        target.bind(queue, routing_key);
        Ok(())
    }

    pub(super) fn publish(&mut self, message: Outgoing, now: Instant) -> Result<Confirm> {
        if message.exchange.is_empty() && self.replies.contains_key(&message.routing_key) {
            return Ok(self.reply(message));
        }
        let targets = self
            .route(&message.exchange, &message.routing_key)
            .ok_or_else(|| not_found("basic.publish", "exchange", &message.exchange))?;
        if targets.is_empty() {
            return Ok(unroutable(&message));
        }
        for queue in &targets {
            self.enqueue(queue, Envelope::new(&message), message.expiration_ms, now);
        }
        Ok(Confirm::Ack)
    }

    /// The queues `exchange` routes `routing_key` to; `None` when there is no such
    /// exchange.
    fn route(&self, exchange: &str, routing_key: &str) -> Option<Vec<String>> {
        if exchange.is_empty() {
            let known = self.queues.contains_key(routing_key);
            return Some(known.then(|| routing_key.to_owned()).into_iter().collect());
        }
        Some(self.exchanges.get(exchange)?.route(routing_key))
    }

    /// Direct reply-to: straight to the requester's receiver, consumed without acks.
    fn reply(&mut self, message: Outgoing) -> Confirm {
        let address = message.routing_key.clone();
        let returned = unroutable(&message);
        let reply = Incoming {
            body: message.body,
            headers: message.headers,
            message_id: Some(message.message_id),
            correlation_id: message.correlation_id,
            reply_to: message.reply_to,
            exchange: message.exchange,
            routing_key: message.routing_key,
            redelivered: false,
            delivery_count: None,
            settle: None,
        };
        let delivered = self
            .replies
            .get(&address)
            .is_some_and(|receiver| receiver.send(reply).is_ok());
        if delivered {
            Confirm::Ack
        } else {
            // The requester is gone, and with it the address.
            self.replies.remove(&address);
            returned
        }
    }

    /// Queue TTL and per-message TTL both count from enqueueing; the sooner wins.
    fn enqueue(
        &mut self,
        name: &str,
        mut message: Envelope,
        expiration_ms: Option<u64>,
        now: Instant,
    ) {
        let seq = self.next_id();
        let Some(queue) = self.queues.get_mut(name) else {
            return;
        };
        let ttl = match (queue.options().ttl_ms(), expiration_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        message.seq = seq;
        message.expires_at = ttl.and_then(|ms| now.checked_add(Duration::from_millis(ms)));
        queue.push(message);
        self.pump(name, now);
    }

    pub(super) fn subscribe(
        &mut self,
        name: &str,
        prefetch: u16,
        now: Instant,
    ) -> Result<Subscription> {
        let id = self.next_id();
        let Some(queue) = self.queues.get_mut(name) else {
            return Err(not_found("basic.consume", "queue", name));
        };
        let name: Arc<str> = Arc::from(name);
        let (sender, deliveries) = mpsc::unbounded_channel();
        queue.subscribe(Consumer::new(id, name.clone(), prefetch, sender));
        self.pump(&name, now);
        Ok(Subscription {
            broker: self.me.clone(),
            queue: name,
            consumer: id,
            deliveries,
            cancelled: AtomicBool::new(false),
        })
    }

    pub(super) fn cancel(&mut self, queue: &str, consumer: u64, now: Instant) {
        if let Some(q) = self.queues.get_mut(queue) {
            let dead = q.cancel(consumer);
            self.bury(queue, dead, now);
            self.pump(queue, now);
        }
    }

    pub(super) fn settle(
        &mut self,
        queue: &str,
        consumer: u64,
        tag: u64,
        outcome: Outcome,
        now: Instant,
    ) -> Result<()> {
        let q = self
            .queues
            .get_mut(queue)
            .ok_or_else(super::consumer_closed)?;
        let dead = q.settle(consumer, tag, outcome)?;
        self.bury(queue, dead, now);
        self.pump(queue, now);
        Ok(())
    }

    pub(super) fn reply_address(&mut self) -> (String, UnboundedReceiver<Incoming>) {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let address = format!("{REPLY_PREFIX}{}", id.simple());
        let (sender, receiver) = mpsc::unbounded_channel();
        self.replies.insert(address.clone(), sender);
        (address, receiver)
    }

    /// An expiry timer went off; a timer that a sooner one replaced still pumps, which
    /// is harmless.
    pub(super) fn timer_fired(&mut self, queue: &str, token: u64, now: Instant) {
        if let Some(q) = self.queues.get_mut(queue) {
            if q.timer.as_ref().is_some_and(|t| t.token == token) {
                q.timer = None;
            }
            self.pump(queue, now);
        }
    }

    /// Delivers what the queue can deliver and sends away what expired on the way.
    fn pump(&mut self, name: &str, now: Instant) {
        let Some(queue) = self.queues.get_mut(name) else {
            return;
        };
        let dead = queue.dispatch(&self.me, now);
        self.arm_timer(name);
        self.bury(name, dead, now);
    }

    fn bury(&mut self, source: &str, dead: impl IntoIterator<Item = DeadLetter>, now: Instant) {
        for (message, reason) in dead {
            self.dead_letter(source, message, reason, now);
        }
    }

    /// RabbitMQ's dead-lettering through the default exchange to `<source>.dlq`: the
    /// message keeps its id, body and headers, gains the `x-first-death-*` headers
    /// (only on its first death), and loses its per-message TTL so it does not expire
    /// again where it is parked. Without `dead_letter` the message is dropped.
    fn dead_letter(&mut self, source: &str, mut message: Envelope, reason: &str, now: Instant) {
        if let Some(exchange) = self.forwards.get(source).cloned() {
            self.forward(source, message, reason, &exchange, now);
            return;
        }
        if !self
            .queues
            .get(source)
            .is_some_and(|q| q.options().dead_letter)
        {
            return;
        }
        let target = dead_letter_queue(source);
        mark_death(&mut message, source, reason);
        message.exchange = String::new();
        message.routing_key.clone_from(&target);
        message.returns = 0;
        self.enqueue(&target, message, None, now);
    }

    /// Dead-letters a delay queue's message to `exchange` with its own routing key; a
    /// message no queue takes there is dropped, as RabbitMQ drops it.
    fn forward(
        &mut self,
        source: &str,
        mut message: Envelope,
        reason: &str,
        exchange: &str,
        now: Instant,
    ) {
        mark_death(&mut message, source, reason);
        message.exchange = exchange.to_owned();
        message.returns = 0;
        let targets = self
            .route(exchange, &message.routing_key)
            .unwrap_or_default();
        for queue in targets {
            self.enqueue(&queue, message.clone(), None, now);
        }
    }

    /// Schedules an expiry check for the head's expiry, unless one at least as early
    /// is pending. Without a runtime nothing is scheduled; expiry is still checked
    /// whenever the queue dispatches, so an expired message is never delivered.
    fn arm_timer(&mut self, name: &str) {
        let Some(queue) = self.queues.get_mut(name) else {
            return;
        };
        // Just past the expiry: a message is expired only once its instant has passed.
        let Some(due) = queue
            .head()
            .and_then(|m| m.expires_at)
            .and_then(|at| at.checked_add(Duration::from_millis(1)))
        else {
            return;
        };
        if queue
            .timer
            .as_ref()
            .is_some_and(|t| t.deadline <= due && !t.task.is_finished())
        {
            return;
        }
        let Some(runtime) = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| crate::runtime::handle().ok())
        else {
            return;
        };
        self.last_id += 1;
        let token = self.last_id;
        let broker = self.me.clone();
        let queue_name = name.to_owned();
        let task = runtime
            .spawn(async move {
                tokio::time::sleep_until(due).await;
                if let Some(broker) = broker.upgrade() {
                    broker
                        .state()
                        .timer_fired(&queue_name, token, Instant::now());
                }
            })
            .abort_handle();
        queue.timer = Some(Timer {
            deadline: due,
            token,
            task,
        });
    }
}

/// RabbitMQ's `x-first-death-*` headers, set on a message's first dead-lettering only.
fn mark_death(message: &mut Envelope, source: &str, reason: &str) {
    for (header, value) in [
        ("x-first-death-queue", source),
        ("x-first-death-reason", reason),
        ("x-first-death-exchange", message.exchange.as_str()),
    ] {
        if !message.headers.contains_key(header) {
            message.headers.insert(header.to_owned(), value.to_owned());
        }
    }
    // As RabbitMQ 3.13+ does: the latest dead-lettering, overwritten each time.
    for (header, value) in [
        ("x-last-death-queue", source),
        ("x-last-death-reason", reason),
        ("x-last-death-exchange", message.exchange.as_str()),
    ] {
        message.headers.insert(header.to_owned(), value.to_owned());
    }
}

fn unroutable(message: &Outgoing) -> Confirm {
    if message.mandatory {
        Confirm::Returned("NO_ROUTE".to_owned())
    } else {
        Confirm::Ack
    }
}

/// The first argument on which a redeclaration differs, named as RabbitMQ names it,
/// with the requested and the current value.
fn inequivalent_arg(
    current: &QueueOptions,
    requested: &QueueOptions,
) -> Option<(&'static str, String, String)> {
    let args = |o: &QueueOptions| {
        [
            (
                "x-queue-type",
                Some(if o.quorum { "quorum" } else { "classic" }.to_owned()),
            ),
            ("x-delivery-limit", o.delivery_limit.map(|l| l.to_string())),
            ("x-dead-letter-exchange", o.dead_letter.then(String::new)),
            ("x-message-ttl", o.ttl_ms().map(|t| t.to_string())),
        ]
    };
    let shown =
        |value: Option<String>| value.map_or_else(|| "none".to_owned(), |v| format!("'{v}'"));
    args(requested)
        .into_iter()
        .zip(args(current))
        .find_map(|((arg, received), (_, current))| {
            (received != current).then(|| (arg, shown(received), shown(current)))
        })
}

fn kind_name(kind: ExchangeKind) -> &'static str {
    match kind {
        ExchangeKind::Direct => "direct",
        ExchangeKind::Fanout => "fanout",
        ExchangeKind::Topic => "topic",
        ExchangeKind::Headers => "headers",
    }
}

fn not_found(operation: &'static str, what: &str, name: &str) -> crate::error::Error {
    refused(
        operation,
        404,
        format!("NOT_FOUND - no {what} '{name}' in vhost '/'"),
    )
}

fn reserved(operation: &'static str, what: &str, name: &str) -> crate::error::Error {
    refused(
        operation,
        403,
        format!("ACCESS_REFUSED - {what} name '{name}' contains reserved prefix 'amq.*'"),
    )
}

fn default_exchange_refused(operation: &'static str) -> crate::error::Error {
    refused(
        operation,
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
    )
}
