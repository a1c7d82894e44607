//! The process-wide tokio runtime every binding shares.
//!
//! Bindings never create runtimes: a Python program with three Clients and a Bus still
//! runs one pool of worker threads. The runtime is created on first use.
//!
//! Fork safety: after `fork()` only the forking thread exists in the child, so the
//! parent's runtime has no workers there and any wait on it would hang forever. The
//! runtime therefore remembers the pid that built it, and a child that asks for it gets a
//! fresh one. The stale runtime is leaked, not dropped, because dropping it would join
//! worker threads that do not exist in the child (the same hazard lancedb documents in
//! `python/src/runtime.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

struct Owned {
    pid: u32,
    runtime: Runtime,
}

static RUNTIME: Mutex<Option<Owned>> = Mutex::new(None);

/// A handle to the process-wide runtime, created (or re-created after a fork) on demand.
///
/// # Errors
/// [`Error::Internal`] when the operating system refuses to start worker threads.
pub fn handle() -> Result<Handle> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if let Some(owned) = slot.as_ref().filter(|o| o.pid == pid) {
        return Ok(owned.runtime.handle().clone());
    }
    if let Some(stale) = slot.take() {
        std::mem::forget(stale.runtime);
    }
    let runtime = Builder::new_multi_thread()
        .enable_all()
        .thread_name("courier-worker")
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the tokio runtime: {e}")))?;
    let handle = runtime.handle().clone();
    *slot = Some(Owned { pid, runtime });
    Ok(handle)
}

/// Runs `fut` on the process-wide runtime and returns a [`Task`] for its output.
///
/// This is how every binding drives core futures: the [`Task`] can be awaited from any
/// executor (asyncio's bridge, napi's, uniffi's), and dropping it cancels the work.
///
/// # Errors
/// [`Error::Internal`] when the runtime cannot start.
pub fn spawn<F>(fut: F) -> Result<Task<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(Task {
        handle: handle()?.spawn(fut),
        abort_on_drop: true,
    })
}

/// A future running on the process-wide runtime.
///
/// # Cancel safety
/// Dropping a `Task` aborts the underlying future at its next await point, which drops
/// it and releases what it held; this is how an asyncio cancel, an abandoned Promise or a
/// cancelled coroutine stops work in core.
#[must_use = "dropping a Task cancels it"]
#[derive(Debug)]
pub struct Task<T> {
    handle: JoinHandle<T>,
    abort_on_drop: bool,
}

impl<T> Future for Task<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle).poll(cx).map(|joined| {
            joined.map_err(|e| {
                if e.is_panic() {
                    Error::Internal(format!("task panicked: {}", panic_message(e.into_panic())))
                } else {
                    Error::Closed { what: "runtime" }
                }
            })
        })
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if self.abort_on_drop {
            self.handle.abort();
        }
    }
}

impl<T> Task<T> {
    /// Lets the task run to completion even if this handle is dropped, for bridges
    /// (such as pyo3-async-runtimes) that drop the handle and watch the result elsewhere.
    pub fn detach(mut self) -> Task<T> {
        self.abort_on_drop = false;
        self
    }

    /// Blocks the calling thread until the task finishes or `tick` passes, whichever is
    /// first; `None` means the tick passed and the task is still running. Polls for up
    /// to [`SPIN`] before it parks ([`spin_until_finished`]).
    ///
    /// Synchronous bindings loop on this so they can check for signals (Ctrl-C) between
    /// ticks instead of blocking uninterruptibly. Must not be called from inside a tokio
    /// runtime.
    pub fn wait_tick(&mut self, tick: Duration) -> Option<Result<T>> {
        spin_until_finished(&self.handle);
        let handle = match handle() {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        handle.block_on(async { tokio::time::timeout(tick, &mut *self).await.ok() })
    }
}

/// How long a blocking wait ([`Task::wait_tick`]) polls its task before parking.
///
/// Why: a loopback call finishes in about 60 µs, and a parked thread is woken through
/// the scheduler (on a VM, an idle vCPU's wake-up too), which on this 2-core machine cost
/// as much again: Python's sync GET at c=1 went from 7.5-7.9k/s to 14.9-16.3k/s with a
/// 60 µs spin (bench/peers python_peers.py sync_get, spin 0 and 60 alternating, three
/// times); 20-30 µs gained nothing, 120 µs 17.0k/s.
const SPIN: Duration = Duration::from_micros(100);

/// Blocking waits polling now: at most half the CPUs (one on two) spin at a time, so
/// many threads blocked at once cannot take the CPU the runtime's workers need.
static SPINNING: AtomicUsize = AtomicUsize::new(0);

/// Yields the CPU in a loop until `task` finishes or [`SPIN`] passes, unless enough
/// other threads are spinning already.
fn spin_until_finished<T>(task: &JoinHandle<T>) {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    let limit = *LIMIT
        .get_or_init(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)));
    if SPINNING.fetch_add(1, Ordering::Relaxed) < limit {
        let start = std::time::Instant::now();
        while !task.is_finished() && start.elapsed() < SPIN {
            std::thread::yield_now();
        }
    }
    SPINNING.fetch_sub(1, Ordering::Relaxed);
}

