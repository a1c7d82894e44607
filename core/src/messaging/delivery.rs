//! One received message, its settlement and its reply.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::time::Instant;

use super::dedup::DedupStore;
use super::delay;
use super::message::{Incoming, Outcome, Outgoing, Settle};
use super::publish::{self, PublishOptions, Receipt};
use super::session::Session;
use super::stats::{Counter, Counters};
use crate::deadline;
use crate::error::{Error, ErrorKind, Result};
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
    /// When the message stops being worth processing, if its publisher set a `ttl`
    /// (or it is a request, whose caller waits only so long). A consumer never hands
    /// over a message already past it; [`Delivery::remaining`] is what is left.
    pub deadline: Option<SystemTime>,
    /// `None` for a reply, which the broker settled already.
    settle: Option<Box<dyn Settle>>,
    /// The queue it came from and that queue's `retry_delays_ms`, when a nack should
    /// bring it back later.
    retry: Option<(String, Arc<[u64]>)>,
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
        // A retried message comes back through the default exchange; the application
        // sees where it was first sent.
        let (exchange, routing_key) = match (
            incoming.headers.get(ORIGINAL_EXCHANGE),
            incoming.headers.get(ORIGINAL_ROUTING_KEY),
        ) {
            (Some(exchange), Some(key)) if incoming.headers.contains_key(RETRIES) => {
                (exchange.clone(), key.clone())
            }
            _ => (incoming.exchange, incoming.routing_key),
        };
        Delivery {
            trace: TraceContext::from_carrier(&incoming.headers),
            deadline: deadline::message_deadline(
                incoming.headers.get(deadline::MESSAGE_DEADLINE_HEADER),
            ),
            body: incoming.body,
            headers: incoming.headers,
            message_id: incoming.message_id,
            correlation_id: incoming.correlation_id,
            reply_to: incoming.reply_to,
            exchange,
            routing_key,
            redelivered: incoming.redelivered,
            delivery_count: incoming.delivery_count,
            settle: incoming.settle,
            retry: None,
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

    /// Nacks with requeue send the delivery to a delay queue for each of `delays` in
    /// turn, then to the dead-letter queue.
    pub(crate) fn retrying(mut self, queue: &str, delays: Option<Arc<[u64]>>) -> Delivery {
        self.retry = delays.map(|delays| (queue.to_owned(), delays));
        self
    }

    /// The time left until [`Delivery::deadline`] (zero once it has passed), to pass on
    /// as the deadline of the calls and publishes made for this message; `None` when
    /// the message has no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(deadline::remaining)
    }

    /// Whether the delivery has been acked, nacked, rejected or forwarded.
    pub fn is_settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
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
        self.settle_with(Outcome::Ack).await?;
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
    /// On a queue declared with `retry_delays_ms`, `requeue` means "later": the message
    /// (same id, body, headers and trace context, plus an `x-courier-retries` count)
    /// goes to a delay queue for the next delay and comes back to this queue when it
    /// expires; past the last delay it is dead-lettered. The copy is confirmed before
    /// this delivery is acked, so a crash in between leaves two copies of one id, which
    /// dedup tells apart (a message without an id, from another client, gets one on its
    /// first retry). A message whose deadline would pass during the delay is
    /// dead-lettered at once (counted `expired`). If the broker is unreachable the delivery is requeued at once; if it
    /// refuses the copy, the delivery is dead-lettered rather than requeued forever.
    ///
    /// # Errors
    /// As [`Delivery::ack`].
    pub async fn nack(&self, requeue: bool) -> Result<()> {
        self.take()?;
        self.release();
        let outcome = match (&self.retry, requeue) {
            (Some((queue, delays)), true) if self.settle.is_some() => {
                self.retry_later(queue, delays).await
            }
            _ => Outcome::Nack { requeue },
        };
        self.settle_with(outcome).await?;
        self.end_span(Some("nacked"));
        self.count(|c| &c.nacked);
        Ok(())
    }

    /// Sends a copy to the next delay queue and says how to settle this delivery:
    /// acked once the copy is confirmed, dead-lettered past the last delay, requeued
    /// when the copy could not be sent (nothing is lost either way).
    async fn retry_later(&self, queue: &str, delays: &[u64]) -> Outcome {
        let done: usize = self
            .headers
            .get(RETRIES)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let Some(&delay_ms) = delays.get(done) else {
            return Outcome::Reject;
        };
        let delay = Duration::from_millis(delay_ms);
        // A message that would come back after its deadline is dead-lettered now.
        if self
            .deadline
            .is_some_and(|at| at <= SystemTime::now() + delay)
        {
            self.session.counters.expired.inc();
            return Outcome::Reject;
        }
        let mut headers: BTreeMap<String, String> = self
            .headers
            .iter()
            .filter(|(k, _)| !is_broker_header(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.insert(RETRIES.to_owned(), (done + 1).to_string());
        headers.insert(ORIGINAL_EXCHANGE.to_owned(), self.exchange.clone());
        headers.insert(ORIGINAL_ROUTING_KEY.to_owned(), self.routing_key.clone());
        let mut copy = Outgoing {
            exchange: String::new(),
            routing_key: queue.to_owned(),
            body: self.body.clone(),
            headers,
            message_id: self
                .message_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            correlation_id: self.correlation_id.clone(),
            reply_to: self.reply_to.clone(),
            expiration_ms: None,
            persistent: true,
            mandatory: true,
        };
        let deadline = Instant::now() + self.session.publish_deadline;
        match delay::send(&self.session, &mut copy, delay, deadline).await {
            Ok(()) => {
                self.session.counters.retried.inc();
                Outcome::Ack
            }
            // A broker that is away may be back for the requeued copy's next nack.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Closed
                ) =>
            {
                tracing::warn!(error = %e, message_id = ?self.message_id, "retry copy not sent; requeueing at once");
                Outcome::Nack { requeue: true }
            }
            // A refusal would repeat on every requeue: park the message instead.
            Err(e) => {
                tracing::warn!(error = %e, message_id = ?self.message_id, "retry copy refused; dead-lettering");
                Outcome::Reject
            }
        }
    }

    /// Rejects without requeueing: a poison message goes to the dead-letter queue.
    ///
    /// # Errors
    /// As [`Delivery::ack`].
    pub async fn reject(&self) -> Result<()> {
        self.take()?;
        self.release();
        self.settle_with(Outcome::Reject).await?;
        self.end_span(Some("rejected"));
        self.count(|c| &c.rejected);
        Ok(())
    }

    /// Settles the delivery at the end of a processing scope, unless the scope settled it
    /// already (a `forward`, a `reject`): an ack when the handler `succeeded`, otherwise
    /// a nack with `requeue` ([`Delivery::DEFAULT_REQUEUE`] when `None`: a failed handler
    /// is retried, through the retry delays on a queue that has them). This is the one
    /// policy behind every binding's scope (Python `with d.process()`, Node
    /// `d.process(fn)`, Kotlin and Swift `d.process { }`).
    ///
    /// # Errors
    /// As [`Delivery::ack`] or [`Delivery::nack`].
    pub async fn finish(&self, succeeded: bool, requeue: Option<bool>) -> Result<()> {
        if self.is_settled() {
            return Ok(());
        }
        if succeeded {
            self.ack().await
        } else {
            self.nack(requeue.unwrap_or(Self::DEFAULT_REQUEUE)).await
        }
    }

    /// Hands the message on to the next step of a workflow and checkpoints this one:
    /// publishes `body` to `exchange`/`routing_key` under a message id derived from this
    /// delivery's id and that destination (a UUIDv5), continuing this delivery's trace
    /// unless `options.trace` names another parent and keeping what is left of its
    /// deadline unless `options.ttl` sets another, waits for the broker's confirm,
    /// and only then acks this delivery.
    ///
    /// A crash or a lost connection between the confirm and the ack brings this message
    /// back; handling it again forwards under the same id, which the next step's
    /// deduplicating consumer skips. Each step may run more than once, and hands on
    /// exactly once as its deduplicating consumer sees it.
    ///
    /// # Errors
    /// [`Error::Config`] when the delivery has no message id to derive from, or
    /// `options.message_id` is set (the id is derived); [`Error::Closed`] when already
    /// settled; publish errors as [`crate::Bus::publish`] (this delivery is then left
    /// unsettled: nack or forward again); ack errors as [`Delivery::ack`] (the next step
    /// was confirmed: ack again, or leave it to the broker's redelivery).
    pub async fn forward(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Bytes,
        mut options: PublishOptions,
    ) -> Result<Receipt> {
        if self.settled.load(Ordering::Acquire) {
            return Err(Error::Closed {
                what: "delivery (already settled)",
            });
        }
        let Some(id) = &self.message_id else {
            return Err(Error::config(
                "message_id",
                "the delivery has no message id to derive the next step's from",
            ));
        };
        if options.message_id.is_some() {
            return Err(Error::config(
                "message_id",
                "is derived by forward (from this delivery's id and the destination)",
            ));
        }
        self.session.check_open()?;
        let next = next_step_id(id, exchange, routing_key);
        options.message_id = Some(next.clone());
        if options.trace.is_none() {
            options.trace = Some(self.trace.clone());
        }
        // The next step inherits what is left of this message's budget.
        if options.ttl.is_none() {
            options.ttl = self
                .remaining()
                .map(|left| left.max(Duration::from_millis(1)));
        }
        let receipt = publish::publish(&self.session, exchange, routing_key, body, options).await?;
        tracing::debug!(
            target: "courierkit::forward",
            message_id = %id,
            next_message_id = %next,
            "next step confirmed; acking this one"
        );
        self.ack().await?;
        Ok(receipt)
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
        self.settle_with(outcome).await
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

    async fn settle_with(&self, outcome: Outcome) -> Result<()> {
        match &self.settle {
            Some(settle) => settle.settle(outcome).await,
            None => Ok(()),
        }
    }
}

/// The namespace of forwarded message ids (UUIDv5): any fixed UUID does, as long as
/// every process (and every courier version) derives with the same one.
const FORWARD_NAMESPACE: uuid::Uuid = uuid::uuid!("5b1f4c8e-5d4e-4f0a-9a53-2c7e61b0d3a4");

/// The id of the message `forward` sends from message `id` to `exchange`/`routing_key`:
/// the same for every redelivery of `id`, different for each destination.
fn next_step_id(id: &str, exchange: &str, routing_key: &str) -> String {
    let name = format!("{id}\n{exchange}\n{routing_key}");
    uuid::Uuid::new_v5(&FORWARD_NAMESPACE, name.as_bytes()).to_string()
}

/// How many delay queues a retried message has been through.
const RETRIES: &str = "x-courier-retries";
/// Where a retried message was first published, restored on its deliveries.
const ORIGINAL_EXCHANGE: &str = "x-courier-exchange";
const ORIGINAL_ROUTING_KEY: &str = "x-courier-routing-key";

/// Headers the broker sets on delivery or dead-lettering: a retry copy is a new
/// publish, and RabbitMQ reads `x-death` to detect dead-letter cycles.
fn is_broker_header(name: &str) -> bool {
    name == "x-death"
        || name == "x-delivery-count"
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

impl Drop for Delivery {
    fn drop(&mut self) {
        // An unsettled delivery's claim must not hold its duplicates back forever.
        if !self.settled.load(Ordering::Acquire) {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_step_id;

    #[test]
    fn next_step_ids_are_fixed_per_message_and_destination() {
        let id = next_step_id("order-1", "", "steps.2");
        assert_eq!(id, next_step_id("order-1", "", "steps.2"));
        // Pinned (Python: `uuid5(FORWARD_NAMESPACE, "order-1\\n\\nsteps.2")`): processes on
        // different versions must derive the same id.
        assert_eq!(id, "8db29ecb-8652-5a4f-873e-c3167dda3cdd");
        assert_ne!(id, next_step_id("order-1", "", "steps.3"));
        assert_ne!(id, next_step_id("order-1", "steps", ".2"));
        assert_ne!(id, next_step_id("order-2", "", "steps.2"));
    }
}
