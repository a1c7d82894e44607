//! The in-process dedup store: bounded by a capacity and a TTL, O(1) per operation.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hashlink::LinkedHashMap;
use tokio::sync::Notify;
// tokio's clock rather than std's, so tests can expire entries with a paused clock.
use tokio::time::Instant;

use super::Claim;

/// `(queue, message id)` reduced to 128 bits: ids are remembered per queue, so a message
/// fanned out to two queues is processed once by each.
///
/// The store keeps this instead of the two strings: an entry costs about 80 bytes instead
/// of about 180 for a 20-character id (measured from Python, bench/peers/memory.py), and
/// a claim allocates nothing. Two ids share a key with probability 2^-128 per pair (2^-89
/// for a window of a million ids); the hash functions are SipHash with keys drawn at
/// random per store, so the ids a publisher chooses cannot be made to collide.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key(u128);

/// The store's two randomly keyed hash functions, one per half of a [`Key`].
struct KeyHash(RandomState, RandomState);

impl KeyHash {
    fn new() -> KeyHash {
        KeyHash(RandomState::new(), RandomState::new())
    }

    fn key(&self, queue: &str, id: &str) -> Key {
        // A tuple of strs hashes each with its end marked, so ("ab", "c") != ("a", "bc").
        let high = u128::from(self.0.hash_one((queue, id)));
        let low = u128::from(self.1.hash_one((queue, id)));
        Key(high << 64 | low)
    }
}

/// The maps' hasher: a [`Key`] is already a keyed hash, so its low 64 bits are used as
/// they are rather than hashed a second time.
#[derive(Default)]
struct KeyBits(u64);

impl Hasher for KeyBits {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, bits: u128) {
        // Truncation on purpose: the low half of a keyed 128-bit hash.
        self.0 = bits as u64;
    }

    /// Only [`Key`]'s derived `Hash` (one `write_u128`) reaches this hasher; anything else
    /// is folded in FNV-1a style so the hasher stays correct, if slower.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type Keyed = BuildHasherDefault<KeyBits>;

/// Processed ids and in-progress claims of one process.
///
/// Processed ids live in a `hashlink::LinkedHashMap`: a hash map threaded on a linked list
/// in insertion order, which gives O(1) lookup, O(1) "move to the back" on re-insert and
/// O(1) removal of the oldest entry, exactly what a capacity bound plus a TTL need. A
/// well-kept crate (the map behind `lru` and `rusqlite`'s statement cache) is preferred
/// over a hand-written linked structure, whose unsafe pointer juggling is easy to get
/// wrong and this crate forbids anyway.
pub(crate) struct MemoryStore {
    state: Mutex<State>,
    hash: KeyHash,
    capacity: usize,
    ttl: Duration,
}

struct State {
    /// Processed ids with when they expire, oldest completion at the front. Every entry
    /// gets the same TTL from a monotonic clock, so expiry times ascend front to back and
    /// purging expired entries only ever looks at the front. `None`: the TTL is too long
    /// for the clock to represent, so the entry never expires.
    processed: LinkedHashMap<Key, Option<Instant>, Keyed>,
    /// Claims being processed, each with the `Notify` its waiters sleep on. Kept apart
    /// from `processed` so they neither count toward the capacity nor get evicted: losing
    /// a claim would let a duplicate through while the first copy is still running.
    in_progress: HashMap<Key, Arc<Notify>, Keyed>,
}

