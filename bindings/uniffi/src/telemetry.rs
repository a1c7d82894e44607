//! Telemetry: core's log records handed to the host's logger through a foreign
//! [`LogSink`], the log level, the export settings, flush and the Prometheus text.
//!
//! Policy (levels, variables, redaction, the log thread) is core's
//! (`courierkit::telemetry`); this converts types and maps errors.
//!
//! # Installing
//! Core's [`install`](courierkit::telemetry::install) (courier's global `tracing`
//! subscriber, then the settings from the OpenTelemetry environment variables) runs once,
//! before the first client or bus: every constructor and every function here calls
//! [`install`]. When the environment holds an unusable value the defaults stay in force
//! and the error goes to the sink as one `warn` record (target `telemetry`), never to a
//! constructor.
//!
//! # The sink
//! Core calls the sink on its own log thread (`courier-log`), one record at a time, and
//! never from a core worker: a slow host logger cannot stall I/O. A sink that throws or
//! panics loses that record only (core catches the unwind; uniffi turns a foreign
//! exception into one). Records carry no secrets: core redacts URLs and never logs
//! headers or bodies.
//!
//! Kotlin's `CourierLogging` and Swift's `CourierLogging` install a default sink (SLF4J or
//! java.util.logging; `os_log`) the first time a `Client` or `Bus` is made: their config
//! parameters are [`ConfigJson`] and [`ConfigPath`], whose foreign converters
//! (uniffi.toml) call it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use courierkit::telemetry::{self, Settings};

use crate::duration::Millis;
use crate::error::CourierError;

/// A config document as JSON text (`Client(configJson)`, `Bus.connect(configJson)`).
///
/// A `String` in Kotlin and Swift (a type alias): a custom type only so that its foreign
/// converter (uniffi.toml) can install the default log sink before the first client or
/// bus exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigJson(pub String);
uniffi::custom_newtype!(ConfigJson, String);

/// A config file's path (`Client.fromFile(path)`); a `String` in Kotlin and Swift, as
/// [`ConfigJson`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath(pub String);
uniffi::custom_newtype!(ConfigPath, String);

/// A log level: the five levels of core's log events, plus `Off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, uniffi::Enum)]
pub enum LogLevel {
    /// Nothing is forwarded.
    Off,
    /// Failures the caller sees or that lose work.
    Error,
    /// Recoverable trouble: reconnects, refused redeclarations, unreachable stores.
    Warn,
    /// State changes: breaker transitions, ejections, reconnected.
    Info,
    /// Each retry, duplicate, dropped reply.
    Debug,
    /// Everything courier logs.
    Trace,
}

impl From<telemetry::LogLevel> for LogLevel {
    fn from(level: telemetry::LogLevel) -> Self {
        match level {
            telemetry::LogLevel::Off => LogLevel::Off,
            telemetry::LogLevel::Error => LogLevel::Error,
            telemetry::LogLevel::Warn => LogLevel::Warn,
            telemetry::LogLevel::Info => LogLevel::Info,
            telemetry::LogLevel::Debug => LogLevel::Debug,
            telemetry::LogLevel::Trace => LogLevel::Trace,
        }
    }
}

impl From<LogLevel> for telemetry::LogLevel {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Off => telemetry::LogLevel::Off,
            LogLevel::Error => telemetry::LogLevel::Error,
            LogLevel::Warn => telemetry::LogLevel::Warn,
            LogLevel::Info => telemetry::LogLevel::Info,
            LogLevel::Debug => telemetry::LogLevel::Debug,
            LogLevel::Trace => telemetry::LogLevel::Trace,
        }
    }
}

/// One field of a [`LogRecord`]. A list of pairs rather than a map, so the order core
/// logged them in is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct LogField {
    /// The field's name (`service`, `attempt`, `error`).
    pub key: String,
    /// Its value, formatted.
    pub value: String,
}

