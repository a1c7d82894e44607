//! Size limits: what courier accepts from callers and reads from peers.
//!
//! Every size that crosses courier has a bound, so a hostile or broken peer cannot grow
//! a process without limit and a caller's mistake fails at once with the field named.
//! The configurable limits live in `limits` of [`crate::ClientConfig`] and
//! [`crate::BusConfig`]; AMQP's own (a header name is a short string, at most 255
//! bytes) are constants here. docs/limits.md lists them all.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MIB: u64 = 1024 * 1024;

/// The longest duration any courier API takes (deadlines, timeouts, TTLs), 30 days:
/// longer ones are mistakes (a unit mix-up, a wrapped number), and without a bound
/// `now + duration` overflows. Bindings check the numbers they convert against it.
pub const MAX_DURATION_MS: u64 = 30 * 24 * 3600 * 1000;

/// Checks a duration in milliseconds named `field` is at most [`MAX_DURATION_MS`] and,
/// unless `zero_ok`, at least 1.
///
/// # Errors
/// [`Error::Config`] on `field`.
pub fn check_duration_ms(field: impl Into<String>, ms: u64, zero_ok: bool) -> Result<()> {
    let min = u64::from(!zero_ok);
    if ms < min || ms > MAX_DURATION_MS {
        return Err(Error::config(
            field,
            format!("must be {min}..={MAX_DURATION_MS} ms (30 days), got {ms}"),
        ));
    }
    Ok(())
}

/// A duration a binding received as signed whole milliseconds: Kotlin's and Swift's
/// `Duration` cross the FFI as a 64-bit signed count, so a negative one is refused by
/// name here rather than wrapping into 584 million years. Zero passes; the operation that
/// takes the duration refuses it where zero means nothing.
///
/// # Errors
/// [`Error::Config`] on `field` when `ms` is negative or above [`MAX_DURATION_MS`].
pub fn duration_from_millis(field: impl Into<String>, ms: i64) -> Result<Duration> {
    let field = field.into();
    let Ok(whole) = u64::try_from(ms) else {
        return Err(Error::config(
            field,
            format!("must not be negative, got {ms} ms"),
        ));
    };
    check_duration_ms(field, whole, true)?;
    Ok(Duration::from_millis(whole))
}

/// [`check_duration_ms`] for a [`Duration`], counted in whole milliseconds (so a
/// non-zero duration under 1 ms is refused like 0).
pub(crate) fn check_duration(
    field: impl Into<String>,
    duration: Duration,
    zero_ok: bool,
) -> Result<()> {
    check_duration_ms(field, millis(duration), zero_ok)
}

/// A duration in whole milliseconds, saturating, for range checks and the wire.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The largest config document read (JSON or TOML text, a file, `COURIER_CONFIG`):
/// 1 MiB, far above any real config, so a wrong path or a hostile variable fails fast.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// The deepest nesting of a config document: a real config is about 5 levels deep;
/// a deeper one is a mistake or an attack on the recursive parsers.
pub const MAX_CONFIG_DEPTH: usize = 32;

/// A config error on `config` when a config document is over [`MAX_CONFIG_BYTES`].
pub(crate) fn check_config_bytes(len: usize) -> Result<()> {
    if len > MAX_CONFIG_BYTES {
        return Err(Error::config(
            "config",
            format!("is {len} bytes, more than the {MAX_CONFIG_BYTES}-byte limit of a config"),
        ));
    }
    Ok(())
}

