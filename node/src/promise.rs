//! Promises settled from core's runtime.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::future::Future;
use std::ptr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, Ordering};

use napi::bindgen_prelude::*;
use napi::{JsError, JsValue, check_status, sys};

use courierkit::runtime::Handoff;

use crate::error::{error_object, to_js};

type Settle<T> = Box<dyn FnOnce(Env) -> Result<T> + Send>;

/// Runs `fut` on core's runtime and returns a Promise of its output.
///
/// The Promise is settled on the JavaScript thread, where its value (and the error
/// object) is built, through this thread's [`Completions`]: one thread-safe function
/// shared by every Promise, so a completion costs a queue push and at most one wake-up
/// of the event loop, and completions that arrive together are settled in one turn.
/// (napi's own deferred creates, and later tears down, a thread-safe function per
/// Promise.) A pending Promise keeps Node's event loop alive, as it should; nothing
/// else does, so a process exits by itself once its work is done.
pub(crate) fn spawn<'env, T, F>(env: &'env Env, fut: F) -> Result<Object<'env>>
where
    F: Future<Output = courierkit::Result<T>> + Send + 'static,
    T: ToNapiValue + Send + 'static,
{
    let completions = Completions::of_this_thread(env)?;
    let mut deferred = ptr::null_mut();
    let mut promise = ptr::null_mut();
    check_status!(unsafe { sys::napi_create_promise(env.raw(), &mut deferred, &mut promise) })?;
    let resolver = Deferred(deferred);
    let shared = completions.shared.clone();
    // A panic inside `fut` becomes an internal error, so the Promise is settled either
    // way; uncaught, it would never be queued and the Promise would stay pending.
    let task = courierkit::runtime::spawn_settled(fut, move |outcome| {
        shared.push(Box::new(move |raw_env| settle(raw_env, resolver, outcome)));
    });
    match task {
        // Detached: the Promise, not this handle, carries the result.
        Ok(task) => drop(task.detach()),
        Err(e) => {
            // Never spawned: the call throws instead, and the Promise nobody will see is
            // rejected here only so napi frees its resolver.
            let mut undefined = ptr::null_mut();
            unsafe {
                sys::napi_get_undefined(env.raw(), &mut undefined);
                sys::napi_reject_deferred(env.raw(), deferred, undefined);
            }
            return Err(to_js(env, e));
        }
    }
    completions.started(env)?;
    Ok(Object::from_raw(env.raw(), promise))
}

/// Settles one Promise on the JavaScript thread with `outcome`.
fn settle<T: ToNapiValue>(
    raw_env: sys::napi_env,
    deferred: Deferred,
    outcome: courierkit::Result<T>,
) {
    let env = Env::from_raw(raw_env);
    let (resolved, value) = match outcome {
        Ok(value) => (true, unsafe { T::to_napi_value(raw_env, value) }),
        Err(e) => (false, error_object(&env, &e).map(|o| o.raw())),
    };
    unsafe {
        match value {
            Ok(value) if resolved => sys::napi_resolve_deferred(raw_env, deferred.0, value),
            Ok(reason) => sys::napi_reject_deferred(raw_env, deferred.0, reason),
            // The value could not be built (a string over V8's limit...): the Promise
            // rejects with that failure rather than staying pending.
            Err(e) => {
                sys::napi_reject_deferred(raw_env, deferred.0, JsError::from(e).into_value(raw_env))
            }
        };
    }
}

/// A Promise's resolver, settled once, on the JavaScript thread that created it.
struct Deferred(sys::napi_deferred);

// SAFETY: the pointer only travels through core's threads inside a queued completion;
// it is dereferenced (by napi) only in `settle`, on the thread that created it.
unsafe impl Send for Deferred {}

type Completion = Box<dyn FnOnce(sys::napi_env) + Send>;

/// What core's threads share with one JavaScript thread: the queue of settled outcomes
/// and the thread-safe function that wakes that thread to drain it.
struct Shared {
    queue: Handoff<Completion>,
    /// Set once, right after the function is made and before anything can be queued.
    tsfn: AtomicPtr<sys::napi_threadsafe_function__>,
}

impl Shared {
    /// Queues a completion; the push that finds the queue empty wakes the JavaScript
    /// thread, which then drains everything queued by the time it runs.
    fn push(&self, completion: Completion) {
        if self.queue.push(completion) {
            // Fails only once the environment is going away; its Promises go with it.
            unsafe {
                sys::napi_call_threadsafe_function(
                    self.tsfn.load(Ordering::Acquire),
                    ptr::null_mut(),
                    sys::ThreadsafeFunctionCallMode::nonblocking,
                )
            };
        }
    }
}

/// One JavaScript thread's side: [`Shared`], and how many of its Promises are pending
/// (touched only on this thread), which decides whether the thread-safe function keeps
/// the event loop alive.
struct Completions {
    shared: Arc<Shared>,
    pending: Cell<usize>,
}

thread_local! {
    static COMPLETIONS: RefCell<Option<Rc<Completions>>> = const { RefCell::new(None) };
}

