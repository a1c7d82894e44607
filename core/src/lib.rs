//! courier: resilient service-to-service calls over HTTP and messaging over AMQP,
//! one core for Rust, Python, Node, Kotlin and Swift.
//!
//! - [`Client`] sends [`Request`]s to named services (see [`ClientConfig`]) under a
//!   deadline and returns [`Response`]s.
//! - [`Bus`] connects to RabbitMQ: [`Bus::publish`] returns after the broker's confirm,
//!   [`Bus::consume`] yields [`Delivery`]s acknowledged by hand.
//! - Every failure is an [`Error`] with a stable [`ErrorKind`], which every binding maps
//!   to its own exception or error code.
//!
//! The bindings drive core futures on one process-wide runtime ([`runtime`]).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "mimalloc")]
mod allocator;
mod balance;
mod config;
mod deadline;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod limits;
mod messaging;
mod resilience;
pub mod runtime;
#[cfg(feature = "schema")]
mod schema;
pub mod telemetry;
mod tls;
mod trace;
mod urls;

pub use balance::{Balancer, DiscoveryConfig, EndpointStats, OutlierConfig, VersionConfig};
pub use config::Validate;
pub use deadline::{DEADLINE_HEADER, deadline_from_headers};
pub use error::{BoxError, Detail, Error, ErrorKind, Result};
pub use http::{
    Client, ClientConfig, ClientStats, EndpointConfig, Request, Response, ServiceConfig,
    ServiceStats,
};
pub use limits::{
    HttpLimits, MAX_BATCH, MAX_DURATION_MS, MessageLimits, check_duration_ms, duration_from_millis,
};
pub use messaging::{
    Batch, BatchMessage, Bus, BusConfig, BusStats, ConsumeOptions, Consumer,
    DEFAULT_DELIVERY_LIMIT, DedupConfig, Delivery, ExchangeKind, PublishOptions, QueueOptions,
    Receipt, ReconnectConfig, RequestOptions,
};
pub use resilience::{
    AdaptiveConcurrencyConfig, BreakerConfig, BudgetConfig, HedgeConfig, MAX_RETRY_AFTER_MS,
    RateLimitConfig, RetryConfig, RetryOn,
};
#[cfg(feature = "schema")]
pub use schema::config_schema;
pub use tls::{TlsConfig, TlsVersion};
#[cfg(feature = "telemetry")]
pub use trace::OtlpLayer;
pub use trace::{Baggage, TraceContext, TraceState};
pub use urls::redact_url;

// Bindings share these across threads (Python threads, napi's pool, Kotlin dispatchers);
// losing Send or Sync must fail the build, not a binding (tokio `tests/async_send_sync.rs`).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Client>();
    send_sync::<Bus>();
    send_sync::<Consumer>();
    send_sync::<Delivery>();
    send_sync::<Error>();
};
