//! Consuming a queue over AMQP: a subscription that subscribes again after every
//! reconnect, and settling its deliveries only on the connection they came on.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    BasicRejectOptions,
};
use lapin::types::FieldTable;
use lapin::{Acker, Channel};
use tokio::time::Instant;

use super::connection::close_bounded;
use super::convert;
use super::link::Link;
use crate::error::{Error, Result};
use crate::messaging::message::{Incoming, Outcome, Settle};
use crate::messaging::transport::Subscription;
use crate::runtime;

/// How long a running consumer waits for a reconnecting broker before reporting it (its
/// first subscription is bounded by the caller's deadline, like a declaration).
const RESUBSCRIBE_DEADLINE: Duration = Duration::from_secs(3600);

/// How long an ack, nack or reject may take to reach the socket. Nothing waits for the
/// broker's answer (settlements have none), so only a stalled connection gets near it.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A queue's deliveries across reconnects.
pub(crate) struct Consuming {
    link: Arc<Link>,
    queue: String,
    prefetch: u16,
    current: Option<Box<OnChannel>>,
    cancelled: bool,
}

/// A subscription on one channel of one connection generation.
struct OnChannel {
    generation: u64,
    channel: Channel,
    stream: Option<lapin::Consumer>,
    /// [`OnChannel::close`] ran.
    closed: bool,
}

impl OnChannel {
    /// Cancels the subscription and closes the channel, in order, on a task of its own,
    /// once; `None` when the channel is gone already (closing it returned the unsettled
    /// deliveries) or the close was started before.
    ///
    /// Why one task, in that order, and lapin's consumer dropped last: dropped while
    /// active, that consumer sends its own basic.cancel from lapin's internal task.
    /// Racing the close, it could reach the broker after channel.close, and RabbitMQ
    /// answers a frame on a closed channel by closing the whole connection
    /// ("basic.cancel caused a connection exception channel_error: expected
    /// 'channel.open'": every other consumer and publish on it failed, the parity suite
    /// caught it twice). After cancel-ok the consumer is no longer active and sends
    /// nothing. Closing the channel returns its unacknowledged deliveries to the queue;
    /// an abandoned open channel would keep them (and the prefetch window) forever.
    fn close(&mut self) -> Option<runtime::Task<()>> {
        let stream = self.stream.take();
        if self.closed || !self.channel.status().connected() {
            self.closed = true;
            return None;
        }
        self.closed = true;
        let channel = self.channel.clone();
        runtime::spawn(async move {
            if let Some(consumer) = &stream {
                let cancel = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default());
                close_bounded(cancel, "consumer").await;
            }
            close_bounded(channel.close(200, "consumer closed".into()), "channel").await;
            drop(stream);
        })
        .ok()
        // Runs to the end even if nobody waits for it.
        .map(runtime::Task::detach)
    }
}

impl Drop for OnChannel {
    fn drop(&mut self) {
        drop(self.close());
    }
}

impl Consuming {
    /// Subscribes once, waiting for a reconnecting broker until `deadline`.
    pub(crate) async fn start(
        link: Arc<Link>,
        queue: &str,
        prefetch: u16,
        deadline: Instant,
    ) -> Result<Consuming> {
        let current = on_channel(&link, queue, prefetch, deadline).await?;
        Ok(Consuming {
            link,
            queue: queue.to_owned(),
            prefetch,
            current: Some(Box::new(current)),
            cancelled: false,
        })
    }