impl MemoryStore {
    pub(crate) fn new(capacity: usize, ttl_ms: u64) -> MemoryStore {
        MemoryStore {
            state: Mutex::new(State {
                processed: LinkedHashMap::default(),
                in_progress: HashMap::default(),
            }),
            hash: KeyHash::new(),
            capacity,
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    /// Locks the state with expired entries already purged, so a lookup never sees one.
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters here (each operation is a few map calls), so a poisoned lock is used as is.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while let Some((_, Some(expires))) = state.processed.front()
            && *expires <= now
        {
            state.processed.pop_front();
        }
        state
    }

    pub(crate) fn claim(&self, queue: &str, id: &str) -> Claim {
        let key = self.hash.key(queue, id);
        let mut state = self.state();
        if state.processed.contains_key(&key) {
            return Claim::Processed;
        }
        match state.in_progress.entry(key) {
            Entry::Occupied(_) => Claim::InProgress,
            Entry::Vacant(slot) => {
                slot.insert(Arc::new(Notify::new()));
                Claim::Fresh
            }
        }
    }

    pub(crate) async fn wait_settled(&self, queue: &str, id: &str) {
        let key = self.hash.key(queue, id);
        let Some(notify) = self.state().in_progress.get(&key).cloned() else {
            return;
        };
        let mut notified = pin!(notify.notified());
        // Registered before the second look: a settle between the first look and this
        // point is seen by the look below, one after it wakes the registered waiter.
        notified.as_mut().enable();
        let still_claimed = self
            .state()
            .in_progress
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, &notify));
        if still_claimed {
            notified.await;
        }
    }

    pub(crate) fn complete(&self, queue: &str, id: &str) {
        let key = self.hash.key(queue, id);
        let mut state = self.state();
        let claim = state.in_progress.remove(&key);
        // `insert` moves an id completed again to the back, with its new expiry.
        state
            .processed
            .insert(key, Instant::now().checked_add(self.ttl));
        while state.processed.len() > self.capacity {
            state.processed.pop_front();
        }
        drop(state);
        if let Some(notify) = claim {
            notify.notify_waiters();
        }
    }

    pub(crate) fn release(&self, queue: &str, id: &str) {
        let claim = self.state().in_progress.remove(&self.hash.key(queue, id));
        if let Some(notify) = claim {
            notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use tokio::time::timeout;

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn claim_then_complete_then_processed() {
        let store = MemoryStore::new(10, DAY_MS);
        assert_eq!(store.claim("q", "m1"), Claim::Fresh);
        assert_eq!(store.claim("q", "m1"), Claim::InProgress);
        store.complete("q", "m1");
        assert_eq!(store.claim("q", "m1"), Claim::Processed);
        assert_eq!(store.claim("q", "m1"), Claim::Processed);
    }

    #[test]
    fn ids_are_kept_per_queue() {
        let store = MemoryStore::new(10, DAY_MS);
        assert_eq!(store.claim("a", "m1"), Claim::Fresh);
        assert_eq!(
            store.claim("b", "m1"),
            Claim::Fresh,
            "a fanned-out copy on another queue is processed there too"
        );
        store.complete("a", "m1");
        assert_eq!(store.claim("a", "m1"), Claim::Processed);
        assert_eq!(store.claim("b", "m1"), Claim::InProgress);
    }

    #[test]
    fn the_queue_and_the_id_do_not_run_together() {
        let store = MemoryStore::new(10, DAY_MS);
        assert_eq!(store.claim("ab", "c"), Claim::Fresh);
        store.complete("ab", "c");
        assert_eq!(store.claim("a", "bc"), Claim::Fresh);
        assert_eq!(store.claim("abc", ""), Claim::Fresh);
        assert_eq!(store.claim("ab", "c"), Claim::Processed);
    }

    #[test]
    fn release_lets_the_next_copy_claim_fresh() {
        let store = MemoryStore::new(10, DAY_MS);
        assert_eq!(store.claim("q", "m1"), Claim::Fresh);
        assert_eq!(store.claim("q", "m1"), Claim::InProgress);
        store.release("q", "m1");
        assert_eq!(store.claim("q", "m1"), Claim::Fresh);
    }

    #[tokio::test]
    async fn wait_settled_wakes_on_complete() {
        let store = Arc::new(MemoryStore::new(10, DAY_MS));
        assert_eq!(store.claim("q", "m1"), Claim::Fresh);
        assert_eq!(store.claim("q", "m1"), Claim::InProgress);
        let waiter = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store.wait_settled("q", "m1").await;
                store.claim("q", "m1")
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "must wait while the claim is held");
        store.complete("q", "m1");
        let after = timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(after.unwrap().unwrap(), Claim::Processed);
    }

    #[tokio::test]
    async fn wait_settled_wakes_on_release_and_the_waiter_claims_fresh() {
        let store = Arc::new(MemoryStore::new(10, DAY_MS));
        assert_eq!(store.claim("q", "m1"), Claim::Fresh);
        let waiter = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store.wait_settled("q", "m1").await;
                store.claim("q", "m1")
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "must wait while the claim is held");
        store.release("q", "m1");
        let after = timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(after.unwrap().unwrap(), Claim::Fresh);
    }

    #[tokio::test]
    async fn wait_settled_returns_at_once_when_nothing_is_claimed() {
        let store = MemoryStore::new(10, DAY_MS);
        timeout(Duration::from_secs(5), store.wait_settled("q", "m1"))
            .await
            .unwrap();
        store.complete("q", "m1");
        timeout(Duration::from_secs(5), store.wait_settled("q", "m1"))
            .await
            .unwrap();
    }

    #[test]
    fn capacity_evicts_the_oldest_completion_first() {
        let store = MemoryStore::new(2, DAY_MS);
        for id in ["m1", "m2"] {
            assert_eq!(store.claim("q", id), Claim::Fresh);
            store.complete("q", id);
        }
        // Completing m1 again moves it behind m2, so m2 is now the oldest.
        store.complete("q", "m1");
        assert_eq!(store.claim("q", "m3"), Claim::Fresh);
        store.complete("q", "m3");
        assert_eq!(store.claim("q", "m1"), Claim::Processed);
        assert_eq!(store.claim("q", "m3"), Claim::Processed);
        assert_eq!(
            store.claim("q", "m2"),
            Claim::Fresh,
            "the oldest completion is forgotten"
        );
    }

    #[test]
    fn claims_in_progress_neither_count_nor_get_evicted() {
        let store = MemoryStore::new(1, DAY_MS);
        for id in ["c1", "c2", "c3"] {
            assert_eq!(store.claim("q", id), Claim::Fresh);
        }
        store.complete("q", "m1");
        store.complete("q", "m2");
        for id in ["c1", "c2", "c3"] {
            assert_eq!(store.claim("q", id), Claim::InProgress);
        }
        assert_eq!(store.claim("q", "m2"), Claim::Processed);
        assert_eq!(store.claim("q", "m1"), Claim::Fresh);
    }

    #[tokio::test(start_paused = true)]
    async fn processed_ids_expire_after_the_ttl() {
        let store = MemoryStore::new(10, 1_000);
        assert_eq!(store.claim("q", "m1"), Claim::Fresh);
        store.complete("q", "m1");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(store.claim("q", "m2"), Claim::Fresh);
        store.complete("q", "m2");
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(store.claim("q", "m1"), Claim::Processed);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(store.claim("q", "m1"), Claim::Fresh, "expired at 1 000 ms");
        assert_eq!(store.claim("q", "m2"), Claim::Processed);
        assert_eq!(store.state().processed.len(), 1, "m1 purged from the front");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(store.claim("q", "m2"), Claim::Fresh);
        assert!(store.state().processed.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn completing_again_restarts_the_ttl() {
        let store = MemoryStore::new(10, 1_000);
        store.complete("q", "m1");
        tokio::time::advance(Duration::from_millis(800)).await;
        store.complete("q", "m1");
        tokio::time::advance(Duration::from_millis(800)).await;
        assert_eq!(store.claim("q", "m1"), Claim::Processed);
    }
}
