//! One received message, its settlement and its reply.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::time::Instant;

use super::dedup::DedupStore;
use super::message::{Incoming, Outcome, Outgoing, Settle};
use super::session::Session;
use super::stats::{Counter, Counters};
use crate::error::{Error, Result};
use crate::trace::TraceContext;

/// A message delivered to a [`super::Consumer`] (or the reply to a request, which the
/// broker settled already: settling it is a no-op). Settle it exactly once with
/// [`Delivery::ack`], [`Delivery::nack`] or [`Delivery::reject`];
/// dropping it unsettled leaves it to the broker, which redelivers it once the
/// consumer closes.
pub struct Delivery {
    /// Message body.
    pub body: Bytes,
    /// Application headers, as text.
    pub headers: BTreeMap<String, String>,
    /// The message id, if the publisher set one (courier always does).
    pub message_id: Option<String>,
    /// The correlation id, if set.
    pub correlation_id: Option<String>,
    /// Where the sender wants a reply, for requests.
    pub reply_to: Option<String>,
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
    /// `None` for a reply, which the broker settled already.
    settle: Option<Box<dyn Settle>>,
    claim: Option<Claim>,
    session: Arc<Session>,
    settled: AtomicBool,
    /// The CONSUMER span of the application's handling: open from hand-over until the
    /// delivery is settled (or dropped unsettled), so its duration is the processing
    /// time and it ends when the application is done, not when a garbage collector
    /// gets to a binding's wrapper.
    span: Mutex<tracing::Span>,
}

/// The dedup claim a delivery holds until it is settled.
pub(crate) struct Claim {
    pub store: Arc<DedupStore>,
    pub queue: String,
    pub id: String,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("message_id", &self.message_id)
            .field("correlation_id", &self.correlation_id)
            .field("exchange", &self.exchange)
            .field("routing_key", &self.routing_key)
            .field("redelivered", &self.redelivered)
            .field("delivery_count", &self.delivery_count)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub(crate) fn new(incoming: Incoming, session: Arc<Session>, claim: Option<Claim>) -> Delivery {
        Delivery {
            trace: TraceContext::from_carrier(&incoming.headers),
            body: incoming.body,
            headers: incoming.headers,
            message_id: incoming.message_id,
            correlation_id: incoming.correlation_id,
            reply_to: incoming.reply_to,
            exchange: incoming.exchange,
            routing_key: incoming.routing_key,
            redelivered: incoming.redelivered,
            delivery_count: incoming.delivery_count,
            settle: incoming.settle,
            claim,
            session,
            settled: AtomicBool::new(false),
            span: Mutex::new(tracing::Span::none()),
        }
    }

    /// Opens the process span (OpenTelemetry messaging conventions), linked to the
    /// producer's context: its trace and span ids are the ones the message carried.
    pub(crate) fn processing(mut self, queue: &str) -> Delivery {
        let span = tracing::info_span!(
            "amqp.process",
            otel.name = %format_args!("process {queue}"),
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "process",
            messaging.destination.name = queue,
            messaging.rabbitmq.destination.routing_key = %self.routing_key,
            messaging.message.id = tracing::field::Empty,
            messaging.message.conversation_id = tracing::field::Empty,
            trace_id = %self.trace.trace_id(),
            link.span_id = %self.trace.span_id(),
            sampled = self.trace.sampled(),
            error.type = tracing::field::Empty,
        );
        if let Some(id) = &self.message_id {
            span.record("messaging.message.id", id.as_str());
        }
        if let Some(cid) = &self.correlation_id {
            span.record("messaging.message.conversation_id", cid.as_str());
        }
        self.span = Mutex::new(span);
        self
    }

    /// Acknowledges: the broker forgets the message, and with dedup on, its id is
    /// remembered so a redelivered copy is skipped.
    ///
    /// # Errors
    /// [`Error::Closed`] when already settled; [`Error::Connect`] when the delivery came
    /// on a connection that has since been lost (the broker redelivers it; dedup then
    /// skips it, because the id was recorded first).
    pub async fn ack(&self) -> Result<()> {
        self.take()?;
        if let Some(claim) = &self.claim {
            if let Err(e) = claim.store.complete(&claim.queue, &claim.id).await {
                // Nothing was settled: the caller may ack again or nack.
                self.settled.store(false, Ordering::Release);
                return Err(e);
            }
        }
        self.finish(Outcome::Ack).await?;
        self.end_span(None);
        self.count(|c| &c.acked);
        Ok(())
    }

