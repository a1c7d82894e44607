//! `Bus`, `Consumer` and `Delivery`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use courierkit::{
    BusConfig, ConsumeOptions, ExchangeKind, PublishOptions, QueueOptions, RequestOptions, Validate,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::IntoPyResult;
use crate::trace::{TraceArg, TraceContext};
use crate::wait::run;

/// The native bus; `courier.Bus` and `courier.AsyncBus` wrap it.
#[pyclass(frozen, module = "courierkit._courier")]
pub(crate) struct Bus {
    inner: courierkit::Bus,
}

#[pymethods]
impl Bus {
    /// Connects; with `asynchronous` returns an awaitable of the Bus.
    #[staticmethod]
    fn connect(py: Python<'_>, config_json: &str, asynchronous: bool) -> PyResult<Py<PyAny>> {
        let config = BusConfig::from_json(config_json).py()?;
        let fut = async move {
            courierkit::Bus::connect(config)
                .await
                .map(|inner| Bus { inner })
        };
        run(py, asynchronous, fut)
    }

    #[pyo3(signature = (name, quorum, delivery_limit, dead_letter, ttl_ms, asynchronous))]
    fn declare_queue(
        &self,
        py: Python<'_>,
        name: String,
        quorum: bool,
        delivery_limit: Option<u32>,
        dead_letter: bool,
        ttl_ms: Option<u64>,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let bus = self.inner.clone();
        let options = QueueOptions {
            quorum,
            delivery_limit,
            dead_letter,
            ttl_ms,
        };
        run(py, asynchronous, async move {
            bus.declare_queue(&name, &options).await
        })
    }

    fn declare_exchange(
        &self,
        py: Python<'_>,
        name: String,
        kind: Option<&str>,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let kind: ExchangeKind = kind.map(str::parse).transpose().py()?.unwrap_or_default();
        let bus = self.inner.clone();
        run(py, asynchronous, async move {
            bus.declare_exchange(&name, kind).await
        })
    }

    fn bind(
        &self,
        py: Python<'_>,
        queue: String,
        exchange: String,
        routing_key: String,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let bus = self.inner.clone();
        run(py, asynchronous, async move {
            bus.bind(&queue, &exchange, &routing_key).await
        })
    }

    /// Returns the confirmed message id and the trace context the message carries.
    #[pyo3(signature = (exchange, routing_key, body, headers, message_id, correlation_id, persistent, trace, deadline_ms, asynchronous))]
    fn publish(
        &self,
        py: Python<'_>,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        headers: Option<BTreeMap<String, String>>,
        message_id: Option<String>,
        correlation_id: Option<String>,
        persistent: bool,
        trace: Option<TraceArg>,
        deadline_ms: Option<u64>,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let bus = self.inner.clone();
        let options = PublishOptions {
            headers: headers.unwrap_or_default(),
            message_id,
            correlation_id,
            persistent,
            trace: trace.map(TraceArg::into_core),
            deadline: deadline_ms.map(Duration::from_millis),
        };
        let fut = async move {
            let receipt = bus
                .publish(&exchange, &routing_key, body.into(), options)
                .await?;
            Ok((receipt.message_id, TraceContext::from(receipt.trace)))
        };
        run(py, asynchronous, fut)
    }

    fn consume(
        &self,
        py: Python<'_>,
        queue: String,
        prefetch: Option<u16>,
        dedup: Option<bool>,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let bus = self.inner.clone();
        let defaults = ConsumeOptions::default();
        let options = ConsumeOptions {
            prefetch,
            dedup: dedup.unwrap_or(defaults.dedup),
        };
        let fut = async move { bus.consume(&queue, options).await.map(Consumer::from) };
        run(py, asynchronous, fut)
    }

    /// A consumer of RPC requests on `queue`.
    fn serve(&self, py: Python<'_>, queue: String, asynchronous: bool) -> PyResult<Py<PyAny>> {
        let bus = self.inner.clone();
        run(py, asynchronous, async move {
            bus.serve(&queue).await.map(Consumer::from)
        })
    }

    /// Sends a request and returns the reply as a Delivery.
    #[pyo3(signature = (routing_key, body, exchange, timeout_ms, headers, trace, asynchronous))]
    fn request(
        &self,
        py: Python<'_>,
        routing_key: String,
        body: Vec<u8>,
        exchange: String,
        timeout_ms: Option<u64>,
        headers: Option<BTreeMap<String, String>>,
        trace: Option<TraceArg>,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let bus = self.inner.clone();
        let defaults = RequestOptions::default();
        let options = RequestOptions {
            exchange,
            timeout: timeout_ms.map_or(defaults.timeout, Duration::from_millis),
            headers: headers.unwrap_or_default(),
            trace: trace.map(TraceArg::into_core),
        };
        run(py, asynchronous, async move {
            bus.request(&routing_key, body.into(), options)
                .await
                .map(Delivery::from)
        })
    }

