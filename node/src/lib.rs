//! The native half of the `courier` npm package (loaded as `native.js`).
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
mod trace;
