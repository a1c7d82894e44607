//! Promises settled from core's runtime.

use std::future::Future;

use napi::bindgen_prelude::*;

use crate::error::to_js;

type Settle<T> = Box<dyn FnOnce(Env) -> Result<T> + Send>;

/// Runs `fut` on core's runtime and returns a Promise of its output.
///
/// The deferred is settled through napi's thread-safe function, so the conversion to
/// JavaScript (and the error object) is built on the JavaScript thread. A pending
/// Promise keeps Node's event loop alive, as it should; nothing else does, so a process
/// exits by itself once its work is done.
pub(crate) fn spawn<'env, T, F>(env: &'env Env, fut: F) -> Result<Object<'env>>
where
    F: Future<Output = courierkit::Result<T>> + Send + 'static,
    T: ToNapiValue + Send + 'static,
{
    let (deferred, promise) = env.create_deferred::<T, Settle<T>>()?;
    // A panic inside `fut` becomes an internal error, so the Promise is settled either
    // way; uncaught, it would drop `deferred` and leave the Promise pending forever.
    let task = courierkit::runtime::spawn(async move {
        let settle: Settle<T> = match courierkit::runtime::catch_panic(fut).await {
            Ok(value) => Box::new(move |_| Ok(value)),
            Err(e) => Box::new(move |env| Err(to_js(&env, e))),
        };
        deferred.resolve(settle);
    });
    match task {
        // Detached: the Promise, not this handle, carries the result.
        Ok(task) => drop(task.detach()),
        Err(e) => return Err(to_js(env, e)),
    }
    Ok(promise)
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
