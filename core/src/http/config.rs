//! [`ClientConfig`]: the services a [`crate::Client`] calls, and how.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::balance::{Balancer, DiscoveryConfig, OutlierConfig, VersionConfig};
use crate::config::Validate;
use crate::error::{Error, Result};
use crate::limits::{HttpLimits, check_duration_ms};
use crate::resilience::{
    AdaptiveConcurrencyConfig, BreakerConfig, BudgetConfig, HedgeConfig, RateLimitConfig,
    RetryConfig,
};
use crate::tls::TlsConfig;
use crate::urls::parse_http_url;

/// Config for a [`crate::Client`]: the services it calls, by name.
///
/// # Examples
/// ```
/// use courierkit::{ClientConfig, Validate};
/// let cfg = ClientConfig::from_json(r#"{"services": {"orders": {"endpoints": ["http://127.0.0.1:8081"]}}}"#).unwrap();
/// assert_eq!(cfg.services["orders"].deadline_ms, 10_000);
/// ```
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// How to reach and call one service.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    #[cfg_attr(feature = "schema", schemars(extend("x-secret" = true)))]
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
    /// Hedged requests for requests that are safe to repeat (see [`HedgeConfig`]).
    /// Default: none.
    #[serde(default)]
    pub hedge: Option<HedgeConfig>,
    /// A client-side rate limit (see [`RateLimitConfig`]). Default: none.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Calls in flight at once; the next fails fast with `Overloaded`. Default 1024:
    /// far above healthy concurrency, low enough to stop a pile-up on a stuck service.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: u32,
    /// A concurrency limit that follows the service's latency, in place of
    /// `max_concurrency` (see [`AdaptiveConcurrencyConfig`]). Default: none.
    #[serde(default)]
    pub adaptive_concurrency: Option<AdaptiveConcurrencyConfig>,
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(rename = "EndpointObject"))]
#[serde(deny_unknown_fields)]
struct EndpointFields {
    /// Base URL (`http://host:port` with an optional path prefix).
    #[cfg_attr(feature = "schema", schemars(extend("x-secret" = true)))]
    url: String,
    /// Service version label used for version routing.
    #[serde(default)]
    version: Option<String>,
    /// Relative weight, at least 1.
    #[serde(default = "default_weight")]
    weight: u32,
}

/// The schema of what [`EndpointConfig`] reads: a URL string, or the object form.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for EndpointConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Endpoint".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let object = generator.subschema_for::<EndpointFields>();
        schemars::json_schema!({
            "description": "One endpoint: its base URL, or {\"url\", \"version\", \"weight\"}.",
            "anyOf": [{"type": "string"}, object]
        })
    }
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
        if let Some(hedge) = &self.hedge {
            hedge.validate(&format!("{at}.hedge"))?;
        }
        if let Some(adaptive) = &self.adaptive_concurrency {
            adaptive.validate(&format!("{at}.adaptive_concurrency"))?;
        }
        if let Some(rate) = &self.rate_limit {
            rate.validate(&format!("{at}.rate_limit"))?;
        }
        if !(1..=1_000_000).contains(&self.max_concurrency) {
            return Err(Error::config(
                format!("{at}.max_concurrency"),
                format!("must be 1..=1000000, got {}", self.max_concurrency),
            ));
        }
        for (name, value) in &self.headers {
            super::check_header(name, value)
                .map_err(|reason| Error::config(format!("{at}.headers.{name}"), reason))?;
        }
        Ok(())
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
    fn hedge_settings_name_their_field() {
        let hedge = |h: &str| {
            client_err(&format!(
                r#"{{"services": {{"a": {{"endpoints": ["http://h:1"], "hedge": {h}}}}}}}"#
            ))
        };
        assert_eq!(
            hedge(r#"{"max_hedges": 0}"#),
            "services.a.hedge.max_hedges: must be 1..=4, got 0"
        );
        assert_eq!(
            hedge(r#"{"delay_ms": 0}"#),
            "services.a.hedge.delay_ms: must be 1..=2592000000 ms (30 days), got 0"
        );
        assert_eq!(
            hedge(r#"{"percentile": 100}"#),
            "services.a.hedge.percentile: must be 50.0..=99.9, got 100"
        );
        assert!(
            hedge(r#"{"dealy_ms": 5}"#).starts_with("services.a.hedge.dealy_ms: unknown field")
        );
        let cfg = ClientConfig::from_json(
            r#"{"services": {"a": {"endpoints": ["http://h:1"], "hedge": {}}}}"#,
        )
        .unwrap();
        assert_eq!(
            cfg.services["a"].hedge,
            Some(HedgeConfig::default()),
            "an empty object takes the defaults"
        );
        assert_eq!(HedgeConfig::default().max_hedges, 1);
    }

    #[test]
    fn rate_limit_settings_name_their_field() {
        let rate = |r: &str| {
            ClientConfig::from_json(&format!(
                r#"{{"services": {{"a": {{"endpoints": ["http://h:1"], "rate_limit": {r}}}}}}}"#
            ))
        };
        let err = |r: &str| rate(r).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"per_second": 0}"#),
            "services.a.rate_limit.per_second: must be above 0 and at most 1000000, got 0"
        );
        assert_eq!(
            err(r#"{"per_second": 5, "burst": 0}"#),
            "services.a.rate_limit.burst: must be 1..=1000000, got 0"
        );
        let missing = err("{}");
        assert!(missing.contains("missing field `per_second`"), "{missing}");
        let cfg = rate(r#"{"per_second": 2.5}"#).unwrap();
        let limit = cfg.services["a"].rate_limit.as_ref().unwrap();
        assert_eq!(
            (limit.burst(), limit.wait),
            (3, true),
            "documented defaults"
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
}
