//! Synchronous service-to-service calls over HTTP.
//!
//! A [`Client`] maps service names to endpoints (see [`crate::ClientConfig`]) and runs
//! each [`Request`] through reqwest under a whole-call deadline. A final 4xx or 5xx is a
//! [`Response`], not an error: status handling is the caller's decision.

pub(crate) mod client;
pub(crate) mod request;
mod response;

pub use client::Client;
pub use request::Request;
pub(crate) use request::check_header;
pub use response::Response;
