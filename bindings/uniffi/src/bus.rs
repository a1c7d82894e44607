//! `Bus`, `Consumer` and `Delivery`: messaging (RabbitMQ or the in-process `memory://`
//! broker) as uniffi objects.
//!
//! Consumers are pulled (`next()`), never pushed: Kotlin wraps them in a `Flow` and Swift
//! in an `AsyncSequence`, and no core worker ever calls into foreign code. The same holds
//! for RPC: a server is a `Consumer` from `serve()` whose deliveries the foreign code
//! answers with `Delivery.reply()`. The one foreign callback is the log sink
//! (`telemetry.rs`), called on courier's own log thread.

use courierkit::{BusConfig, ExchangeKind, Validate};
use std::collections::HashMap;
use std::sync::Arc;

use crate::cancel::{CancelToken, cancellable};
use crate::duration::Millis;
use crate::error::CourierError;
use crate::telemetry::ConfigJson;
use crate::trace::TraceContext;

/// How to declare a queue; the defaults are core's (quorum, delivery limit 5,
/// `<name>.dlq` dead-letter queue, no TTL).
#[derive(Debug, Clone, uniffi::Record)]
pub struct QueueOptions {
    /// Quorum queue; classic when false.
    #[uniffi(default = true)]
    pub quorum: bool,
    /// Deliveries before a message is dead-lettered (quorum queues only); none means 5
    /// on a quorum queue.
    #[uniffi(default = None)]
    pub delivery_limit: Option<u32>,
    /// Create `<name>.dlq` and route rejected or expired messages to it.
    #[uniffi(default = true)]
    pub dead_letter: bool,
    /// Message time-to-live in the queue (whole milliseconds).
    #[uniffi(default = None)]
    pub ttl: Option<Millis>,
    /// Delayed redelivery: a `nack(requeue = true)` brings the message back after each
    /// delay in turn (`x-courier-retries` counts them), then dead-letters it. Needs
    /// `dead_letter`. Empty: a nack requeues at once.
    #[uniffi(default)]
    pub retry_delays: Vec<Millis>,
}

impl TryFrom<QueueOptions> for courierkit::QueueOptions {
    type Error = CourierError;

