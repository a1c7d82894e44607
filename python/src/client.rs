//! `Client` and `Response`.

use std::collections::BTreeMap;
use std::time::Duration;

use courierkit::{ClientConfig, Request, Validate};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::IntoPyResult;
use crate::trace::{TraceArg, TraceContext};
use crate::wait::{Awaitable, Op, awaitable, block};

/// The native HTTP client; `courierkit.Client` and `courierkit.AsyncClient` wrap it.
#[pyclass(frozen, module = "courierkit._courier")]
pub(crate) struct Client {
    /// Cheap to clone: clones share one connection pool.
    inner: courierkit::Client,
}

/// `call`'s one argument: core's [`Request`] as the dict the Python layer builds (every
/// key present). `None` leaves a field to core's default.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct RequestArg {
    method: String,
    target: String,
    path: Option<String>,
    headers: Option<Vec<(String, String)>>,
    body: Option<Vec<u8>>,
    query: Option<Vec<(String, String)>>,
    deadline_ms: Option<u64>,
    timeout_ms: Option<u64>,
    idempotency_key: Option<String>,
    idempotent: Option<bool>,
    version: Option<String>,
    rate_key: Option<String>,
    trace: Option<TraceArg>,
}

impl RequestArg {
    fn into_core(self) -> Request {
        let default = Request::default();
        Request {
            method: self.method,
            target: self.target,
            path: self.path.unwrap_or(default.path),
            headers: self.headers.unwrap_or(default.headers),
            body: self.body.map_or(default.body, Into::into),
            query: self.query.unwrap_or(default.query),
            deadline: self.deadline_ms.map(Duration::from_millis),
            timeout: self.timeout_ms.map(Duration::from_millis),
            idempotency_key: self.idempotency_key,
            idempotent: self.idempotent.unwrap_or(default.idempotent),
            version: self.version,
            rate_key: self.rate_key,
            trace: self.trace.map(TraceArg::into_core),
        }
    }
}

impl Client {
    fn build(config: courierkit::Result<ClientConfig>) -> PyResult<Self> {
        let inner = config.and_then(courierkit::Client::new).py()?;
        Ok(Client { inner })
    }

    fn call_op(&self, request: RequestArg) -> impl Op<Response> {
        let client = self.inner.clone();
        let request = request.into_core();
        async move { client.call(request).await.map(Response::from) }
    }
}

#[pymethods]
impl Client {
    #[new]
    fn new(config_json: &str) -> PyResult<Self> {
        Self::build(ClientConfig::from_json(config_json))
    }

    /// Loads a `.toml` or JSON config file through core's loader.
    #[staticmethod]
    fn from_file(path: std::path::PathBuf) -> PyResult<Self> {
        Self::build(ClientConfig::from_file(path))
    }

    fn call(&self, py: Python<'_>, request: RequestArg) -> PyResult<Response> {
        block(py, self.call_op(request))
    }

    fn call_async<'py>(&self, py: Python<'py>, request: RequestArg) -> Awaitable<'py> {
        awaitable(py, self.call_op(request))
    }

    /// Replaces the configuration atomically (core's `Client::reconfigure`).
    fn reconfigure(&self, config_json: &str) -> PyResult<()> {
        ClientConfig::from_json(config_json)
            .and_then(|config| self.inner.reconfigure(config))
            .py()
    }

    /// Counters per service, as JSON (the Python layer returns a dict).
    fn stats_json(&self) -> String {
        // ClientStats holds only numbers and strings: serialising cannot fail.
        serde_json::to_string(&self.inner.stats()).unwrap_or_default()
    }

    fn close(&self) {
        self.inner.close();
    }
}

/// A completed HTTP exchange.
#[pyclass(frozen, module = "courierkit._courier")]
pub(crate) struct Response {
    inner: courierkit::Response,
}

impl From<courierkit::Response> for Response {
    fn from(inner: courierkit::Response) -> Self {
        Response { inner }
    }
}

#[pymethods]
impl Response {
    #[getter]
    fn status(&self) -> u16 {
        self.inner.status
    }

    #[getter]
    fn headers(&self) -> BTreeMap<String, String> {
        self.inner.header_map()
    }

    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.body)
    }

    #[getter]
    fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    #[getter]
    fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    #[getter]
    fn idempotency_key(&self) -> Option<&str> {
        self.inner.idempotency_key.as_deref()
    }

    /// The trace carrier the answered attempt sent.
    #[getter]
    fn trace(&self) -> BTreeMap<String, String> {
        self.inner.trace.to_carrier()
    }

    /// The same context as a TraceContext.
    #[getter]
    fn trace_context(&self) -> TraceContext {
        self.inner.trace.clone().into()
    }

    fn text(&self) -> String {
        self.inner.text()
    }
}

/// The caller's remaining budget in milliseconds from an incoming HTTP request's headers
/// (`x-courier-deadline-ms`), or None; a `ConfigError` naming the header for a bad value.
#[pyfunction]
pub(crate) fn deadline_from_headers(headers: BTreeMap<String, String>) -> PyResult<Option<u64>> {
    let budget =
        courierkit::deadline_from_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .py()?;
    Ok(budget.map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX)))
}
