//! Turning telemetry on: [`Settings`] from the standard OpenTelemetry environment or
//! from code, [`install`] for hosts without a `tracing` subscriber (every binding), and
//! [`flush`] for shutdown.

use std::sync::{Once, PoisonError, RwLock};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use super::log::{LOG_ENV, LogLayer, LogLevel};
use super::{pipeline, prometheus};
use crate::error::{Error, Result};
use crate::limits::check_duration_ms;
use crate::trace::OtlpLayer;
use crate::trace::{Sampler, set_sampler};

/// The default of `OTEL_METRIC_EXPORT_INTERVAL`.
const METRIC_INTERVAL: Duration = Duration::from_secs(60);

/// What to export where. [`Settings::from_env`] reads the OpenTelemetry variables;
/// the default records metrics (for [`metrics_text`]) and exports nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The full OTLP/HTTP traces URL (`http://collector:4318/v1/traces`); `None`: spans
    /// are not exported.
    pub traces_endpoint: Option<String>,
    /// The full OTLP/HTTP metrics URL (`.../v1/metrics`); `None`: metrics are not
    /// exported (still readable with [`metrics_text`] when `metrics` is on).
    pub metrics_endpoint: Option<String>,
    /// `service.name` of the exported resource; `None`: `OTEL_SERVICE_NAME`, else the
    /// SDK's `unknown_service`.
    pub service_name: Option<String>,
    /// How the traces courier starts are sampled.
    pub sampler: Sampler,
    /// Whether metrics are recorded at all.
    pub metrics: bool,
    /// How often metrics are exported.
    pub metrics_interval: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            traces_endpoint: None,
            metrics_endpoint: None,
            service_name: None,
            sampler: Sampler::AlwaysOn,
            metrics: true,
            metrics_interval: METRIC_INTERVAL,
        }
    }
}

/// The settings a program passes to `configure_telemetry`, as every binding spells
/// them; [`Settings::from_options`] checks them, its errors naming these fields. `None`
/// takes the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// The full OTLP/HTTP traces URL.
    pub traces_endpoint: Option<String>,
    /// The full OTLP/HTTP metrics URL.
    pub metrics_endpoint: Option<String>,
    /// `service.name` of the exported resource.
    pub service_name: Option<String>,
    /// A sampler as `OTEL_TRACES_SAMPLER` names it (`always_on` when `None`; then
    /// `sampler_arg` is not used).
    pub sampler: Option<String>,
    /// The sampler's argument, as `OTEL_TRACES_SAMPLER_ARG`: the ratio for `traceidratio`.
    pub sampler_arg: Option<String>,
    /// Whether metrics are recorded (default on).
    pub metrics: Option<bool>,
    /// How often metrics are exported, in milliseconds (default 60,000).
    pub metrics_interval_ms: Option<u64>,
}

impl Settings {
    /// The settings `options` describe, with the defaults for what they leave out.
    ///
    /// # Errors
    /// [`Error::Config`] naming the option (`sampler`, `sampler_arg`,
    /// `metrics_interval_ms`); the endpoints are checked when applied
    /// ([`configure`]), naming `traces_endpoint` or `metrics_endpoint`.
    pub fn from_options(options: Options) -> Result<Settings> {
        let defaults = Settings::default();
        let sampler = match &options.sampler {
            None => defaults.sampler,
            Some(name) => Sampler::parse_as(
                name,
                options.sampler_arg.as_deref(),
                ["sampler", "sampler_arg"],
            )?,
        };
        let metrics_interval = match options.metrics_interval_ms {
            None => defaults.metrics_interval,
            Some(ms) => {
                check_duration_ms("metrics_interval_ms", ms, false)?;
                Duration::from_millis(ms)
            }
        };
        Ok(Settings {
            traces_endpoint: options.traces_endpoint,
            metrics_endpoint: options.metrics_endpoint,
            service_name: options.service_name,
            sampler,
            metrics: options.metrics.unwrap_or(defaults.metrics),
            metrics_interval,
        })
    }

