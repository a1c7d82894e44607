//! OTLP export of courier's spans (feature `otlp`, off by default).
//!
//! A `tracing` layer rather than `tracing-opentelemetry`: that bridge gives every span
//! ids of its own, while courier's spans must be exported with the ids courier put on
//! the wire (the `traceparent` an HTTP attempt sent, the context a message carried), or
//! a trace backend could not join them to the other side. The layer reads those ids
//! from the spans' fields and hands finished spans to the OpenTelemetry SDK's batch
//! processor and OTLP/HTTP (JSON) exporter, which posts through courier's own reqwest
//! client: no second HTTP stack or TLS provider.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor,
};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::error::{Error, Result};

/// Exports courier's spans (targets `courierkit::*`) to an OTLP/HTTP collector; add it
/// to the application's `tracing` subscriber. Other spans pass through untouched.
///
/// # Examples
/// ```no_run
/// use tracing_subscriber::prelude::*;
/// if let Some(otlp) = courierkit::OtlpLayer::from_env()? {
///     tracing_subscriber::registry().with(otlp).init();
/// }
/// # Ok::<(), courierkit::Error>(())
/// ```
#[derive(Clone)]
pub struct OtlpLayer {
    processor: Arc<BatchSpanProcessor>,
}

impl std::fmt::Debug for OtlpLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpLayer").finish_non_exhaustive()
    }
}

impl OtlpLayer {
    /// A layer posting to `traces_url`, the full OTLP/HTTP traces URL
    /// (`http://collector:4318/v1/traces`).
    ///
    /// # Errors
    /// [`Error::Config`] when the URL is not http(s) or the exporter cannot be built.
    pub fn new(traces_url: &str) -> Result<OtlpLayer> {
        OtlpLayer::with_resource(traces_url, Resource::builder().build())
    }

    /// As [`OtlpLayer::new`], exporting as `resource` (its `service.name` and the rest).
    ///
    /// # Errors
    /// As [`OtlpLayer::new`].
    pub(crate) fn with_resource(traces_url: &str, resource: Resource) -> Result<OtlpLayer> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(otlp_url("traces_endpoint", traces_url)?.as_str())
            .with_http_client(Post(http_client()?))
            .build()
            .map_err(|e| Error::config("traces_endpoint", e.to_string()))?;
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        processor.set_resource(&resource);
        Ok(OtlpLayer {
            processor: Arc::new(processor),
        })
    }

    /// A layer for the collector the standard variables name:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (with `/v1/traces` appended); `None` when neither
    /// is set, so exporting stays off unless asked for.
    ///
    /// # Errors
    /// As [`OtlpLayer::new`].
    pub fn from_env() -> Result<Option<OtlpLayer>> {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        let url = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(traces), _) => traces,
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        OtlpLayer::new(&url).map(Some)
    }

    /// Exports every finished span now, waiting for the collector's answer.
    ///
    /// # Errors
    /// [`Error::Connect`] when the collector cannot be reached or refuses the batch.
    pub fn flush(&self) -> Result<()> {
        self.processor.force_flush().map_err(|e| Error::Connect {
            operation: "otlp export",
            target: "collector".to_owned(),
            reason: e.to_string(),
            source: None,
        })
    }
}

