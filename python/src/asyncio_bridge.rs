//! asyncio futures settled from core's threads without core ever taking the GIL.
//!
//! A core thread that wants the GIL while the event loop's thread runs Python code waits
//! for the interpreter's switch interval (5 ms): a whole tokio worker stalls per
//! completion, and with many calls in flight completions queue behind one another. So a
//! finished core future only pushes its outcome onto its event loop's [`Shared`] queue;
//! the push that finds the queue empty writes one byte to a socket the loop watches
//! (`loop.add_reader`), and the loop's thread, which holds the GIL anyway, builds the
//! Python values and settles every queued future in one callback ([`Drain`]).
//!
//! Cancelling the asyncio future drops the core task ([`Canceller`]), which cancels the
//! work; a future already cancelled when its outcome arrives is left alone.

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use courierkit::runtime::Handoff;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::{IntoPyObjectExt, intern};

use crate::error::IntoPyResult;
use crate::wait::Op;

/// Settles one asyncio future on its loop's thread.
type Completion = Box<dyn FnOnce(Python<'_>) + Send>;

/// What core's threads share with one event loop: settled outcomes, and the write end of
/// the socket that wakes the loop to settle them.
struct Shared {
    queue: Handoff<Completion>,
    wake: UnixStream,
}

impl Shared {
    /// Queues a completion; the push that finds the queue empty writes a byte. The loop
    /// reads the socket empty before it takes the queue ([`Handoff`]'s rule).
    fn push(&self, completion: Completion) {
        if self.queue.push(completion) {
            // WouldBlock means bytes are already waiting, so the loop will run anyway; any
            // other failure means the loop's side is gone, and its futures with it.
            let _ = (&self.wake).write(&[1]);
        }
    }
}

/// The loop's reader callback: reads the wake-up bytes, then settles everything queued.
#[pyclass(frozen)]
struct Drain {
    shared: Arc<Shared>,
    wakeups: UnixStream,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        let mut bytes = [0u8; 64];
        loop {
            match (&self.wakeups).read(&mut bytes) {
                Ok(n) if n == bytes.len() => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // Fewer bytes than asked (nothing more waits), WouldBlock, or closed.
                _ => break,
            }
        }
        for settle in self.shared.queue.take() {
            settle(py);
        }
    }
}

/// The queue of one event loop, kept by the thread that runs it.
struct LoopQueue {
    event_loop: Py<PyAny>,
    shared: Arc<Shared>,
}

thread_local! {
    /// The event loops this thread has run courier calls on; usually one.
    static LOOPS: RefCell<Vec<LoopQueue>> = const { RefCell::new(Vec::new()) };
}

/// The queue of `event_loop`, made and registered with the loop on first use. Loops this
/// thread ran before and that are closed now are forgotten then (closing their sockets).
fn shared_for(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Shared>> {
    let known = LOOPS.with_borrow(|loops| {
        loops
            .iter()
            .find(|q| q.event_loop.bind(py).is(event_loop))
            .map(|q| q.shared.clone())
    });
    if let Some(shared) = known {
        return Ok(shared);
    }
    let mut loops = LOOPS.take();
    loops.retain(|q| {
        let closed = q.event_loop.bind(py).call_method0(intern!(py, "is_closed"));
        !closed.and_then(|c| c.is_truthy()).unwrap_or(true)
    });
    let registered = register(py, event_loop);
    if let Ok(shared) = &registered {
        loops.push(LoopQueue {
            event_loop: event_loop.clone().unbind(),
            shared: shared.clone(),
        });
    }
    LOOPS.set(loops);
    registered
}

fn register(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Shared>> {
    let (wakeups, wake) = UnixStream::pair()?;
    wakeups.set_nonblocking(true)?;
    wake.set_nonblocking(true)?;
    let fd = wakeups.as_raw_fd();
    let shared = Arc::new(Shared {
        queue: Handoff::default(),
        wake,
    });
    let drain = Drain {
        shared: shared.clone(),
        wakeups,
    };
    event_loop.call_method1(intern!(py, "add_reader"), (fd, drain))?;
    Ok(shared)
}

/// The done callback of every courier asyncio future: dropping the task cancels it when
/// the future was cancelled, and is a no-op once the task has finished.
#[pyclass]
struct Canceller(Option<courierkit::runtime::Task<()>>);

#[pymethods]
impl Canceller {
    fn __call__(&mut self, _future: &Bound<'_, PyAny>) {
        self.0.take();
    }
}

/// `asyncio.get_running_loop`, looked up once.
fn running_loop<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET_RUNNING_LOOP
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
        })?
        .bind(py)
        .call0()
}

/// Runs `fut` on core's runtime and returns an asyncio future of its result, on the
/// running loop (`RuntimeError` outside one, as asyncio's own calls do).
pub(crate) fn future<'py, T>(py: Python<'py>, fut: impl Op<T>) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let event_loop = running_loop(py)?;
    let shared = shared_for(py, &event_loop)?;
    let py_future = event_loop.call_method0(intern!(py, "create_future"))?;
    let target = py_future.clone().unbind();
    // A panic inside `fut` becomes courier's InternalError, so the future is settled
    // either way. The outcome is only queued here: the loop's thread settles it.
    let task = courierkit::runtime::spawn_settled(fut, move |outcome| {
        shared.push(Box::new(move |py| settle(py, target.bind(py), outcome)));
    })
    .py()?;
    // Registered before the loop can run the drain: both happen on this thread.
    py_future.call_method1(intern!(py, "add_done_callback"), (Canceller(Some(task)),))?;
    Ok(py_future)
}

/// Sets the outcome on `future` unless it was cancelled meanwhile.
fn settle<T>(py: Python<'_>, future: &Bound<'_, PyAny>, outcome: courierkit::Result<T>)
where
    T: for<'a> IntoPyObject<'a>,
{
    let done = future.call_method0(intern!(py, "done"));
    if done.and_then(|d| d.is_truthy()).unwrap_or(true) {
        return;
    }
    let value = outcome.py().and_then(|v| v.into_bound_py_any(py));
    let set = match value {
        Ok(value) => future.call_method1(intern!(py, "set_result"), (value,)),
        Err(e) => future.call_method1(intern!(py, "set_exception"), (e.into_value(py),)),
    };
    if let Err(e) = set {
        e.write_unraisable(py, Some(future));
    }
}