    /// What [`Delivery::nack`] does when a binding's caller does not say: requeue, as
    /// AMQP's `basic.nack` does by default (a failed handler is retried, not dropped).
    pub const DEFAULT_REQUEUE: bool = true;

    /// Negatively acknowledges; with `requeue` the message goes back to the queue,
    /// otherwise it is dead-lettered (or dropped when the queue has no dead-letter queue).
    ///
    /// # Errors
    /// As [`Delivery::ack`].
    pub async fn nack(&self, requeue: bool) -> Result<()> {
        self.take()?;
        self.release();
        self.finish(Outcome::Nack { requeue }).await?;
        self.end_span(Some("nacked"));
        self.count(|c| &c.nacked);
        Ok(())
    }

    /// Rejects without requeueing: a poison message goes to the dead-letter queue.
    ///
    /// # Errors
    /// As [`Delivery::ack`].
    pub async fn reject(&self) -> Result<()> {
        self.take()?;
        self.release();
        self.finish(Outcome::Reject).await?;
        self.end_span(Some("rejected"));
        self.count(|c| &c.rejected);
        Ok(())
    }

    /// Answers a request (a delivery from [`Bus::serve`]) on its `reply_to` with the same
    /// correlation id, continuing its trace. Does not settle the request.
    ///
    /// # Errors
    /// [`Error::Config`] when the delivery is not a request (no `reply_to` or no
    /// correlation id); publish errors as [`Bus::publish`].
    pub async fn reply(&self, body: Bytes, headers: BTreeMap<String, String>) -> Result<()> {
        let (Some(reply_to), Some(correlation_id)) = (&self.reply_to, &self.correlation_id) else {
            return Err(Error::config(
                "reply",
                "the delivery is not a request: it has no reply_to or no correlation_id",
            ));
        };
        self.session.limits.check_message(body.len(), &headers)?;
        let mut headers = headers;
        headers.extend(self.trace.child().to_carrier());
        // Not mandatory: a caller that gave up is not the server's failure.
        let reply = Outgoing {
            exchange: String::new(),
            routing_key: reply_to.clone(),
            body,
            headers,
            message_id: uuid::Uuid::now_v7().to_string(),
            correlation_id: Some(correlation_id.clone()),
            reply_to: None,
            expiration_ms: None,
            persistent: false,
            mandatory: false,
        };
        let deadline = Instant::now() + self.session.publish_deadline;
        self.session.send(&reply, deadline, None).await
    }

    /// Settles a delivery courier handled itself (a skipped duplicate, a message given
    /// back because the dedup store failed): not counted as the application's.
    pub(crate) async fn settle_quietly(&self, outcome: Outcome) -> Result<()> {
        self.take()?;
        self.finish(outcome).await
    }

    /// Counts an application's settlement; replies (settled by the broker) don't count.
    fn count(&self, counter: impl Fn(&Counters) -> &Counter) {
        if self.settle.is_some() {
            counter(&self.session.counters).inc();
        }
    }

    /// Closes the CONSUMER span, with `error` as its `error.type`.
    fn end_span(&self, error: Option<&'static str>) {
        let span = std::mem::replace(
            &mut *self.span.lock().unwrap_or_else(PoisonError::into_inner),
            tracing::Span::none(),
        );
        if let Some(error) = error {
            span.record("error.type", error);
        }
    }

    fn take(&self) -> Result<()> {
        if self.settled.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed {
                what: "delivery (already settled)",
            });
        }
        Ok(())
    }

    fn release(&self) {
        if let Some(claim) = &self.claim {
            claim.store.release(&claim.queue, &claim.id);
        }
    }

    async fn finish(&self, outcome: Outcome) -> Result<()> {
        match &self.settle {
            Some(settle) => settle.settle(outcome).await,
            None => Ok(()),
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // An unsettled delivery's claim must not hold its duplicates back forever.
        if !self.settled.load(Ordering::Acquire) {
            self.release();
        }
    }
}