/// One core log event, formatted by core.
#[derive(Debug, Clone, PartialEq, Eq, Hash, uniffi::Record)]
pub struct LogRecord {
    /// Its level (never `Off`).
    pub level: LogLevel,
    /// The module that logged it without the crate name (`http::call`,
    /// `messaging::amqp::link`): hosts log it on `courier.` + the target with `::`
    /// replaced by `.` (`courier.http.call`).
    pub target: String,
    /// The message followed by its fields, ` key=value` each.
    pub message: String,
    /// The fields alone, in order, for structured loggers.
    pub fields: Vec<LogField>,
}

impl From<telemetry::LogRecord> for LogRecord {
    fn from(record: telemetry::LogRecord) -> Self {
        LogRecord {
            level: record.level.into(),
            target: record.target,
            message: record.message,
            fields: record
                .fields
                .into_iter()
                .map(|(key, value)| LogField { key, value })
                .collect(),
        }
    }
}

/// Where core's log records go: implemented in Kotlin or Swift over the host's logger.
/// Called on courier's log thread, one record at a time; a record it throws on is lost.
#[uniffi::export(foreign)]
pub trait LogSink: Send + Sync {
    /// Takes one record.
    fn log(&self, record: LogRecord);
}

/// The foreign sink as core's.
struct Bridge(Arc<dyn LogSink>);

impl telemetry::LogSink for Bridge {
    fn log(&self, record: telemetry::LogRecord) {
        // Core catches a panic here too (a foreign exception becomes one); catching it
        // in the bridge as well keeps it off core's log thread whatever core does.
        let sink = &self.0;
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sink.log(record.into());
        }));
    }
}

/// The foreign sink in force, for reporting an install error to it.
static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);
/// The error core's `install` returned, as text; `None` inside when it succeeded.
static INSTALLED: OnceLock<Option<String>> = OnceLock::new();
/// Whether a sink was told about that error.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Installs courier's telemetry once (see the module docs); cheap afterwards.
pub(crate) fn install() {
    if let Some(error) = INSTALLED.get_or_init(|| telemetry::install().err().map(|e| e.to_string()))
    {
        report(error);
    }
}

/// Tells the sink in force, once, that the environment's settings were not applied.
fn report(error: &str) {
    if telemetry::log_level() < telemetry::LogLevel::Warn {
        return;
    }
    let Some(sink) = SINK.read().unwrap_or_else(PoisonError::into_inner).clone() else {
        return;
    };
    if REPORTED.swap(true, Ordering::AcqRel) {
        return;
    }
    let record = install_error_record(error);
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.log(record)));
}

fn install_error_record(error: &str) -> LogRecord {
    LogRecord {
        level: LogLevel::Warn,
        target: "telemetry".into(),
        message: format!(
            "telemetry settings from the environment not applied, defaults in force error={error}"
        ),
        fields: vec![LogField {
            key: "error".into(),
            value: error.into(),
        }],
    }
}

/// Sends core's log records to `sink` from now on (replacing any earlier one); none
/// stops forwarding. Records already queued go to the new sink.
///
/// Kotlin and Swift call this `setLogSinkNative`: use `Courier.setLogSink`, which keeps the
/// default sink from replacing yours later.
#[uniffi::export]
pub fn set_log_sink(sink: Option<Arc<dyn LogSink>>) {
    *SINK.write().unwrap_or_else(PoisonError::into_inner) = sink.clone();
    telemetry::set_log_sink(sink.map(|s| Arc::new(Bridge(s)) as Arc<dyn telemetry::LogSink>));
    install();
}

/// Sets the level records are produced at, for every client and bus of the process
/// (the initial one is `COURIER_LOG`, else `Warn`). Events below it are skipped before
/// anything is formatted.
#[uniffi::export]
pub fn set_log_level(level: LogLevel) {
    install();
    telemetry::set_log_level(level.into());
}

/// The level records are produced at.
#[uniffi::export]
pub fn log_level() -> LogLevel {
    install();
    telemetry::log_level().into()
}