    /// The settings the environment gives, as the OpenTelemetry SDK specification
    /// defines the variables: `OTEL_SDK_DISABLED`, `OTEL_EXPORTER_OTLP_ENDPOINT` (with
    /// `/v1/traces` and `/v1/metrics` appended), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
    /// and `..._METRICS_ENDPOINT` (used as they are), `OTEL_TRACES_EXPORTER` and
    /// `OTEL_METRICS_EXPORTER` (`none` turns one off), `OTEL_SERVICE_NAME`,
    /// `OTEL_TRACES_SAMPLER` (+ `_ARG`), `OTEL_METRIC_EXPORT_INTERVAL` (ms); and
    /// courier's own `COURIER_METRICS=off` and `COURIER_LOG`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable whose value is unusable.
    pub fn from_env() -> Result<Settings> {
        Settings::from_vars(|name| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        })
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        if let Some(level) = var(LOG_ENV) {
            LogLevel::parse(LOG_ENV, &level)?;
        }
        let sampler = Sampler::parse(
            &var("OTEL_TRACES_SAMPLER").unwrap_or_default(),
            var("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        )?;
        let flag = |name: &str| -> Result<bool> {
            match var(name).map(|v| v.to_ascii_lowercase()).as_deref() {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(other) => Err(Error::config(
                    name,
                    format!("{other:?} is not true or false"),
                )),
            }
        };
        if flag("OTEL_SDK_DISABLED")? {
            return Ok(Settings {
                metrics: false,
                sampler,
                ..Settings::default()
            });
        }
        let base = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        let endpoint = |signal: &str, exporter: &str| -> Result<Option<String>> {
            match var(exporter).as_deref() {
                None | Some("otlp") => {}
                Some("none") => return Ok(None),
                Some(other) => {
                    return Err(Error::config(
                        exporter,
                        format!("{other:?} is not supported: otlp or none"),
                    ));
                }
            }
            let own = format!(
                "OTEL_EXPORTER_OTLP_{}_ENDPOINT",
                signal.to_ascii_uppercase()
            );
            Ok(var(&own).or_else(|| {
                base.as_ref()
                    .map(|b| format!("{}/v1/{signal}", b.trim_end_matches('/')))
            }))
        };
        let metrics_interval = match var("OTEL_METRIC_EXPORT_INTERVAL") {
            None => METRIC_INTERVAL,
            Some(ms) => match ms.parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(Error::config(
                        "OTEL_METRIC_EXPORT_INTERVAL",
                        format!("{ms:?} is not a positive number of milliseconds"),
                    ));
                }
            },
        };
        let metrics = match var("COURIER_METRICS")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(Error::config(
                    "COURIER_METRICS",
                    format!("{other:?} is not on or off"),
                ));
            }
        };
        Ok(Settings {
            traces_endpoint: endpoint("traces", "OTEL_TRACES_EXPORTER")?,
            metrics_endpoint: endpoint("metrics", "OTEL_METRICS_EXPORTER")?,
            service_name: var("OTEL_SERVICE_NAME"),
            sampler,
            metrics,
            metrics_interval,
        })
    }

    fn resource(&self) -> Resource {
        // The builder's detectors read OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
        let builder = Resource::builder();
        match &self.service_name {
            Some(name) => builder.with_service_name(name.clone()).build(),
            None => builder.build(),
        }
    }
}

/// The span exporter in force, behind the global subscriber [`install`] sets.
static SPANS: RwLock<Option<OtlpLayer>> = RwLock::new(None);

/// Applies `settings` from now on: the sampler, the span exporter and the metric
/// pipeline (restarted: readings start from zero). Spans open at the change are
/// exported by the new exporter.
///
/// # Errors
/// [`Error::Config`] for an endpoint that is not an http(s) URL; nothing changes then.
pub fn configure(settings: &Settings) -> Result<()> {
    let resource = settings.resource();
    let spans = settings
        .traces_endpoint
        .as_deref()
        .map(|url| OtlpLayer::with_resource(url, resource.clone()))
        .transpose()?;
    pipeline::start(
        settings.metrics.then_some(resource),
        settings.metrics_endpoint.as_deref(),
        settings.metrics_interval,
    )?;
    set_sampler(settings.sampler);
    let old = std::mem::replace(
        &mut *SPANS.write().unwrap_or_else(PoisonError::into_inner),
        spans,
    );
    if let Some(old) = old {
        // What it still holds goes out now, not at its timeout.
        let _ = old.flush();
    }
    // Whether info-level spans are wanted changed with the exporter.
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

/// For hosts without a `tracing` subscriber of their own (the bindings): makes
/// courier's the process's global subscriber, forwarding log events to the
/// [`LogSink`](super::LogSink) and spans to the exporter [`configure`] sets, then
/// configures from the environment. Later calls do nothing. When another global
/// subscriber is already set, only the configuration is applied.
///
/// # Errors
/// [`Error::Config`] from [`Settings::from_env`]; telemetry then stays at the default
/// (metrics recorded, nothing exported) and logging works.
pub fn install() -> Result<()> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry()
            .with(LogLayer)
            .with(Exporting);
        // Err: the host set a subscriber of its own, which keeps the events.
        let _ = tracing::subscriber::set_global_default(subscriber);
        result = match Settings::from_env() {
            Ok(settings) => configure(&settings),
            Err(e) => configure(&Settings::default()).and(Err(e)),
        };
    });
    result
}

