//! Configuration as data: [`ClientConfig`] and [`BusConfig`].
//!
//! Every binding hands courier a plain dict/object, a JSON or TOML file, or the
//! environment; all of them go through one path here (a `serde_json::Value`, then a
//! path-tracking deserializer, then [`Validate`]), so a mistake is reported the same way
//! in every language, naming the field path and the reason:
//! `services.orders.deadline_ms: must be at least 1, got 0`.
//!
//! Unknown fields are errors rather than silently ignored: a misspelt `dedline_ms` that
//! fell back to the default would be a production incident, not a typo.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::balance::{Balancer, DiscoveryConfig, OutlierConfig, VersionConfig};
use crate::error::{Error, Result};
use crate::limits::{HttpLimits, MessageLimits, check_duration_ms};
use crate::resilience::{BreakerConfig, BudgetConfig, RetryConfig};

/// Config for a [`crate::Client`]: the services it calls, by name.
///
/// # Examples
/// ```
/// use courierkit::{ClientConfig, Validate};
/// let cfg = ClientConfig::from_json(r#"{"services": {"orders": {"endpoints": ["http://127.0.0.1:8081"]}}}"#).unwrap();
/// assert_eq!(cfg.services["orders"].deadline_ms, 10_000);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Services by name; a request's `target` is one of these names or an absolute URL.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceConfig>,
    /// What `https://` endpoints are trusted with and present; default: the platform's
    /// trust store and no client certificate.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Request and response body sizes (see [`HttpLimits`]).
    #[serde(default)]
    pub limits: HttpLimits,
}

/// TLS for HTTP and AMQP: one rustls client configuration built from this serves both
/// transports, so they trust exactly the same things.
///
/// Certificates and keys are PEM text, not paths: every binding can read a file, and a
/// config that carries its material can come from a secret store as it is.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates (PEM). When given, only these roots are trusted; otherwise the
    /// platform's trust store is.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The client certificate chain (PEM, leaf first), for mutual TLS.
    #[serde(default)]
    pub client_cert_pem: Option<String>,
    /// The client certificate's private key (PEM: PKCS#8, RSA or SEC1).
    #[serde(default)]
    pub client_key_pem: Option<String>,
    /// The lowest protocol version offered. Default 1.2.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// The name the server certificate must be valid for, instead of the URL's host:
    /// for servers reached by an address their certificate does not name.
    #[serde(default)]
    pub server_name: Option<String>,
}

// By hand: a private key must never reach a log line.
impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(|_| "<pem>"),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("min_version", &self.min_version)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// A TLS protocol version, written `"1.2"` or `"1.3"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

/// How to reach and call one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The service's endpoints. Give these or `discovery`, not both.
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// Find the endpoints in DNS instead of listing them (see [`DiscoveryConfig`]).
    /// Default: none.
    #[serde(default)]
    pub discovery: Option<DiscoveryConfig>,
    /// Per-attempt timeout. Default: none (the deadline bounds the attempt).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Whole-call deadline. Default 10 000 ms, the value gRPC and Finagle users expect
    /// for a synchronous service call.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
    /// Headers sent with every request to this service.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Retries: attempts, backoff, what is retried.
    #[serde(default)]
    pub retry: RetryConfig,
    /// The retry budget, shared by every client in the process calling this service.
    #[serde(default)]
    pub budget: BudgetConfig,
    /// The circuit breaker; `null` disables it.
    #[serde(default = "default_breaker")]
    pub breaker: Option<BreakerConfig>,
    /// Calls in flight at once; the next fails fast with `Overloaded`. Default 1024:
    /// far above healthy concurrency, low enough to stop a pile-up on a stuck service.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// How an endpoint is chosen. Default `p2c_ewma`.
    #[serde(default)]
    pub balancer: Balancer,
    /// Outlier ejection; `null` disables it.
    #[serde(default = "default_outlier")]
    pub outlier: Option<OutlierConfig>,
    /// Routing of requests that name no version.
    #[serde(default)]
    pub versions: VersionConfig,
}

fn default_outlier() -> Option<OutlierConfig> {
    Some(OutlierConfig::default())
}

fn default_deadline_ms() -> u64 {
    10_000
}

fn default_breaker() -> Option<BreakerConfig> {
    Some(BreakerConfig::default())
}

fn default_max_concurrency() -> u32 {
    1024
}

/// One endpoint: a base URL, written either as a string or as
/// `{"url": ..., "version": ..., "weight": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointConfig {
    /// Base URL (`http://host:port` with an optional path prefix).
    pub url: String,
    /// Service version label used for version routing.
    pub version: Option<String>,
    /// Relative weight, at least 1. Default 1.
    pub weight: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointFields {
    url: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default = "default_weight")]
    weight: u32,
}

