//! Client-side load balancing: endpoints, balancers, outlier ejection, version routing.
//!
//! See [`set`] for how an attempt's endpoint is chosen, [`peak_ewma`] for the default
//! balancer's latency estimate, [`endpoint`] for per-endpoint health, and [`discovery`]
//! for endpoints found in DNS.

mod config;
mod discovery;
mod endpoint;
mod peak_ewma;
mod set;

pub use config::{Balancer, DiscoveryConfig, OutlierConfig, VersionConfig};
pub(crate) use discovery::Discovery;
pub use endpoint::EndpointStats;
pub(crate) use endpoint::{Endpoint, InFlight};
pub(crate) use set::EndpointSet;
