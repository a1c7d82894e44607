//! Driving core futures from Python, on core's one runtime.
//!
//! Each waiting operation is one core future ([`Op`]) and two native methods taking the
//! same arguments: `name` runs it in [`block`], `name_async` returns it as an awaitable
//! ([`awaitable`]). `courierkit.Bus` calls the one, `courierkit.AsyncBus` the other.
//!
//! Blocking: the GIL is released while waiting and re-taken every 100 ms to run signal
//! handlers, so Ctrl-C interrupts a long call or `consumer.next()` with
//! `KeyboardInterrupt` (and dropping the task cancels the work).
//!
//! Awaitables are asyncio futures from pyo3-async-runtimes' *generic* bridge, with
//! [`CoreRuntime`] spawning onto core's runtime: its ready-made tokio bridge would start
//! a second runtime of its own, which also would not survive `fork()`.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use pyo3_async_runtimes::generic::{ContextExt, JoinError, Runtime};
use tokio::sync::OnceCell;

use crate::error::IntoPyResult;

/// How often a blocked sync call wakes to check for signals.
const SIGNAL_TICK: Duration = Duration::from_millis(100);

/// A waiting operation: a core future that owns what it uses, so it can run on core's
/// runtime while Python goes on.
pub(crate) trait Op<T>: Future<Output = courierkit::Result<T>> + Send + 'static {}

impl<T, F: Future<Output = courierkit::Result<T>> + Send + 'static> Op<T> for F {}

/// What an `*_async` method returns: an asyncio awaitable.
pub(crate) type Awaitable<'py> = PyResult<Bound<'py, PyAny>>;

/// Runs `fut` on core's runtime and blocks until it ends, without holding the GIL.
pub(crate) fn block<T: Send + 'static>(py: Python<'_>, fut: impl Op<T>) -> PyResult<T> {
    let mut task = courierkit::runtime::spawn(fut).py()?;
    loop {
        if let Some(done) = py.detach(|| task.wait_tick(SIGNAL_TICK)) {
            return done.and_then(|r| r).py();
        }
        // Raises KeyboardInterrupt on Ctrl-C; returning drops `task`, which cancels it.
        py.check_signals()?;
    }
}

/// Runs `fut` on core's runtime and returns an asyncio awaitable of its result.
/// Cancelling the awaitable drops the future.
pub(crate) fn awaitable<'py, T>(py: Python<'py>, fut: impl Op<T>) -> Awaitable<'py>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    // A panic inside `fut` arrives as courier's InternalError rather than
    // pyo3-async-runtimes' own RustPanic.
    pyo3_async_runtimes::generic::future_into_py::<CoreRuntime, _, T>(py, async move {
        courierkit::runtime::catch_panic(fut).await.py()
    })
}

/// Test hook: a core future that panics, run like any native method (blocking, or as an
/// awaitable); it must raise `InternalError`, never crash or hang.
#[pyfunction]
pub(crate) fn _panic_for_tests(py: Python<'_>, asynchronous: bool) -> PyResult<Py<PyAny>> {
    let fut = courierkit::runtime::panic_for_tests();
    if asynchronous {
        return awaitable(py, fut).map(Bound::unbind);
    }
    block(py, fut).map(|()| py.None())
}

/// pyo3-async-runtimes' view of core's runtime.
pub(crate) struct CoreRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

/// Why a bridged task did not finish.
pub(crate) struct TaskFailed(Box<dyn Any + Send>);

impl JoinError for TaskFailed {
    fn is_panic(&self) -> bool {
        true
    }
    fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.0
    }
}

type BridgeHandle = Pin<Box<dyn Future<Output = Result<(), TaskFailed>> + Send>>;

/// Bridged tasks being polled right now. A poll may take the GIL (to resolve the asyncio
/// future, or to release Python objects it holds), and a core thread that takes the GIL
/// while the interpreter finalizes is killed inside Rust frames: the crash at exit that
/// [`quiesce`] prevents.
static POLLING: AtomicUsize = AtomicUsize::new(0);
/// Set at interpreter exit: bridged tasks are dropped at their next poll, unpolled.
static EXITING: AtomicBool = AtomicBool::new(false);

/// How long exit waits for polls under way; a poll is short, this only bounds a bug.
const QUIESCE_LIMIT: Duration = Duration::from_secs(2);

/// Registered with `atexit` by the package: stops bridged tasks from entering Python and
/// waits (GIL released) for the polls under way, before finalization begins. A task
/// dropped unpolled releases its Python references into pyo3's deferred pool, which
/// never touches the interpreter.
#[pyfunction]
pub(crate) fn _quiesce(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let start = std::time::Instant::now();
        while POLLING.load(Ordering::SeqCst) > 0 && start.elapsed() < QUIESCE_LIMIT {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Runs `enter` (which takes the GIL) from a core thread unless the interpreter is
/// exiting, counted in [`POLLING`] so exit waits for it: the log sink's way into Python.
pub(crate) fn enter_python(enter: impl FnOnce()) {
    POLLING.fetch_add(1, Ordering::SeqCst);
    if !EXITING.load(Ordering::SeqCst) {
        enter();
    }
    POLLING.fetch_sub(1, Ordering::SeqCst);
}

/// A bridged task, counted in [`POLLING`] while polled and cut short once [`EXITING`].
struct Bridged<F>(Pin<Box<F>>);

impl<F: Future<Output = ()>> Future for Bridged<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        // Count first, then check: exit either sees this poll counted or this poll sees
        // the flag (both SeqCst), so no poll slips in after exit stopped waiting.
        POLLING.fetch_add(1, Ordering::SeqCst);
        let polled = if EXITING.load(Ordering::SeqCst) {
            Poll::Ready(())
        } else {
            self.0.as_mut().poll(cx)
        };
        POLLING.fetch_sub(1, Ordering::SeqCst);
        polled
    }
}

impl Runtime for CoreRuntime {
    type JoinError = TaskFailed;
    type JoinHandle = BridgeHandle;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match courierkit::runtime::spawn(Bridged(Box::pin(fut))) {
            // The bridge's handle must not cancel the task when dropped: the bridge
            // drops it right away and relies on the task to resolve the asyncio future.
            Ok(task) => {
                let task = task.detach();
                Box::pin(async move { task.await.map_err(|e| TaskFailed(Box::new(e.to_string()))) })
            }
            Err(e) => Box::pin(std::future::ready(Err(TaskFailed(Box::new(e.to_string()))))),
        }
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        Self::spawn(async move { f() })
    }
}

impl ContextExt for CoreRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new_with(Some(locals));
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|cell| cell.get().cloned())
            .unwrap_or_default()
    }
}
