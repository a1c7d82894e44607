//! `TraceContext`: core's W3C trace context as a Python object, and the `trace=`
//! argument every call, publish and request takes.
//!
//! Parsing and formatting stay in core (`courierkit::TraceContext`); this only wraps it.

use std::collections::BTreeMap;

use pyo3::prelude::*;

use crate::error::IntoPyResult;

/// A position in a distributed trace (`courier.TraceContext`).
#[pyclass(frozen, eq, from_py_object, module = "courierkit._courier")]
#[derive(Clone, PartialEq)]
pub(crate) struct TraceContext {
    pub(crate) inner: courierkit::TraceContext,
}

impl From<courierkit::TraceContext> for TraceContext {
    fn from(inner: courierkit::TraceContext) -> Self {
        TraceContext { inner }
    }
}

#[pymethods]
impl TraceContext {
    /// A new trace: random ids, sampled.
    #[staticmethod]
    fn new_root() -> Self {
        courierkit::TraceContext::new_root().into()
    }

    /// Parses a `traceparent` (and optional `tracestate`); raises ConfigError naming
    /// `traceparent` when it is invalid. An invalid tracestate is dropped.
    #[staticmethod]
    #[pyo3(signature = (traceparent, tracestate = None))]
    fn parse(traceparent: &str, tracestate: Option<&str>) -> PyResult<Self> {
        courierkit::TraceContext::parse(traceparent, tracestate)
            .map(Self::from)
            .py()
    }

    /// Extracts from a carrier dict (keys compared case-insensitively); a missing or
    /// invalid traceparent starts a new trace, as for incoming headers.
    #[staticmethod]
    fn from_carrier(carrier: BTreeMap<String, String>) -> Self {
        courierkit::TraceContext::from_carrier(&carrier).into()
    }

    /// The same trace with a new span id.
    fn child(&self) -> Self {
        self.inner.child().into()
    }

    #[getter]
    fn trace_id(&self) -> String {
        self.inner.trace_id()
    }

    #[getter]
    fn span_id(&self) -> String {
        self.inner.span_id()
    }

    #[getter]
    fn sampled(&self) -> bool {
        self.inner.sampled()
    }

    #[getter]
    fn traceparent(&self) -> String {
        self.inner.traceparent()
    }

    /// The vendors' `tracestate`, or None when empty.
    #[getter]
    fn tracestate(&self) -> Option<String> {
        let ts = self.inner.tracestate();
        (!ts.is_empty()).then(|| ts.header())
    }

    /// `traceparent`, and `tracestate` / `baggage` when non-empty.
    fn to_carrier(&self) -> BTreeMap<String, String> {
        self.inner.to_carrier()
    }

    /// `TraceContext.parse('00-…')`: a traceparent is hex digits and dashes, so it
    /// needs no escaping.
    fn __repr__(&self) -> String {
        format!("TraceContext.parse('{}')", self.inner.traceparent())
    }
}

/// What `trace=` accepts: a TraceContext or a carrier dict (the Python layer turns any
/// other mapping into a dict).
#[derive(FromPyObject)]
pub(crate) enum TraceArg {
    Context(TraceContext),
    Carrier(BTreeMap<String, String>),
}

impl TraceArg {
    pub(crate) fn into_core(self) -> courierkit::TraceContext {
        match self {
            TraceArg::Context(ctx) => ctx.inner,
            TraceArg::Carrier(carrier) => courierkit::TraceContext::from_carrier(&carrier),
        }
    }
}
