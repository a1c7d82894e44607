//! The bus: topology, publishing with confirms, consumers and request/reply, over either
//! transport (a RabbitMQ connection that heals itself, or the in-process broker).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::Channel;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::amqp;
use super::config::BusConfig;
use super::consumer::Consumer;
use super::dedup::DedupStore;
use super::delivery::Delivery;
use super::link::{Declaration, Link, publish_on};
use super::memory::Broker;
use super::message::{Confirm, Outgoing};
use super::queue::{ExchangeKind, QueueOptions, check_name};
use super::rpc::Pending;
use super::stats::{BusStats, Counters};
use crate::config::Validate;
use crate::error::{Error, Result};
use crate::limits::{MessageLimits, check_duration_ms};
use crate::runtime::{self, Task};
use crate::trace::TraceContext;

/// Where RabbitMQ's direct reply-to delivers replies: no reply queue to declare,
/// recover or delete.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// How long a declaration or a new consumer's first subscription may wait for a
/// reconnecting broker: the caller learns about an outage instead of waiting for it.
pub(crate) const SETUP_DEADLINE: Duration = Duration::from_secs(30);

/// A connection to a broker. Cheap to clone: clones share the connection.
///
/// # Examples
/// ```
/// # async fn demo() -> courierkit::Result<()> {
/// use courierkit::{Bus, BusConfig, ConsumeOptions, PublishOptions, QueueOptions, Validate};
/// let bus = Bus::connect(BusConfig::from_json(r#"{"urls": ["memory://doc"]}"#)?).await?;
/// bus.declare_queue("orders", &QueueOptions::default()).await?;
/// let receipt = bus.publish("", "orders", b"hello".to_vec().into(), PublishOptions::default()).await?;
/// let consumer = bus.consume("orders", ConsumeOptions::default()).await?;
/// if let Some(delivery) = consumer.next(None).await? {
///     assert_eq!(delivery.message_id.as_deref(), Some(receipt.message_id.as_str()));
///     delivery.ack().await?;
/// }
/// # Ok(()) }
/// # courierkit::runtime::handle().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Bus {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) transport: Transport,
    pub(crate) counters: Arc<Counters>,
    pub(crate) dedup: Arc<DedupStore>,
    pending: Arc<Pending>,
    /// Bounds publishes awaiting confirms (`max_unconfirmed`).
    unconfirmed: Semaphore,
    pub(crate) prefetch: u16,
    publish_deadline: Duration,
    /// Body and header sizes every outgoing message is checked against.
    pub(crate) limits: MessageLimits,
    /// The process that connected; a child forked from it cannot use this bus.
    pid: u32,
    closed: AtomicBool,
    /// Set by `close()`, so consumers blocked in `next()` wake and end.
    shutdown: watch::Sender<bool>,
    /// Where replies to this bus's requests arrive, created on the first request.
    replies: Mutex<Option<Arc<ReplyLane>>>,
}

pub(crate) enum Transport {
    Amqp(Arc<Link>),
    Memory(Arc<Broker>),
}

/// The reply-to address of this bus and the task routing replies to waiting requests.
struct ReplyLane {
    address: String,
    /// AMQP: the channel consuming direct reply-to, on which requests must be published.
    channel: Option<Channel>,
    generation: u64,
    target: String,
    _dispatcher: Task<()>,
}

/// Per-publish options.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Application headers, sent as AMQP long strings.
    pub headers: BTreeMap<String, String>,
    /// The message id; a UUIDv7 is generated when `None`, so every message can be
    /// deduplicated and traced.
    pub message_id: Option<String>,
    /// Correlation id, for replies and conversations.
    pub correlation_id: Option<String>,
    /// Persist the message to disk (delivery mode 2). Default true.
    pub persistent: bool,
    /// The caller's trace context; the message carries a child of it (a new trace
    /// when `None`) in its `traceparent`, `tracestate` and `baggage` headers.
    pub trace: Option<TraceContext>,
    /// How long the publish may wait in all, reconnects included; the bus's
    /// `publish_deadline_ms` when `None`.
    pub deadline: Option<Duration>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            headers: BTreeMap::new(),
            message_id: None,
            correlation_id: None,
            persistent: true,
            trace: None,
            deadline: None,
        }
    }
}

/// Per-consumer options.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Unacknowledged deliveries at once; the bus's `prefetch` when `None`.
    pub prefetch: Option<u16>,
    /// Skip message ids already acked within the dedup window. Default true.
    pub dedup: bool,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        ConsumeOptions {
            prefetch: None,
            dedup: true,
        }
    }
}

