//! [`BusConfig`]: the brokers a [`crate::Bus`] connects to, and how it publishes,
//! consumes, reconnects and deduplicates.

use serde::{Deserialize, Serialize};

use crate::config::Validate;
use crate::error::{Error, Result};
use crate::limits::{MessageLimits, check_duration_ms};
use crate::tls::TlsConfig;
use crate::urls::redact_url;

/// Config for a [`crate::Bus`].
///
/// # Examples
/// ```
/// use courierkit::{BusConfig, Validate};
/// let cfg = BusConfig::from_json(r#"{"urls": ["amqp://guest:guest@127.0.0.1:5672/%2f"]}"#).unwrap();
/// assert_eq!(cfg.prefetch, 100);
/// ```
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Broker URLs (`amqp://` or `amqps://`), tried in order when connecting.
    #[cfg_attr(feature = "schema", schemars(extend("x-secret" = true)))]
    pub urls: Vec<String>,
    /// Unacknowledged deliveries per consumer. Default 100: enough to hide a round trip
    /// on a LAN without letting one slow consumer hoard a queue.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// Publishes awaiting their broker confirm at once; further publishes wait.
    /// Default 256, where RabbitMQ's confirm throughput levels off on one channel.
    #[serde(default = "default_max_unconfirmed")]
    pub max_unconfirmed: u32,
    /// How long to wait between reconnection attempts.
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    /// Where consumers remember the message ids they processed.
    #[serde(default)]
    pub dedup: DedupConfig,
    /// How long a publish may wait in all, including for a lost connection to come back
    /// and for its re-send. Default 30 000 ms: long enough to ride out a broker restart,
    /// short enough that a caller learns about an outage.
    #[serde(default = "default_publish_deadline_ms")]
    pub publish_deadline_ms: u64,
    /// TLS for `amqps://` URLs; default: the platform's trust store, no client
    /// certificate. Add `?auth_mechanism=external` to a URL to log in with the client
    /// certificate instead of a password.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Message body and header sizes, checked before sending (see [`MessageLimits`]).
    #[serde(default)]
    pub limits: MessageLimits,
}

/// Reconnection backoff: exponential with full jitter from `base_delay_ms`, capped at
/// `max_delay_ms`, so a fleet of clients does not reconnect in lockstep after an outage.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    /// First delay. Default 100 ms.
    #[serde(default = "default_reconnect_base_ms")]
    pub base_delay_ms: u64,
    /// Largest delay. Default 5 000 ms.
    #[serde(default = "default_reconnect_max_ms")]
    pub max_delay_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            base_delay_ms: default_reconnect_base_ms(),
            max_delay_ms: default_reconnect_max_ms(),
        }
    }
}

fn default_reconnect_base_ms() -> u64 {
    100
}

fn default_reconnect_max_ms() -> u64 {
    5_000
}

fn default_publish_deadline_ms() -> u64 {
    30_000
}

/// The dedup store: `{"store": "memory", "capacity": 100000, "ttl_ms": 86400000}` (per
/// process) or `{"store": "redis", "url": "redis://127.0.0.1:6379/0"}` (shared by every
/// consumer process that points at the same Redis).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "store", rename_all = "snake_case", deny_unknown_fields)]
pub enum DedupConfig {
    /// In this process: at most `capacity` ids, each for `ttl_ms`.
    Memory {
        /// Ids remembered; the oldest is forgotten first. Default 100 000.
        #[serde(default = "default_dedup_capacity")]
        capacity: usize,
        /// How long an id is remembered after its ack. Default 24 h.
        #[serde(default = "default_dedup_ttl_ms")]
        ttl_ms: u64,
    },
    /// In Redis, shared by processes.
    Redis {
        /// `redis://[user:password@]host:port/db` (or `rediss://`).
        #[cfg_attr(feature = "schema", schemars(extend("x-secret" = true)))]
        url: String,
        /// How long an id is remembered after its ack. Default 24 h.
        #[serde(default = "default_dedup_ttl_ms")]
        ttl_ms: u64,
        /// How long an in-progress claim lives without an ack before another process may
        /// take the message over (the claimant crashed). Default 60 000 ms.
        #[serde(default = "default_claim_ttl_ms")]
        claim_ttl_ms: u64,
        /// Key prefix. Default `courier:dedup:`.
        #[serde(default = "default_dedup_prefix")]
        prefix: String,
    },
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig::Memory {
            capacity: default_dedup_capacity(),
            ttl_ms: default_dedup_ttl_ms(),
        }
    }
}

