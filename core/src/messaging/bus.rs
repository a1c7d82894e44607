//! The bus: topology, publishing with confirms, consumers and request/reply, over either
//! transport (a RabbitMQ connection that heals itself, or the in-process broker).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::Instrument;

use super::amqp::Amqp;
use super::config::BusConfig;
use super::consumer::Consumer;
use super::dedup::DedupStore;
use super::delay;
use super::delivery::Delivery;
use super::memory::Memory;
use super::message::Outgoing;
use super::publish::{self, BatchMessage, PublishOptions, Receipt, producer_span};
use super::queue::{ExchangeKind, QueueOptions, check_name};
use super::session::{SETUP_DEADLINE, Session, Settings};
use super::stats::{BusStats, Counters};
use super::transport::{Declaration, Transport};
use crate::config::Validate;
use crate::deadline;
use crate::error::{Error, Result};
use crate::limits::{check_duration_ms, millis};
use crate::trace::TraceContext;

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
    session: Arc<Session>,
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
    /// How long to wait for the reply. Default 5 s; also the request's `expiration` and
    /// deadline header, so a request nobody picked up in time is not processed for a
    /// caller who gave up (the server's `Delivery::remaining` is the caller's budget).
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
        let transport: Box<dyn Transport> = match memory {
            Some(url) => Box::new(Memory::named(&url)),
            None => {
                let tls = Arc::new(crate::tls::client_config(config.tls.as_ref(), &[])?);
                let urls = config.urls.clone();
                Box::new(Amqp::connect(urls, &config.reconnect, tls, counters.clone()).await?)
            }
        };
        let dedup = DedupStore::open(&config.dedup).await?;
        let settings = Settings {
            max_unconfirmed: usize::try_from(config.max_unconfirmed).unwrap_or(usize::MAX),
            prefetch: config.prefetch,
            publish_deadline: Duration::from_millis(config.publish_deadline_ms),
            limits: config.limits.clone(),
        };
        let session = Session::new(transport, counters, dedup, settings);
        Ok(Bus {
            session: Arc::new(session),
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
        options.check()?;
        self.declare(Declaration::Queue {
            name: name.to_owned(),
            options: options.clone(),
        })
        .await?;
        // The delay queues the retries go through, now: a broker that refuses them
        // fails the declaration, not a nack later.
        let deadline = Instant::now() + SETUP_DEADLINE;
        let delays = options.retry_delays_ms();
        for &ms in &delays {
            delay::declare(&self.session, "", ms, deadline).await?;
        }
        self.session.set_retry_delays(name, &delays);
        Ok(())
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
        let deadline = Instant::now() + SETUP_DEADLINE;
        self.session.transport.declare(declaration, deadline).await
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
    /// The message is checked and built (its id, trace context and span) when this is
    /// called; the returned future sends it and holds only what waits for the confirm,
    /// not the arguments: every publish in flight holds it.
    ///
    /// # Cancel safety
    /// Dropping the future after the message was written does not unpublish it: the
    /// broker may still route it. Only the confirm is lost.
    pub fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: Bytes,
        options: PublishOptions,
    ) -> impl Future<Output = Result<Receipt>> + Send + use<'_> {
        let prepared = self
            .check_open()
            .and_then(|()| publish::prepare(&self.session, exchange, routing_key, body, options));
        publish::send(&self.session, prepared)
    }

    /// Publishes up to [`crate::MAX_BATCH`] messages at once and waits for all their
    /// confirms together: N messages cost about one broker round trip and one call,
    /// not N. Each message is checked, confirmed (or refused) and re-sent across a
    /// reconnect on its own, exactly as by [`Bus::publish`]; its result is at its index.
    ///
    /// # Errors
    /// [`Error::Config`] on `messages` for an empty or over-long batch,
    /// [`Error::Closed`] for a closed bus; each message's own failure is in its slot.
    ///
    /// # Cancel safety
    /// As [`Bus::publish`], for every message of the batch.
    pub async fn publish_many(&self, messages: Vec<BatchMessage>) -> Result<Vec<Result<Receipt>>> {
        self.check_open()?;
        publish::publish_many(&self.session, messages).await
    }

    /// Starts consuming `queue` with manual acknowledgement. After a reconnect the
    /// consumer subscribes again by itself.
    ///
    /// # Errors
    /// [`Error::Broker`] when the queue does not exist; [`Error::Config`] for prefetch 0.
    pub async fn consume(&self, queue: &str, options: ConsumeOptions) -> Result<Consumer> {
        self.check_open()?;
        check_name("queue", queue)?;
        let prefetch = options.prefetch.unwrap_or(self.session.prefetch);
        if prefetch == 0 {
            return Err(Error::config("prefetch", "must be 1..=65535, got 0"));
        }
        Consumer::start(self.session.clone(), queue, prefetch, options.dedup).await
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
        self.session
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
        // The server's consumer discards a request its caller has stopped waiting for.
        let (_, at) = deadline::message_deadline_after(options.timeout);
        headers.insert(deadline::MESSAGE_DEADLINE_HEADER.to_owned(), at);
        let correlation_id = uuid::Uuid::now_v7().to_string();
        let message_id = uuid::Uuid::now_v7().to_string();
        // The request's PRODUCER span lasts until the reply (or the failure): the server's
        // CONSUMER span is its child, so the request's side of the trace is exported too.
        let span = producer_span(
            &options.exchange,
            routing_key,
            &message_id,
            Some(&correlation_id),
            &trace,
        );
        if let Some(parent) = options.trace.as_ref().filter(|_| !span.is_disabled()) {
            span.record("parent_span_id", parent.span_id());
        }
        let session = &self.session;
        let outcome = async {
            let lane = session.rpc.lane(&*session.transport, deadline).await?;
            let lane = &*lane.lane;
            let (_guard, reply) = session
                .rpc
                .register(correlation_id.clone(), lane.generation());
            let message = Outgoing {
                exchange: options.exchange.clone(),
                routing_key: routing_key.to_owned(),
                body,
                headers,
                message_id,
                correlation_id: Some(correlation_id),
                reply_to: Some(lane.address().to_owned()),
                expiration_ms: Some(millis(options.timeout)),
                persistent: false,
                mandatory: true,
            };
            let confirm = session.send(&message, deadline, Some(lane));
            tokio::pin!(confirm, reply);
            let mut confirmed = false;
            loop {
                tokio::select! {
                    c = &mut confirm, if !confirmed => {
                        c?;
                        confirmed = true;
                    }
                    r = &mut reply => {
                        // A fast server's reply can overtake the request's confirm; the
                        // reply proves the broker took the request, so it counts as
                        // confirmed (`published` = `confirmed` holds for requests too).
                        if r.is_ok() && !confirmed {
                            session.counters.confirmed.inc();
                        }
                        return match r {
                            Ok(incoming) => Ok(Delivery::new(incoming, session.clone(), None)),
                            Err(_) => Err(Error::Connect {
                                operation: "request",
                                target: lane.target().to_owned(),
                                reason: "the connection was lost before the reply arrived".to_owned(),
                                source: None,
                            }),
                        };
                    }
                }
            }
        };
        let result = tokio::time::timeout_at(deadline, outcome)
            .instrument(span.clone())
            .await
            .map_err(|_| timeout())
            .and_then(|result| result);
        if let Err(e) = &result {
            span.record("error.type", e.kind().code());
        }
        result
    }

    /// Counters since the bus connected.
    pub fn stats(&self) -> BusStats {
        self.session.counters.snapshot(self.session.rpc.in_flight())
    }

    /// Closes the connection and stops reconnecting. Unacknowledged deliveries return
    /// to their queues; waiting requests fail. Exported telemetry is flushed.
    ///
    /// # Errors
    /// None in practice: a connection that is already gone is already closed.
    pub async fn close(&self) -> Result<()> {
        self.session.close().await;
        // With the `telemetry` feature, what was recorded is exported before the close
        // returns (a collector that is gone costs its export timeout).
        #[cfg(feature = "telemetry")]
        let _ = tokio::task::spawn_blocking(crate::telemetry::flush).await;
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        self.session.check_open()
    }
}
