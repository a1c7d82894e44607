//! The metric pipeline: courier's own OpenTelemetry meter provider (not the process's
//! global one, which a host's SDK may own), read on demand for the Prometheus text and,
//! when an endpoint is set, exported over OTLP/HTTP by a periodic reader.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{Counter, Gauge, Histogram, MeterProvider as _, UpDownCounter};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, PeriodicReader, Pipeline, SdkMeterProvider, Temporality,
};

use crate::error::{Error, Result};
use crate::trace::export::{Post, http_client, otlp_url};

/// Bucket bounds for durations in seconds: the OpenTelemetry HTTP semantic conventions'
/// advice for `http.client.request.duration`, used for every duration here.
const SECONDS_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Every instrument courier records into (names and units in docs/observability.md).
pub(crate) struct Instruments {
    pub http_duration: Histogram<f64>,
    pub operation_duration: Histogram<f64>,
    pub sent: Counter<u64>,
    pub consumed: Counter<u64>,
    pub retries: Counter<u64>,
    pub budget_denied: Counter<u64>,
    pub breaker_state: Gauge<i64>,
    pub breaker_transitions: Counter<u64>,
    pub ejected: Counter<u64>,
    pub dedup_hits: Counter<u64>,
    pub confirm_duration: Histogram<f64>,
    pub rpc_in_flight: UpDownCounter<i64>,
}

impl Instruments {
    fn new(provider: &SdkMeterProvider) -> Instruments {
        let meter = provider.meter_with_scope(
            InstrumentationScope::builder("courier")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build()
        };
        let count = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        Instruments {
            http_duration: seconds(
                "http.client.request.duration",
                "Duration of each HTTP attempt",
            ),
            operation_duration: seconds(
                "messaging.client.operation.duration",
                "Duration of a publish until the broker confirmed or refused it",
            ),
            sent: count(
                "messaging.client.sent.messages",
                "{message}",
                "Messages published",
            ),
            consumed: count(
                "messaging.client.consumed.messages",
                "{message}",
                "Messages delivered to a consumer",
            ),
            retries: count(
                "courier.retry.attempts",
                "{attempt}",
                "Attempts after the first",
            ),
            budget_denied: count(
                "courier.retry.budget.denied",
                "{retry}",
                "Retries the retry budget refused",
            ),
            breaker_state: meter
                .i64_gauge("courier.breaker.state")
                .with_unit("{state}")
                .with_description("Circuit breaker state: 0 closed, 1 open, 2 half-open")
                .build(),
            breaker_transitions: count(
                "courier.breaker.transitions",
                "{transition}",
                "Circuit breaker state changes",
            ),
            ejected: count(
                "courier.endpoint.ejected",
                "{ejection}",
                "Endpoints ejected by outlier detection",
            ),
            dedup_hits: count(
                "courier.dedup.hits",
                "{message}",
                "Deliveries skipped as duplicates",
            ),
            confirm_duration: seconds(
                "courier.publish.confirm.duration",
                "Time from publish to the broker's confirm, confirmed publishes only",
            ),
            rpc_in_flight: meter
                .i64_up_down_counter("courier.rpc.in_flight")
                .with_unit("{request}")
                .with_description("Requests awaiting their reply")
                .build(),
        }
    }
}

/// The live pipeline.
struct Meters {
    provider: SdkMeterProvider,
    reader: Arc<ManualReader>,
    instruments: Arc<Instruments>,
}

static METERS: RwLock<Option<Meters>> = RwLock::new(None);

/// The instruments when metrics are on.
pub(crate) fn instruments() -> Option<Arc<Instruments>> {
    METERS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|m| Arc::clone(&m.instruments))
}

/// Starts (or restarts, readings from zero) the pipeline: a reader for the Prometheus
/// text, plus an OTLP exporter every `interval` when `endpoint` is set. `None` for
/// `resource` turns metrics off.
pub(crate) fn start(
    resource: Option<Resource>,
    endpoint: Option<&str>,
    interval: Duration,
) -> Result<()> {
    let next = match resource {
        None => None,
        Some(resource) => {
            let reader = Arc::new(ManualReader::builder().build());
            let mut builder = SdkMeterProvider::builder()
                .with_resource(resource)
                .with_reader(Shared(Arc::clone(&reader)));
            if let Some(endpoint) = endpoint {
                let exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpJson)
                    .with_endpoint(otlp_url("metrics_endpoint", endpoint)?.as_str())
                    .with_http_client(Post(http_client()?))
                    .with_temporality(Temporality::Cumulative)
                    .build()
                    .map_err(|e| Error::config("metrics_endpoint", e.to_string()))?;
                builder = builder.with_reader(
                    PeriodicReader::builder(exporter)
                        .with_interval(interval)
                        .build(),
                );
            }
            let provider = builder.build();
            let instruments = Arc::new(Instruments::new(&provider));
            Some(Meters {
                provider,
                reader,
                instruments,
            })
        }
    };
    let old = std::mem::replace(
        &mut *METERS.write().unwrap_or_else(PoisonError::into_inner),
        next,
    );
    if let Some(old) = old {
        // Its last readings go to its exporter; a collector that is gone costs the
        // exporter's timeout, on this thread, once.
        let _ = old.provider.shutdown();
    }
    Ok(())
}

/// Exports the current readings now (when exporting).
pub(crate) fn flush() -> Result<()> {
    let provider = METERS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|m| m.provider.clone());
    match provider {
        Some(provider) => provider.force_flush().map_err(|e| Error::Connect {
            operation: "otlp export",
            target: "collector".to_owned(),
            reason: e.to_string(),
            source: None,
        }),
        None => Ok(()),
    }
}

/// The current readings, or `None` when metrics are off.
pub(crate) fn collect() -> Option<ResourceMetrics> {
    let reader = METERS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|m| Arc::clone(&m.reader))?;
    let mut readings = ResourceMetrics::default();
    reader.collect(&mut readings).ok()?;
    Some(readings)
}

/// The manual reader, shared between the provider (which owns its readers) and
/// [`collect`].
struct Shared(Arc<ManualReader>);

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl MetricReader for Shared {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}
