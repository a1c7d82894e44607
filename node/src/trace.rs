//! `TraceContext`: core's W3C trace context as a JavaScript class, exported as is by
//! `index.js`. Parsing and formatting stay in core; this only wraps it.

use std::collections::HashMap;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::OrThrow;

/// A position in a distributed trace: trace id, span id, flags, `tracestate` and
/// `baggage`. Made by `TraceContext.newRoot()`, `parse()` or `fromCarrier()`.
#[napi(js_name = "TraceContext")]
#[derive(Clone)]
pub struct NativeTraceContext {
    inner: courierkit::TraceContext,
}

/// `trace` as the carrier object JavaScript sees (`traceparent`, `tracestate`,
/// `baggage`): what every `trace` getter returns.
pub(crate) fn carrier(trace: &courierkit::TraceContext) -> HashMap<String, String> {
    trace.to_carrier().into_iter().collect()
}

impl From<courierkit::TraceContext> for NativeTraceContext {
    fn from(inner: courierkit::TraceContext) -> Self {
        NativeTraceContext { inner }
    }
}

#[napi]
impl NativeTraceContext {
    /// A new trace: random ids, sampled.
    #[napi(factory)]
    pub fn new_root() -> Self {
        courierkit::TraceContext::new_root().into()
    }

    /// Parses a `traceparent` (and optional `tracestate`); throws COURIER_CONFIG with
    /// `field` `traceparent` when it is invalid. An invalid tracestate is dropped.
    #[napi(factory)]
    pub fn parse(env: Env, traceparent: String, tracestate: Option<String>) -> Result<Self> {
        courierkit::TraceContext::parse(&traceparent, tracestate.as_deref())
            .map(Self::from)
            .or_throw(&env)
    }

    /// Extracts from a carrier object (keys compared case-insensitively); a missing or
    /// invalid traceparent starts a new trace, as for incoming headers.
    #[napi(factory)]
    pub fn from_carrier(carrier: HashMap<String, String>) -> Self {
        courierkit::TraceContext::from_carrier(&carrier).into()
    }

    /// The same trace with a new span id.
    #[napi]
    pub fn child(&self) -> Self {
        self.inner.child().into()
    }

    /// 32 lowercase hex digits.
    #[napi(getter)]
    pub fn trace_id(&self) -> String {
        self.inner.trace_id()
    }

    /// 16 lowercase hex digits.
    #[napi(getter)]
    pub fn span_id(&self) -> String {
        self.inner.span_id()
    }

    #[napi(getter)]
    pub fn sampled(&self) -> bool {
        self.inner.sampled()
    }

    #[napi(getter)]
    pub fn traceparent(&self) -> String {
        self.inner.traceparent()
    }

    /// The vendors' `tracestate`, or null when empty.
    #[napi(getter)]
    pub fn tracestate(&self) -> Option<String> {
        let ts = self.inner.tracestate();
        (!ts.is_empty()).then(|| ts.header())
    }

    /// `traceparent`, and `tracestate` / `baggage` when non-empty.
    #[napi]
    pub fn to_carrier(&self) -> HashMap<String, String> {
        carrier(&self.inner)
    }

    /// Whether both are the same context (ids, flags, tracestate and baggage).
    #[napi]
    pub fn equals(&self, other: &NativeTraceContext) -> bool {
        self.inner == other.inner
    }

    /// The `traceparent`.
    #[napi(js_name = "toString")]
    pub fn to_js_string(&self) -> String {
        self.inner.traceparent()
    }
}