/// `fut` with a panic inside it turned into [`Error::Internal`], for [`spawn_settled`]:
/// a panic must settle the caller's Promise or awaitable, not drop it unsettled.
///
/// A combinator rather than an `async fn`: an `async fn` keeps its argument and the
/// future it awaits as two fields of its state, so the wrapped future would be stored
/// twice (measured: a 6.8 KiB task per publish from Python instead of about 2 KiB).
fn catch_panic<T>(fut: impl Future<Output = Result<T>>) -> impl Future<Output = Result<T>> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(fut)
        .catch_unwind()
        .map(|caught| {
            caught.unwrap_or_else(|payload| {
                Err(Error::Internal(format!(
                    "task panicked: {}",
                    panic_message(payload)
                )))
            })
        })
}

/// Spawns `fut` (a panic inside it becomes [`Error::Internal`], see [`catch_panic`]) and
/// hands its outcome to `settle` on the runtime thread that finished it: how a binding
/// settles a Promise or an asyncio future it returned at once. The task's state is
/// `fut` once, with no wrapper around it.
///
/// # Errors
/// [`Error::Internal`] when the runtime cannot start.
pub fn spawn_settled<T, F, S>(fut: F, settle: S) -> Result<Task<()>>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
    S: FnOnce(Result<T>) + Send + 'static,
{
    use futures_util::FutureExt;
    spawn(catch_panic(fut).map(settle))
}

/// Settled outcomes on their way to a binding's host thread (a JavaScript thread, an
/// asyncio loop), which takes them all in one turn. [`Handoff::push`] tells whether this
/// push must wake the host thread: only the one that finds the queue empty does, so a
/// burst of completions costs one wake-up. The host must take the queue after it has
/// consumed its wake-up, never before: then every queued item is followed either by a
/// wake-up not yet consumed or by a take still to come.
pub struct Handoff<T> {
    queue: std::sync::Mutex<Vec<T>>,
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Handoff {
            queue: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl<T> Handoff<T> {
    /// Queues `item`; true when the host thread must be woken for it.
    pub fn push(&self, item: T) -> bool {
        let mut queue = self.lock();
        queue.push(item);
        queue.len() == 1
    }

    /// Everything queued so far, in order.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.lock())
    }

    /// A panic while holding the lock cannot leave a `Vec` push or take half done.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A cancellation a host triggers from outside the future it cancels: Node's
/// `AbortSignal` and Swift's task cancellation reach core through one of these, because
/// neither drops the foreign future when the caller gives up (a cancelled Kotlin
/// coroutine or asyncio task does, and needs none). Cheap to clone; clones cancel
/// together.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(tokio_util::sync::CancellationToken);

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every operation running under this token, now or later.
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }

    /// `fut`, or [`Error::Closed`] naming `what` as soon as the token is cancelled:
    /// `fut` is dropped then, which releases what it held (a call's concurrency slot, a
    /// request's reply correlation, a publish's unconfirmed slot) and leaves a consumer's
    /// delivery for its next `next`. An already cancelled token never polls `fut`.
    ///
    /// # Errors
    /// `fut`'s error, or [`Error::Closed`] when cancelled.
    pub async fn run<T>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.0
            .run_until_cancelled(fut)
            .await
            .unwrap_or(Err(Error::Closed { what }))
    }
}

