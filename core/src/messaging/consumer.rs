//! Pulling deliveries from a queue.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::Channel;
use lapin::options::BasicCancelOptions;
use tokio::sync::Mutex;

use super::amqp;
use super::delivery::Delivery;
use crate::error::{Error, Result};

/// Deliveries from one queue, pulled with [`Consumer::next`].
///
/// Pulling rather than pushing is what lets each binding wrap a consumer in its own
/// idiom (Python iterators, Node async iterators, Kotlin Flow, Swift AsyncSequence)
/// without calling into foreign code from Rust threads.
pub struct Consumer {
    channel: Channel,
    stream: Mutex<lapin::Consumer>,
    target: String,
}

impl Consumer {
    pub(crate) fn new(channel: Channel, stream: lapin::Consumer, target: String) -> Consumer {
        Consumer {
            channel,
            stream: Mutex::new(stream),
            target,
        }
    }

    /// The next delivery; `None` once the consumer is closed or cancelled by the broker.
    ///
    /// # Errors
    /// [`Error::Timeout`] when `timeout` passes with nothing delivered;
    /// [`Error::Connect`] when the connection failed.
    ///
    /// # Cancel safety
    /// Cancel safe: a delivery is taken from the stream only when this future completes,
    /// so dropping it (or timing out) loses nothing.
    pub async fn next(&self, timeout: Option<Duration>) -> Result<Option<Delivery>> {
        let mut stream = self.stream.lock().await;
        let item = match timeout {
            Some(t) => {
                tokio::time::timeout(t, stream.next())
                    .await
                    .map_err(|_| Error::Timeout {
                        operation: "next delivery",
                        after: t,
                    })?
            }
            None => stream.next().await,
        };
        match item {
            None => Ok(None),
            Some(Ok(d)) => Ok(Some(Delivery::new(d, self.target.clone()))),
            Some(Err(e)) => Err(amqp::error("basic.consume", &self.target, e)),
        }
    }

    /// Cancels the subscription and closes its channel. Deliveries not yet acknowledged
    /// return to the queue; [`Consumer::next`] returns `None` afterwards.
    ///
    /// # Errors
    /// None in practice: an already-closed channel counts as closed.
    pub async fn close(&self) -> Result<()> {
        if !self.channel.status().connected() {
            return Ok(());
        }
        let tag = self.stream.lock().await.tag();
        if let Err(e) = self
            .channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await
        {
            tracing::debug!(error = %e, "amqp basic.cancel");
        }
        if let Err(e) = self.channel.close(200, "consumer closed".into()).await {
            tracing::debug!(error = %e, "amqp channel close");
        }
        Ok(())
    }
}
