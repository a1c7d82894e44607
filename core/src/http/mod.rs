//! Synchronous service-to-service calls over HTTP.
//!
//! A [`Client`] maps service names to endpoints (see [`crate::ClientConfig`]) and runs
//! each [`Request`] through reqwest under a whole-call deadline. A final 4xx or 5xx is a
//! [`Response`], not an error: status handling is the caller's decision.

mod attempt;
mod call;
pub(crate) mod client;
mod config;
pub(crate) mod request;
mod response;
mod service;
mod state;
mod stats;

pub use client::Client;
pub use config::{ClientConfig, EndpointConfig, ServiceConfig};
pub use request::Request;
pub(crate) use request::check_header;
pub use response::Response;
pub use stats::{ClientStats, ServiceStats};