/// Exports every finished span and the current metric readings now, waiting for the
/// collector: call it before the process exits (bindings do at exit and on close).
///
/// # Errors
/// [`Error::Connect`] when a collector cannot be reached or refuses the data.
pub fn flush() -> Result<()> {
    let spans = SPANS.read().unwrap_or_else(PoisonError::into_inner).clone();
    let traced = spans.map_or(Ok(()), |spans| spans.flush());
    traced.and(pipeline::flush())
}

/// [`flush`] on a thread of its own, for closes that must not wait; failures are
/// logged.
pub(crate) fn flush_in_background() {
    let _ = std::thread::Builder::new()
        .name("courier-flush".into())
        .spawn(|| {
            if let Err(e) = flush() {
                tracing::warn!(error = %e, "telemetry export failed");
            }
        });
}

/// The metric readings in the Prometheus text format; empty when metrics are off.
pub fn metrics_text() -> String {
    pipeline::collect()
        .map(|readings| prometheus::render(&readings))
        .unwrap_or_default()
}

/// Hands courier's spans to the exporter in force.
struct Exporting;

impl Exporting {
    fn with<R>(&self, f: impl FnOnce(&OtlpLayer) -> R) -> Option<R> {
        SPANS
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(f)
    }
}

impl<S> Layer<S> for Exporting
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.with(|layer| layer.on_new_span(attrs, id, ctx));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.with(|layer| Layer::<S>::on_record(layer, id, values, ctx));
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.with(|layer| Layer::<S>::on_close(layer, id, ctx));
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // courier's spans are info spans: wanted only while exporting.
        Some(self.with(|_| LevelFilter::INFO).unwrap_or(LevelFilter::OFF))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Settings> {
        Settings::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_standard_variables_give_endpoints_sampler_and_interval() {
        let s = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://m:4318/v1/metrics",
            ),
            ("OTEL_SERVICE_NAME", "orders"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000"),
        ])
        .unwrap();
        assert_eq!(
            s.traces_endpoint.as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            s.metrics_endpoint.as_deref(),
            Some("http://m:4318/v1/metrics")
        );
        assert_eq!(s.service_name.as_deref(), Some("orders"));
        assert_eq!(s.sampler, Sampler::TraceIdRatio(0.5));
        assert_eq!(s.metrics_interval, Duration::from_secs(1));
        assert!(s.metrics);
        assert_eq!(from(&[]).unwrap(), Settings::default());
    }

    #[test]
    fn disabled_or_none_turns_signals_off() {
        let s = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .unwrap();
        assert_eq!((s.traces_endpoint, s.metrics), (None, false));
        let s = from(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("COURIER_METRICS", "off"),
        ])
        .unwrap();
        assert_eq!(s.traces_endpoint, None);
        assert_eq!(
            s.metrics_endpoint.as_deref(),
            Some("http://c:4318/v1/metrics")
        );
        assert!(!s.metrics);
    }

    #[test]
    fn unusable_values_name_their_variable() {
        for (name, value) in [
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
            ("COURIER_METRICS", "maybe"),
            ("COURIER_LOG", "loud"),
            ("OTEL_TRACES_SAMPLER", "xray"),
        ] {
            let e = from(&[(name, value)]).unwrap_err().to_string();
            assert!(e.contains(name), "{name}: {e}");
        }
    }

    #[test]
    fn options_fill_in_defaults_and_errors_name_the_option() {
        let s = Settings::from_options(Options {
            sampler: Some("parentbased_traceidratio".into()),
            sampler_arg: Some("0.25".into()),
            metrics_interval_ms: Some(500),
            ..Options::default()
        })
        .unwrap();
        assert_eq!(s.sampler, Sampler::TraceIdRatio(0.25));
        assert_eq!(s.metrics_interval, Duration::from_millis(500));
        assert!(s.metrics, "metrics default on");
        assert_eq!(
            Settings::from_options(Options::default()).unwrap(),
            Settings::default()
        );
        let field = |options: Options| match Settings::from_options(options).unwrap_err() {
            Error::Config { field, .. } => field,
            other => panic!("{other:?}"),
        };
        let bad_sampler = Options {
            sampler: Some("xray".into()),
            ..Options::default()
        };
        assert_eq!(field(bad_sampler), "sampler");
        let bad_ratio = Options {
            sampler: Some("traceidratio".into()),
            sampler_arg: Some("2".into()),
            ..Options::default()
        };
        assert_eq!(field(bad_ratio), "sampler_arg");
        let zero_interval = Options {
            metrics_interval_ms: Some(0),
            ..Options::default()
        };
        assert_eq!(field(zero_interval), "metrics_interval_ms");
    }
}
