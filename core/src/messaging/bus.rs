//! The connection to the broker: topology, publishing with confirms, consumers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::{RwLock, Semaphore};
use tracing::Instrument;

use super::amqp;
use super::consumer::Consumer;
use super::queue::{ExchangeKind, QueueOptions, check_name, dead_letter_queue};
use crate::config::{BusConfig, Validate, redact_url};
use crate::error::{Error, Result};
use crate::trace::TraceContext;

/// A connection to a RabbitMQ broker. Cheap to clone: clones share the connection.
///
/// # Examples
/// ```no_run
/// # async fn demo() -> courier::Result<()> {
/// use courier::{Bus, BusConfig, PublishOptions, QueueOptions, Validate};
/// let bus = Bus::connect(BusConfig::from_json(r#"{"urls": ["amqp://guest:guest@127.0.0.1:5672/%2f"]}"#)?).await?;
/// bus.declare_queue("orders", &QueueOptions::default()).await?;
/// let receipt = bus.publish("", "orders", b"hello".to_vec().into(), PublishOptions::default()).await?;
/// let consumer = bus.consume("orders", None).await?;
/// if let Some(delivery) = consumer.next(None).await? {
///     assert_eq!(delivery.message_id.as_deref(), Some(receipt.message_id.as_str()));
///     delivery.ack().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    /// The broker URL in use, password redacted: the only form that may reach a message.
    target: String,
    /// The confirm-mode channel for publishes, replaced when the broker closes it (a
    /// publish to a missing exchange closes the channel with 404).
    publisher: RwLock<Channel>,
    /// Bounds publishes awaiting confirms (`max_unconfirmed`).
    unconfirmed: Semaphore,
    prefetch: u16,
    closed: AtomicBool,
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
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            headers: BTreeMap::new(),
            message_id: None,
            correlation_id: None,
            persistent: true,
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
    /// Connects to the first broker in `config.urls` that accepts the connection.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config; [`Error::Connect`] or [`Error::Tls`] with
    /// the last broker's failure when none accepts.
    pub async fn connect(config: BusConfig) -> Result<Bus> {
        config.validate()?;
        let mut last = None;
        for url in &config.urls {
            let target = redact_url(url);
            let props = ConnectionProperties::default().with_connection_name("courier".into());
            match Connection::connect(url, props).await {
                Ok(connection) => {
                    let publisher = confirm_channel(&connection, &target).await?;
                    let max_unconfirmed =
                        usize::try_from(config.max_unconfirmed).unwrap_or(usize::MAX);
                    return Ok(Bus {
                        inner: Arc::new(Inner {
                            connection,
                            target,
                            publisher: RwLock::new(publisher),
                            unconfirmed: Semaphore::new(max_unconfirmed),
                            prefetch: config.prefetch,
                            closed: AtomicBool::new(false),
                        }),
                    });
                }
                Err(e) => {
                    tracing::warn!(broker = %target, error = %e, "amqp connect failed");
                    last = Some(amqp::error("connect", &target, e));
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::config("urls", "must list at least one broker URL")))
    }

    /// Declares a queue (and its `<name>.dlq` when `dead_letter` is set).
    ///
    /// # Errors
    /// [`Error::Broker`] when the queue exists with other arguments (406) or access is
    /// refused; [`Error::Config`] for an empty or over-long name.
    pub async fn declare_queue(&self, name: &str, options: &QueueOptions) -> Result<()> {
        if name.is_empty() {
            // A server-named queue cannot be redeclared after a reconnect.
            return Err(Error::config(
                "name",
                "must not be empty (server-named queues are not supported)",
            ));
        }
        check_name("name", name)?;
        let args = options.arguments(name)?;
        let channel = self.topology_channel().await?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        if options.dead_letter {
            let mut dlq_args = FieldTable::default();
            if options.quorum {
                dlq_args.insert(
                    "x-queue-type".into(),
                    lapin::types::AMQPValue::LongString("quorum".into()),
                );
            }
            channel
                .queue_declare(dead_letter_queue(name).as_str().into(), durable, dlq_args)
                .await
                .map_err(|e| self.error("queue.declare", e))?;
        }
        channel
            .queue_declare(name.into(), durable, args)
            .await
            .map_err(|e| self.error("queue.declare", e))?;
        self.close_channel(channel).await;
        Ok(())
    }

    /// Declares a durable exchange.
    ///
    /// # Errors
    /// [`Error::Broker`] when it exists with another type; [`Error::Config`] for a bad name.
    pub async fn declare_exchange(&self, name: &str, kind: ExchangeKind) -> Result<()> {
        if name.is_empty() || name.starts_with("amq.") {
            return Err(Error::config(
                "name",
                "must not be empty or start with \"amq.\" (reserved)",
            ));
        }
        check_name("name", name)?;
        let channel = self.topology_channel().await?;
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(name.into(), kind.into(), options, FieldTable::default())
            .await
            .map_err(|e| self.error("exchange.declare", e))?;
        self.close_channel(channel).await;
        Ok(())
    }

    /// Binds `queue` to `exchange` for `routing_key`.
    ///
    /// # Errors
    /// [`Error::Broker`] when either does not exist.
    pub async fn bind(&self, queue: &str, exchange: &str, routing_key: &str) -> Result<()> {
        check_name("queue", queue)?;
        check_name("exchange", exchange)?;
        check_name("routing_key", routing_key)?;
        let channel = self.topology_channel().await?;
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.error("queue.bind", e))?;
        self.close_channel(channel).await;
        Ok(())
    }

    /// Publishes a message and waits for the broker's confirm. Mandatory: a message no
    /// queue takes is an error, not silently dropped.
    ///
    /// # Errors
    /// [`Error::Unroutable`] when no queue is bound for the routing key,
    /// [`Error::PublishRejected`] when the broker nacks, [`Error::Broker`] when the
    /// exchange does not exist, [`Error::Connect`] when the connection is down.
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
            Some(id) if id.is_empty() || id.len() > 255 => {
                return Err(Error::config("message_id", "must be 1..=255 bytes"));
            }
            Some(id) => id,
            None => uuid::Uuid::now_v7().to_string(),
        };
        let trace = options
            .trace
            .as_ref()
            .map_or_else(TraceContext::new_root, TraceContext::child);
        let mut headers = options.headers;
        headers.extend(trace.to_carrier());
        let mut props = BasicProperties::default()
            .with_message_id(message_id.as_str().into())
            .with_delivery_mode(if options.persistent { 2 } else { 1 })
            .with_headers(amqp::to_table(&headers));
        if let Some(cid) = &options.correlation_id {
            check_name("correlation_id", cid)?;
            props = props.with_correlation_id(cid.as_str().into());
        }
        let span = producer_span(
            exchange,
            routing_key,
            &message_id,
            options.correlation_id.as_deref(),
            &trace,
        );
        let outcome = async {
            match self.send(exchange, routing_key, &body, props).await? {
                Confirmation::Ack(None) => Ok(Receipt { message_id, trace }),
                Confirmation::Ack(Some(returned)) => Err(Error::Unroutable {
                    message_id,
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                    reply_text: returned.reply_text.to_string(),
                }),
                Confirmation::Nack(_) => Err(Error::PublishRejected {
                    message_id,
                    exchange: exchange.to_owned(),
                }),
                Confirmation::NotRequested => Err(Error::Internal(
                    "publisher confirms were not enabled".to_owned(),
                )),
            }
        }
        .instrument(span.clone())
        .await;
        if let Err(e) = &outcome {
            span.record("error.type", e.kind().code());
        }
        outcome
    }

    /// Writes one message on the confirm channel and waits for the broker's answer,
    /// holding one of the `max_unconfirmed` slots meanwhile.
    async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<Confirmation> {
        let _permit = self
            .inner
            .unconfirmed
            .acquire()
            .await
            .map_err(|_| Error::Closed { what: "bus" })?;
        let channel = self.publisher().await?;
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                props,
            )
            .await
            .map_err(|e| self.error("basic.publish", e))?
            .await
            .map_err(|e| self.error("basic.publish", e))
    }

    /// Starts consuming `queue` with manual acknowledgement on a channel of its own.
    /// `prefetch` overrides the config's for this consumer.
    ///
    /// # Errors
    /// [`Error::Broker`] when the queue does not exist; [`Error::Config`] for prefetch 0.
    pub async fn consume(&self, queue: &str, prefetch: Option<u16>) -> Result<Consumer> {
        self.check_open()?;
        check_name("queue", queue)?;
        let prefetch = prefetch.unwrap_or(self.inner.prefetch);
        if prefetch == 0 {
            return Err(Error::config("prefetch", "must be 1..=65535, got 0"));
        }
        let channel = self.channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| self.error("basic.qos", e))?;
        let stream = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.error("basic.consume", e))?;
        Ok(Consumer::new(channel, stream, self.inner.target.clone()))
    }

    /// Closes the connection. Unacknowledged deliveries return to their queues.
    ///
    /// # Errors
    /// None in practice: a connection that is already gone is already closed.
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.unconfirmed.close();
        if self.inner.connection.status().connected() {
            // A failure here means the connection is already down: closed either way.
            if let Err(e) = self
                .inner
                .connection
                .close(200, "closed by courier".into())
                .await
            {
                tracing::debug!(error = %e, "amqp close");
            }
        }
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed { what: "bus" });
        }
        Ok(())
    }

    fn error(&self, operation: &'static str, e: lapin::Error) -> Error {
        amqp::error(operation, &self.inner.target, e)
    }

    async fn channel(&self) -> Result<Channel> {
        self.inner
            .connection
            .create_channel()
            .await
            .map_err(|e| self.error("channel.open", e))
    }

    /// A short-lived channel for declarations: a refused declaration closes its channel,
    /// and that must not take the publisher or a consumer down with it.
    async fn topology_channel(&self) -> Result<Channel> {
        self.check_open()?;
        self.channel().await
    }

    async fn close_channel(&self, channel: Channel) {
        if let Err(e) = channel.close(200, "done".into()).await {
            tracing::debug!(error = %e, "amqp channel close");
        }
    }

    /// The publishing channel, reopened if the broker closed it.
    async fn publisher(&self) -> Result<Channel> {
        {
            let current = self.inner.publisher.read().await;
            if current.status().connected() {
                return Ok(current.clone());
            }
        }
        let mut slot = self.inner.publisher.write().await;
        if !slot.status().connected() {
            *slot = confirm_channel(&self.inner.connection, &self.inner.target).await?;
        }
        Ok(slot.clone())
    }
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
        error.type = tracing::field::Empty,
    );
    if let Some(cid) = correlation_id {
        span.record("messaging.message.conversation_id", cid);
    }
    span
}

async fn confirm_channel(connection: &Connection, target: &str) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| amqp::error("channel.open", target, e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| amqp::error("confirm.select", target, e))?;
    Ok(channel)
}
