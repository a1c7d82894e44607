//! `TraceContext`: core's W3C trace context as a uniffi object.
//!
//! Parsing and formatting stay in core (`courierkit::TraceContext`); this only wraps it.
//! The `trace` fields and parameters elsewhere keep taking carrier maps, so a context
//! travels as `ctx.toCarrier()`; responses, receipts and deliveries hand back both.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::error::CourierError;

/// A position in a distributed trace: trace id, span id, flags, the vendors'
/// `tracestate` and the application's `baggage`.
///
/// Kotlin: `TraceContext.parse(traceparent)`, `TraceContext.newRoot()`; equality and
/// `toString()` (the traceparent) come from Rust. Swift: the same as static functions,
/// `Equatable`, `Hashable` and `CustomStringConvertible`.
#[derive(Debug, PartialEq, Eq, uniffi::Object)]
#[uniffi::export(Debug, Display, Eq, Hash)]
pub struct TraceContext {
    pub(crate) inner: courierkit::TraceContext,
}

impl TraceContext {
    pub(crate) fn wrap(inner: courierkit::TraceContext) -> Arc<Self> {
        Arc::new(TraceContext { inner })
    }
}

/// The traceparent.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.traceparent())
    }
}

/// By the traceparent: contexts that are equal have the same one, which is all `Hash`
/// needs (core's context does not implement `Hash` itself).
impl Hash for TraceContext {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.traceparent().hash(state);
    }
}

#[uniffi::export]
impl TraceContext {
    /// A new trace: random ids, sampled.
    #[uniffi::constructor]
    pub fn new_root() -> Arc<Self> {
        Self::wrap(courierkit::TraceContext::new_root())
    }

    /// Parses a `traceparent` and an optional `tracestate` (an invalid tracestate is
    /// dropped, the context kept).
    ///
    /// # Errors
    /// `Config` with field `traceparent` when it is not a valid W3C traceparent.
    #[uniffi::constructor(default(tracestate = None))]
    pub fn parse(
        traceparent: String,
        tracestate: Option<String>,
    ) -> Result<Arc<Self>, CourierError> {
        courierkit::TraceContext::parse(&traceparent, tracestate.as_deref())
            .map(Self::wrap)
            .map_err(Into::into)
    }

    /// Extracts from a carrier (keys compared case-insensitively, as HTTP header names
    /// are); a missing or invalid traceparent starts a new trace, as for incoming headers.
    #[uniffi::constructor]
    pub fn from_carrier(carrier: HashMap<String, String>) -> Arc<Self> {
        Self::wrap(courierkit::TraceContext::from_carrier(&carrier))
    }

    /// The same trace with a new span id.
    pub fn child(&self) -> Arc<Self> {
        Self::wrap(self.inner.child())
    }

    /// The trace id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        self.inner.trace_id()
    }

    /// This span's id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        self.inner.span_id()
    }

    /// Whether the trace is sampled.
    pub fn sampled(&self) -> bool {
        self.inner.sampled()
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        self.inner.traceparent()
    }

    /// The vendors' `tracestate`, or none when empty.
    pub fn tracestate(&self) -> Option<String> {
        let ts = self.inner.tracestate();
        (!ts.is_empty()).then(|| ts.header())
    }

    /// The headers to send: `traceparent`, and `tracestate` / `baggage` when non-empty.
    pub fn to_carrier(&self) -> HashMap<String, String> {
        self.inner.to_carrier().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::DefaultHasher;

    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn hash_of(ctx: &TraceContext) -> u64 {
        let mut h = DefaultHasher::new();
        ctx.hash(&mut h);
        h.finish()
    }

    #[test]
    fn an_invalid_traceparent_is_a_config_error_naming_it() {
        match TraceContext::parse("00-bad".into(), None) {
            Err(CourierError::Config { field, .. }) => assert_eq!(field, "traceparent"),
            other => panic!("expected Config, got {other:?}"),
        }
    }

    #[test]
    fn equal_contexts_hash_alike_and_display_their_traceparent() {
        let a = TraceContext::parse(TP.into(), Some("v=1".into())).unwrap();
        let b = TraceContext::from_carrier(a.to_carrier());
        assert_eq!(*a, *b, "a carrier round trip keeps the context");
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_eq!(a.to_string(), TP);
        assert_eq!(a.tracestate().as_deref(), Some("v=1"));
        let child = a.child();
        assert_eq!(child.trace_id(), a.trace_id());
        assert_ne!(child.span_id(), a.span_id());
    }
}
