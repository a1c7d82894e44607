//! One publish, the same for `Bus::publish` and `Delivery::forward`: its checks, its
//! trace context and PRODUCER span, and the send (or the delay queue, with a delay).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::Either;
use tokio::time::Instant;
use tracing::Instrument;

use super::delay;
use super::message::Outgoing;
use super::queue::check_name;
use super::session::Session;
use crate::deadline;
use crate::error::{Error, Result};
use crate::limits::{MAX_BATCH, check_duration_ms, millis};
use crate::trace::TraceContext;

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
    /// Deliver no earlier than this (1 ms to 30 days): the message waits in a delay
    /// queue and is routed to `exchange` when it expires (docs/messaging.md has the
    /// topology and its precision). The receipt confirms the message is in the delay
    /// queue; whether a queue takes it is decided when it is routed on, and a message
    /// no queue takes then is dropped by the broker, as RabbitMQ drops any
    /// dead-lettered message it cannot route.
    pub delay: Option<Duration>,
    /// How long the message stays worth processing, counted from this publish (1 ms to
    /// 30 days): it travels as the AMQP `expiration` (the broker drops it from the
    /// queue once it passes) and as an absolute deadline header, so a consumer
    /// discards it if it is delivered late and a handler can pass the rest of the
    /// budget on (`Delivery::remaining`). With a `delay` it must be longer than the
    /// delay, and only the header applies (the delay queue uses the expiration).
    pub ttl: Option<Duration>,
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
            delay: None,
            ttl: None,
        }
    }
}

/// One message of [`crate::Bus::publish_many`].
#[derive(Debug, Clone, Default)]
pub struct BatchMessage {
    /// The exchange (`""` is the default exchange, which routes by queue name).
    pub exchange: String,
    /// The routing key.
    pub routing_key: String,
    /// The body.
    pub body: Bytes,
    /// Its options, as for a single publish.
    pub options: PublishOptions,
}

/// Proof that the broker confirmed a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The message's id, generated or given.
    pub message_id: String,
    /// The trace context the message carries.
    pub trace: TraceContext,
}

/// Checks, builds and sends one publish on `session` (open: the caller checked); the
/// future waits for the broker's confirm (see `Bus::publish`).
///
/// The checks and the message are built when this is called, not when the future is
/// first polled, so that the future holds only what waits for the confirm: an async
/// fn keeps its arguments (`PublishOptions` alone is 208 bytes) beside the message built
/// from them, in every publish in flight.
pub(crate) fn publish<'s>(
    session: &'s Session,
    exchange: &str,
    routing_key: &str,
    body: Bytes,
    options: PublishOptions,
) -> impl Future<Output = Result<Receipt>> + Send + use<'s> {
    send(
        session,
        prepare(session, exchange, routing_key, body, options),
    )
}

/// A checked publish, ready to send.
pub(crate) struct Prepared {
    message: Outgoing,
    trace: TraceContext,
    span: tracing::Span,
    deadline: Instant,
    delay: Option<Duration>,
}

/// Checks a publish and builds its message, trace context and PRODUCER span.
pub(crate) fn prepare(
    session: &Session,
    exchange: &str,
    routing_key: &str,
    body: Bytes,
    options: PublishOptions,
) -> Result<Prepared> {
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
    session.limits.check_message(body.len(), &options.headers)?;
    if let Some(deadline) = options.deadline {
        check_duration_ms("deadline_ms", millis(deadline), false)?;
    }
    if let Some(delay) = options.delay {
        delay::check(exchange, delay)?;
    }
    if let Some(ttl) = options.ttl {
        check_duration_ms("ttl_ms", millis(ttl), false)?;
        if options.delay.is_some_and(|delay| ttl <= delay) {
            return Err(Error::config(
                "ttl_ms",
                "must be longer than delay_ms: the message would expire before it is delivered",
            ));
        }
    }
    let trace = options
        .trace
        .as_ref()
        .map_or_else(TraceContext::new_root, TraceContext::child);
    let mut headers = options.headers;
    headers.extend(trace.to_carrier());
    if let Some(ttl) = options.ttl {
        let (_, at) = deadline::message_deadline_after(ttl);
        headers.insert(deadline::MESSAGE_DEADLINE_HEADER.to_owned(), at);
    }
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
        expiration_ms: options.ttl.map(millis),
        persistent: options.persistent,
        mandatory: true,
    };
    Ok(Prepared {
        message,
        trace,
        span,
        deadline: Instant::now() + options.deadline.unwrap_or(session.publish_deadline),
        delay: options.delay,
    })
}

