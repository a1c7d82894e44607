//! What came back.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::trace::TraceContext;

/// A completed HTTP exchange, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers with lowercase names, in the order received.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Bytes,
    /// Attempts made, 1 when the first attempt answered.
    pub attempts: u32,
    /// Base URL of the endpoint that answered, credentials redacted.
    pub endpoint: String,
    /// The trace context the answered attempt sent (`traceparent` of its span).
    pub trace: TraceContext,
    /// The `Idempotency-Key` the call sent on every attempt: the caller's, or the one
    /// courier made for an `idempotent` request; `None` when none was sent.
    pub idempotency_key: Option<String>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Headers as one map, repeated names joined with `", "` (RFC 9110 section 5.3), the
    /// shape every binding's `headers` property exposes.
    pub fn header_map(&self) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &self.headers {
            map.entry(k.clone())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(v);
                })
                .or_insert_with(|| v.clone());
        }
        map
    }

    /// The body as UTF-8, with invalid sequences replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