/// A config error on `config` when a config nests deeper than [`MAX_CONFIG_DEPTH`];
/// walked with an explicit stack, so the check itself cannot overflow.
pub(crate) fn check_config_depth(value: &serde_json::Value) -> Result<()> {
    let mut stack = vec![(value, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match node {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth > MAX_CONFIG_DEPTH {
            return Err(Error::config(
                "config",
                format!("nests deeper than {MAX_CONFIG_DEPTH} levels"),
            ));
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    Ok(())
}

/// The rate-limit keys one service tracks at once (each a token bucket of about 100
/// bytes): far above the tenants or users one client calls for, and a bound on what
/// a caller passing unbounded keys (request ids) can make it hold.
pub const MAX_RATE_KEYS: usize = 10_000;

/// Delay tiers one queue's `retry_delays_ms` may list: enough for any backoff
/// schedule worth writing down, and a bound on the topology one queue can create.
pub const MAX_RETRY_DELAYS: usize = 16;

/// Messages one `publish_many` takes, and deliveries one `next_batch` returns: batches
/// amortise round trips and calls across the language boundary, which 1,000 messages
/// do almost fully, and every message of a batch is held in memory at once.
pub const MAX_BATCH: usize = 1_000;

/// Delay queues (one per target exchange and delay bucket, see docs/messaging.md) one
/// bus declares: delayed publishes to a few exchanges over delays from 1 ms to 30 days
/// need a few hundred; a caller passing arbitrary exchanges cannot make the broker
/// hold thousands of queues.
pub const MAX_DELAY_QUEUES: usize = 1024;

/// An AMQP short string (header names, ids, queue and exchange names) holds 255 bytes.
pub(crate) const MAX_SHORT_STRING: usize = 255;

/// HTTP limits of a [`crate::Client`].
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLimits {
    /// The largest response body read, in bytes; a longer one fails the attempt with
    /// [`Error::LimitExceeded`] as soon as it passes the limit (a `Content-Length` above
    /// it fails before any of the body is read). Default 64 MiB.
    #[serde(default = "default_response_body")]
    pub max_response_body_bytes: u64,
    /// The largest request body sent, in bytes; a larger one is a config error on
    /// `body` before anything is sent. Default 64 MiB.
    #[serde(default = "default_request_body")]
    pub max_request_body_bytes: u64,
    /// The largest response head read, in bytes: every header name and value counted.
    /// A larger one fails the attempt with [`Error::LimitExceeded`] before any of the
    /// body is read. Default 64 KiB; at most 256 KiB, under hyper's own 400 KiB head
    /// buffer, which with its fixed 100-header cap ends any head before courier sees it
    /// (reported as this same limit).
    #[serde(default = "default_response_header")]
    pub max_response_header_bytes: u32,
}

/// Message limits of a [`crate::Bus`], checked before anything is sent.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageLimits {
    /// The largest message body published, in bytes. Default 16 MiB, well under
    /// RabbitMQ's own `max_message_size` (128 MiB by default), which closes the channel
    /// instead of failing one publish.
    #[serde(default = "default_message")]
    pub max_message_bytes: u64,
    /// Application headers per message (courier's trace headers not counted). Default 64.
    #[serde(default = "default_headers")]
    pub max_headers: u32,
    /// The longest header value, in bytes. Default 64 KiB.
    #[serde(default = "default_header_value")]
    pub max_header_value_bytes: u32,
}

fn default_response_body() -> u64 {
    64 * MIB
}
fn default_request_body() -> u64 {
    64 * MIB
}
fn default_response_header() -> u32 {
    64 * 1024
}
fn default_message() -> u64 {
    16 * MIB
}
fn default_headers() -> u32 {
    64
}
fn default_header_value() -> u32 {
    64 * 1024
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_response_body_bytes: default_response_body(),
            max_request_body_bytes: default_request_body(),
            max_response_header_bytes: default_response_header(),
        }
    }
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits {
            max_message_bytes: default_message(),
            max_headers: default_headers(),
            max_header_value_bytes: default_header_value(),
        }
    }
}

/// Checks `value` is in `1..=max` for the config field `field`.
fn in_range(field: &str, value: u64, max: u64) -> Result<()> {
    if value == 0 || value > max {
        return Err(Error::config(
            field,
            format!("must be 1..={max}, got {value}"),
        ));
    }
    Ok(())
}

impl HttpLimits {
    pub(crate) fn validate(&self) -> Result<()> {
        in_range(
            "limits.max_response_body_bytes",
            self.max_response_body_bytes,
            4096 * MIB,
        )?;
        in_range(
            "limits.max_request_body_bytes",
            self.max_request_body_bytes,
            4096 * MIB,
        )?;
        in_range(
            "limits.max_response_header_bytes",
            self.max_response_header_bytes.into(),
            256 * 1024,
        )
    }

    /// A config error on `body` when the request body is over the limit.
    pub(crate) fn check_request_body(&self, len: usize) -> Result<()> {
        if len as u64 > self.max_request_body_bytes {
            return Err(Error::config(
                "body",
                format!(
                    "is {len} bytes, more than limits.max_request_body_bytes ({})",
                    self.max_request_body_bytes
                ),
            ));
        }
        Ok(())
    }

    /// The error for a response head over the limit.
    pub(crate) fn response_head_exceeded(&self) -> Error {
        Error::LimitExceeded {
            what: "response head",
            limit: "limits.max_response_header_bytes",
            max: self.max_response_header_bytes.into(),
        }
    }

    /// The error for a response body over the limit.
    pub(crate) fn response_body_exceeded(&self) -> Error {
        Error::LimitExceeded {
            what: "response body",
            limit: "limits.max_response_body_bytes",
            max: self.max_response_body_bytes,
        }
    }
}