/// Sends a prepared publish (or fails with why it could not be prepared) and waits for
/// the broker's confirm.
pub(crate) fn send(
    session: &Session,
    prepared: Result<Prepared>,
) -> impl Future<Output = Result<Receipt>> + Send + use<'_> {
    match prepared {
        Err(e) => Either::Left(std::future::ready(Err(e))),
        Ok(prepared) => Either::Right(confirmed(session, prepared)),
    }
}

/// The send itself. An async block, not an async fn, and `prepared` used in place:
/// either of the others would hold its fields twice while the confirm is awaited.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would copy `prepared` into its body and hold it twice"
)]
fn confirmed(
    session: &Session,
    mut prepared: Prepared,
) -> impl Future<Output = Result<Receipt>> + Send + use<'_> {
    async move {
        let span = prepared.span.clone();
        let outcome = async {
            match prepared.delay {
                // Boxed: the delay queue's path is the rare one, and inline it would
                // size every publish's future.
                Some(delay) => {
                    let deadline = prepared.deadline;
                    Box::pin(delay::send(session, &mut prepared.message, delay, deadline)).await?;
                    session.counters.delayed.inc();
                }
                None => {
                    session
                        .send(&prepared.message, prepared.deadline, None)
                        .await?;
                }
            }
            Ok::<_, Error>(())
        }
        .instrument(span)
        .await;
        match outcome {
            Ok(()) => Ok(Receipt {
                message_id: prepared.message.message_id,
                trace: prepared.trace,
            }),
            Err(e) => {
                prepared.span.record("error.type", e.kind().code());
                Err(e)
            }
        }
    }
}

/// Publishes every message at once and waits for all their confirms together: the
/// messages are written back to back, so N confirms cost about one round trip, not N.
/// Each message is checked and confirmed on its own, and its result is at its index.
///
/// # Errors
/// [`Error::Config`] on `messages` for an empty batch or one over [`MAX_BATCH`].
pub(crate) async fn publish_many(
    session: &Session,
    messages: Vec<BatchMessage>,
) -> Result<Vec<Result<Receipt>>> {
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return Err(Error::config(
            "messages",
            format!(
                "a batch must hold 1..={MAX_BATCH} messages, got {}",
                messages.len()
            ),
        ));
    }
    // Each message is checked and built here, so each send holds only its prepared
    // message, not the `BatchMessage` it came from.
    let sends = messages
        .into_iter()
        .map(|m| publish(session, &m.exchange, &m.routing_key, m.body, m.options));
    Ok(futures_util::future::join_all(sends).await)
}

/// Message and correlation ids are AMQP short strings, and an empty one cannot be
/// deduplicated or matched.
fn check_id(field: &'static str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 255 {
        return Err(Error::config(field, "must be 1..=255 bytes"));
    }
    Ok(())
}

/// The PRODUCER span of one publish, named and attributed by the OpenTelemetry
/// messaging semantic conventions (<https://opentelemetry.io/docs/specs/semconv/messaging/rabbitmq/>).
/// Its ids are the message's own context, the parent of whatever the consumer does.
pub(crate) fn producer_span(
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
        sampled = trace.sampled(),
        parent_span_id = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    if let Some(cid) = correlation_id {
        span.record("messaging.message.conversation_id", cid);
    }
    span
}
