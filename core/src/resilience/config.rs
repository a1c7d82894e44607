//! Retry, budget and breaker settings: data with documented defaults and validation.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::limits::check_duration_ms;

/// When and how often to retry. Defaults: 3 attempts in all, full jitter between 0 and
/// `min(2 s, 50 ms * 2^n)` — the values Envoy, Finagle and the AWS SDKs converge on.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    /// Base of the exponential backoff.
    pub base_delay_ms: u64,
    /// Cap of one backoff sleep (a `Retry-After` may ask for longer; see [`MAX_RETRY_AFTER_MS`]).
    pub max_delay_ms: u64,
    /// Which failures are retried.
    pub retry_on: Vec<RetryOn>,
}

/// The longest `Retry-After` courier honours; a server asking for more gets its
/// response back at once, since a caller holding a request that long is worse off.
pub const MAX_RETRY_AFTER_MS: u64 = 60_000;

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 3,
            base_delay_ms: 50,
            max_delay_ms: 2_000,
            retry_on: vec![
                RetryOn::Connect,
                RetryOn::Reset,
                RetryOn::Timeout,
                RetryOn::Status(408),
                RetryOn::Status(429),
                RetryOn::Status(502),
                RetryOn::Status(503),
                RetryOn::Status(504),
            ],
        }
    }
}

/// A retryable failure class, written in config as `"connect"`, `"reset"`,
/// `"timeout"` or a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// The connection could not be made: nothing reached the server, so even a POST is
    /// safe to retry.
    Connect,
    /// The connection broke after the request may have been written (before or during
    /// the response). Retried only for idempotent requests.
    Reset,
    /// The per-attempt timeout passed. Retried only for idempotent requests.
    Timeout,
    /// The response had this status.
    Status(u16),
}

/// The schema of what [`RetryOn`] reads: a failure class name or a status code.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for RetryOn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RetryOn".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A retryable failure: \"connect\", \"reset\", \"timeout\" or an HTTP status code.",
            "anyOf": [
                {"type": "string", "enum": ["connect", "reset", "timeout"]},
                {"type": "integer", "minimum": 100, "maximum": 599}
            ]
        })
    }
}

impl Serialize for RetryOn {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            RetryOn::Connect => s.serialize_str("connect"),
            RetryOn::Reset => s.serialize_str("reset"),
            RetryOn::Timeout => s.serialize_str("timeout"),
            RetryOn::Status(code) => s.serialize_u16(*code),
        }
    }
}

impl<'de> Deserialize<'de> for RetryOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct RetryOnVisitor;
        impl Visitor<'_> for RetryOnVisitor {
            type Value = RetryOn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"connect\", \"reset\", \"timeout\" or an HTTP status code")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<RetryOn, E> {
                match v {
                    "connect" => Ok(RetryOn::Connect),
                    "reset" => Ok(RetryOn::Reset),
                    "timeout" => Ok(RetryOn::Timeout),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<RetryOn, E> {
                match u16::try_from(v) {
                    Ok(code) if (100..=599).contains(&code) => Ok(RetryOn::Status(code)),
                    _ => Err(E::invalid_value(
                        de::Unexpected::Unsigned(v),
                        &"a status code 100..=599",
                    )),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<RetryOn, E> {
                u64::try_from(v)
                    .map_err(|_| {
                        E::invalid_value(de::Unexpected::Signed(v), &"a status code 100..=599")
                    })
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_any(RetryOnVisitor)
    }
}

/// The retry budget: retries may add at most `ratio` of the requests of the last
/// `window_ms`, plus `min_per_sec` so a quiet service can still retry. Default 20%
/// over 10 s plus 10/s, Finagle's `RetryBudget` defaults.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    /// Retries allowed per request, 0.0..=1.0.
    pub ratio: f64,
    /// Retries allowed per second regardless of traffic.
    pub min_per_sec: u32,
    /// How long a request's deposit counts.
    pub window_ms: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: 0.2,
            min_per_sec: 10,
            window_ms: 10_000,
        }
    }
}

/// The circuit breaker. Default: opens when at least 20 attempts ended in the last 10 s
/// and half failed; stays open 5 s, doubling per consecutive opening up to 60 s (with
/// ±20% jitter so clients do not probe in lockstep); 3 probes decide whether to close.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Sliding window over which the failure ratio is computed.
    pub window_ms: u64,
    /// Attempts that must have ended in the window before the breaker may open.
    pub min_calls: u32,
    /// Failure ratio, 0.0..=1.0, at which it opens.
    pub failure_ratio: f64,
    /// First open period.
    pub open_ms: u64,
    /// Longest open period.
    pub max_open_ms: u64,
    /// Trial attempts let through when half-open; all must succeed to close.
    pub probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window_ms: 10_000,
            min_calls: 20,
            failure_ratio: 0.5,
            open_ms: 5_000,
            max_open_ms: 60_000,
            probes: 3,
        }
    }
}

/// Hedged requests: when an attempt of a request that is safe to repeat has not
/// answered after the hedge delay, the same request goes to another endpoint, and the
/// first answer wins (the others are cancelled, their connections dropped). This cuts
/// the tail a slow endpoint adds (Dean and Barroso, "The Tail at Scale"; Envoy's and
/// gRPC's hedging policies). Each hedge is paid for from the retry budget, so hedging
/// cannot multiply the load on a service that is slow everywhere. Off unless set.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HedgeConfig {
    /// Extra attempts a call may have in flight beside its first, 1..=4. Default 1.
    pub max_hedges: u32,
    /// How long an attempt may go unanswered before a hedge is sent; with `percentile`,
    /// the least delay, and the delay until enough latencies have been seen. Default 50.
    pub delay_ms: u64,
    /// Hedge after this percentile (50.0..=99.9) of the service's recent attempt
    /// latencies instead of a fixed delay (e.g. 95: hedge the slowest 5%). Default none.
    pub percentile: Option<f64>,
}