fn default_dedup_capacity() -> usize {
    100_000
}

fn default_dedup_ttl_ms() -> u64 {
    86_400_000
}

fn default_claim_ttl_ms() -> u64 {
    60_000
}

fn default_dedup_prefix() -> String {
    "courier:dedup:".to_owned()
}

fn default_prefetch() -> u16 {
    100
}

fn default_max_unconfirmed() -> u32 {
    256
}

impl Validate for BusConfig {
    const ENV_VAR: &'static str = "COURIER_BUS_CONFIG";

    fn validate(&self) -> Result<()> {
        self.limits.validate()?;
        if self.urls.is_empty() {
            return Err(Error::config("urls", "must list at least one broker URL"));
        }
        for (i, raw) in self.urls.iter().enumerate() {
            let field = format!("urls[{i}]");
            let url = url::Url::parse(raw).map_err(|e| {
                Error::config(&field, format!("not a URL ({e}): {}", redact_url(raw)))
            })?;
            if url.scheme() == "memory" {
                if self.urls.len() > 1 {
                    return Err(Error::config(
                        field,
                        "memory:// is an in-process broker and cannot be combined with other URLs",
                    ));
                }
                continue;
            }
            if !matches!(url.scheme(), "amqp" | "amqps") {
                return Err(Error::config(
                    field,
                    format!(
                        "scheme must be amqp, amqps or memory, got {:?}",
                        url.scheme()
                    ),
                ));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(Error::config(field, "has no host"));
            }
        }
        if self.prefetch == 0 {
            return Err(Error::config(
                "prefetch",
                "must be 1..=65535, got 0 (0 would mean unlimited)",
            ));
        }
        if !(1..=65_535).contains(&self.max_unconfirmed) {
            return Err(Error::config(
                "max_unconfirmed",
                format!("must be 1..=65535, got {}", self.max_unconfirmed),
            ));
        }
        let r = &self.reconnect;
        if r.base_delay_ms == 0 || r.max_delay_ms < r.base_delay_ms {
            return Err(Error::config(
                "reconnect",
                format!(
                    "need 1 <= base_delay_ms <= max_delay_ms, got {} and {}",
                    r.base_delay_ms, r.max_delay_ms
                ),
            ));
        }
        check_duration_ms("publish_deadline_ms", self.publish_deadline_ms, false)?;
        if let Some(tls) = &self.tls {
            crate::tls::client_config(Some(tls), &[])?;
            // Configured TLS with a plaintext URL would send the password in the clear.
            if let Some(i) = self.urls.iter().position(|u| {
                u.get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case("amqp://"))
            }) {
                return Err(Error::config(
                    format!("urls[{i}]"),
                    "is amqp:// (plaintext) while tls is configured; use amqps://",
                ));
            }
        }
        match &self.dedup {
            DedupConfig::Memory { capacity, ttl_ms } => {
                if *capacity == 0 {
                    return Err(Error::config("dedup.capacity", "must be at least 1"));
                }
                if *ttl_ms == 0 {
                    return Err(Error::config("dedup.ttl_ms", "must be at least 1"));
                }
            }
            DedupConfig::Redis {
                url,
                ttl_ms,
                claim_ttl_ms,
                ..
            } => {
                let parsed = url::Url::parse(url).map_err(|e| {
                    Error::config("dedup.url", format!("not a URL ({e}): {}", redact_url(url)))
                })?;
                if !matches!(parsed.scheme(), "redis" | "rediss") {
                    return Err(Error::config(
                        "dedup.url",
                        format!("scheme must be redis or rediss, got {:?}", parsed.scheme()),
                    ));
                }
                if *ttl_ms == 0 || *claim_ttl_ms == 0 {
                    return Err(Error::config(
                        "dedup",
                        "ttl_ms and claim_ttl_ms must be at least 1",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_urls_are_checked_and_passwords_never_echoed() {
        let msg = BusConfig::from_json(r#"{"urls": ["http://u:hunter2@h/"]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "urls[0]: scheme must be amqp, amqps or memory, got \"http\""
        );
        let msg = BusConfig::from_json(r#"{"urls": ["amqp://u:hunter2@[bad/"]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("urls[0]: not a URL") && !msg.contains("hunter2"),
            "{msg}"
        );
        let msg = BusConfig::from_json(r#"{"urls": []}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(msg, "urls: must list at least one broker URL");
    }
}