/// What to export where, for [`configure_telemetry`]. Every field has a default: nothing
/// exported, metrics recorded (for `metrics_text`), every new trace sampled.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TelemetrySettings {
    /// The full OTLP/HTTP traces URL (`http://collector:4318/v1/traces`); none: spans are
    /// not exported.
    #[uniffi(default = None)]
    pub traces_endpoint: Option<String>,
    /// The full OTLP/HTTP metrics URL (`.../v1/metrics`); none: metrics are not exported
    /// (still readable with `metrics_text` while `metrics` is on).
    #[uniffi(default = None)]
    pub metrics_endpoint: Option<String>,
    /// `service.name` of the exported resource; none: `OTEL_SERVICE_NAME`, else the
    /// OpenTelemetry default (`unknown_service`).
    #[uniffi(default = None)]
    pub service_name: Option<String>,
    /// How the traces courier starts are sampled, as `OTEL_TRACES_SAMPLER` names it:
    /// `always_on` (none), `always_off`, `traceidratio` or their `parentbased_` forms.
    /// A caller's context keeps its own sampled flag.
    #[uniffi(default = None)]
    pub sampler: Option<String>,
    /// The sampler's argument, as `OTEL_TRACES_SAMPLER_ARG`: the ratio for
    /// `traceidratio` (none: 1.0).
    #[uniffi(default = None)]
    pub sampler_arg: Option<String>,
    /// Whether metrics are recorded at all.
    #[uniffi(default = true)]
    pub metrics: bool,
    /// How often metrics are exported; none: 60 s.
    #[uniffi(default = None)]
    pub metrics_interval: Option<Millis>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            traces_endpoint: None,
            metrics_endpoint: None,
            service_name: None,
            sampler: None,
            sampler_arg: None,
            metrics: true,
            metrics_interval: None,
        }
    }
}

impl TelemetrySettings {
    /// Core's settings; core names this record's fields in its errors.
    fn to_core(&self) -> Result<Settings, CourierError> {
        Ok(Settings::from_options(telemetry::Options {
            traces_endpoint: self.traces_endpoint.clone(),
            metrics_endpoint: self.metrics_endpoint.clone(),
            service_name: self.service_name.clone(),
            sampler: self.sampler.clone(),
            sampler_arg: self.sampler_arg.clone(),
            metrics: Some(self.metrics),
            metrics_interval_ms: Millis::optional(self.metrics_interval, "metrics_interval_ms")?
                .map(|every| u64::try_from(every.as_millis()).unwrap_or(u64::MAX)),
        })?)
    }
}

/// Replaces the telemetry settings of the whole process (the environment's, applied at
/// install, until then): the sampler, the span exporter and the metric pipeline, whose
/// readings restart from zero.
///
/// # Errors
/// `Config` naming the [`TelemetrySettings`] field (`traces_endpoint`,
/// `metrics_endpoint`, `sampler`, `sampler_arg`, `metrics_interval_ms`) whose value is
/// unusable, such as an endpoint that is not an http(s) URL; nothing changes then.
#[uniffi::export(default(settings))]
pub fn configure_telemetry(settings: TelemetrySettings) -> Result<(), CourierError> {
    install();
    let settings = settings.to_core()?;
    Ok(telemetry::configure(&settings)?)
}

/// Exports the finished spans and the current metric readings now, waiting for the
/// collectors (on a blocking thread of courier's runtime, not the caller's). Call it
/// before the process exits; `Bus.close` does it too. Kotlin: `suspend`; Swift:
/// `async throws`.
///
/// # Errors
/// `Connect` when a collector cannot be reached or refuses the data.
#[uniffi::export]
pub async fn flush_telemetry() -> Result<(), CourierError> {
    install();
    let handle = courierkit::runtime::handle()?;
    match handle.spawn_blocking(telemetry::flush).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(CourierError::Internal {
            detail: format!("telemetry flush failed: {e}"),
        }),
    }
}