impl Default for HedgeConfig {
    fn default() -> Self {
        HedgeConfig {
            max_hedges: 1,
            delay_ms: 50,
            percentile: None,
        }
    }
}

/// A client-side rate limit: a token bucket of `burst` tokens refilled at `per_second`;
/// each call takes one before its first attempt (per service, or per `rate_key` a call
/// names). A 429 from the service slows the bucket (see the `rate` module). Off unless
/// set.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Calls per second, above 0 and at most 1 000 000 (fractions allowed: 0.5 is one
    /// call every 2 s).
    pub per_second: f64,
    /// Calls that may go at once after a quiet spell, 1..=1 000 000. Default:
    /// `per_second` rounded up (one second's worth).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Whether a call waits (within its deadline) for a token; `false` fails it at once
    /// with `rate_limited`. Default true.
    #[serde(default = "yes")]
    pub wait: bool,
}

fn yes() -> bool {
    true
}

impl RateLimitConfig {
    /// The bucket's size: `burst`, or one second's worth of calls.
    pub(crate) fn burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| self.per_second.ceil().clamp(1.0, 1_000_000.0) as u32)
    }

    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        check(
            self.per_second > 0.0 && self.per_second <= 1_000_000.0,
            format!("{at}.per_second"),
            format!(
                "must be above 0 and at most 1000000, got {}",
                self.per_second
            ),
        )?;
        match self.burst {
            Some(b) if !(1..=1_000_000).contains(&b) => Err(Error::config(
                format!("{at}.burst"),
                format!("must be 1..=1000000, got {b}"),
            )),
            _ => Ok(()),
        }
    }
}

/// An adaptive concurrency limit in place of the fixed `max_concurrency`: the calls let
/// in flight follow the service's latency (see the `adaptive` module), starting at
/// `initial_limit` and staying within `min_limit..=max_limit`. Off unless set.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveConcurrencyConfig {
    /// The lowest limit, at least 1. Default 1.
    pub min_limit: u32,
    /// The highest limit, at most 1 000 000. Default 1000.
    pub max_limit: u32,
    /// The limit before any call has finished. Default 20.
    pub initial_limit: u32,
}

impl Default for AdaptiveConcurrencyConfig {
    fn default() -> Self {
        AdaptiveConcurrencyConfig {
            min_limit: 1,
            max_limit: 1000,
            initial_limit: 20,
        }
    }
}

impl AdaptiveConcurrencyConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        check(
            (1..=1_000_000).contains(&self.max_limit),
            format!("{at}.max_limit"),
            format!("must be 1..=1000000, got {}", self.max_limit),
        )?;
        check(
            (1..=self.max_limit).contains(&self.min_limit),
            format!("{at}.min_limit"),
            format!(
                "must be 1..=max_limit ({}), got {}",
                self.max_limit, self.min_limit
            ),
        )?;
        check(
            (self.min_limit..=self.max_limit).contains(&self.initial_limit),
            format!("{at}.initial_limit"),
            format!(
                "must be min_limit..=max_limit ({}..={}), got {}",
                self.min_limit, self.max_limit, self.initial_limit
            ),
        )
    }
}

fn check(ok: bool, field: String, reason: impl Into<String>) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::config(field, reason))
    }
}

impl RetryConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        check(
            (1..=10).contains(&self.max_attempts),
            format!("{at}.max_attempts"),
            format!("must be 1..=10, got {}", self.max_attempts),
        )?;
        check(
            self.base_delay_ms >= 1,
            format!("{at}.base_delay_ms"),
            "must be at least 1",
        )?;
        check(
            self.max_delay_ms >= self.base_delay_ms,
            format!("{at}.max_delay_ms"),
            format!("must be at least base_delay_ms ({})", self.base_delay_ms),
        )
    }
}

impl BudgetConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        check(
            (0.0..=1.0).contains(&self.ratio),
            format!("{at}.ratio"),
            format!("must be 0.0..=1.0, got {}", self.ratio),
        )?;
        check(
            (1_000..=3_600_000).contains(&self.window_ms),
            format!("{at}.window_ms"),
            format!("must be 1000..=3600000, got {}", self.window_ms),
        )
    }
}

impl HedgeConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        check(
            (1..=4).contains(&self.max_hedges),
            format!("{at}.max_hedges"),
            format!("must be 1..=4, got {}", self.max_hedges),
        )?;
        check_duration_ms(format!("{at}.delay_ms"), self.delay_ms, false)?;
        match self.percentile {
            Some(p) if !(50.0..=99.9).contains(&p) => Err(Error::config(
                format!("{at}.percentile"),
                format!("must be 50.0..=99.9, got {p}"),
            )),
            _ => Ok(()),
        }
    }
}

impl BreakerConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        check(
            self.window_ms >= 100,
            format!("{at}.window_ms"),
            format!("must be at least 100, got {}", self.window_ms),
        )?;
        check(
            self.min_calls >= 1,
            format!("{at}.min_calls"),
            "must be at least 1",
        )?;
        check(
            self.failure_ratio > 0.0 && self.failure_ratio <= 1.0,
            format!("{at}.failure_ratio"),
            format!("must be in (0.0, 1.0], got {}", self.failure_ratio),
        )?;
        check(
            self.open_ms >= 1,
            format!("{at}.open_ms"),
            "must be at least 1",
        )?;
        check(
            self.max_open_ms >= self.open_ms,
            format!("{at}.max_open_ms"),
            format!("must be at least open_ms ({})", self.open_ms),
        )?;
        check(
            self.probes >= 1,
            format!("{at}.probes"),
            "must be at least 1",
        )
    }
}