impl MessageLimits {
    pub(crate) fn validate(&self) -> Result<()> {
        // RabbitMQ refuses to configure max_message_size above 512 MiB.
        in_range(
            "limits.max_message_bytes",
            self.max_message_bytes,
            512 * MIB,
        )?;
        in_range("limits.max_headers", self.max_headers.into(), 4096)?;
        in_range(
            "limits.max_header_value_bytes",
            self.max_header_value_bytes.into(),
            16 * MIB,
        )
    }

    /// Checks a message before it is sent: body size, header count, each header's name
    /// (1..=255 bytes: an AMQP short string) and value length. Errors are config errors
    /// naming the argument and the limit.
    pub(crate) fn check_message(
        &self,
        body: usize,
        headers: &BTreeMap<String, String>,
    ) -> Result<()> {
        if body as u64 > self.max_message_bytes {
            return Err(Error::config(
                "body",
                format!(
                    "is {body} bytes, more than limits.max_message_bytes ({})",
                    self.max_message_bytes
                ),
            ));
        }
        if headers.len() > self.max_headers as usize {
            return Err(Error::config(
                "headers",
                format!(
                    "has {} entries, more than limits.max_headers ({})",
                    headers.len(),
                    self.max_headers
                ),
            ));
        }
        for (name, value) in headers {
            if name.is_empty() || name.len() > MAX_SHORT_STRING {
                return Err(Error::config(
                    "headers",
                    format!(
                        "a header name must be 1..={MAX_SHORT_STRING} bytes (an AMQP short string), got {} bytes",
                        name.len()
                    ),
                ));
            }
            if value.len() > self.max_header_value_bytes as usize {
                return Err(Error::config(
                    format!("headers.{name}"),
                    format!(
                        "is {} bytes, more than limits.max_header_value_bytes ({})",
                        value.len(),
                        self.max_header_value_bytes
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn header_names_are_amqp_short_strings() {
        let limits = MessageLimits::default();
        let long = "h".repeat(256);
        let err = limits
            .check_message(1, &headers(&[(&long, "v")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "headers: a header name must be 1..=255 bytes (an AMQP short string), got 256 bytes"
        );
        assert!(limits.check_message(1, &headers(&[("", "v")])).is_err());
        let ok = "h".repeat(255);
        limits.check_message(1, &headers(&[(&ok, "v")])).unwrap();
    }

    #[test]
    fn body_count_and_value_limits_name_their_field() {
        let limits = MessageLimits {
            max_message_bytes: 10,
            max_headers: 1,
            max_header_value_bytes: 3,
        };
        let err = limits
            .check_message(11, &headers(&[]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "body: is 11 bytes, more than limits.max_message_bytes (10)"
        );
        let err = limits
            .check_message(1, &headers(&[("a", "1"), ("b", "2")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "headers: has 2 entries, more than limits.max_headers (1)"
        );
        let err = limits
            .check_message(1, &headers(&[("a", "1234")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "headers.a: is 4 bytes, more than limits.max_header_value_bytes (3)"
        );
    }

    #[test]
    fn config_documents_have_a_size_and_a_depth_limit() {
        use crate::{ClientConfig, Validate};
        let big = format!(
            r#"{{"services": {{}}, "x": "{}"}}"#,
            "a".repeat(MAX_CONFIG_BYTES)
        );
        assert!(
            ClientConfig::from_json(&big)
                .unwrap_err()
                .to_string()
                .starts_with("config: is 1048")
        );
        let deep = |levels: usize| {
            let mut value = serde_json::json!(1);
            for _ in 0..levels {
                value = serde_json::json!([value]);
            }
            serde_json::json!({ "services": { "a": { "endpoints": ["http://h"], "headers": value } } })
        };
        // services → a → headers → 29 arrays → 1: 32 containers deep is allowed (and
        // then refused for its shape); 33 is refused for its depth.
        let shape = ClientConfig::from_value(deep(29)).unwrap_err().to_string();
        assert!(!shape.contains("nests deeper"), "{shape}");
        assert_eq!(
            ClientConfig::from_value(deep(30)).unwrap_err().to_string(),
            "config: nests deeper than 32 levels"
        );
    }

    #[test]
    fn limits_are_range_checked() {
        let zero = MessageLimits {
            max_headers: 0,
            ..MessageLimits::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().to_string(),
            "limits.max_headers: must be 1..=4096, got 0"
        );
        let huge = HttpLimits {
            max_response_body_bytes: u64::MAX,
            ..HttpLimits::default()
        };
        assert!(
            huge.validate()
                .unwrap_err()
                .to_string()
                .starts_with("limits.max_response_body_bytes: must be 1..=")
        );
    }
}
