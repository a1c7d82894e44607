//! Telemetry natives: core's log records to JavaScript (the `setLogger` hook and the
//! `courier:log` diagnostics channel, both in `index.js`), the log level, the exporter
//! settings, flush and the Prometheus text. Policy (levels, variables, endpoints) is
//! core's; this converts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use courierkit::telemetry::{self, LogLevel, LogRecord, LogSink, Settings};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{JsValue, sys};
use napi_derive::napi;

use crate::error::OrThrow;
use crate::numbers;
use crate::promise;

/// Records waiting for the JavaScript thread; more are dropped (and counted), never
/// waited for: the event loop may be busy for a long time.
const QUEUE: usize = 1024;

/// A record as JavaScript sees it: `{ level, target, message, fields }`, `fields` an
/// object of strings in the order core recorded them.
pub struct JsRecord(LogRecord);

impl ToNapiValue for JsRecord {
    unsafe fn to_napi_value(raw: sys::napi_env, record: Self) -> Result<sys::napi_value> {
        let env = Env::from_raw(raw);
        let LogRecord {
            level,
            target,
            message,
            fields,
        } = record.0;
        let mut pairs = Object::new(&env)?;
        for (key, value) in fields {
            // Field names are Rust identifiers; this one would set the prototype.
            if key != "__proto__" {
                pairs.set_named_property(&key, value)?;
            }
        }
        let mut object = Object::new(&env)?;
        object.set_named_property("level", level.as_str())?;
        object.set_named_property("target", target)?;
        object.set_named_property("message", message)?;
        object.set_named_property("fields", pairs)?;
        Ok(object.raw())
    }
}

/// The JavaScript function records go to: unref'd (`Weak`), so it never keeps the
/// process alive, and called without blocking into a bounded queue.
type Callback = ThreadsafeFunction<LogRecord, (), JsRecord, Status, false, true, QUEUE>;

/// One callback per JavaScript environment (the main thread, each worker that loaded
/// courier), each given every record.
struct Sinks {
    callbacks: Mutex<Vec<(usize, Arc<Callback>)>>,
    /// Records the JavaScript queue had no room for, told with the next one delivered.
    dropped: AtomicU64,
}

fn sinks() -> &'static Arc<Sinks> {
    static SINKS: OnceLock<Arc<Sinks>> = OnceLock::new();
    SINKS.get_or_init(|| {
        Arc::new(Sinks {
            callbacks: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        })
    })
}

impl Sinks {
    fn callbacks(&self) -> Vec<(usize, Arc<Callback>)> {
        self.callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts `record` on `callback`'s queue; false when the queue is full.
    fn send(&self, env: usize, callback: &Callback, record: LogRecord) -> bool {
        match callback.call(record, ThreadsafeFunctionCallMode::NonBlocking) {
            Status::Ok => true,
            Status::QueueFull => false,
            _ => {
                // Closing: that environment is gone (a worker that ended).
                self.callbacks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|(id, _)| *id != env);
                true
            }
        }
    }
}

