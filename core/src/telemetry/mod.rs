//! What a host sees of courier: its log events, spans and metrics.
//!
//! - Sampling ([`Sampler`]) is always here: it decides the `traceparent` flag of the
//!   traces courier starts.
//! - With the `telemetry` feature (every binding enables it): log events forwarded to
//!   a [`LogSink`] (the host's logger), spans exported over OTLP/HTTP, and metrics
//!   recorded on courier's own meter provider, readable as Prometheus text and exported
//!   over OTLP/HTTP. [`install`] sets all of that up from the standard OpenTelemetry
//!   environment; [`configure`] does it from [`Settings`].
//!
//! Rust applications with a `tracing` subscriber of their own add
//! [`OtlpLayer`](crate::OtlpLayer) to it instead of calling [`install`], and call
//! [`configure`] for metrics.

pub(crate) mod metrics;

#[cfg(feature = "telemetry")]
mod log;
#[cfg(feature = "telemetry")]
mod pipeline;
#[cfg(feature = "telemetry")]
mod prometheus;
#[cfg(feature = "telemetry")]
mod settings;

pub use crate::trace::{Sampler, sampler, set_sampler};
#[cfg(feature = "telemetry")]
pub use log::{
    LOG_ENV, LogLayer, LogLevel, LogRecord, LogSink, log_level, set_log_level, set_log_sink,
};
#[cfg(feature = "telemetry")]
pub(crate) use settings::flush_in_background;
#[cfg(feature = "telemetry")]
pub use settings::{Options, Settings, configure, flush, install, metrics_text};