/// `fut` under `token` when the host gave one ([`CancelToken::run`]), else `fut` as it
/// is: how a binding applies an optional cancel argument (Node's `signal`, the uniffi
/// `cancel` parameter).
///
/// # Errors
/// `fut`'s error, or [`Error::Closed`] naming `what` when `token` was cancelled.
pub async fn cancellable<T>(
    token: Option<CancelToken>,
    what: &'static str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match token {
        None => fut.await,
        Some(token) => token.run(what, fut).await,
    }
}

/// A core future that panics, for the bindings' tests: every binding must turn a panic
/// inside core into its internal error and settle the caller's Promise, coroutine or
/// suspend call, never strand it or unwind across the FFI boundary. Not part of the API.
#[doc(hidden)]
pub async fn panic_for_tests() -> Result<()> {
    tokio::task::yield_now().await;
    panic!("courier test hook: a forced panic inside a core future")
}

/// The text of a caught panic payload.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_runtime_per_process() {
        let a = handle().unwrap();
        let b = handle().unwrap();
        assert_eq!(a.id(), b.id(), "every caller must share one runtime");
    }

    #[test]
    fn a_task_panic_becomes_an_internal_error() {
        let mut task = spawn(async { panic!("boom") }).unwrap();
        let out: Result<()> = loop {
            if let Some(done) = task.wait_tick(Duration::from_millis(100)) {
                break done;
            }
        };
        let err = out.unwrap_err();
        assert_eq!(err.to_string(), "internal error: task panicked: boom");
    }

    #[test]
    fn blocking_waits_from_many_threads_get_their_values_and_leave_no_spinner_behind() {
        let waiters: Vec<_> = (0..8u64)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut task = spawn(async move {
                        tokio::time::sleep(Duration::from_millis(i % 3)).await;
                        Ok::<u64, Error>(i)
                    })
                    .unwrap();
                    loop {
                        if let Some(done) = task.wait_tick(Duration::from_millis(100)) {
                            break done.unwrap().unwrap();
                        }
                    }
                })
            })
            .collect();
        let got: Vec<u64> = waiters.into_iter().map(|w| w.join().unwrap()).collect();
        assert_eq!(got, (0..8).collect::<Vec<_>>());
        // A count left behind would stop every later wait from spinning. (Other tests
        // in this binary may be waiting at this moment: their count goes in a moment.)
        let settled = (0..1_000).any(|_| {
            std::thread::sleep(Duration::from_millis(1));
            SPINNING.load(Ordering::Relaxed) == 0
        });
        assert!(
            settled,
            "spinners left: {}",
            SPINNING.load(Ordering::Relaxed)
        );
    }

    #[test]
    fn dropping_a_task_cancels_it() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let task = spawn(async move {
            let _tx = tx; // dropped when the future is dropped
            std::future::pending::<()>().await;
        })
        .unwrap();
        drop(task);
        // recv() returns Err only once the sender is gone, i.e. the future was dropped.
        assert!(
            rx.recv().is_err(),
            "abort must drop the future and what it owns"
        );
    }

    #[test]
    fn a_handoff_asks_for_one_wake_up_per_batch() {
        let handoff = Handoff::default();
        assert!(handoff.push(1), "the first item wakes the host");
        assert!(!handoff.push(2), "a wake-up is already on its way");
        assert_eq!(handoff.take(), vec![1, 2]);
        assert!(handoff.push(3), "after a take, the next item wakes again");
        assert_eq!(handoff.take(), vec![3]);
        assert!(handoff.take().is_empty());
    }

    #[tokio::test]
    async fn a_cancel_token_drops_the_future_and_says_what_was_cancelled() {
        let token = CancelToken::new();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn({
            let token = token.clone();
            async move {
                token
                    .run("the call", async move {
                        let _tx = tx; // dropped when the future is dropped
                        std::future::pending::<Result<()>>().await
                    })
                    .await
            }
        });
        tokio::task::yield_now().await;
        token.cancel();
        let err = running.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Closed { what: "the call" }), "{err:?}");
        assert!(
            rx.recv().is_err(),
            "the future and what it owned were dropped"
        );
        let polled = std::sync::atomic::AtomicBool::new(false);
        let again = token
            .run("the call", async {
                polled.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            })
            .await;
        assert!(
            again.is_err() && !polled.into_inner(),
            "a cancelled token never polls"
        );
    }
}