    fn try_from(o: QueueOptions) -> Result<Self, CourierError> {
        Ok(courierkit::QueueOptions {
            quorum: o.quorum,
            delivery_limit: o.delivery_limit,
            dead_letter: o.dead_letter,
            ttl: Millis::optional(o.ttl, "ttl_ms")?,
            retry_delays: o
                .retry_delays
                .into_iter()
                .enumerate()
                .map(|(i, delay)| delay.to_core(&format!("retry_delays_ms[{i}]")))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Per-publish options; the defaults are core's (generated UUIDv7 id, persistent).
#[derive(Debug, Clone, uniffi::Record)]
pub struct PublishOptions {
    /// Application headers.
    #[uniffi(default)]
    pub headers: HashMap<String, String>,
    /// The message id; core generates a UUIDv7 when none.
    #[uniffi(default = None)]
    pub message_id: Option<String>,
    /// Correlation id, for replies and conversations.
    #[uniffi(default = None)]
    pub correlation_id: Option<String>,
    /// Persist the message to disk.
    #[uniffi(default = true)]
    pub persistent: bool,
    /// The caller's trace carrier (`traceparent`, `tracestate`, `baggage`; a
    /// `TraceContext` gives it with `toCarrier()`); the message carries a child of it, or
    /// starts a new trace. The Kotlin `publish` fills it from the current OpenTelemetry
    /// span.
    #[uniffi(default = None)]
    pub trace: Option<HashMap<String, String>>,
    /// How long the publish may wait in all, reconnects included; none means the bus's
    /// `publish_deadline_ms`.
    #[uniffi(default = None)]
    pub deadline: Option<Millis>,
    /// Deliver no earlier than this from now (through a delay queue).
    #[uniffi(default = None)]
    pub delay: Option<Millis>,
    /// How long the message stays worth processing, from now: the broker's expiration
    /// and a deadline header; a consumer dead-letters it unprocessed once it passed.
    #[uniffi(default = None)]
    pub ttl: Option<Millis>,
}

impl TryFrom<PublishOptions> for courierkit::PublishOptions {
    type Error = CourierError;

    fn try_from(o: PublishOptions) -> Result<Self, CourierError> {
        Ok(courierkit::PublishOptions {
            headers: o.headers.into_iter().collect(),
            message_id: o.message_id,
            correlation_id: o.correlation_id,
            persistent: o.persistent,
            trace: o.trace.map(|c| courierkit::TraceContext::from_carrier(&c)),
            deadline: Millis::optional(o.deadline, "deadline_ms")?,
            delay: Millis::optional(o.delay, "delay_ms")?,
            ttl: Millis::optional(o.ttl, "ttl_ms")?,
        })
    }
}

/// Proof that the broker confirmed a publish.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Receipt {
    /// The message's id, generated or given.
    pub message_id: String,
    /// The trace carrier the message carries (a child of the caller's, or a new trace).
    /// The Kotlin and Swift wrappers add `traceContext()`, as for `Response.trace`.
    pub trace: HashMap<String, String>,
}

impl From<courierkit::Receipt> for Receipt {
    fn from(receipt: courierkit::Receipt) -> Self {
        Receipt {
            message_id: receipt.message_id,
            trace: receipt.trace.to_carrier().into_iter().collect(),
        }
    }
}

/// One message of `Bus.publishMany`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BatchMessage {
    /// The exchange (`""` is the default exchange, which routes by queue name).
    pub exchange: String,
    /// The routing key.
    pub routing_key: String,
    /// The body.
    pub body: Vec<u8>,
    /// Its options, as for `publish`.
    #[uniffi(default)]
    pub options: PublishOptions,
}

/// What became of one message of `Bus.publishMany`. The Kotlin `publishMany` turns these
/// into `Result<Receipt>`.
#[derive(Debug, uniffi::Enum)]
pub enum PublishResult {
    /// The broker confirmed it.
    Confirmed {
        /// Its receipt.
        receipt: Receipt,
    },
    /// It was refused (checked, unroutable, nacked, timed out), as `publish` would throw.
    Failed {
        /// Why.
        error: CourierError,
    },
}

/// A snapshot of [`Bus::stats`], as core's `BusStats`: counters since the bus connected.
///
/// A record, like `ClientStats`, so reading it takes no further FFI calls. Counters keep
/// core's `u64` (Kotlin `ULong`, Swift `UInt64`), as in `ServiceStats`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BusStats {
    /// `publish` and `request` calls that reached the broker at least once.
    pub published: u64,
    /// Publishes the broker confirmed (including unroutable ones it returned).
    pub confirmed: u64,
    /// Messages sent again after a reconnect because their confirm was lost.
    pub resent: u64,
    /// Mandatory publishes returned as unroutable.
    pub returned: u64,
    /// Nacks the broker sent (each try of a message counts).
    pub publish_rejected: u64,
    /// Nacked messages sent again (same message id) within their publish deadline.
    #[uniffi(default = 0)]
    pub republished: u64,
    /// Deliveries handed to the application.
    pub delivered: u64,
    /// Deliveries acknowledged.
    pub acked: u64,
    /// Deliveries negatively acknowledged.
    pub nacked: u64,
    /// Deliveries rejected (dead-lettered).
    pub rejected: u64,
    /// Deliveries handed over with the broker's `redelivered` flag.
    pub redelivered: u64,
    /// Duplicates acked and skipped without reaching the application.
    pub deduplicated: u64,
    /// Nacked deliveries sent to a delay queue to come back later (`retry_delays_ms`).
    #[uniffi(default = 0)]
    pub retried: u64,
    /// Publishes confirmed into a delay queue (`delay_ms`), retries not included.
    #[uniffi(default = 0)]
    pub delayed: u64,
    /// Messages dead-lettered unprocessed because their deadline had passed.
    #[uniffi(default = 0)]
    pub expired: u64,
    /// RPC requests awaiting their reply now.
    pub rpc_in_flight: u64,
    /// Reconnections after a lost connection.
    pub reconnects: u64,
}

impl From<courierkit::BusStats> for BusStats {
    fn from(s: courierkit::BusStats) -> Self {
        BusStats {
            published: s.published,
            confirmed: s.confirmed,
            resent: s.resent,
            returned: s.returned,
            publish_rejected: s.publish_rejected,
            republished: s.republished,
            delivered: s.delivered,
            acked: s.acked,
            nacked: s.nacked,
            rejected: s.rejected,
            redelivered: s.redelivered,
            deduplicated: s.deduplicated,
            retried: s.retried,
            delayed: s.delayed,
            expired: s.expired,
            rpc_in_flight: s.rpc_in_flight,
            reconnects: s.reconnects,
        }
    }
}

/// A connection to RabbitMQ, or to the in-process broker a `memory://NAME` URL names.
///
/// Kotlin: `Bus.connect(configJson)` is a `suspend fun` on the companion, and `close()`
/// is renamed `shutdown()` (see `Client`). Swift: `try await Bus.connect(configJson:)`.
#[derive(uniffi::Object)]
pub struct Bus {
    inner: courierkit::Bus,
}

impl Bus {
    /// Core's bus, for the JVM fast path (jvm.rs).
    pub(crate) fn core(&self) -> &courierkit::Bus {
        &self.inner
    }
}

#[uniffi::export]
impl Bus {
    /// Connects with a `BusConfig` as JSON text.
    ///
    /// A named constructor, because uniffi's Kotlin bindings cannot make a primary
    /// constructor `suspend`.
    ///
    /// # Errors
    /// `Config` for an invalid config; `Connect` or `Tls` when no broker accepts.
    #[uniffi::constructor]
    pub async fn connect(config_json: ConfigJson) -> Result<Arc<Self>, CourierError> {
        crate::telemetry::install();
        let config = BusConfig::from_json(&config_json.0)?;
        let inner = crate::run(courierkit::Bus::connect(config)).await?;
        Ok(Arc::new(Bus { inner }))
    }

