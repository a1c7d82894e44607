//! `Client` and `Response`.

use std::collections::BTreeMap;

use courierkit::{ClientConfig, Request, Validate};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::IntoPyResult;
use crate::trace::{TraceArg, TraceContext};
use crate::wait::run;

/// The native HTTP client; `courier.Client` and `courier.AsyncClient` wrap it.
#[pyclass(frozen, module = "courierkit._courier")]
pub(crate) struct Client {
    /// Cheap to clone: clones share one connection pool.
    inner: courierkit::Client,
}

impl Client {
    fn build(config: courierkit::Result<ClientConfig>) -> PyResult<Self> {
        let inner = config.and_then(courierkit::Client::new).py()?;
        Ok(Client { inner })
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

    #[pyo3(signature = (method, target, path, headers, body, query, deadline_ms, timeout_ms, idempotency_key, version, trace, asynchronous))]
    fn call(
        &self,
        py: Python<'_>,
        method: String,
        target: String,
        path: String,
        headers: Option<Vec<(String, String)>>,
        body: Option<Vec<u8>>,
        query: Option<Vec<(String, String)>>,
        deadline_ms: Option<u64>,
        timeout_ms: Option<u64>,
        idempotency_key: Option<String>,
        version: Option<String>,
        trace: Option<TraceArg>,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let req = Request {
            method,
            target,
            path,
            headers: headers.unwrap_or_default(),
            body: body.map(Into::into).unwrap_or_default(),
            query: query.unwrap_or_default(),
            deadline: deadline_ms.map(std::time::Duration::from_millis),
            timeout: timeout_ms.map(std::time::Duration::from_millis),
            idempotency_key,
            version,
            trace: trace.map(TraceArg::into_core),
        };
        let client = self.inner.clone();
        run(py, asynchronous, async move {
            client.call(req).await.map(Response::from)
        })
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
