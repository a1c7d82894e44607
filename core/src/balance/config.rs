//! Balancer, outlier-ejection, version-routing and discovery settings.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How an endpoint is chosen among the healthy ones. Every balancer honours weights.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balancer {
    /// Power of two choices over peak-EWMA latency times in-flight requests: the
    /// default, because it moves traffic away from a slow endpoint within a few
    /// requests while staying O(1) (Finagle, linkerd).
    #[default]
    P2cEwma,
    /// Smooth weighted round robin (nginx's), ignoring latency.
    RoundRobin,
    /// Power of two choices over in-flight requests (Envoy's `LEAST_REQUEST`).
    LeastRequest,
    /// Weighted random.
    Random,
}

/// Outlier ejection: an endpoint that fails `consecutive_failures` times in a row is
/// taken out of rotation for `base_ejection_ms` times the number of times it was
/// ejected (at most `max_ejection_ms`). At most `max_ejected_ratio` of the endpoints
/// (but always at least one) are out at once, so ejection cannot empty a service.
/// Envoy's outlier detection defaults.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// Failures in a row that eject.
    pub consecutive_failures: u32,
    /// First ejection period.
    pub base_ejection_ms: u64,
    /// Longest ejection period.
    pub max_ejection_ms: u64,
    /// Share of endpoints that may be ejected at once, 0.0..=1.0.
    pub max_ejected_ratio: f64,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejected_ratio: 0.1,
        }
    }
}

/// Routing between versions of a service when a request names none: `split` sends a
/// weighted share to each version (a canary: `{"v1": 90, "v2": 10}`); otherwise
/// `default` picks one; with neither, every endpoint qualifies.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VersionConfig {
    /// The version for requests that name none.
    pub default: Option<String>,
    /// Relative weights per version.
    pub split: BTreeMap<String, u32>,
}

/// DNS discovery: the service's endpoints are whatever `dns` resolves to, re-resolved
/// every `refresh_ms` (see [`crate::ServiceConfig::discovery`]).
///
/// With `port`, `dns` is resolved to A and AAAA records and every address becomes
/// `scheme://address:port`. Without it, `dns` is looked up as an SRV name
/// (`_http._tcp.orders.svc.local`, say) and each record's target and port give the
/// endpoints, weighted by the record's weight (RFC 2782).
///
/// # Examples
/// ```
/// use courierkit::{ClientConfig, Validate};
/// let cfg = ClientConfig::from_json(r#"{"services": {"orders": {"discovery": {"dns": "orders.svc.local", "port": 8080}}}}"#).unwrap();
/// let discovery = cfg.services["orders"].discovery.as_ref().unwrap();
/// assert_eq!((discovery.refresh_ms, discovery.scheme.as_str()), (5_000, "http"));
/// ```
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// The name to resolve: a host name with `port`, an SRV name without.
    pub dns: String,
    /// The endpoints' port. Default: none, which makes `dns` an SRV name whose records
    /// carry the ports.
    #[serde(default)]
    pub port: Option<u16>,
    /// How often the name is resolved again. Default 5 000 ms, Consul's and
    /// Kubernetes' usual DNS TTL range; each refresh costs one query (two for A and
    /// AAAA, plus one per SRV target), since answers are not cached between refreshes.
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
    /// The DNS server to ask, `ip:port` (or `ip`, meaning port 53). Default: the
    /// system's resolver configuration (`/etc/resolv.conf`).
    #[serde(default)]
    pub resolver: Option<String>,
    /// `http` or `https`. Default `http`. Endpoints are addressed by IP, so an
    /// `https` upstream's certificate must name its IP address.
    #[serde(default = "default_scheme")]
    pub scheme: String,
}

fn default_refresh_ms() -> u64 {
    5_000
}

fn default_scheme() -> String {
    "http".to_owned()
}

impl DiscoveryConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        let name = self.dns.strip_suffix('.').unwrap_or(&self.dns);
        let valid_label = |label: &str| {
            (1..=63).contains(&label.len())
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if name.len() > 253 || !name.split('.').all(valid_label) {
            return Err(Error::config(
                format!("{at}.dns"),
                format!("not a DNS name: {:?}", self.dns),
            ));
        }
        if self.port == Some(0) {
            return Err(Error::config(
                format!("{at}.port"),
                "must be 1..=65535 or absent (SRV), got 0",
            ));
        }
        if self.refresh_ms == 0 {
            return Err(Error::config(
                format!("{at}.refresh_ms"),
                "must be at least 1, got 0",
            ));
        }
        self.resolver_addr()
            .map_err(|reason| Error::config(format!("{at}.resolver"), reason))?;
        if !matches!(self.scheme.as_str(), "http" | "https") {
            return Err(Error::config(
                format!("{at}.scheme"),
                format!("must be http or https, got {:?}", self.scheme),
            ));
        }
        Ok(())
    }

    /// The configured DNS server, `None` for the system's.
    pub(crate) fn resolver_addr(&self) -> std::result::Result<Option<SocketAddr>, String> {
        let Some(raw) = &self.resolver else {
            return Ok(None);
        };
        raw.parse::<SocketAddr>()
            .or_else(|_| raw.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map(Some)
            .map_err(|_| format!("must be an IP address with an optional port, got {raw:?}"))
    }
}

impl OutlierConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<()> {
        if self.consecutive_failures == 0 {
            return Err(Error::config(
                format!("{at}.consecutive_failures"),
                "must be at least 1",
            ));
        }
        if self.base_ejection_ms == 0 || self.max_ejection_ms < self.base_ejection_ms {
            return Err(Error::config(
                format!("{at}.max_ejection_ms"),
                "base_ejection_ms must be at least 1 and max_ejection_ms at least base_ejection_ms",
            ));
        }
        if !(0.0..=1.0).contains(&self.max_ejected_ratio) {
            return Err(Error::config(
                format!("{at}.max_ejected_ratio"),
                format!("must be 0.0..=1.0, got {}", self.max_ejected_ratio),
            ));
        }
        Ok(())
    }
}

impl VersionConfig {
    /// Checks that every version named here has an endpoint (`known` lists the
    /// endpoints' versions; discovered endpoints carry none).
    pub(crate) fn validate(&self, at: &str, known: &[&str]) -> Result<()> {
        let named = self.default.iter().chain(self.split.keys());
        for version in named {
            if !known.contains(&version.as_str()) {
                return Err(Error::config(
                    at,
                    format!("version {version:?} has no endpoint"),
                ));
            }
        }
        if !self.split.is_empty() && self.split.values().all(|w| *w == 0) {
            return Err(Error::config(
                format!("{at}.split"),
                "needs at least one non-zero weight",
            ));
        }
        Ok(())
    }
}