impl Drop for OtlpLayer {
    fn drop(&mut self) {
        // The last clone ships what is left; the processor's own drop would too, but
        // only after its timeout on a collector that is gone.
        if Arc::strong_count(&self.processor) == 1 {
            let _ = self.processor.shutdown();
        }
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let metadata = attrs.metadata();
        if !metadata.target().starts_with("courier") {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut pending = Pending::new(metadata.name());
        attrs.record(&mut pending);
        span.extensions_mut().insert(pending);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(pending) = span.extensions_mut().get_mut::<Pending>() {
            values.record(pending);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(pending) = span.extensions_mut().remove::<Pending>() else {
            return;
        };
        if let Some(data) = pending.finish() {
            self.processor.on_end(data);
        }
    }
}

/// A courier span while it is open: its wire ids and its attributes.
struct Pending {
    name: Cow<'static, str>,
    kind: SpanKind,
    start: SystemTime,
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    parent_span_id: Option<SpanId>,
    /// The context a CONSUMER span processes (the producer's): its link.
    linked_span_id: Option<SpanId>,
    /// The trace's sampled flag (W3C `traceparent` flags): unsampled spans are not
    /// exported, as the caller's SDK decided.
    sampled: bool,
    error: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Pending {
    fn new(name: &'static str) -> Pending {
        Pending {
            name: Cow::Borrowed(name),
            kind: SpanKind::Internal,
            start: SystemTime::now(),
            trace_id: None,
            span_id: None,
            parent_span_id: None,
            linked_span_id: None,
            sampled: true,
            error: None,
            attributes: Vec::new(),
        }
    }

    fn set(&mut self, name: &'static str, value: String) {
        match name {
            "otel.name" => self.name = Cow::Owned(value),
            "otel.kind" => {
                self.kind = match value.as_str() {
                    "client" => SpanKind::Client,
                    "server" => SpanKind::Server,
                    "producer" => SpanKind::Producer,
                    "consumer" => SpanKind::Consumer,
                    _ => SpanKind::Internal,
                }
            }
            "trace_id" => self.trace_id = TraceId::from_hex(&value).ok(),
            "span_id" => self.span_id = SpanId::from_hex(&value).ok(),
            "parent_span_id" => self.parent_span_id = SpanId::from_hex(&value).ok(),
            "link.span_id" => self.linked_span_id = SpanId::from_hex(&value).ok(),
            _ => {
                if name == "error.type" {
                    self.error = Some(value.clone());
                }
                self.attributes.push(KeyValue::new(name, value));
            }
        }
    }

    /// The exportable span; `None` for a span that carries no trace id or is not
    /// sampled.
    fn finish(self) -> Option<SpanData> {
        let trace_id = self.trace_id.filter(|_| self.sampled)?;
        let context = |span_id| {
            SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            )
        };
        // A CONSUMER span has no id on the wire: it gets one, and is the child of the
        // context it processes, which it also links to.
        let span_id = self
            .span_id
            .unwrap_or_else(|| SpanId::from_bytes(rand::random()));
        let parent = self.parent_span_id.or(self.linked_span_id);
        let mut links = SpanLinks::default();
        if let Some(linked) = self.linked_span_id {
            links.links.push(Link::with_context(context(linked)));
        }
        Some(SpanData {
            span_context: context(span_id),
            parent_span_id: parent.unwrap_or(SpanId::INVALID),
            parent_span_is_remote: parent.is_some(),
            span_kind: self.kind,
            name: self.name,
            start_time: self.start,
            end_time: SystemTime::now(),
            attributes: self.attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links,
            status: match self.error {
                Some(kind) => Status::error(kind),
                None => Status::Unset,
            },
            instrumentation_scope: InstrumentationScope::builder("courier")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        })
    }
}

impl Visit for Pending {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.attributes.push(KeyValue::new(field.name(), v)),
            Err(_) => self.set(field.name(), value.to_string()),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "sampled" {
            self.sampled = value;
            return;
        }
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%` fields arrive here with Display formatting.
        self.set(field.name(), format!("{value:?}"));
    }
}

/// An OTLP/HTTP URL, refused with `field` named unless it is http(s).
pub(crate) fn otlp_url(field: &str, url: &str) -> Result<url::Url> {
    let parsed = url::Url::parse(url).map_err(|e| {
        Error::config(
            field,
            format!("not a URL ({e}): {}", crate::redact_url(url)),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::config(field, "must be an http:// or https:// URL"));
    }
    Ok(parsed)
}

/// The client exports go through: courier's rustls configuration, a 10 s timeout.
pub(crate) fn http_client() -> Result<reqwest::Client> {
    let tls = crate::tls::client_config(None, &[b"http/1.1"])?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the OTLP HTTP client: {e}")))
}

/// Posts the exporter's requests with courier's reqwest client, on courier's runtime:
/// the batch processor calls from a thread of its own, where reqwest cannot run.
#[derive(Debug)]
pub(crate) struct Post(pub(crate) reqwest::Client);

#[async_trait]
impl HttpClient for Post {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> std::result::Result<http::Response<Bytes>, HttpError> {
        let client = self.0.clone();
        let request = reqwest::Request::try_from(request)?;
        let sent = crate::runtime::spawn(async move {
            let response = client.execute(request).await?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response.bytes().await?;
            Ok::<_, HttpError>(answer.body(body)?)
        })?;
        sent.await?
    }
}
