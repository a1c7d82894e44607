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
//! Awaitables are asyncio futures settled on their loop's thread (`asyncio_bridge.rs`):
//! core's threads never take the GIL for them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::prelude::*;

use crate::asyncio_bridge;
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
    asyncio_bridge::future(py, fut)
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

/// Core threads inside Python right now (the log sink, [`enter_python`]): a core thread
/// that takes the GIL while the interpreter finalizes is killed inside Rust frames, the
/// crash at exit that [`_quiesce`] prevents. Awaitables never take the GIL on core's
/// threads (`asyncio_bridge.rs`).
static POLLING: AtomicUsize = AtomicUsize::new(0);
/// Set at interpreter exit: core threads no longer enter Python.
static EXITING: AtomicBool = AtomicBool::new(false);

/// How long exit waits for the entries under way; each is short, this only bounds a bug.
const QUIESCE_LIMIT: Duration = Duration::from_secs(2);

/// Registered with `atexit` by the package: stops core threads from entering Python and
/// waits (GIL released) for the entries under way, before finalization begins. A core
/// task dropped later releases its Python references into pyo3's deferred pool, which
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
