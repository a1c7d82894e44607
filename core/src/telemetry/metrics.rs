//! What courier measures, called where it happens. Each function is one check of an
//! `RwLock`ed `Option` when metrics are off (or the `telemetry` feature is), so the hot
//! paths pay nothing measurable; attributes are built only when recording.
//!
//! Names follow the OpenTelemetry semantic conventions where they exist
//! (`http.client.request.duration`, `messaging.client.*`), `courier.*` otherwise; the
//! table is in docs/observability.md.
#![cfg_attr(not(feature = "telemetry"), allow(unused_variables))]

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;

#[cfg(feature = "telemetry")]
use opentelemetry::KeyValue;

#[cfg(feature = "telemetry")]
use super::pipeline::{Instruments, instruments};

#[cfg(feature = "telemetry")]
fn with(record: impl FnOnce(&Instruments)) {
    if let Some(instruments) = instruments() {
        record(&instruments);
    }
}

/// Whether metrics are being recorded (to skip preparing what only they need).
pub(crate) fn active() -> bool {
    #[cfg(feature = "telemetry")]
    return instruments().is_some();
    #[cfg(not(feature = "telemetry"))]
    false
}

/// One HTTP attempt ended: its status, or the error kind when no response came.
/// Runs on every attempt: the service name is shared, not copied, the method is a
/// static string when it is a standard one, and the server's address moves in.
pub(crate) fn http_attempt(
    service: &Arc<str>,
    method: &Method,
    server: Option<(String, u16)>,
    status: Option<u16>,
    error: Option<&'static str>,
    elapsed: Duration,
) {
    #[cfg(feature = "telemetry")]
    with(|m| {
        // Sized for the most an attempt records (method, service, address, port, status,
        // error type): growing it twice cost more than the histogram's own update.
        let mut attributes = Vec::with_capacity(6);
        attributes.push(KeyValue::new("http.request.method", method_name(method)));
        attributes.push(KeyValue::new("courier.service", Arc::clone(service)));
        if let Some((address, port)) = server {
            attributes.push(KeyValue::new("server.address", address));
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        if let Some(status) = status {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                attributes.push(KeyValue::new("error.type", status.to_string()));
            }
        }
        if let Some(error) = error {
            attributes.push(KeyValue::new("error.type", error));
        }
        m.http_duration.record(elapsed.as_secs_f64(), &attributes);
    });
}

/// The method as a metric attribute: a static string for the standard methods.
#[cfg(feature = "telemetry")]
fn method_name(method: &Method) -> opentelemetry::Value {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];
    const NAMES: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT",
    ];
    match STANDARD.iter().position(|m| m == method) {
        Some(i) => NAMES[i].into(),
        None => method.as_str().to_owned().into(),
    }
}

/// A retry was scheduled.
pub(crate) fn retry(service: &Arc<str>) {
    #[cfg(feature = "telemetry")]
    with(|m| {
        m.retries
            .add(1, &[KeyValue::new("courier.service", Arc::clone(service))])
    });
}

/// The retry budget refused a retry.
pub(crate) fn budget_denied(service: &Arc<str>) {
    #[cfg(feature = "telemetry")]
    with(|m| {
        m.budget_denied
            .add(1, &[KeyValue::new("courier.service", Arc::clone(service))]);
    });
}

/// A breaker changed state; `state` is 0 closed, 1 open, 2 half-open.
pub(crate) fn breaker(service: &str, from: &'static str, to: &'static str, state: i64) {
    #[cfg(feature = "telemetry")]
    with(|m| {
        let service = KeyValue::new("courier.service", service.to_owned());
        m.breaker_state
            .record(state, std::slice::from_ref(&service));
        m.breaker_transitions.add(
            1,
            &[
                service,
                KeyValue::new("courier.breaker.from", from),
                KeyValue::new("courier.breaker.to", to),
            ],
        );
    });
}

/// Outlier detection ejected an endpoint.
pub(crate) fn ejected(endpoint: &str) {
    #[cfg(feature = "telemetry")]
    with(|m| {
        m.ejected
            .add(1, &[KeyValue::new("courier.endpoint", endpoint.to_owned())]);
    });
}

/// A delivery was skipped as a duplicate.
pub(crate) fn dedup_hit(queue: &str) {
    #[cfg(feature = "telemetry")]
    with(|m| {
        m.dedup_hits.add(1, &[messaging(), destination(queue)]);
    });
}

/// A message was delivered to a consumer of `queue`.
pub(crate) fn consumed(queue: &str) {
    #[cfg(feature = "telemetry")]
    with(|m| m.consumed.add(1, &[messaging(), destination(queue)]));
}

/// A publish ended: confirmed (`error` None) or refused/failed with that error kind.
pub(crate) fn published(destination_name: &str, error: Option<&'static str>, elapsed: Duration) {
    #[cfg(feature = "telemetry")]
    with(|m| {
        let mut attributes = vec![
            messaging(),
            destination(destination_name),
            KeyValue::new("messaging.operation.name", "publish"),
            KeyValue::new("messaging.operation.type", "send"),
        ];
        if let Some(error) = error {
            attributes.push(KeyValue::new("error.type", error));
        } else {
            m.confirm_duration
                .record(elapsed.as_secs_f64(), &attributes[..2]);
        }
        m.operation_duration
            .record(elapsed.as_secs_f64(), &attributes);
        m.sent.add(1, &attributes);
    });
}

/// A request started waiting for its reply (+1) or stopped (-1).
pub(crate) fn rpc_in_flight(delta: i64) {
    #[cfg(feature = "telemetry")]
    with(|m| m.rpc_in_flight.add(delta, &[messaging()]));
}

#[cfg(feature = "telemetry")]
fn messaging() -> KeyValue {
    KeyValue::new("messaging.system", "rabbitmq")
}

#[cfg(feature = "telemetry")]
fn destination(name: &str) -> KeyValue {
    KeyValue::new("messaging.destination.name", name.to_owned())
}
