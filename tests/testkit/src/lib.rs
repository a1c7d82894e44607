//! Fake HTTP upstreams with fault injection, shared by courier's integration tests in
//! every language.
//!
//! Rust tests start a [`Testkit`] in-process. Python, Node and Kotlin tests spawn the
//! `courier-testkit` binary, which prints its URLs as one JSON line on stdout and lives
//! until its stdin closes, and drive it through the control API on the same types
//! ([`Behavior`], [`RequestLog`]) serialized as JSON. One implementation keeps the
//! faults identical across bindings, so a behaviour difference is the binding's fault.
//!
//! A DNS server on 127.0.0.1 (UDP) answers from a table the test sets
//! ([`Testkit::set_dns`], `PUT /dns/{name}`), for courier's DNS discovery.
//!
//! For TLS tests, [`Pki`] makes the certificates (good ones and one per kind of bad
//! one) and [`Testkit::start_with_tls`] adds HTTPS upstreams that use them
//! ([`TlsUpstream`]). TLS is rustls with the ring provider only, like courier itself.
//!
//! [`OtlpReceiver`] takes OTLP/HTTP JSON trace exports, for courier's span exporter.
//!
//! The HTTP server is hand-written because the interesting faults (a TCP reset before
//! any response byte, or in the middle of a body) need control of the raw socket.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod behavior;
mod control;
mod dns;
mod http1;
mod https;
mod log;
mod otlp;
mod pki;
mod proxy;
mod testkit;
mod upstream;

pub use behavior::{Action, Behavior, Reset};
pub use dns::{DnsRecords, SrvRecord};
pub use https::TlsUpstream;
pub use log::{RecordedRequest, RequestLog};
pub use otlp::OtlpReceiver;
pub use pki::Pki;
pub use proxy::{Faults, Proxy};
pub use testkit::{Testkit, closed_port};