impl Completions {
    /// This JavaScript thread's (the main thread's or a worker's), made on first use.
    fn of_this_thread(env: &Env) -> Result<Rc<Completions>> {
        if let Some(made) = COMPLETIONS.with(|c| c.borrow().clone()) {
            return Ok(made);
        }
        let shared = Arc::new(Shared {
            queue: Handoff::default(),
            tsfn: AtomicPtr::new(ptr::null_mut()),
        });
        let name = env.create_string("courier.completions")?;
        let mut tsfn = ptr::null_mut();
        // The context is a strong reference to `shared`, given back when Node finalizes
        // the thread-safe function (with its environment).
        let context = Arc::into_raw(shared.clone()) as *mut c_void;
        let status = unsafe {
            sys::napi_create_threadsafe_function(
                env.raw(),
                ptr::null_mut(),
                ptr::null_mut(),
                name.raw(),
                0,
                1,
                context,
                Some(finalize),
                context,
                Some(drain),
                &mut tsfn,
            )
        };
        if status != sys::Status::napi_ok {
            drop(unsafe { Arc::from_raw(context as *const Shared) });
            return Err(Error::new(
                Status::GenericFailure,
                "cannot create courier's completion queue",
            ));
        }
        // Idle, it must not keep the process alive; `started` refs it while Promises wait.
        check_status!(unsafe { sys::napi_unref_threadsafe_function(env.raw(), tsfn) })?;
        shared.tsfn.store(tsfn, Ordering::Release);
        let made = Rc::new(Completions {
            shared,
            pending: Cell::new(0),
        });
        COMPLETIONS.with(|c| *c.borrow_mut() = Some(made.clone()));
        Ok(made)
    }

    /// Counts a new pending Promise; the first keeps the event loop alive.
    fn started(&self, env: &Env) -> Result<()> {
        let pending = self.pending.get();
        if pending == 0 {
            check_status!(unsafe {
                sys::napi_ref_threadsafe_function(
                    env.raw(),
                    self.shared.tsfn.load(Ordering::Acquire),
                )
            })?;
        }
        self.pending.set(pending + 1);
        Ok(())
    }

    /// Counts `n` settled Promises; once none is pending the loop may exit.
    fn settled(&self, env: sys::napi_env, n: usize) {
        let pending = self.pending.get().saturating_sub(n);
        self.pending.set(pending);
        if pending == 0 {
            unsafe {
                sys::napi_unref_threadsafe_function(env, self.shared.tsfn.load(Ordering::Acquire))
            };
        }
    }
}

/// The thread-safe function's call, on the JavaScript thread: settles everything queued.
unsafe extern "C" fn drain(
    env: sys::napi_env,
    _js_callback: sys::napi_value,
    context: *mut c_void,
    _data: *mut c_void,
) {
    // SAFETY: `context` is the `Shared` the function was made with, alive until finalize.
    let shared = unsafe { &*(context as *const Shared) };
    let queued = shared.queue.take();
    if env.is_null() {
        // The environment is being torn down: its Promises cannot be settled any more.
        return;
    }
    let n = queued.len();
    for completion in queued {
        completion(env);
    }
    if let Ok(Some(completions)) = COMPLETIONS.try_with(|c| c.borrow().clone()) {
        completions.settled(env, n);
    }
}

/// Gives back the thread-safe function's reference to [`Shared`].
unsafe extern "C" fn finalize(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // `try_with`: never a panic across this C callback, even late in a thread's exit.
    let _ = COMPLETIONS.try_with(|c| c.borrow_mut().take());
    // SAFETY: `data` is the reference `of_this_thread` leaked for the function.
    drop(unsafe { Arc::from_raw(data as *const Shared) });
}

/// Runs `work`, which blocks (telemetry exports wait for the collector), on a thread of
/// its own and returns a Promise of its output: neither the JavaScript thread nor a
/// core worker nor libuv's small thread pool (files, DNS) waits for it.
pub(crate) fn blocking<'env, T, W>(env: &'env Env, name: &str, work: W) -> Result<Object<'env>>
where
    W: FnOnce() -> courierkit::Result<T> + Send + 'static,
    T: ToNapiValue + Send + 'static,
{
    let (deferred, promise) = env.create_deferred::<T, Settle<T>>()?;
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let settle: Settle<T> =
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
                    Ok(Ok(value)) => Box::new(move |_| Ok(value)),
                    Ok(Err(e)) => Box::new(move |env| Err(to_js(&env, e))),
                    Err(panic) => {
                        let e =
                            courierkit::Error::Internal(courierkit::runtime::panic_message(panic));
                        Box::new(move |env| Err(to_js(&env, e)))
                    }
                };
            deferred.resolve(settle);
        });
    if let Err(e) = spawned {
        // The closure (and the deferred in it) is dropped: the Promise is not returned.
        return Err(to_js(
            env,
            courierkit::Error::Internal(format!("cannot start a thread: {e}")),
        ));
    }
    Ok(promise)
}