/// The metric readings in the Prometheus text exposition format (names as Prometheus
/// spells them: `http_client_request_duration_seconds`); empty while metrics are off.
#[uniffi::export]
pub fn metrics_text() -> String {
    install();
    telemetry::metrics_text()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn records_keep_level_target_message_and_field_order() {
        let record = LogRecord::from(telemetry::LogRecord {
            level: telemetry::LogLevel::Debug,
            target: "http::call".into(),
            message: "retry service=a attempt=2".into(),
            fields: vec![
                ("service".into(), "a".into()),
                ("attempt".into(), "2".into()),
            ],
        });
        assert_eq!(record.level, LogLevel::Debug);
        assert_eq!(record.target, "http::call");
        let keys: Vec<&str> = record.fields.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["service", "attempt"]);
    }

    #[test]
    fn levels_convert_both_ways_in_order() {
        let all = [
            LogLevel::Off,
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ];
        for level in all {
            let core = telemetry::LogLevel::from(level);
            assert_eq!(LogLevel::from(core), level);
            assert_eq!(
                telemetry::LogLevel::parse("x", &format!("{level:?}")).unwrap(),
                core
            );
        }
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    fn field_of(settings: TelemetrySettings) -> String {
        let result = settings
            .to_core()
            .and_then(|s| Ok(telemetry::configure(&s)?));
        match result {
            Err(CourierError::Config { field, .. }) => field,
            other => panic!("expected Config, got {other:?}"),
        }
    }

    /// Core names the exporter or the variable; callers of `configure_telemetry` see the
    /// field they set. (Every case fails before anything is applied.)
    #[test]
    fn unusable_settings_name_their_field() {
        let cases = [
            (
                "traces_endpoint",
                TelemetrySettings {
                    traces_endpoint: Some("ftp://x".into()),
                    ..TelemetrySettings::default()
                },
            ),
            (
                "metrics_endpoint",
                TelemetrySettings {
                    metrics_endpoint: Some("not a url".into()),
                    ..TelemetrySettings::default()
                },
            ),
            (
                "sampler",
                TelemetrySettings {
                    sampler: Some("xray".into()),
                    ..TelemetrySettings::default()
                },
            ),
            (
                "sampler_arg",
                TelemetrySettings {
                    sampler: Some("traceidratio".into()),
                    sampler_arg: Some("2".into()),
                    ..TelemetrySettings::default()
                },
            ),
            (
                "metrics_interval_ms",
                TelemetrySettings {
                    metrics_interval: Some(Millis(0)),
                    ..TelemetrySettings::default()
                },
            ),
        ];
        for (want, settings) in cases {
            assert_eq!(field_of(settings), want);
        }
    }

    struct Panicking;

    impl LogSink for Panicking {
        fn log(&self, _: LogRecord) {
            panic!("host logger failed");
        }
    }

    #[derive(Default)]
    struct Captured(Mutex<Vec<LogRecord>>);

    impl LogSink for Captured {
        fn log(&self, record: LogRecord) {
            self.0.lock().unwrap().push(record);
        }
    }

    #[test]
    fn a_panicking_sink_loses_the_record_only() {
        let bridge = Bridge(Arc::new(Panicking));
        telemetry::LogSink::log(
            &bridge,
            telemetry::LogRecord {
                level: telemetry::LogLevel::Warn,
                target: "t".into(),
                message: "m".into(),
                fields: Vec::new(),
            },
        );
        let captured = Arc::new(Captured::default());
        let bridge = Bridge(captured.clone());
        telemetry::LogSink::log(
            &bridge,
            telemetry::LogRecord {
                level: telemetry::LogLevel::Warn,
                target: "t".into(),
                message: "after".into(),
                fields: Vec::new(),
            },
        );
        assert_eq!(captured.0.lock().unwrap()[0].message, "after");
    }

    #[test]
    fn an_install_error_is_one_warn_record_naming_the_error() {
        let record = install_error_record("COURIER_LOG: \"loud\" is not one of off, ...");
        assert_eq!(record.level, LogLevel::Warn);
        assert_eq!(record.target, "telemetry");
        assert!(record.message.contains("defaults in force"));
        assert!(
            record
                .message
                .ends_with(&format!(" error={}", record.fields[0].value))
        );
    }
}
