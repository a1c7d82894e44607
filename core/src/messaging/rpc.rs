//! Request/reply bookkeeping: which request is waiting for which correlation id.
//!
//! Entries are removed on every way a request can end (reply, timeout, cancellation
//! via the guard's `Drop`, a lost connection), so `rpc_in_flight` returns to zero and a
//! late reply finds nothing to wake.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::message::Incoming;

/// Requests awaiting replies, by correlation id.
#[derive(Default)]
pub(crate) struct Pending {
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
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a request; the receiver resolves with its reply, or errors when the
    /// connection it went out on is lost.
    pub(crate) fn register(
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
        let guard = Guard {
            pending: Arc::clone(self),
            correlation_id,
        };
        (guard, rx)
    }

    /// Hands a reply to its waiting request; a reply nobody waits for (it timed out) is
    /// dropped.
    pub(crate) fn dispatch(&self, reply: Incoming) {
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
    pub(crate) fn fail_generation(&self, generation: u64) {
        self.lock().retain(|_, e| e.generation > generation);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}
