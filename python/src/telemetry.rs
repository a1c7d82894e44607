//! Telemetry natives: core's log records into Python `logging` (through a handler the
//! package passes in), the telemetry settings, flush and the Prometheus text. Policy
//! (levels, variables, limits) is core's; this converts.

use std::sync::Arc;

use courierkit::telemetry::{self, LogLevel, LogRecord, LogSink, Settings};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::IntoPyResult;
use crate::wait::enter_python;

/// Hands each record to the package's handler (`courierkit._telemetry._handle`), which
/// logs it on `courier.<target>`. Called on courier's log thread, never a core worker;
/// the GIL is held for one record at a time.
struct Handler(Py<PyAny>);

impl LogSink for Handler {
    fn log(&self, record: LogRecord) {
        enter_python(|| {
            Python::attach(|py| {
                let fields = PyDict::new(py);
                for (key, value) in &record.fields {
                    // A dict of str to str cannot fail to take another item.
                    let _ = fields.set_item(key, value);
                }
                let args = (record.level.as_str(), record.target, record.message, fields);
                if let Err(e) = self.0.call1(py, args) {
                    // A failing handler or logging configuration is the host's to see.
                    e.print(py);
                }
            });
        });
    }
}

/// Installs the handler and courier's telemetry from the environment. Returns the
/// configuration error as text (the package logs it) instead of failing the import.
#[pyfunction]
pub(crate) fn _install_telemetry(handler: Py<PyAny>) -> Option<String> {
    telemetry::set_log_sink(Some(Arc::new(Handler(handler))));
    telemetry::install().err().map(|e| e.to_string())
}

/// Sets the level core records are produced at (`error` ... `trace`, `off`).
#[pyfunction]
pub(crate) fn set_log_level(level: &str) -> PyResult<()> {
    telemetry::set_log_level(LogLevel::parse("level", level).py()?);
    Ok(())
}

/// The level core records are produced at.
#[pyfunction]
pub(crate) fn log_level() -> &'static str {
    telemetry::log_level().as_str()
}

/// `configure_telemetry`'s keyword arguments, as one dict.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct TelemetryArg {
    traces_endpoint: Option<String>,
    metrics_endpoint: Option<String>,
    service_name: Option<String>,
    sampler: Option<String>,
    sampler_arg: Option<String>,
    metrics: Option<bool>,
    metrics_interval_ms: Option<u64>,
}

/// Replaces the telemetry settings (endpoints, service name, sampler, metrics).
#[pyfunction]
pub(crate) fn configure_telemetry(options: TelemetryArg) -> PyResult<()> {
    let settings = Settings::from_options(telemetry::Options {
        traces_endpoint: options.traces_endpoint,
        metrics_endpoint: options.metrics_endpoint,
        service_name: options.service_name,
        sampler: options.sampler,
        sampler_arg: options.sampler_arg,
        metrics: options.metrics,
        metrics_interval_ms: options.metrics_interval_ms,
    })
    .py()?;
    telemetry::configure(&settings).py()
}

/// Exports the spans and metrics recorded so far, GIL released.
#[pyfunction]
pub(crate) fn flush_telemetry(py: Python<'_>) -> PyResult<()> {
    py.detach(telemetry::flush).py()
}

/// The metric readings in the Prometheus text format.
#[pyfunction]
pub(crate) fn metrics_text(py: Python<'_>) -> String {
    py.detach(telemetry::metrics_text)
}