impl LogSink for Sinks {
    fn log(&self, record: LogRecord) {
        for (env, callback) in self.callbacks() {
            let dropped = self.dropped.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                let notice = LogRecord {
                    level: LogLevel::Warn,
                    target: "telemetry::log".into(),
                    message: format!(
                        "{dropped} log records dropped: the JavaScript event loop fell behind"
                    ),
                    fields: vec![("dropped".into(), dropped.to_string())],
                };
                if !self.send(env, &callback, notice) {
                    self.dropped.fetch_add(dropped, Ordering::Relaxed);
                }
            }
            if !self.send(env, &callback, record.clone()) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends every core log record of this process to `callback` on this JavaScript thread,
/// replacing the callback set from this environment before; `null` stops. Records are
/// never waited for: when the thread falls more than 1024 behind, they are dropped and
/// the next one delivered says how many were.
#[napi(
    ts_args_type = "callback: ((record: { level: string; target: string; message: string; fields: Record<string, string> }) => void) | null"
)]
pub fn set_log_sink(env: Env, callback: Option<Function<JsRecord, ()>>) -> Result<()> {
    let id = env.raw() as usize;
    let callback = callback
        .map(|f| {
            f.build_threadsafe_function::<LogRecord>()
                .callee_handled::<false>()
                .weak::<true>()
                .max_queue_size::<QUEUE>()
                .build_callback(|ctx| Ok(JsRecord(ctx.value)))
        })
        .transpose()?;
    let all = sinks();
    let any = {
        let mut callbacks = all.callbacks.lock().unwrap_or_else(PoisonError::into_inner);
        callbacks.retain(|(env, _)| *env != id);
        if let Some(callback) = callback {
            callbacks.push((id, Arc::new(callback)));
        }
        !callbacks.is_empty()
    };
    // With no sink, core skips formatting records at all.
    telemetry::set_log_sink(any.then(|| Arc::clone(all) as Arc<dyn LogSink>));
    Ok(())
}

/// Makes courier's the process's tracing subscriber and configures telemetry from the
/// environment (`OTEL_*`, `COURIER_LOG`, `COURIER_METRICS`). Throws COURIER_CONFIG for
/// an unusable variable; telemetry then stays at its defaults and logging works.
#[napi]
pub fn install_telemetry(env: Env) -> Result<()> {
    telemetry::install().or_throw(&env)
}

/// Sets the level core records are produced at: `off`, `error`, `warn`, `info`,
/// `debug` or `trace`; COURIER_CONFIG on `level` for anything else.
#[napi]
pub fn set_log_level(env: Env, level: String) -> Result<()> {
    telemetry::set_log_level(LogLevel::parse("level", &level).or_throw(&env)?);
    Ok(())
}

#[napi]
pub fn log_level() -> &'static str {
    telemetry::log_level().as_str()
}

/// `configureTelemetry`'s options, named as `index.js` passes them.
#[napi(object)]
pub struct NativeTelemetry {
    pub traces_endpoint: Option<String>,
    pub metrics_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub sampler: Option<String>,
    pub sampler_arg: Option<String>,
    pub metrics: Option<bool>,
    pub metrics_interval_ms: Option<f64>,
}

impl NativeTelemetry {
    /// Core's settings; core names the options in its errors.
    fn into_settings(self) -> courierkit::Result<Settings> {
        let metrics_interval_ms = self
            .metrics_interval_ms
            .map(|ms| numbers::integer("metrics_interval_ms", ms, courierkit::MAX_DURATION_MS))
            .transpose()?;
        Settings::from_options(telemetry::Options {
            traces_endpoint: self.traces_endpoint,
            metrics_endpoint: self.metrics_endpoint,
            service_name: self.service_name,
            sampler: self.sampler,
            sampler_arg: self.sampler_arg,
            metrics: self.metrics,
            metrics_interval_ms,
        })
    }
}

/// Replaces the telemetry settings; options left out take their defaults (nothing
/// exported, metrics on, every 60 s). Off the JavaScript thread: replacing an exporter
/// sends what it holds first.
#[napi(ts_return_type = "Promise<void>")]
pub fn configure_telemetry(env: &Env, options: NativeTelemetry) -> Result<Object<'_>> {
    let settings = options.into_settings().or_throw(env)?;
    promise::blocking(env, "courier-configure", move || {
        telemetry::configure(&settings)
    })
}

/// Exports the finished spans and the current metric readings now; resolves once the
/// collector answered, rejects with COURIER_CONNECT when it could not be reached.
#[napi(ts_return_type = "Promise<void>")]
pub fn flush_telemetry(env: &Env) -> Result<Object<'_>> {
    promise::blocking(env, "courier-flush", telemetry::flush)
}

/// The metric readings in the Prometheus text format (0.0.4); empty when metrics are
/// off.
#[napi]
pub fn metrics_text() -> String {
    telemetry::metrics_text()
}