/// Per-request options.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// The exchange to publish the request to; `""` (the default exchange) routes by
    /// queue name.
    pub exchange: String,
    /// How long to wait for the reply. Default 5 s; also the request's `expiration`, so
    /// a request nobody picked up in time is not processed for a caller who gave up.
    pub timeout: Duration,
    /// Application headers.
    pub headers: BTreeMap<String, String>,
    /// The caller's trace context.
    pub trace: Option<TraceContext>,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            exchange: String::new(),
            timeout: Duration::from_secs(5),
            headers: BTreeMap::new(),
            trace: None,
        }
    }
}

/// Proof that the broker confirmed a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The message's id, generated or given.
    pub message_id: String,
    /// The trace context the message carries.
    pub trace: TraceContext,
}

impl Bus {
    /// Connects to the first broker in `config.urls` that accepts the connection (or to
    /// the in-process broker a `memory://` URL names). Afterwards the bus reconnects by
    /// itself, rotating through `urls`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config; [`Error::Connect`] or [`Error::Tls`] with
    /// the last broker's failure when none accepts.
    pub async fn connect(config: BusConfig) -> Result<Bus> {
        config.validate()?;
        let counters = Arc::new(Counters::default());
        let memory = config
            .urls
            .first()
            .and_then(|u| url::Url::parse(u).ok())
            .filter(|u| u.scheme() == "memory");
        let transport = match memory {
            Some(url) => Transport::Memory(Broker::named(&url)),
            None => {
                let tls = Arc::new(crate::tls::client_config(config.tls.as_ref(), &[])?);
                let link = Link::connect(
                    config.urls.clone(),
                    &config.reconnect,
                    tls,
                    counters.clone(),
                )
                .await?;
                Transport::Amqp(link)
            }
        };
        let dedup = DedupStore::open(&config.dedup).await?;
        let max_unconfirmed = usize::try_from(config.max_unconfirmed).unwrap_or(usize::MAX);
        Ok(Bus {
            inner: Arc::new(Inner {
                transport,
                counters,
                dedup,
                pending: Arc::new(Pending::default()),
                unconfirmed: Semaphore::new(max_unconfirmed),
                prefetch: config.prefetch,
                publish_deadline: Duration::from_millis(config.publish_deadline_ms),
                limits: config.limits.clone(),
                pid: std::process::id(),
                closed: AtomicBool::new(false),
                shutdown: watch::Sender::new(false),
                replies: Mutex::new(None),
            }),
        })
    }

    /// Declares a queue (and its `<name>.dlq` when `dead_letter` is set); it is
    /// declared again after every reconnect.
    ///
    /// # Errors
    /// [`Error::Broker`] when the queue exists with other arguments (406) or access is
    /// refused; [`Error::Config`] for an empty or over-long name.
    pub async fn declare_queue(&self, name: &str, options: &QueueOptions) -> Result<()> {
        self.check_open()?;
        if name.is_empty() {
            return Err(Error::config(
                "name",
                "must not be empty: a server-named queue cannot be recovered after a reconnect",
            ));
        }
        check_name("name", name)?;
        options.arguments(name)?;
        self.declare(Declaration::Queue {
            name: name.to_owned(),
            options: options.clone(),
        })
        .await
    }

    /// Declares a durable exchange; it is declared again after every reconnect.
    ///
    /// # Errors
    /// [`Error::Broker`] when it exists with another type; [`Error::Config`] for a bad name.
    pub async fn declare_exchange(&self, name: &str, kind: ExchangeKind) -> Result<()> {
        self.check_open()?;
        if name.is_empty() || name.starts_with("amq.") {
            return Err(Error::config(
                "name",
                "must not be empty or start with \"amq.\" (reserved)",
            ));
        }
        check_name("name", name)?;
        self.declare(Declaration::Exchange {
            name: name.to_owned(),
            kind,
        })
        .await
    }

    /// Binds `queue` to `exchange` for `routing_key`; bound again after every reconnect.
    ///
    /// # Errors
    /// [`Error::Broker`] when either does not exist.
    pub async fn bind(&self, queue: &str, exchange: &str, routing_key: &str) -> Result<()> {
        self.check_open()?;
        check_name("queue", queue)?;
        check_name("exchange", exchange)?;
        check_name("routing_key", routing_key)?;
        self.declare(Declaration::Bind {
            queue: queue.to_owned(),
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        })
        .await
    }