    /// Counters since the bus connected, as JSON (the Python layer returns a dict).
    fn stats_json(&self) -> String {
        // BusStats holds only numbers: serialising cannot fail.
        serde_json::to_string(&self.inner.stats()).unwrap_or_default()
    }

    fn close(&self, py: Python<'_>, asynchronous: bool) -> PyResult<Py<PyAny>> {
        let bus = self.inner.clone();
        run(py, asynchronous, async move { bus.close().await })
    }
}

/// The native consumer.
#[pyclass(frozen, module = "courierkit._courier")]
pub(crate) struct Consumer {
    inner: Arc<courierkit::Consumer>,
}

impl From<courierkit::Consumer> for Consumer {
    fn from(inner: courierkit::Consumer) -> Self {
        Consumer {
            inner: Arc::new(inner),
        }
    }
}

#[pymethods]
impl Consumer {
    /// The next delivery, or None once closed.
    fn next(
        &self,
        py: Python<'_>,
        timeout_ms: Option<u64>,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let consumer = self.inner.clone();
        let fut = async move {
            let next = consumer.next(timeout_ms.map(Duration::from_millis)).await?;
            Ok(next.map(Delivery::from))
        };
        run(py, asynchronous, fut)
    }

    fn close(&self, py: Python<'_>, asynchronous: bool) -> PyResult<Py<PyAny>> {
        let consumer = self.inner.clone();
        run(py, asynchronous, async move { consumer.close().await })
    }
}

/// The native delivery.
#[pyclass(frozen, module = "courierkit._courier")]
pub(crate) struct Delivery {
    inner: Arc<courierkit::Delivery>,
}

impl From<courierkit::Delivery> for Delivery {
    fn from(inner: courierkit::Delivery) -> Self {
        Delivery {
            inner: Arc::new(inner),
        }
    }
}

#[pymethods]
impl Delivery {
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.body)
    }

    #[getter]
    fn headers(&self) -> BTreeMap<String, String> {
        self.inner.headers.clone()
    }

    #[getter]
    fn message_id(&self) -> Option<&str> {
        self.inner.message_id.as_deref()
    }

    #[getter]
    fn correlation_id(&self) -> Option<&str> {
        self.inner.correlation_id.as_deref()
    }

    /// Where the sender wants a reply (requests only).
    #[getter]
    fn reply_to(&self) -> Option<&str> {
        self.inner.reply_to.as_deref()
    }

    #[getter]
    fn exchange(&self) -> &str {
        &self.inner.exchange
    }

    #[getter]
    fn routing_key(&self) -> &str {
        &self.inner.routing_key
    }

    #[getter]
    fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    #[getter]
    fn delivery_count(&self) -> Option<u32> {
        self.inner.delivery_count
    }

    /// The trace context the message carried, as a carrier dict.
    #[getter]
    fn trace(&self) -> BTreeMap<String, String> {
        self.inner.trace.to_carrier()
    }

    /// The same context as a TraceContext.
    #[getter]
    fn trace_context(&self) -> TraceContext {
        self.inner.trace.clone().into()
    }

    fn ack(&self, py: Python<'_>, asynchronous: bool) -> PyResult<Py<PyAny>> {
        let d = self.inner.clone();
        run(py, asynchronous, async move { d.ack().await })
    }

    fn nack(
        &self,
        py: Python<'_>,
        requeue: Option<bool>,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let d = self.inner.clone();
        let requeue = requeue.unwrap_or(courierkit::Delivery::DEFAULT_REQUEUE);
        run(py, asynchronous, async move { d.nack(requeue).await })
    }

    fn reject(&self, py: Python<'_>, asynchronous: bool) -> PyResult<Py<PyAny>> {
        let d = self.inner.clone();
        run(py, asynchronous, async move { d.reject().await })
    }

    /// Answers a request on its `reply_to`; does not settle it.
    fn reply(
        &self,
        py: Python<'_>,
        body: Vec<u8>,
        headers: Option<BTreeMap<String, String>>,
        asynchronous: bool,
    ) -> PyResult<Py<PyAny>> {
        let d = self.inner.clone();
        run(py, asynchronous, async move {
            d.reply(body.into(), headers.unwrap_or_default()).await
        })
    }
}