fn default_weight() -> u32 {
    1
}

impl From<EndpointFields> for EndpointConfig {
    fn from(f: EndpointFields) -> Self {
        EndpointConfig {
            url: f.url,
            version: f.version,
            weight: f.weight,
        }
    }
}

// A hand-written visitor instead of `#[serde(untagged)]`: untagged enums report only
// "data did not match any variant", which loses the field and the reason.
impl<'de> Deserialize<'de> for EndpointConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct EndpointVisitor;
        impl<'de> Visitor<'de> for EndpointVisitor {
            type Value = EndpointConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL string or {\"url\", \"version\", \"weight\"}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(EndpointConfig {
                    url: v.to_owned(),
                    version: None,
                    weight: default_weight(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                EndpointFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Into::into)
            }
        }
        d.deserialize_any(EndpointVisitor)
    }
}

/// Config for a [`crate::Bus`].
///
/// # Examples
/// ```
/// use courierkit::{BusConfig, Validate};
/// let cfg = BusConfig::from_json(r#"{"urls": ["amqp://guest:guest@127.0.0.1:5672/%2f"]}"#).unwrap();
/// assert_eq!(cfg.prefetch, 100);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Broker URLs (`amqp://` or `amqps://`), tried in order when connecting.
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

/// Semantic checks that serde cannot express, run after every load.
pub trait Validate: DeserializeOwned {
    /// Environment variable read by [`Validate::from_env`].
    const ENV_VAR: &'static str;

    /// Checks the values; the error names the field path.
    ///
    /// # Errors
    /// [`Error::Config`] for the first invalid value.
    fn validate(&self) -> Result<()>;

