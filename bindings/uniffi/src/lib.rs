//! uniffi exports of courier for Kotlin and Swift: crate `courier-ffi`.
//!
//! This crate only converts types, maps errors and drives core futures; every behaviour
//! (retries, deadlines, routing, confirms) lives in core (`courierkit`), so every
//! language behaves the same (docs/architecture.md).
//!
//! # Async
//! Exported `async fn`s become Kotlin `suspend fun`s and Swift `async throws` functions.
//! They do not use `#[uniffi::export(async_runtime = "tokio")]`, which would poll core
//! futures on a second runtime (async_compat's); instead each one hands its core future
//! to the process-wide runtime with [`courierkit::runtime::spawn`] and awaits the task.
//! The task is `Send`, as uniffi requires, and dropping it aborts the core future, which
//! releases what it held. A cancelled Kotlin coroutine drops it. uniffi 0.32's Swift
//! bindings do not forward `Task` cancellation, so the operations a caller may give up on
//! (`call`, `publish`, `publish_many`, `request`, `next`, `next_batch`) also take a
//! [`CancelToken`], which the Swift wrappers cancel when their task is cancelled.
//!
//! # Names
//! Types keep core's names: [`Request`] and [`Response`] as in Rust, Python and Node
//! (they were `HttpRequest` and `HttpResponse`, which in Kotlin clashed with
//! `java.net.http.HttpRequest` and `HttpResponse`). Errors follow core's kind codes
//! (`budget_exhausted` is [`CourierError::BudgetExhausted`]).
//!
//! uniffi's Kotlin objects already implement `AutoCloseable.close()` (it frees the Rust
//! handle), so `uniffi.toml` renames courier's `close()` to `shutdown()` for Kotlin only.
//!
//! # Trace context
//! [`TraceContext`] wraps core's W3C context. Every `trace` parameter takes a carrier map
//! (`ctx.toCarrier()`); without one core starts a new trace. The Kotlin wrapper fills it
//! from the current OpenTelemetry span when `opentelemetry-api` is on the classpath.
//!
//! # Telemetry
//! [`telemetry`] forwards core's log records to a foreign [`LogSink`] (Kotlin: SLF4J or
//! java.util.logging; Swift: `os_log`, installed when the first `Client` or `Bus` is
//! made), and exposes the log level, the OTLP export settings, flush and the Prometheus
//! text. Core's telemetry is installed before the first client or bus.
//!
//! # Durations
//! Every duration argument and result is a [`Millis`]: `kotlin.time.Duration` in Kotlin,
//! `Duration` in Swift, whole milliseconds across the FFI. The config schema keeps its
//! `*_ms` keys, and error fields name them (`deadline_ms`) in every language.
//!
//! # Errors
//! Every failure is a [`CourierError`], one variant per core `ErrorKind`, which Kotlin
//! sees as the sealed `CourierException` hierarchy and Swift as the `CourierError` enum.

#![warn(missing_docs)]

mod bus;
mod cancel;
mod client;
mod duration;
mod error;
mod jvm;
mod telemetry;
mod trace;

pub use bus::{
    Batch, BatchMessage, Bus, BusStats, Consumer, Delivery, PublishOptions, PublishResult,
    QueueOptions, Receipt,
};
pub use cancel::CancelToken;
pub use client::{
    Client, ClientStats, EndpointStats, QueryParam, Request, Response, ServiceStats,
    deadline_from_headers,
};
pub use duration::Millis;
pub use error::CourierError;
pub use telemetry::{
    ConfigJson, ConfigPath, LogField, LogLevel, LogRecord, LogSink, TelemetrySettings,
    configure_telemetry, flush_telemetry, log_level, metrics_text, set_log_level, set_log_sink,
};
pub use trace::TraceContext;

uniffi::setup_scaffolding!();

/// Runs `fut` on core's runtime and waits for it from whichever executor polls the
/// returned future (Kotlin's coroutine, Swift's task).
///
/// `fut` is spawned when `run` is called, not when the returned future is first polled:
/// an `async fn` would keep `fut` in its own state as well as in the task (arguments stay
/// in an `async fn`'s state), storing it twice.
///
/// # Cancel safety
/// Dropping the returned future aborts `fut` at its next await point.
fn run<T, F>(fut: F) -> impl Future<Output = Result<T, CourierError>> + Send
where
    F: Future<Output = courierkit::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let task = courierkit::runtime::spawn(fut);
    async move { Ok(task?.await??) }
}

/// Test hook: a core future that panics. The suspend function / async call must throw
/// the internal error, never hang or unwind into the host. Not part of the API.
#[uniffi::export]
pub async fn panic_for_tests() -> Result<(), CourierError> {
    run(courierkit::runtime::panic_for_tests()).await
}
