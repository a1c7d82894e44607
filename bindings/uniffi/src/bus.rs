//! `Bus`, `Consumer` and `Delivery`: AMQP messaging as uniffi objects.
//!
//! Consumers are pulled (`next()`), never pushed: Kotlin wraps them in a `Flow` and Swift
//! in an `AsyncSequence`, and no Rust thread ever calls into foreign code.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use courier::{BusConfig, ExchangeKind, Validate};

use crate::error::CourierError;

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
    /// Message time-to-live in the queue.
    #[uniffi(default = None)]
    pub ttl_ms: Option<u64>,
}

impl From<QueueOptions> for courier::QueueOptions {
    fn from(o: QueueOptions) -> Self {
        courier::QueueOptions {
            quorum: o.quorum,
            delivery_limit: o.delivery_limit,
            dead_letter: o.dead_letter,
            ttl_ms: o.ttl_ms,
        }
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
    /// The caller's trace carrier (`traceparent`, `tracestate`, `baggage`); the message
    /// carries a child of it, or starts a new trace.
    #[uniffi(default = None)]
    pub trace: Option<HashMap<String, String>>,
}

impl From<PublishOptions> for courier::PublishOptions {
    fn from(o: PublishOptions) -> Self {
        courier::PublishOptions {
            headers: o.headers.into_iter().collect(),
            message_id: o.message_id,
            correlation_id: o.correlation_id,
            persistent: o.persistent,
            trace: o.trace.map(|c| courier::TraceContext::from_carrier(&c)),
        }
    }
}

/// Proof that the broker confirmed a publish.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Receipt {
    /// The message's id, generated or given.
    pub message_id: String,
    /// The trace carrier the message carries (a child of the caller's, or a new trace).
    pub trace: HashMap<String, String>,
}

/// A connection to RabbitMQ.
///
/// Kotlin: `Bus.connect(configJson)` is a `suspend fun` on the companion, and `close()`
/// is renamed `shutdown()` (see `Client`). Swift: `try await Bus.connect(configJson:)`.
#[derive(uniffi::Object)]
pub struct Bus {
    inner: courier::Bus,
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
    pub async fn connect(config_json: String) -> Result<Arc<Self>, CourierError> {
        let config = BusConfig::from_json(&config_json)?;
        let inner = crate::run(courier::Bus::connect(config)).await?;
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
        let options = courier::QueueOptions::from(options);
        crate::run(async move { bus.declare_queue(&name, &options).await }).await
    }

    /// Declares an exchange; `kind` is `direct`, `fanout`, `topic` or `headers`.
    ///
    /// # Errors
    /// `Config` for another kind; `Broker` when it exists with another kind.
    #[uniffi::method(default(kind = "topic"))]
    pub async fn declare_exchange(&self, name: String, kind: String) -> Result<(), CourierError> {
        let kind: ExchangeKind = kind.parse()?;
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
    /// is lost.
    #[uniffi::method(default(options))]
    pub async fn publish(
        &self,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        options: PublishOptions,
    ) -> Result<Receipt, CourierError> {
        let bus = self.inner.clone();
        let options = courier::PublishOptions::from(options);
        let receipt = crate::run(async move {
            bus.publish(&exchange, &routing_key, body.into(), options)
                .await
        })
        .await?;
        Ok(Receipt {
            message_id: receipt.message_id,
            trace: receipt.trace.to_carrier().into_iter().collect(),
        })
    }

    /// Starts consuming `queue` with manual acknowledgement; `prefetch` overrides the
    /// config's.
    ///
    /// # Errors
    /// `Broker` when the queue does not exist; `Config` for prefetch 0.
    #[uniffi::method(default(prefetch = None))]
    pub async fn consume(
        &self,
        queue: String,
        prefetch: Option<u16>,
    ) -> Result<Arc<Consumer>, CourierError> {
        let bus = self.inner.clone();
        let inner = crate::run(async move { bus.consume(&queue, prefetch).await }).await?;
        Ok(Arc::new(Consumer {
            inner: Arc::new(inner),
        }))
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
    inner: Arc<courier::Consumer>,
}

#[uniffi::export]
impl Consumer {
    /// The next delivery; none once the consumer is closed.
    ///
    /// # Errors
    /// `Timeout` when `timeout_ms` passes with nothing delivered; `Connect` when the
    /// connection failed.
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery is taken only when this completes, so cancelling loses
    /// nothing.
    #[uniffi::method(default(timeout_ms = None))]
    pub async fn next(
        &self,
        timeout_ms: Option<u64>,
    ) -> Result<Option<Arc<Delivery>>, CourierError> {
        let consumer = Arc::clone(&self.inner);
        let timeout = timeout_ms.map(Duration::from_millis);
        let delivery = crate::run(async move { consumer.next(timeout).await }).await?;
        Ok(delivery.map(|d| Arc::new(Delivery { inner: Arc::new(d) })))
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

/// One received message. Settle it exactly once with `ack`, `nack` or `reject`.
///
/// An object rather than a record because it owns the acknowledgement handle; the
/// getters copy the message's fields out.
#[derive(uniffi::Object)]
pub struct Delivery {
    inner: Arc<courier::Delivery>,
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

    /// The trace context the message carried, as a carrier map.
    pub fn trace(&self) -> HashMap<String, String> {
        self.inner.trace.to_carrier().into_iter().collect()
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
    #[uniffi::method(default(requeue = true))]
    pub async fn nack(&self, requeue: bool) -> Result<(), CourierError> {
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
}
