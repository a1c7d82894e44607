//! Client-side load balancing: endpoints, balancers, outlier ejection, version routing.
//!
//! See [`set`] for how an attempt's endpoint is chosen, [`peak_ewma`] for the default
//! balancer's latency estimate, and [`endpoint`] for per-endpoint health.

mod config;
mod endpoint;
mod peak_ewma;
mod set;

pub use config::{Balancer, OutlierConfig, VersionConfig};
pub use endpoint::EndpointStats;
pub(crate) use endpoint::{Endpoint, InFlight};
pub(crate) use set::EndpointSet;
