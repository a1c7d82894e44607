//! One test binary for all integration tests: they share the raw client, and a single
//! binary links once instead of once per file.

mod binary;
mod client;
mod control;
mod proxy;
mod tls;
mod upstream;