    /// Declares a queue (and its `<name>.dlq` when `dead_letter` is set).
    ///
    /// # Errors
    /// `Broker` when the queue exists with other arguments; `Config` for a bad name.
    #[uniffi::method(default(options))]
    pub async fn declare_queue(
        &self,
        name: String,
        options: QueueOptions,
    ) -> Result<(), CourierError> {
        let bus = self.inner.clone();
        let options = courierkit::QueueOptions::try_from(options)?;
        crate::run(async move { bus.declare_queue(&name, &options).await }).await
    }

    /// Declares an exchange; `kind` is `direct`, `fanout`, `topic` or `headers`, by
    /// default core's (`topic`).
    ///
    /// # Errors
    /// `Config` for another kind; `Broker` when it exists with another kind.
    #[uniffi::method(default(kind = None))]
    pub async fn declare_exchange(
        &self,
        name: String,
        kind: Option<String>,
    ) -> Result<(), CourierError> {
        let kind: ExchangeKind = kind
            .as_deref()
            .map(str::parse)
            .transpose()?
            .unwrap_or_default();
        let bus = self.inner.clone();
        crate::run(async move { bus.declare_exchange(&name, kind).await }).await
    }

    /// Binds `queue` to `exchange` for `routing_key`.
    ///
    /// # Errors
    /// `Broker` when either does not exist.
    pub async fn bind(
        &self,
        queue: String,
        exchange: String,
        routing_key: String,
    ) -> Result<(), CourierError> {
        let bus = self.inner.clone();
        crate::run(async move { bus.bind(&queue, &exchange, &routing_key).await }).await
    }

