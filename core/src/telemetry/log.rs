//! Core log events handed to the host's logger (Python `logging`, a Node callback, SLF4J,
//! a Swift sink).
//!
//! A `tracing` layer takes courier's events (targets `courierkit::*`) at or above the
//! level set by `COURIER_LOG` or [`set_log_level`], turns each into a [`LogRecord`] on
//! the thread that logged it, and queues it; one thread of its own hands the records to
//! the [`LogSink`]. A core worker therefore never waits on the host (a GIL, a JVM attach,
//! the event loop): when the queue is full a record is dropped and counted, and the
//! next record delivered says how many were. Events below the level cost nothing: the
//! layer's level is the subscriber's max level hint, so `tracing`'s macros skip them
//! before formatting anything.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

use crate::error::{Error, Result};

/// Records waiting for the sink; more are dropped (and counted) rather than blocking a
/// core thread on a slow host logger.
const QUEUE: usize = 4096;

/// The environment variable giving the initial level: `off`, `error`, `warn`, `info`,
/// `debug` or `trace`.
pub const LOG_ENV: &str = "COURIER_LOG";

/// A log level, the five `tracing` levels plus `Off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing is forwarded.
    Off = 0,
    /// Failures the caller sees or that lose work.
    Error = 1,
    /// Recoverable trouble: reconnects, refused redeclarations, unreachable stores.
    Warn = 2,
    /// State changes: breaker transitions, ejections, reconnected.
    Info = 3,
    /// Each retry, duplicate, dropped reply.
    Debug = 4,
    /// Everything courier logs.
    Trace = 5,
}

impl LogLevel {
    /// The lowercase name (`warn`), as `COURIER_LOG` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// Parses a level name (case-insensitive; `warning` too).
    ///
    /// # Errors
    /// [`Error::Config`] naming `field` for any other word.
    pub fn parse(field: &str, text: &str) -> Result<LogLevel> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => {
                return Err(Error::config(
                    field,
                    format!("{text:?} is not one of off, error, warn, info, debug, trace"),
                ));
            }
        })
    }

    fn from_u8(value: u8) -> LogLevel {
        match value {
            0 => LogLevel::Off,
            1 => LogLevel::Error,
            2 => LogLevel::Warn,
            3 => LogLevel::Info,
            4 => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }

    fn of(level: &Level) -> LogLevel {
        match *level {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        }
    }

    pub(crate) fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Off => LevelFilter::OFF,
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }
}

/// One core log event, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Its level (never `Off`).
    pub level: LogLevel,
    /// The module that logged it, `courierkit::` prefix removed (`messaging::amqp::link`):
    /// hosts append it to their `courier` logger's name.
    pub target: String,
    /// The message followed by its fields, `key=value` separated by spaces.
    pub message: String,
    /// The fields alone, in order, for hosts with structured logging.
    pub fields: Vec<(String, String)>,
}

/// Where records go: implemented by each binding over its language's logger. Called
/// from courier's log thread, one record at a time.
pub trait LogSink: Send + Sync {
    /// Takes one record. A panic here is caught and the record lost.
    fn log(&self, record: LogRecord);
}

/// The level records are forwarded at; `COURIER_LOG` until [`set_log_level`] changes it.
pub fn log_level() -> LogLevel {
    LogLevel::from_u8(level_cell().load(Ordering::Relaxed))
}

/// Sets the level records are forwarded at, for every client and bus of the process.
pub fn set_log_level(level: LogLevel) {
    level_cell().store(level as u8, Ordering::Relaxed);
    // The subscriber's max level hint changed: let `tracing` recompute which callsites
    // are enabled, so the macros below the level stay free.
    tracing::callsite::rebuild_interest_cache();
}

/// Sends every record from now on to `sink` (replacing any earlier one); `None` stops
/// forwarding. Records already queued go to the new sink.
pub fn set_log_sink(sink: Option<Arc<dyn LogSink>>) {
    *SINK.write().unwrap_or_else(PoisonError::into_inner) = sink.clone();
    if sink.is_some() {
        queue();
    }
}

static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);
static DROPPED: AtomicU64 = AtomicU64::new(0);

fn level_cell() -> &'static AtomicU8 {
    static LEVEL: OnceLock<AtomicU8> = OnceLock::new();
    LEVEL.get_or_init(|| {
        // An unreadable COURIER_LOG is reported once the sink exists; warn until then.
        let level = std::env::var(LOG_ENV)
            .ok()
            .and_then(|text| LogLevel::parse(LOG_ENV, &text).ok())
            .unwrap_or(LogLevel::Warn);
        AtomicU8::new(level as u8)
    })
}

/// The queue to the log thread, started on first use.
fn queue() -> &'static SyncSender<LogRecord> {
    static QUEUE_TX: OnceLock<SyncSender<LogRecord>> = OnceLock::new();
    QUEUE_TX.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let rx = Mutex::new(rx);
        // If the thread cannot start, records pile up to QUEUE and are then dropped.
        let _ = std::thread::Builder::new()
            .name("courier-log".into())
            .spawn(move || deliver(&rx));
        tx
    })
}

fn deliver(rx: &Mutex<Receiver<LogRecord>>) {
    let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
    while let Ok(record) = rx.recv() {
        let Some(sink) = SINK.read().unwrap_or_else(PoisonError::into_inner).clone() else {
            continue;
        };
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let notice = LogRecord {
                level: LogLevel::Warn,
                target: "telemetry::log".into(),
                message: format!("{dropped} log records dropped: the host logger fell behind"),
                fields: vec![("dropped".into(), dropped.to_string())],
            };
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.log(notice)));
        }
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.log(record)));
    }
}

/// The layer: add it to the subscriber (bindings do, in [`super::install`]).
#[derive(Debug, Default)]
pub struct LogLayer;

impl<S: Subscriber> Layer<S> for LogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        // Spans pass (other layers export them); events only at the level.
        metadata.is_span() || LogLevel::of(metadata.level()) <= log_level()
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let Some(target) = metadata.target().strip_prefix("courierkit") else {
            return;
        };
        let level = LogLevel::of(metadata.level());
        if level > log_level() || SINK.read().map_or(true, |sink| sink.is_none()) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut message = fields.message;
        for (key, value) in &fields.pairs {
            let _ = write!(message, " {key}={value}");
        }
        let record = LogRecord {
            level,
            target: target.trim_start_matches("::").to_owned(),
            message,
            fields: fields.pairs,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = queue().try_send(record)
        {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(log_level().filter())
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.pairs.push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%` fields and the message's format_args arrive here with Display formatting.
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.pairs.push((field.name().to_owned(), text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_by_name_and_refuse_others_naming_the_field() {
        assert_eq!(LogLevel::parse("x", "WARNING").unwrap(), LogLevel::Warn);
        assert_eq!(LogLevel::parse("x", " debug ").unwrap(), LogLevel::Debug);
        let e = LogLevel::parse("COURIER_LOG", "loud")
            .unwrap_err()
            .to_string();
        assert!(e.contains("COURIER_LOG") && e.contains("loud"), "{e}");
        for level in [
            LogLevel::Off,
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ] {
            assert_eq!(LogLevel::parse("x", level.as_str()).unwrap(), level);
            assert_eq!(LogLevel::from_u8(level as u8), level);
        }
    }
}
