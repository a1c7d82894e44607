//! The native half of the `courierkit` npm package (loaded as `native.js`).
//!
//! Only conversions live here. Waiting methods return Promises built with
//! `env.create_deferred()` and settled from a task on core's one runtime
//! ([`promise::spawn`]), so napi never starts a tokio runtime of its own. The public
//! JavaScript API (options objects, async iterators, `json()`) is `index.js`.

#![deny(clippy::all)]

mod bus;
mod cancel;
mod client;
mod error;
mod numbers;
mod promise;
// Public so its free functions count as used when napi's registration is compiled out
// (`cargo clippy --all-targets` builds the lib's test target).
pub mod telemetry;
mod trace;

/// Test hook: a core future that panics, returned as a Promise; it must reject with
/// COURIER_INTERNAL, never stay pending. Not part of the API (not in index.js).
#[napi_derive::napi(ts_return_type = "Promise<void>")]
pub fn panic_for_tests(env: &napi::Env) -> napi::Result<napi::bindgen_prelude::Object<'_>> {
    promise::spawn(env, courierkit::runtime::panic_for_tests())
}

/// The caller's remaining budget in milliseconds from an incoming HTTP request's headers
/// (`x-courier-deadline-ms`), or null; throws COURIER_CONFIG naming the header for a bad
/// value.
#[napi_derive::napi]
pub fn deadline_from_headers(
    env: napi::Env,
    headers: std::collections::HashMap<String, String>,
) -> napi::Result<Option<f64>> {
    use error::OrThrow;
    let budget =
        courierkit::deadline_from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .or_throw(&env)?;
    Ok(budget.map(|left| left.as_millis() as f64))
}