    /// Loads from a JSON value (what the bindings build from a dict or object).
    ///
    /// # Errors
    /// [`Error::Config`] naming the field path for a wrong shape or an invalid value.
    fn from_value(value: serde_json::Value) -> Result<Self> {
        crate::limits::check_config_depth(&value)?;
        let cfg: Self = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "config".to_owned()
            } else {
                path
            };
            Error::config(field, e.into_inner().to_string())
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads from JSON text.
    ///
    /// # Errors
    /// [`Error::Config`] for malformed JSON or an invalid value.
    fn from_json(text: &str) -> Result<Self> {
        crate::limits::check_config_bytes(text.len())?;
        let value = serde_json::from_str(text)
            .map_err(|e| Error::config("config", format!("invalid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// Loads from TOML text.
    ///
    /// # Errors
    /// [`Error::Config`] for malformed TOML or an invalid value.
    fn from_toml(text: &str) -> Result<Self> {
        crate::limits::check_config_bytes(text.len())?;
        let value: serde_json::Value = toml::from_str(text)
            .map_err(|e| Error::config("config", format!("invalid TOML: {}", e.message())))?;
        Self::from_value(value)
    }

    /// Loads a `.toml` file as TOML and anything else as JSON.
    ///
    /// # Errors
    /// [`Error::Config`] when the file cannot be read or holds an invalid config.
    fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let cannot = |e: std::io::Error| {
            Error::config("config", format!("cannot read {}: {e}", path.display()))
        };
        // Checked before reading, so pointing the loader at a huge file costs nothing.
        crate::limits::check_config_bytes(
            usize::try_from(std::fs::metadata(path).map_err(cannot)?.len()).unwrap_or(usize::MAX),
        )?;
        let text = std::fs::read_to_string(path).map_err(cannot)?;
        if path.extension().is_some_and(|ext| ext == "toml") {
            Self::from_toml(&text)
        } else {
            Self::from_json(&text)
        }
    }

    /// Loads from [`Validate::ENV_VAR`]: inline JSON when it starts with `{`, else a file path.
    ///
    /// # Errors
    /// [`Error::Config`] when the variable is unset or its config is invalid.
    fn from_env() -> Result<Self> {
        let raw =
            std::env::var(Self::ENV_VAR).map_err(|_| Error::config(Self::ENV_VAR, "is not set"))?;
        if raw.trim_start().starts_with('{') {
            Self::from_json(&raw)
        } else {
            Self::from_file(raw.trim())
        }
    }
}

impl Validate for ClientConfig {
    const ENV_VAR: &'static str = "COURIER_CONFIG";

    fn validate(&self) -> Result<()> {
        for (name, svc) in &self.services {
            let at = format!("services.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(Error::config(
                    at,
                    "a service name uses only letters, digits, '.', '_' and '-'",
                ));
            }
            svc.validate(&at)?;
        }
        if let Some(tls) = &self.tls {
            crate::tls::client_config(Some(tls), &[])?;
        }
        self.limits.validate()
    }
}

impl ServiceConfig {
    fn validate(&self, at: &str) -> Result<()> {
        match (&self.discovery, self.endpoints.is_empty()) {
            (None, true) => {
                return Err(Error::config(
                    format!("{at}.endpoints"),
                    "must list at least one endpoint (or set discovery)",
                ));
            }
            (Some(_), false) => {
                return Err(Error::config(at, "give endpoints or discovery, not both"));
            }
            (Some(discovery), true) => discovery.validate(&format!("{at}.discovery"))?,
            (None, false) => {}
        }
        for (i, ep) in self.endpoints.iter().enumerate() {
            let field = format!("{at}.endpoints[{i}]");
            parse_http_url(&ep.url)
                .map_err(|reason| Error::config(format!("{field}.url"), reason))?;
            if ep.weight == 0 {
                return Err(Error::config(
                    format!("{field}.weight"),
                    "must be at least 1, got 0",
                ));
            }
            if ep.version.as_deref() == Some("") {
                return Err(Error::config(
                    format!("{field}.version"),
                    "must not be empty",
                ));
            }
        }
        check_duration_ms(format!("{at}.deadline_ms"), self.deadline_ms, false)?;
        if let Some(timeout) = self.timeout_ms {
            check_duration_ms(format!("{at}.timeout_ms"), timeout, false)?;
        }
        if let Some(outlier) = &self.outlier {
            outlier.validate(&format!("{at}.outlier"))?;
        }
        let known: Vec<&str> = self
            .endpoints
            .iter()
            .filter_map(|ep| ep.version.as_deref())
            .collect();
        self.versions.validate(&format!("{at}.versions"), &known)?;
        self.retry.validate(&format!("{at}.retry"))?;
        self.budget.validate(&format!("{at}.budget"))?;
        if let Some(breaker) = &self.breaker {
            breaker.validate(&format!("{at}.breaker"))?;
        }
        if !(1..=1_000_000).contains(&self.max_concurrency) {
            return Err(Error::config(
                format!("{at}.max_concurrency"),
                format!("must be 1..=1000000, got {}", self.max_concurrency),
            ));
        }
        for (name, value) in &self.headers {
            crate::http::check_header(name, value)
                .map_err(|reason| Error::config(format!("{at}.headers.{name}"), reason))?;
        }
        Ok(())
    }
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

/// Parses an absolute http(s) URL, with a reason suitable for a config error.
pub(crate) fn parse_http_url(raw: &str) -> std::result::Result<url::Url, String> {
    let url =
        url::Url::parse(raw).map_err(|e| format!("not a URL ({e}): {:?}", redact_url(raw)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, got {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("an endpoint URL takes no query or fragment".to_owned());
    }
    Ok(url)
}

/// Returns `raw` with its credentials replaced by `***`, for messages, logs and spans.
///
/// A password is masked and the user name kept (`amqp://guest:***@h`); a user part
/// without a password is masked whole (`http://***@h`), because that is where bearer
/// tokens and API keys go (`https://TOKEN@host`). Text that does not parse as a URL has
/// everything between `://` and `@` masked, so a malformed URL that still holds a
/// secret does not leak it either.
pub fn redact_url(raw: &str) -> String {
    if let Ok(mut url) = url::Url::parse(raw) {
        // Neither setter can fail here: a URL with a user part has a host.
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        } else if !url.username().is_empty() {
            let _ = url.set_username("***");
        }
        return url.to_string();
    }
    match (raw.find("://"), raw.rfind('@')) {
        (Some(start), Some(at)) if at > start => format!("{}://***{}", &raw[..start], &raw[at..]),
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_err(json: &str) -> String {
        ClientConfig::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn empty_endpoints_names_the_field() {
        assert_eq!(
            client_err(r#"{"services": {"a": {"endpoints": []}}}"#),
            "services.a.endpoints: must list at least one endpoint (or set discovery)"
        );
        assert_eq!(
            client_err(r#"{"services": {"a": {}}}"#),
            "services.a.endpoints: must list at least one endpoint (or set discovery)"
        );
    }

    #[test]
    fn discovery_replaces_endpoints_and_names_its_fields() {
        let cfg = ClientConfig::from_json(
            r#"{"services": {"a": {"discovery": {"dns": "_http._tcp.a.svc.local.", "resolver": "127.0.0.1:5353"}}}}"#,
        )
        .unwrap();
        let discovery = cfg.services["a"].discovery.as_ref().unwrap();
        assert_eq!(
            (
                discovery.port,
                discovery.refresh_ms,
                discovery.scheme.as_str()
            ),
            (None, 5_000, "http"),
            "documented defaults"
        );
        assert_eq!(
            client_err(
                r#"{"services": {"a": {"endpoints": ["http://h:1"], "discovery": {"dns": "a.local"}}}}"#
            ),
            "services.a: give endpoints or discovery, not both"
        );
        let cases = [
            (
                r#"{"dns": "a.local", "refresh_ms": 0}"#,
                "services.a.discovery.refresh_ms: must be at least 1, got 0",
            ),
            (
                r#"{"dns": "a.local", "port": 0}"#,
                "services.a.discovery.port: must be 1..=65535 or absent (SRV), got 0",
            ),
            (
                r#"{"dns": "a..local"}"#,
                "services.a.discovery.dns: not a DNS name: \"a..local\"",
            ),
            (
                r#"{"dns": "a.local", "resolver": "localhost:53"}"#,
                "services.a.discovery.resolver: must be an IP address with an optional port, got \"localhost:53\"",
            ),
            (
                r#"{"dns": "a.local", "scheme": "ftp"}"#,
                "services.a.discovery.scheme: must be http or https, got \"ftp\"",
            ),
            (
                r#"{"dns": "a.local", "dsn": "x"}"#,
                "services.a.discovery.dsn: unknown field `dsn`, expected one of `dns`, `port`, `refresh_ms`, `resolver`, `scheme`",
            ),
        ];
        for (discovery, expected) in cases {
            let json = format!(r#"{{"services": {{"a": {{"discovery": {discovery}}}}}}}"#);
            assert_eq!(client_err(&json), expected, "{discovery}");
        }
        let msg = client_err(
            r#"{"services": {"a": {"discovery": {"dns": "a.local", "port": 80}, "versions": {"default": "v1"}}}}"#,
        );
        assert_eq!(
            msg, "services.a.versions: version \"v1\" has no endpoint",
            "discovered endpoints carry no version"
        );
    }

    #[test]
    fn non_url_endpoint_names_the_index() {
        let msg = client_err(r#"{"services": {"a": {"endpoints": ["http://ok:1", "not a url"]}}}"#);
        assert!(
            msg.starts_with("services.a.endpoints[1].url: not a URL"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_type_and_unknown_field_name_the_path() {
        let msg = client_err(
            r#"{"services": {"a": {"endpoints": ["http://x:1"], "deadline_ms": "soon"}}}"#,
        );
        assert!(
            msg.starts_with("services.a.deadline_ms: invalid type"),
            "{msg}"
        );
        let msg =
            client_err(r#"{"services": {"a": {"endpoints": ["http://x:1"], "dedline_ms": 5}}}"#);
        assert!(
            msg.starts_with("services.a.dedline_ms: unknown field `dedline_ms`"),
            "{msg}"
        );
        let msg = client_err(
            r#"{"services": {"a": {"endpoints": [{"url": "http://x:1", "weight": 0}]}}}"#,
        );
        assert_eq!(
            msg,
            "services.a.endpoints[0].weight: must be at least 1, got 0"
        );
    }

    #[test]
    fn endpoint_accepts_string_and_object_forms() {
        let cfg = ClientConfig::from_json(
            r#"{"services": {"a": {"endpoints": ["http://h:1", {"url": "http://h:2", "version": "v2", "weight": 3}]}}}"#,
        )
        .unwrap();
        let eps = &cfg.services["a"].endpoints;
        assert_eq!((eps[0].weight, eps[0].version.as_deref()), (1, None));
        assert_eq!((eps[1].weight, eps[1].version.as_deref()), (3, Some("v2")));
    }

    #[test]
    fn toml_and_json_load_the_same_config() {
        let toml = "[services.a]\nendpoints = [\"http://h:1\"]\ndeadline_ms = 500\n";
        let json = r#"{"services": {"a": {"endpoints": ["http://h:1"], "deadline_ms": 500}}}"#;
        assert_eq!(
            ClientConfig::from_toml(toml).unwrap(),
            ClientConfig::from_json(json).unwrap()
        );
    }

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

    #[test]
    fn redact_url_masks_passwords() {
        assert_eq!(
            redact_url("amqp://guest:secret@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
        assert_eq!(redact_url("amqp://h:5672"), "amqp://h:5672");
        assert_eq!(redact_url("amqp://u:p@[x/"), "amqp://***@[x/");
    }

    #[test]
    fn redact_url_masks_a_user_part_without_password_as_a_token() {
        let token = "ghp_0123456789abcdefTOKEN";
        let redacted = redact_url(&format!("https://{token}@api.example.com/v1"));
        assert_eq!(redacted, "https://***@api.example.com/v1");
        assert!(!redact_url(&format!("http://{token}@h:8080")).contains(token));
        assert!(!redact_url(&format!("http://{token}@[bad")).contains(token));
    }
}