    async fn next_delivery(&mut self) -> Result<Option<Incoming>> {
        loop {
            if self.cancelled {
                return Ok(None);
            }
            let Some(current) = self.current.as_mut() else {
                let deadline = Instant::now() + RESUBSCRIBE_DEADLINE;
                match on_channel(&self.link, &self.queue, self.prefetch, deadline).await {
                    Ok(s) => self.current = Some(Box::new(s)),
                    Err(Error::Closed { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                }
                continue;
            };
            let generation = current.generation;
            let item = match current.stream.as_mut() {
                Some(stream) => stream.next().await,
                None => None,
            };
            match item {
                Some(Ok(d)) => {
                    let link = self.link.clone();
                    return Ok(Some(convert::incoming(d, |acker| {
                        Some(Box::new(Tag {
                            acker,
                            generation,
                            link,
                        }))
                    })));
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, queue = %self.queue, "consumer stream failed");
                    current.stream = None;
                }
                None => current.stream = None,
            }
            if self.link.generation() == Some(generation) && current.channel.status().connected() {
                // The connection is fine and the channel open: the broker cancelled
                // the subscription (its queue was deleted).
                return Ok(None);
            }
            // The connection (or channel) went away: wait for the next one.
            let deadline = Instant::now() + RESUBSCRIBE_DEADLINE;
            self.current = None;
            match self
                .link
                .newer_than(generation, deadline, "resubscribe")
                .await
            {
                Ok(_) => {}
                Err(Error::Closed { .. }) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Subscription for Consuming {
    fn next(&mut self) -> BoxFuture<'_, Result<Option<Incoming>>> {
        Box::pin(self.next_delivery())
    }

    fn cancel(&mut self) -> BoxFuture<'static, ()> {
        self.cancelled = true;
        let closing = self.current.take().and_then(|mut current| current.close());
        Box::pin(async move {
            if let Some(closing) = closing {
                let _ = closing.await;
            }
        })
    }
}

/// Opens a channel, sets its prefetch and starts consuming with manual acks.
///
/// A new channel can already be closing when it is handed out: lapin reuses the id of a
/// channel whose close the broker has not confirmed yet (a consumer closed just before
/// this one starts). Such a channel is replaced by another, twice at most.
async fn on_channel(
    link: &Link,
    queue: &str,
    prefetch: u16,
    deadline: Instant,
) -> Result<OnChannel> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match subscribe(link, queue, prefetch, deadline).await {
            Err(e) if attempts < 3 && closing_channel(&e) => {
                tracing::debug!(error = %e, queue, "new channel was closing; opening another");
            }
            outcome => return outcome,
        }
    }
}

/// Whether `e` is lapin refusing an operation on a channel that is not open.
fn closing_channel(e: &Error) -> bool {
    let Error::Connect {
        source: Some(source),
        ..
    } = e
    else {
        return false;
    };
    source
        .downcast_ref::<lapin::Error>()
        .is_some_and(|e| matches!(e.kind(), lapin::ErrorKind::InvalidChannelState(..)))
}

async fn subscribe(
    link: &Link,
    queue: &str,
    prefetch: u16,
    deadline: Instant,
) -> Result<OnChannel> {
    let (live, channel) = link.channel(deadline).await?;
    let mut subscription = OnChannel {
        generation: live.generation,
        channel,
        stream: None,
        closed: false,
    };
    let target = &live.target;
    let channel = &subscription.channel;
    let starting = async {
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| convert::error("basic.qos", target, e))?;
        channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| convert::error("basic.consume", target, e))
    };
    let stream = link.on(&live, "basic.consume", pin!(starting)).await?;
    subscription.stream = Some(stream);
    Ok(subscription)
}

/// A delivery tag on the connection of `generation`: after a reconnect it means nothing
/// (or another message), so it is refused, never sent.
struct Tag {
    acker: Acker,
    generation: u64,
    link: Arc<Link>,
}

impl Tag {
    async fn send(&self, outcome: Outcome) -> Result<()> {
        let operation = match outcome {
            Outcome::Ack => "basic.ack",
            Outcome::Nack { .. } => "basic.nack",
            Outcome::Reject => "basic.reject",
        };
        if self.link.generation() != Some(self.generation) || self.acker.poisoned() {
            return Err(lost_channel(operation));
        }
        let acker = &self.acker;
        let settle = async {
            match outcome {
                Outcome::Ack => acker.ack(BasicAckOptions::default()).await,
                Outcome::Nack { requeue } => {
                    acker
                        .nack(BasicNackOptions {
                            requeue,
                            ..Default::default()
                        })
                        .await
                }
                Outcome::Reject => acker.reject(BasicRejectOptions { requeue: false }).await,
            }
        };
        // lapin completes a settlement once its frame is written; a connection that
        // dies with the frame queued must not leave the caller waiting.
        let done = tokio::select! {
            done = tokio::time::timeout(SETTLE_TIMEOUT, settle) => done.map_err(|_| Error::Timeout {
                operation,
                after: SETTLE_TIMEOUT,
            })?,
            () = self.link.left(self.generation) => return Err(lost_channel(operation)),
        };
        match done {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Closed {
                what: "delivery (already settled)",
            }),
            Err(e) => Err(convert::error(operation, "broker", e)),
        }
    }
}

impl Settle for Tag {
    fn settle(&self, outcome: Outcome) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.send(outcome))
    }
}

/// The delivery tag belongs to a lost connection or channel: sending it on another
/// could settle a different message, and the broker redelivers this one.
fn lost_channel(operation: &'static str) -> Error {
    Error::Connect {
        operation,
        target: "broker".to_owned(),
        reason:
            "the delivery came on a connection or channel that was lost; the broker redelivers it"
                .to_owned(),
        source: None,
    }
}