    async fn declare(&self, declaration: Declaration) -> Result<()> {
        match &self.inner.transport {
            Transport::Amqp(link) => {
                link.declare(declaration, Instant::now() + SETUP_DEADLINE)
                    .await
            }
            Transport::Memory(broker) => match &declaration {
                Declaration::Exchange { name, kind } => broker.declare_exchange(name, *kind),
                Declaration::Queue { name, options } => broker.declare_queue(name, options),
                Declaration::Bind {
                    queue,
                    exchange,
                    routing_key,
                } => broker.bind(queue, exchange, routing_key),
            },
        }
    }

    /// Publishes a message and waits for the broker's confirm. Mandatory: a message no
    /// queue takes is an error, not silently dropped. While the connection is down the
    /// publish waits for it (up to its deadline); a message whose confirm was lost with
    /// the connection is sent again with the same message id.
    ///
    /// # Errors
    /// [`Error::Unroutable`] when no queue is bound for the routing key,
    /// [`Error::PublishRejected`] when the broker nacks, [`Error::Broker`] when the
    /// exchange does not exist, [`Error::Timeout`] when the deadline passes first.
    ///
    /// # Cancel safety
    /// Dropping the future after the message was written does not unpublish it: the
    /// broker may still route it. Only the confirm is lost.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Bytes,
        options: PublishOptions,
    ) -> Result<Receipt> {
        self.check_open()?;
        check_name("exchange", exchange)?;
        check_name("routing_key", routing_key)?;
        let message_id = match options.message_id {
            Some(id) => {
                check_id("message_id", &id)?;
                id
            }
            None => uuid::Uuid::now_v7().to_string(),
        };
        if let Some(cid) = &options.correlation_id {
            check_id("correlation_id", cid)?;
        }
        self.inner
            .limits
            .check_message(body.len(), &options.headers)?;
        if let Some(deadline) = options.deadline {
            check_duration_ms("deadline_ms", millis(deadline), false)?;
        }
        let trace = options
            .trace
            .as_ref()
            .map_or_else(TraceContext::new_root, TraceContext::child);
        let mut headers = options.headers;
        headers.extend(trace.to_carrier());
        let span = producer_span(
            exchange,
            routing_key,
            &message_id,
            options.correlation_id.as_deref(),
            &trace,
        );
        if let Some(parent) = options.trace.as_ref().filter(|_| !span.is_disabled()) {
            span.record("parent_span_id", parent.span_id());
        }
        let message = Outgoing {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            body,
            headers,
            message_id,
            correlation_id: options.correlation_id,
            reply_to: None,
            expiration_ms: None,
            persistent: options.persistent,
            mandatory: true,
        };
        let deadline = Instant::now() + options.deadline.unwrap_or(self.inner.publish_deadline);
        let outcome = async {
            let confirm = self.send(&message, deadline).await?;
            self.receipt(&message, confirm)?;
            Ok::<_, Error>(Receipt {
                message_id: message.message_id.clone(),
                trace,
            })
        }
        .instrument(span.clone())
        .await;
        if let Err(e) = &outcome {
            span.record("error.type", e.kind().code());
        }
        outcome
    }

    /// Sends one message and waits for the broker's answer, holding one of the
    /// `max_unconfirmed` slots meanwhile.
    async fn send(&self, message: &Outgoing, deadline: Instant) -> Result<Confirm> {
        let started = Instant::now();
        let _permit = tokio::time::timeout_at(deadline, self.inner.unconfirmed.acquire())
            .await
            .map_err(|_| Error::Timeout {
                operation: "publish",
                after: started.elapsed(),
            })?
            .map_err(|_| Error::Closed { what: "bus" })?;
        self.inner.counters.published.inc();
        match &self.inner.transport {
            Transport::Amqp(link) => link.publish(message, deadline).await.map_err(|e| match e {
                Error::Timeout { operation, .. } => Error::Timeout {
                    operation,
                    after: started.elapsed(),
                },
                other => other,
            }),
            Transport::Memory(broker) => broker.publish(message.clone()),
        }
    }

    /// Turns the broker's answer into the caller's result, counting it.
    fn receipt(&self, message: &Outgoing, confirm: Confirm) -> Result<()> {
        let counters = &self.inner.counters;
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

    /// Starts consuming `queue` with manual acknowledgement. After a reconnect the
    /// consumer subscribes again by itself.
    ///
    /// # Errors
    /// [`Error::Broker`] when the queue does not exist; [`Error::Config`] for prefetch 0.
    pub async fn consume(&self, queue: &str, options: ConsumeOptions) -> Result<Consumer> {
        self.check_open()?;
        check_name("queue", queue)?;
        let prefetch = options.prefetch.unwrap_or(self.inner.prefetch);
        if prefetch == 0 {
            return Err(Error::config("prefetch", "must be 1..=65535, got 0"));
        }
        Consumer::start(self.clone(), queue, prefetch, options.dedup).await
    }

    /// A consumer of RPC requests on `queue`: each delivery's [`Delivery::reply`]
    /// answers its caller. Requests are not deduplicated (a retried request deserves
    /// a reply too).
    ///
    /// # Errors
    /// As [`Bus::consume`].
    pub async fn serve(&self, queue: &str) -> Result<Consumer> {
        self.consume(
            queue,
            ConsumeOptions {
                prefetch: None,
                dedup: false,
            },
        )
        .await
    }

    /// Sends a request to `routing_key` and waits for the reply (RabbitMQ direct
    /// reply-to). At most once: a request whose reply does not come is not re-sent.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no reply arrives within `options.timeout`;
    /// [`Error::Unroutable`] when no queue takes the request; [`Error::Connect`] when the
    /// connection is lost while waiting (the request may or may not have been served).
    ///
    /// # Cancel safety
    /// Dropping the future forgets the request: a late reply is discarded.
    pub async fn request(
        &self,
        routing_key: &str,
        body: Bytes,
        options: RequestOptions,
    ) -> Result<Delivery> {
        self.check_open()?;
        check_name("exchange", &options.exchange)?;
        check_name("routing_key", routing_key)?;
        check_duration_ms("timeout_ms", millis(options.timeout), false)?;
        self.inner
            .limits
            .check_message(body.len(), &options.headers)?;
        let deadline = Instant::now() + options.timeout;
        let timeout = || Error::Timeout {
            operation: "request",
            after: options.timeout,
        };
        let trace = options
            .trace
            .as_ref()
            .map_or_else(TraceContext::new_root, TraceContext::child);
        let mut headers = options.headers;
        headers.extend(trace.to_carrier());
        let correlation_id = uuid::Uuid::now_v7().to_string();
        let outcome = async {
            let lane = self.reply_lane(deadline).await?;
            let (_guard, reply) = self
                .inner
                .pending
                .register(correlation_id.clone(), lane.generation);
            let message = Outgoing {
                exchange: options.exchange.clone(),
                routing_key: routing_key.to_owned(),
                body,
                headers,
                message_id: uuid::Uuid::now_v7().to_string(),
                correlation_id: Some(correlation_id),
                reply_to: Some(lane.address.clone()),
                expiration_ms: Some(u64::try_from(options.timeout.as_millis()).unwrap_or(u64::MAX)),
                persistent: false,
                mandatory: true,
            };
            self.inner.counters.published.inc();
            let confirm = async {
                match (&self.inner.transport, &lane.channel) {
                    (Transport::Amqp(_), Some(channel)) => {
                        publish_on(channel, &message, &lane.target).await
                    }
                    (Transport::Memory(broker), _) => broker.publish(message.clone()),
                    (Transport::Amqp(_), None) => Err(Error::Internal(
                        "AMQP reply lane without a channel".to_owned(),
                    )),
                }
            };
            tokio::pin!(confirm, reply);
            let mut confirmed = false;
            loop {
                tokio::select! {
                    c = &mut confirm, if !confirmed => {
                        self.receipt(&message, c?)?;
                        confirmed = true;
                    }
                    r = &mut reply => {
                        return match r {
                            Ok(incoming) => Ok(Delivery::new(incoming, self.clone(), None)),
                            Err(_) => Err(Error::Connect {
                                operation: "request",
                                target: lane.target.clone(),
                                reason: "the connection was lost before the reply arrived".to_owned(),
                                source: None,
                            }),
                        };
                    }
                }
            }
        };
        tokio::time::timeout_at(deadline, outcome)
            .await
            .map_err(|_| timeout())?
    }

    /// The current reply lane, (re)created after a reconnect.
    async fn reply_lane(&self, deadline: Instant) -> Result<Arc<ReplyLane>> {
        let mut slot = self.inner.replies.lock().await;
        if let Some(lane) = slot.as_ref() {
            let current = match &self.inner.transport {
                Transport::Amqp(link) => {
                    link.generation() == Some(lane.generation)
                        && lane
                            .channel
                            .as_ref()
                            .is_some_and(|c| c.status().connected())
                }
                Transport::Memory(_) => true,
            };
            if current {
                return Ok(lane.clone());
            }
        }
        let lane = Arc::new(match &self.inner.transport {
            Transport::Amqp(link) => self.amqp_reply_lane(link, deadline).await?,
            Transport::Memory(broker) => {
                let (address, mut replies) = broker.reply_address();
                let pending = self.inner.pending.clone();
                let dispatcher = runtime::spawn(async move {
                    while let Some(reply) = replies.recv().await {
                        pending.dispatch(reply);
                    }
                })?;
                ReplyLane {
                    address,
                    channel: None,
                    generation: 0,
                    target: "memory".to_owned(),
                    _dispatcher: dispatcher,
                }
            }
        });
        *slot = Some(lane.clone());
        Ok(lane)
    }

    /// Direct reply-to needs the reply consumer and the request publishes on one
    /// channel; replies are consumed without acks (RabbitMQ requires it).
    async fn amqp_reply_lane(&self, link: &Link, deadline: Instant) -> Result<ReplyLane> {
        let (live, channel) = link.channel(deadline).await?;
        let target = live.target.clone();
        let starting = async {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| amqp::error("confirm.select", &target, e))?;
            channel
                .basic_consume(
                    DIRECT_REPLY_TO.into(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp::error("basic.consume", &target, e))
        };
        let mut stream = link.on(&live, "basic.consume", starting).await?;
        let pending = self.inner.pending.clone();
        let generation = live.generation;
        let dispatcher = runtime::spawn(async move {
            while let Some(Ok(d)) = stream.next().await {
                pending.dispatch(amqp::incoming(d, None));
            }
            // The channel is gone, and with it every reply it could still receive.
            pending.fail_generation(generation);
        })?;
        Ok(ReplyLane {
            address: DIRECT_REPLY_TO.to_owned(),
            channel: Some(channel),
            generation,
            target,
            _dispatcher: dispatcher,
        })
    }

    /// Counters since the bus connected.
    pub fn stats(&self) -> BusStats {
        self.inner.counters.snapshot(self.inner.pending.len())
    }

    /// Closes the connection and stops reconnecting. Unacknowledged deliveries return
    /// to their queues; waiting requests fail.
    ///
    /// # Errors
    /// None in practice: a connection that is already gone is already closed.
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.unconfirmed.close();
        self.inner.shutdown.send_replace(true);
        self.inner.replies.lock().await.take();
        self.inner.pending.fail_generation(u64::MAX);
        if let Transport::Amqp(link) = &self.inner.transport {
            link.close().await;
        }
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Resolves once the bus is closed.
    pub(crate) async fn closing(&self) {
        let mut rx = self.inner.shutdown.subscribe();
        // An error means the sender is gone, which only happens with the bus itself.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    fn check_open(&self) -> Result<()> {
        self.check_not_forked()?;
        if self.is_closed() {
            return Err(Error::Closed { what: "bus" });
        }
        Ok(())
    }

    pub(crate) fn check_not_forked(&self) -> Result<()> {
        if self.inner.pid != std::process::id() {
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

    /// Publishes a reply to `reply_to`: not mandatory, because a caller that gave up
    /// is not the server's failure.
    pub(crate) async fn publish_reply(&self, message: Outgoing) -> Result<()> {
        let deadline = Instant::now() + self.inner.publish_deadline;
        let confirm = self.send(&message, deadline).await?;
        self.receipt(&message, confirm)
    }
}

/// Message and correlation ids are AMQP short strings, and an empty one cannot be
/// deduplicated or matched.
pub(crate) fn check_id(field: &'static str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 255 {
        return Err(Error::config(field, "must be 1..=255 bytes"));
    }
    Ok(())
}

/// The PRODUCER span of one publish, named and attributed by the OpenTelemetry
/// messaging semantic conventions (<https://opentelemetry.io/docs/specs/semconv/messaging/rabbitmq/>).
/// Its ids are the message's own context, the parent of whatever the consumer does.
fn producer_span(
    exchange: &str,
    routing_key: &str,
    message_id: &str,
    correlation_id: Option<&str>,
    trace: &TraceContext,
) -> tracing::Span {
    // The default exchange routes by queue name, so the routing key is the destination.
    let destination = if exchange.is_empty() {
        routing_key
    } else {
        exchange
    };
    let span = tracing::info_span!(
        "amqp.publish",
        otel.name = %format_args!("publish {destination}"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "send",
        messaging.destination.name = destination,
        messaging.rabbitmq.destination.routing_key = routing_key,
        messaging.message.id = message_id,
        messaging.message.conversation_id = tracing::field::Empty,
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
        parent_span_id = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if let Some(cid) = correlation_id {
        span.record("messaging.message.conversation_id", cid);
    }
    span
}

/// A duration in whole milliseconds, saturating, for range checks.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
