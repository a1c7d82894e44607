//! Balancer, outlier-ejection and version-routing settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How an endpoint is chosen among the healthy ones. Every balancer honours weights.
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VersionConfig {
    /// The version for requests that name none.
    pub default: Option<String>,
    /// Relative weights per version.
    pub split: BTreeMap<String, u32>,
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
    /// endpoints' versions); `None` skips that check (discovered endpoints carry none).
    pub(crate) fn validate(&self, at: &str, known: Option<&[&str]>) -> Result<()> {
        let named = self.default.iter().chain(self.split.keys());
        for version in named {
            if let Some(known) = known
                && !known.contains(&version.as_str())
            {
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
