//! The AMQP connection that heals itself.
//!
//! lapin's own recovery fails publishes that were awaiting a confirm, cannot redeclare
//! server-named queues and knows one URI, so courier keeps the connection itself: a
//! supervisor task notices a lost connection, reconnects to the next broker in `urls`
//! with jittered exponential backoff, redeclares the recorded topology, and publishes
//! the new connection under a higher *generation*. Publishers and consumers hold no
//! channel across a reconnect; they ask the link for the live connection and compare
//! generations to tell "my channel broke" from "the broker refused me".

use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::{RwLock, watch};
use tokio::time::Instant;

use super::connection::{self, close_bounded};
use super::convert;
use super::publish::{confirm_channel, publish_on};
use super::topology::apply;
use crate::error::{Error, Result};
use crate::messaging::config::ReconnectConfig;
use crate::messaging::message::{Confirm, Outgoing};
use crate::messaging::stats::Counters;
use crate::messaging::transport::Declaration;
use crate::resilience::Backoff;
use crate::runtime::{self, Task};
use crate::urls::redact_url;

/// One live connection and the publisher channel opened on it.
pub(crate) struct Live {
    pub connection: Connection,
    /// Increases with every reconnect; deliveries and RPC entries remember theirs.
    pub generation: u64,
    /// The broker URL, password redacted: the only form that may reach a message.
    pub target: String,
    url_index: usize,
    /// The confirm-mode channel for publishes, replaced when the broker closes it (a
    /// publish to a missing exchange closes the channel with 404) or when it has
    /// answered nothing but nacks for [`STUCK_AFTER`].
    publisher: RwLock<Channel>,
    /// The publisher channel's id and when its current run of nacks began; `None`
    /// after an ack.
    nacking: Mutex<Option<(u16, Instant)>>,
}

/// How long a publisher channel may answer every publish with a nack before it is
/// replaced. With RabbitMQ 3.10, a publisher that reconnects to a surviving node while a
/// quorum queue is still electing its new leader can get a channel that nacks every
/// publish to that queue for as long as it lives (docs/cluster.md has the numbers); a new
/// channel is acked. A healthy election ends within a few seconds, so a channel that
/// has nacked everything for this long is replaced; in-flight publishes finish on the
/// old one, which lapin closes when its last user drops it.
const STUCK_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone)]
enum State {
    Up(Arc<Live>),
    Down,
    Closed,
}

pub(crate) struct Link {
    urls: Vec<String>,
    /// For `amqps://` URLs; the same config every reconnect.
    tls: Arc<rustls::ClientConfig>,
    backoff: Backoff,
    state: watch::Sender<State>,
    topology: Mutex<Vec<Declaration>>,
    counters: Arc<Counters>,
    supervisor: Mutex<Option<Task<()>>>,
}

