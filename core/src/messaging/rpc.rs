//! Request/reply bookkeeping: the reply lane, and which request is waiting for which
//! correlation id.
//!
//! Entries are removed on every way a request can end (reply, timeout, cancellation
//! via the guard's `Drop`, a lost connection), so `rpc_in_flight` returns to zero and a
//! late reply finds nothing to wake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::message::Incoming;
use super::transport::{Replies, ReplyLane, Transport};
use crate::error::Result;
use crate::runtime::{self, Task};

/// A bus's side of request/reply: the reply lane, opened on the first request and
/// again after a reconnect, and the requests waiting on it.
#[derive(Default)]
pub(crate) struct Rpc {
    pending: Arc<Pending>,
    lane: tokio::sync::Mutex<Option<Arc<Lane>>>,
}

/// A reply lane and the task handing its replies to the requests waiting for them.
pub(crate) struct Lane {
    pub(crate) lane: Box<dyn ReplyLane>,
    _dispatcher: Task<()>,
}

impl Rpc {
    /// The current reply lane, (re)opened when the last one's connection is gone.
    pub(crate) async fn lane(
        &self,
        transport: &dyn Transport,
        deadline: Instant,
    ) -> Result<Arc<Lane>> {
        let mut slot = self.lane.lock().await;
        if let Some(lane) = slot.as_ref().filter(|l| l.lane.is_current()) {
            return Ok(lane.clone());
        }
        let Replies { lane, mut replies } = transport.reply_lane(deadline).await?;
        let pending = self.pending.clone();
        let generation = lane.generation();
        let dispatcher = runtime::spawn(async move {
            while let Some(reply) = replies.next().await {
                pending.dispatch(reply);
            }
            // The lane is gone, and with it every reply it could still receive.
            pending.fail_generation(generation);
        })?;
        let lane = Arc::new(Lane {
            lane,
            _dispatcher: dispatcher,
        });
        *slot = Some(lane.clone());
        Ok(lane)
    }

    /// Registers a request sent on a lane of `generation`; see [`Pending::register`].
    pub(crate) fn register(
        &self,
        correlation_id: String,
        generation: u64,
    ) -> (Guard, oneshot::Receiver<Incoming>) {
        self.pending.register(correlation_id, generation)
    }

    /// Requests waiting for replies.
    pub(crate) fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Drops the lane and fails every waiting request.
    pub(crate) async fn close(&self) {
        self.lane.lock().await.take();
        self.pending.fail_generation(u64::MAX);
    }
}

/// Requests awaiting replies, by correlation id.
#[derive(Default)]
struct Pending {
    waiting: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    /// The connection generation the request went out on; a reply can only come back
    /// on the same connection (direct reply-to is bound to the channel).
    generation: u64,
    reply: oneshot::Sender<Incoming>,
}

/// Removes its entry when the request ends, however it ends.
pub(crate) struct Guard {
    pending: Arc<Pending>,
    correlation_id: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.correlation_id);
        crate::telemetry::metrics::rpc_in_flight(-1);
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a request; the receiver resolves with its reply, or errors when the
    /// connection it went out on is lost.
    fn register(
        self: &Arc<Self>,
        correlation_id: String,
        generation: u64,
    ) -> (Guard, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(
            correlation_id.clone(),
            Entry {
                generation,
                reply: tx,
            },
        );
        crate::telemetry::metrics::rpc_in_flight(1);
        let guard = Guard {
            pending: Arc::clone(self),
            correlation_id,
        };
        (guard, rx)
    }

    /// Hands a reply to its waiting request; a reply nobody waits for (it timed out) is
    /// dropped.
    fn dispatch(&self, reply: Incoming) {
        let Some(cid) = reply.correlation_id.as_deref() else {
            tracing::debug!("reply without a correlation id dropped");
            return;
        };
        match self.lock().remove(cid) {
            Some(entry) => {
                // The requester may have gone between the lookup and the send.
                let _ = entry.reply.send(reply);
            }
            None => tracing::debug!(correlation_id = cid, "late or unknown reply dropped"),
        }
    }

    /// Fails every request sent on connection `generation` or earlier: their replies
    /// can no longer arrive.
    fn fail_generation(&self, generation: u64) {
        self.lock().retain(|_, e| e.generation > generation);
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}