    /// Publishes and returns the message id once the broker has confirmed it.
    ///
    /// # Errors
    /// `Unroutable` when no queue took the message, `PublishRejected` when the broker
    /// nacked it, `Broker` when the exchange does not exist.
    ///
    /// # Cancel safety
    /// Cancelling after the message was written does not unpublish it; only the confirm
    /// is lost. `cancel` cancels it from outside (the Swift wrapper, with its task).
    #[uniffi::method(default(cancel = None, options))]
    pub async fn publish(
        &self,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        options: PublishOptions,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Receipt, CourierError> {
        let bus = self.inner.clone();
        let options = courierkit::PublishOptions::try_from(options)?;
        let receipt = crate::run(cancellable(cancel, async move {
            bus.publish(&exchange, &routing_key, body.into(), options)
                .await
        }))
        .await?;
        Ok(Receipt::from(receipt))
    }

    /// Publishes every message at once and waits for all their confirms together (one
    /// round trip, one call, for up to 1,000 messages); each message's outcome is at its
    /// index. The Kotlin and Swift wrappers fill each message's trace from the current
    /// span, as `publish` does.
    ///
    /// # Errors
    /// `Config` on `messages` for an empty batch or one over 1,000; `Closed` for a
    /// closed bus. Each message's own failure is its `PublishResult.Failed`; `Closed`
    /// when `cancel` was cancelled (as for `publish`).
    #[uniffi::method(default(cancel = None))]
    pub async fn publish_many(
        &self,
        messages: Vec<BatchMessage>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Vec<PublishResult>, CourierError> {
        let bus = self.inner.clone();
        // A duration that cannot convert fails the whole call, as a bad option does in
        // Node and Python; what core refuses is that message's own `Failed`.
        let messages = messages
            .into_iter()
            .map(|m| {
                Ok(courierkit::BatchMessage {
                    exchange: m.exchange,
                    routing_key: m.routing_key,
                    body: m.body.into(),
                    options: m.options.try_into()?,
                })
            })
            .collect::<Result<_, CourierError>>()?;
        let results = crate::run(cancellable(cancel, async move {
            bus.publish_many(messages).await
        }))
        .await?;
        Ok(results
            .into_iter()
            .map(|result| match result {
                Ok(receipt) => PublishResult::Confirmed {
                    receipt: receipt.into(),
                },
                Err(e) => PublishResult::Failed { error: e.into() },
            })
            .collect())
    }

    /// Starts consuming `queue` with manual acknowledgement; `prefetch` overrides the
    /// config's. With `dedup` (the default), message ids already acked within the dedup
    /// window are acked and skipped by core, never returned by `next()`.
    ///
    /// # Errors
    /// `Broker` when the queue does not exist; `Config` for prefetch 0.
    #[uniffi::method(default(prefetch = None, dedup = None))]
    pub async fn consume(
        &self,
        queue: String,
        prefetch: Option<u16>,
        dedup: Option<bool>,
    ) -> Result<Arc<Consumer>, CourierError> {
        let bus = self.inner.clone();
        let defaults = courierkit::ConsumeOptions::default();
        let options = courierkit::ConsumeOptions {
            prefetch,
            dedup: dedup.unwrap_or(defaults.dedup),
        };
        let inner = crate::run(async move { bus.consume(&queue, options).await }).await?;
        Ok(Consumer::wrap(inner))
    }

    /// A consumer of RPC requests on `queue`: answer each delivery with
    /// `Delivery.reply()`. Requests are not deduplicated.
    ///
    /// # Errors
    /// As `consume`.
    pub async fn serve(&self, queue: String) -> Result<Arc<Consumer>, CourierError> {
        let bus = self.inner.clone();
        let inner = crate::run(async move { bus.serve(&queue).await }).await?;
        Ok(Consumer::wrap(inner))
    }

    /// Sends a request to `routing_key` (through `exchange`; unset, core's default: the
    /// default exchange, which routes by queue name) and returns the reply, a `Delivery` whose
    /// settlement is a no-op. `trace` is the caller's carrier, as in `PublishOptions`.
    ///
    /// # Errors
    /// `Timeout` when no reply arrives within `timeout` (default 5 s); `Unroutable` when
    /// no queue takes the request; `Connect` when the connection is lost while waiting;
    /// `Config` on `timeout_ms` for a zero or negative `timeout`.
    ///
    /// # Cancel safety
    /// Cancelling forgets the request: a late reply is discarded. The request itself may
    /// still be served.
    // `headers` comes last: uniffi 0.32 accepts a bare name (the type's default, here an
    // empty map) only at the end of the list.
    #[uniffi::method(default(exchange = None, timeout = None, trace = None, cancel = None, headers))]
    // Each argument is a named Kotlin/Swift argument with a default, not a positional one.
    #[allow(clippy::too_many_arguments)]
    pub async fn request(
        &self,
        routing_key: String,
        body: Vec<u8>,
        exchange: Option<String>,
        timeout: Option<Millis>,
        headers: HashMap<String, String>,
        trace: Option<HashMap<String, String>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Arc<Delivery>, CourierError> {
        let bus = self.inner.clone();
        let defaults = courierkit::RequestOptions::default();
        let options = courierkit::RequestOptions {
            exchange: exchange.unwrap_or(defaults.exchange),
            timeout: Millis::optional(timeout, "timeout_ms")?.unwrap_or(defaults.timeout),
            headers: headers.into_iter().collect(),
            trace: trace.map(|c| courierkit::TraceContext::from_carrier(&c)),
        };
        let reply = crate::run(cancellable(cancel, async move {
            bus.request(&routing_key, body.into(), options).await
        }))
        .await?;
        Ok(Delivery::wrap(reply))
    }

    /// Counters since the bus connected.
    pub fn stats(&self) -> BusStats {
        self.inner.stats().into()
    }

    /// Closes the connection; unacknowledged deliveries return to their queues.
    ///
    /// # Errors
    /// None in practice.
    pub async fn close(&self) -> Result<(), CourierError> {
        let bus = self.inner.clone();
        crate::run(async move { bus.close().await }).await
    }
}

/// Deliveries from one queue, pulled with `next()`.
#[derive(uniffi::Object)]
pub struct Consumer {
    inner: Arc<courierkit::Consumer>,
}

impl Consumer {
    fn wrap(inner: courierkit::Consumer) -> Arc<Self> {
        Arc::new(Consumer {
            inner: Arc::new(inner),
        })
    }
}

#[uniffi::export]
impl Consumer {
    /// The next delivery; none once the consumer is closed.
    ///
    /// # Errors
    /// `Timeout` when `timeout` passes with nothing delivered; `Connect` when the
    /// connection failed; `Config` on `timeout_ms` for a negative one.
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery is taken only when this completes, so cancelling loses
    /// nothing.
    #[uniffi::method(default(timeout = None, cancel = None))]
    pub async fn next(
        &self,
        timeout: Option<Millis>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Option<Arc<Delivery>>, CourierError> {
        let consumer = Arc::clone(&self.inner);
        let timeout = Millis::optional(timeout, "timeout_ms")?;
        let delivery = crate::run(cancellable(
            cancel,
            async move { consumer.next(timeout).await },
        ))
        .await?;
        Ok(delivery.map(Delivery::wrap))
    }

    /// Up to `max` deliveries (1..=the consumer's prefetch): returns once `max` have
    /// come or `timeout` has passed, with fewer or none; none once the consumer is
    /// closed. Settle them one by one, or all at once with the batch's `ack`, `nack`
    /// or `reject`.
    ///
    /// # Errors
    /// `Config` on `max` or `timeout_ms`; `Connect` as `next`.
    ///
    /// # Cancel safety
    /// Cancel safe: deliveries gathered by a cancelled call are returned by the next.
    #[uniffi::method(default(cancel = None))]
    pub async fn next_batch(
        &self,
        max: u32,
        timeout: Millis,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<Option<Arc<Batch>>, CourierError> {
        let timeout = timeout.to_core("timeout_ms")?;
        let consumer = Arc::clone(&self.inner);
        let max = usize::try_from(max).unwrap_or(usize::MAX);
        let batch = crate::run(cancellable(cancel, async move {
            consumer.next_batch(max, timeout).await
        }))
        .await?;
        Ok(batch.map(|inner| Arc::new(Batch { inner })))
    }

    /// Cancels the subscription; unacknowledged deliveries return to the queue and
    /// `next()` returns none afterwards.
    ///
    /// # Errors
    /// None in practice.
    pub async fn close(&self) -> Result<(), CourierError> {
        let consumer = Arc::clone(&self.inner);
        crate::run(async move { consumer.close().await }).await
    }
}

/// Deliveries from `Consumer.nextBatch`, settled one by one or with one call.
#[derive(uniffi::Object)]
pub struct Batch {
    inner: courierkit::Batch,
}

#[uniffi::export]
impl Batch {
    /// The deliveries, in the order the broker sent them.
    pub fn deliveries(&self) -> Vec<Arc<Delivery>> {
        self.inner
            .deliveries()
            .iter()
            .map(|d| Arc::new(Delivery { inner: d.clone() }))
            .collect()
    }

    /// Acks every delivery not settled yet.
    ///
    /// # Errors
    /// The first failure among them; the others are settled regardless.
    pub async fn ack(self: Arc<Self>) -> Result<(), CourierError> {
        crate::run(async move { self.inner.ack().await }).await
    }

    /// Nacks every delivery not settled yet (`requeue` by default, as `Delivery.nack`).
    ///
    /// # Errors
    /// As `ack`.
    #[uniffi::method(default(requeue = None))]
    pub async fn nack(self: Arc<Self>, requeue: Option<bool>) -> Result<(), CourierError> {
        let requeue = requeue.unwrap_or(courierkit::Delivery::DEFAULT_REQUEUE);
        crate::run(async move { self.inner.nack(requeue).await }).await
    }

    /// Rejects (dead-letters) every delivery not settled yet.
    ///
    /// # Errors
    /// As `ack`.
    pub async fn reject(self: Arc<Self>) -> Result<(), CourierError> {
        crate::run(async move { self.inner.reject().await }).await
    }
}

/// One received message, or the reply to a `request`. Settle a received message exactly
/// once with `ack`, `nack` or `reject` (on a reply they are no-ops); answer a request
/// from `serve` with `reply`.
///
/// An object rather than a record because it owns the acknowledgement handle; the
/// getters copy the message's fields out.
#[derive(uniffi::Object)]
pub struct Delivery {
    inner: Arc<courierkit::Delivery>,
}

impl Delivery {
    fn wrap(inner: courierkit::Delivery) -> Arc<Self> {
        Arc::new(Delivery {
            inner: Arc::new(inner),
        })
    }
}

#[uniffi::export]
impl Delivery {
    /// Message body.
    pub fn body(&self) -> Vec<u8> {
        self.inner.body.to_vec()
    }

    /// Application headers, as text.
    pub fn headers(&self) -> HashMap<String, String> {
        self.inner.headers.clone().into_iter().collect()
    }

    /// The message id (courier publishers always set one).
    pub fn message_id(&self) -> Option<String> {
        self.inner.message_id.clone()
    }

    /// The correlation id, if set.
    pub fn correlation_id(&self) -> Option<String> {
        self.inner.correlation_id.clone()
    }

    /// Where the sender wants the reply; set on requests (deliveries from `serve`).
    pub fn reply_to(&self) -> Option<String> {
        self.inner.reply_to.clone()
    }

    /// The exchange it was published to (`""` is the default exchange).
    pub fn exchange(&self) -> String {
        self.inner.exchange.clone()
    }

    /// Its routing key.
    pub fn routing_key(&self) -> String {
        self.inner.routing_key.clone()
    }

    /// Whether the broker delivered it before.
    pub fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    /// Earlier delivery attempts (quorum queues' `x-delivery-count`).
    pub fn delivery_count(&self) -> Option<u32> {
        self.inner.delivery_count
    }

    /// Time left until the message's deadline (its publisher's `ttl`, a request's
    /// timeout), zero once passed; none without a deadline. Pass it on as the deadline
    /// of the calls and publishes made for this message.
    pub fn remaining(&self) -> Option<Millis> {
        self.inner.remaining().map(Millis::from)
    }

    /// The trace context the message carried, as a carrier map.
    pub fn trace(&self) -> HashMap<String, String> {
        self.inner.trace.to_carrier().into_iter().collect()
    }

    /// The trace context the message carried.
    pub fn trace_context(&self) -> Arc<TraceContext> {
        TraceContext::wrap(self.inner.trace.clone())
    }

    /// Acknowledges: the broker forgets the message.
    ///
    /// # Errors
    /// `Closed` when already settled; `Connect` when the channel is gone (the broker
    /// will redeliver).
    pub async fn ack(&self) -> Result<(), CourierError> {
        let d = Arc::clone(&self.inner);
        crate::run(async move { d.ack().await }).await
    }

    /// Negatively acknowledges; with `requeue` the message returns to the queue,
    /// otherwise it is dead-lettered.
    ///
    /// # Errors
    /// As `ack`.
    #[uniffi::method(default(requeue = None))]
    pub async fn nack(&self, requeue: Option<bool>) -> Result<(), CourierError> {
        let requeue = requeue.unwrap_or(courierkit::Delivery::DEFAULT_REQUEUE);
        let d = Arc::clone(&self.inner);
        crate::run(async move { d.nack(requeue).await }).await
    }

    /// Rejects without requeueing: the message goes to the dead-letter queue.
    ///
    /// # Errors
    /// As `ack`.
    pub async fn reject(&self) -> Result<(), CourierError> {
        let d = Arc::clone(&self.inner);
        crate::run(async move { d.reject().await }).await
    }

    /// Settles the delivery at the end of a processing scope unless it was settled
    /// already: acked when `succeeded`, else nacked (`requeue`; none is core's default,
    /// requeue). The Kotlin and Swift `process { }` call it.
    ///
    /// # Errors
    /// As `ack` or `nack`.
    pub async fn finish(&self, succeeded: bool, requeue: Option<bool>) -> Result<(), CourierError> {
        let d = Arc::clone(&self.inner);
        crate::run(async move { d.finish(succeeded, requeue).await }).await
    }

    /// Whether the delivery has been settled (acked, nacked, rejected or forwarded).
    pub fn is_settled(&self) -> bool {
        self.inner.is_settled()
    }

    /// Answers a request (a delivery from `serve`) on its `reply_to`, with its correlation
    /// id and a child of its trace. Does not settle the request: ack it as well.
    ///
    /// # Errors
    /// `Config` when the delivery is not a request; publish errors as `Bus.publish`.
    #[uniffi::method(default(headers))]
    pub async fn reply(
        &self,
        body: Vec<u8>,
        headers: HashMap<String, String>,
    ) -> Result<(), CourierError> {
        let d = Arc::clone(&self.inner);
        let headers = headers.into_iter().collect();
        crate::run(async move { d.reply(body.into(), headers).await }).await
    }

    /// Hands the message on to the next workflow step: publishes `body` under a message
    /// id derived from this delivery's id and the destination (a redelivered copy
    /// forwards the same id, which the next step's dedup skips), continuing this
    /// delivery's trace unless `options.trace` is set, then acks this delivery once the
    /// broker confirmed. `options.messageId` must be unset.
    #[uniffi::method(default(options))]
    pub async fn forward(
        &self,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        options: PublishOptions,
    ) -> Result<Receipt, CourierError> {
        let d = Arc::clone(&self.inner);
        let options = courierkit::PublishOptions::try_from(options)?;
        let receipt = crate::run(async move {
            d.forward(&exchange, &routing_key, body.into(), options)
                .await
        })
        .await?;
        Ok(Receipt::from(receipt))
    }
}
