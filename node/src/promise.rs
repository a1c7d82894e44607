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