impl Link {
    /// Connects to the first broker in `urls` that accepts, then keeps the connection.
    pub(crate) async fn connect(
        urls: Vec<String>,
        reconnect: &ReconnectConfig,
        tls: Arc<rustls::ClientConfig>,
        counters: Arc<Counters>,
    ) -> Result<Arc<Link>> {
        let mut last = None;
        let mut first = None;
        for index in 0..urls.len() {
            match bounded(open(&urls, &tls, index, 1, &[])).await {
                Ok(live) => {
                    first = Some(live);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(live) = first else {
            return Err(
                last.unwrap_or_else(|| Error::config("urls", "must list at least one broker URL"))
            );
        };
        let link = Arc::new(Link {
            urls,
            tls,
            backoff: Backoff::new(
                Duration::from_millis(reconnect.base_delay_ms),
                Duration::from_millis(reconnect.max_delay_ms),
            ),
            state: watch::Sender::new(State::Up(Arc::new(live))),
            topology: Mutex::new(Vec::new()),
            counters,
            supervisor: Mutex::new(None),
        });
        let task = runtime::spawn(supervise(Arc::downgrade(&link)))?;
        *link
            .supervisor
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
        Ok(link)
    }

    /// The live connection, waiting (up to `deadline`) while the link reconnects.
    pub(crate) async fn live(
        &self,
        deadline: Instant,
        operation: &'static str,
    ) -> Result<Arc<Live>> {
        self.newer_than(0, deadline, operation).await
    }

    /// A live connection of a later generation than `generation`: what a publisher
    /// whose channel broke waits for before re-sending.
    pub(crate) async fn newer_than(
        &self,
        generation: u64,
        deadline: Instant,
        operation: &'static str,
    ) -> Result<Arc<Live>> {
        let mut rx = self.state.subscribe();
        let wait = rx.wait_for(|s| match s {
            State::Up(live) => live.generation > generation,
            State::Closed => true,
            State::Down => false,
        });
        let started = Instant::now();
        let state = match tokio::time::timeout_at(deadline, wait).await {
            Ok(Ok(state)) => state.clone(),
            Ok(Err(_)) => State::Closed,
            Err(_) => {
                return Err(Error::Timeout {
                    operation,
                    after: started.elapsed(),
                });
            }
        };
        match state {
            State::Up(live) => Ok(live),
            State::Closed | State::Down => Err(Error::Closed { what: "bus" }),
        }
    }

    /// The generation of the connection in use now, `None` while reconnecting.
    pub(crate) fn generation(&self) -> Option<u64> {
        match &*self.state.borrow() {
            State::Up(live) => Some(live.generation),
            State::Down | State::Closed => None,
        }
    }

    /// Returns once the connection of `generation` is no longer the live one (lost,
    /// replaced or closed).
    pub(crate) async fn left(&self, generation: u64) {
        let mut rx = self.state.subscribe();
        // The sender lives in `self`: the wait cannot fail while we hold it.
        let _ = rx
            .wait_for(|s| !matches!(s, State::Up(live) if live.generation == generation))
            .await;
    }

    /// Runs `op` on `live`'s connection, giving up once that connection is no longer the
    /// live one: lapin leaves an operation pending forever when the broker closes the
    /// connection cleanly, as `rabbitmqctl close_connection` does (amqp-rs/lapin#409).
    ///
    /// `op` comes pinned by the caller (`pin!(...)`): an `async fn` keeps a by-value
    /// argument in its state beside the `select!` that moves it, so a publish's
    /// operation (1,272 bytes) would be held twice per publish in flight.
    pub(crate) async fn on<T>(
        &self,
        live: &Live,
        operation: &'static str,
        op: Pin<&mut impl Future<Output = Result<T>>>,
    ) -> Result<T> {
        tokio::select! {
            biased;
            result = op => result,
            () = self.left(live.generation) => Err(Error::Connect {
                operation,
                target: live.target.clone(),
                reason: "the connection was lost before the broker answered".to_owned(),
                source: None,
            }),
        }
    }

    /// Declares on the live connection and records the declaration for replay.
    pub(crate) async fn declare(&self, declaration: Declaration, deadline: Instant) -> Result<()> {
        let live = self.live(deadline, "declare").await?;
        let declaring = apply(&live, std::slice::from_ref(&declaration), true);
        self.on(&live, "declare", pin!(declaring)).await?;
        let mut topology = self.topology.lock().unwrap_or_else(PoisonError::into_inner);
        if !topology.contains(&declaration) {
            topology.push(declaration);
        }
        Ok(())
    }

    /// Publishes and waits for the confirm; when the connection is lost before the
    /// confirm, waits for the next connection and sends the message again with the same
    /// message id (the consumer's dedup absorbs a copy the broker did keep).
    pub(crate) async fn publish(&self, message: &Outgoing, deadline: Instant) -> Result<Confirm> {
        let mut live = self.live(deadline, "publish").await?;
        let mut sent = false;
        let mut same_connection = 0;
        loop {
            if sent {
                self.counters.resent.inc();
            }
            sent = true;
            // In a block of its own: the pinned operation borrows `live`, which the
            // retry below may replace.
            let result = {
                let publishing = pin!(async {
                    let channel = live.publisher().await?;
                    let confirm = publish_on(&channel, message, &live.target).await?;
                    live.answered(&channel, &confirm).await;
                    Ok(confirm)
                });
                let outcome = self.on(&live, "basic.publish", publishing);
                tokio::time::timeout_at(deadline, outcome).await
            }
            .map_err(|_| Error::Timeout {
                operation: "publish confirm",
                after: Duration::ZERO,
            })?;
            match result {
                Err(e) if is_transport(&e) && self.is_open() => {
                    tracing::debug!(error = %e, message_id = %message.message_id,
                        "connection lost before the confirm; re-sending");
                    // The error can arrive before the connection's status says so: try
                    // the same connection (a new channel) a few times before waiting for
                    // the next one.
                    if live.connection.status().connected() && same_connection < 3 {
                        same_connection += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    } else {
                        live = self
                            .newer_than(live.generation, deadline, "publish")
                            .await?;
                    }
                }
                other => return other,
            }
        }
    }
}

/// A failure of the connection rather than a refusal of the message: I/O errors,
/// closed channels or connections, and the broker closing the connection (320
/// CONNECTION_FORCED, which `rabbitmqctl close_connection` and a shutdown send).
fn is_transport(e: &Error) -> bool {
    matches!(
        e,
        Error::Connect { .. }
            | Error::Broker {
                reply_code: 320,
                ..
            }
    )
}

impl Link {
    /// Opens a channel on the live connection.
    pub(crate) async fn channel(&self, deadline: Instant) -> Result<(Arc<Live>, Channel)> {
        let live = self.live(deadline, "channel.open").await?;
        let opening = async {
            live.connection
                .create_channel()
                .await
                .map_err(|e| convert::error("channel.open", &live.target, e))
        };
        let channel = self.on(&live, "channel.open", pin!(opening)).await?;
        Ok((live, channel))
    }

    fn is_open(&self) -> bool {
        !matches!(*self.state.borrow(), State::Closed)
    }

    /// Stops reconnecting and closes the connection.
    pub(crate) async fn close(&self) {
        let previous = self.state.send_replace(State::Closed);
        drop(
            self.supervisor
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        if let State::Up(live) = previous {
            close_bounded(
                live.connection.close(200, "closed by courier".into()),
                "connection",
            )
            .await;
        }
    }
}

impl Live {
    /// The publishing channel, reopened if the broker closed it.
    async fn publisher(&self) -> Result<Channel> {
        {
            let current = self.publisher.read().await;
            if current.status().connected() {
                return Ok(current.clone());
            }
        }
        let mut slot = self.publisher.write().await;
        if !slot.status().connected() {
            *slot = confirm_channel(&self.connection, &self.target).await?;
        }
        Ok(slot.clone())
    }

    /// Notes the broker's answer on `channel` and replaces the publisher channel once it
    /// has nacked everything for [`STUCK_AFTER`].
    async fn answered(&self, channel: &Channel, confirm: &Confirm) {
        let stuck = {
            let mut nacking = self.nacking.lock().unwrap_or_else(PoisonError::into_inner);
            match (confirm, *nacking) {
                (Confirm::Nack, Some((id, since))) if id == channel.id() => {
                    since.elapsed() >= STUCK_AFTER
                }
                (Confirm::Nack, _) => {
                    *nacking = Some((channel.id(), Instant::now()));
                    false
                }
                _ => {
                    *nacking = None;
                    false
                }
            }
        };
        if !stuck {
            return;
        }
        let mut slot = self.publisher.write().await;
        // Another publish may have replaced it already.
        if slot.id() != channel.id() {
            return;
        }
        match confirm_channel(&self.connection, &self.target).await {
            Ok(fresh) => {
                tracing::warn!(broker = %self.target, after_ms = STUCK_AFTER.as_millis() as u64,
                    "the publisher channel answered only nacks; publishing on a new channel");
                *slot = fresh;
                *self.nacking.lock().unwrap_or_else(PoisonError::into_inner) = None;
            }
            // The nack stands and is re-published; the next one tries again.
            Err(e) => tracing::warn!(error = %e, "could not replace the nacking publisher channel"),
        }
    }
}

/// How long one connection attempt (TCP, handshake, publisher channel, topology
/// replay) may take before the next URL is tried: a broker that accepts the socket but
/// never answers must not stall recovery.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Watches the live connection; when it is lost, reconnects with backoff over the
/// URLs, starting with the one after the broker that failed.
async fn supervise(link: Weak<Link>) {
    loop {
        let Some(live) = current(&link) else { return };
        lost(&live).await;
        let Some(strong) = link.upgrade() else { return };
        if !strong.is_open() {
            return;
        }
        tracing::warn!(broker = %live.target, "amqp connection lost; reconnecting");
        strong.state.send_replace(State::Down);
        drop(strong);
        let mut attempt = 0u32;
        let mut index = live.url_index;
        loop {
            let Some(strong) = link.upgrade() else { return };
            if !strong.is_open() {
                return;
            }
            index = (index + 1) % strong.urls.len();
            let topology = strong
                .topology
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let next_generation = live.generation + 1;
            let opened = bounded(open(
                &strong.urls,
                &strong.tls,
                index,
                next_generation,
                &topology,
            ))
            .await;
            match opened {
                Ok(next) => {
                    tracing::info!(broker = %next.target, generation = next.generation, "amqp reconnected");
                    strong.counters.reconnects.inc();
                    let next = State::Up(Arc::new(next));
                    // close() may have run meanwhile: never resurrect a closed link.
                    let replaced = strong.state.send_if_modified(|s| {
                        if matches!(s, State::Closed) {
                            false
                        } else {
                            *s = next.clone();
                            true
                        }
                    });
                    if !replaced {
                        if let State::Up(orphan) = next {
                            close_bounded(
                                orphan.connection.close(200, "closed".into()),
                                "connection",
                            )
                            .await;
                        }
                        return;
                    }
                    break;
                }
                Err(e) => {
                    let delay = strong.backoff.delay(attempt, &mut rand::rng());
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "amqp reconnect failed");
                    attempt = attempt.saturating_add(1);
                    drop(strong);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

fn current(link: &Weak<Link>) -> Option<Arc<Live>> {
    let link = link.upgrade()?;
    let state = link.state.borrow().clone();
    match state {
        State::Up(live) => Some(live),
        State::Down | State::Closed => None,
    }
}

/// Returns once `live`'s connection is gone. Channel-level errors (a 404 on one
/// channel) also arrive as events, so each event is checked against the connection's
/// status; the periodic check covers a connection that fails without an event.
async fn lost(live: &Live) {
    let mut events = live.connection.events_listener();
    loop {
        if !live.connection.status().connected() {
            return;
        }
        if let Ok(None) = tokio::time::timeout(Duration::from_secs(1), events.next()).await {
            // The connection dropped its event sender: it is gone.
            return;
        }
    }
}

/// An [`open`] given up after [`OPEN_TIMEOUT`].
async fn bounded(opening: impl Future<Output = Result<Live>>) -> Result<Live> {
    tokio::time::timeout(OPEN_TIMEOUT, opening)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Timeout {
                operation: "amqp connect",
                after: OPEN_TIMEOUT,
            })
        })
}

/// Connects to `urls[index]`, opens the publisher channel and replays `topology`.
async fn open(
    urls: &[String],
    tls: &Arc<rustls::ClientConfig>,
    index: usize,
    generation: u64,
    topology: &[Declaration],
) -> Result<Live> {
    let url = &urls[index];
    let target = redact_url(url);
    let props = ConnectionProperties::default().with_connection_name("courier".into());
    let connection = connection::connect(url, tls, props).await.map_err(|e| {
        tracing::warn!(broker = %target, error = %e, "amqp connect failed");
        let hint = connection::tls_refusal_hint(url, &e);
        let mut error = convert::error("connect", &target, e);
        if let (Some(hint), Error::Connect { reason, .. }) = (hint, &mut error) {
            reason.push_str(hint);
        }
        error
    })?;
    let publisher = confirm_channel(&connection, &target).await?;
    let live = Live {
        connection,
        generation,
        target,
        url_index: index,
        publisher: RwLock::new(publisher),
        nacking: Mutex::new(None),
    };
    apply(&live, topology, false).await?;
    Ok(live)
}
