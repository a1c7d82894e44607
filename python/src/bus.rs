//! `Bus`, `Consumer` and `Delivery`.
//!
//! Each waiting operation is one core future (the `*_op` functions) and two methods:
//! `name` blocks, `name_async` returns an awaitable (see [`crate::wait`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use courierkit::{
    BusConfig, ConsumeOptions, ExchangeKind, PublishOptions, QueueOptions, RequestOptions, Validate,
};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::{IntoPyResult, to_py};
use crate::trace::{TraceArg, TraceContext};
use crate::wait::{Awaitable, Op, awaitable, block};

/// The native bus; `courierkit.Bus` and `courierkit.AsyncBus` wrap it.
#[pyclass(frozen, module = "courierkit._courier")]
pub(crate) struct Bus {
    inner: courierkit::Bus,
}

// The options arguments: core's options structs as the dicts the Python layer builds
// (every key present). `None` leaves a field to core's default (`*Options::default()`).

/// `declare_queue`'s options: core's [`QueueOptions`].
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct QueueOptionsArg {
    quorum: Option<bool>,
    delivery_limit: Option<u32>,
    dead_letter: Option<bool>,
    ttl_ms: Option<u64>,
    retry_delays_ms: Option<Vec<u64>>,
}

impl QueueOptionsArg {
    fn into_core(self) -> QueueOptions {
        let default = QueueOptions::default();
        QueueOptions {
            quorum: self.quorum.unwrap_or(default.quorum),
            delivery_limit: self.delivery_limit,
            dead_letter: self.dead_letter.unwrap_or(default.dead_letter),
            ttl: self.ttl_ms.map(Duration::from_millis),
            retry_delays: self.retry_delays_ms.map_or(default.retry_delays, |delays| {
                delays.into_iter().map(Duration::from_millis).collect()
            }),
        }
    }
}

/// `publish`'s options: core's [`PublishOptions`].
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct PublishOptionsArg {
    headers: Option<BTreeMap<String, String>>,
    message_id: Option<String>,
    correlation_id: Option<String>,
    persistent: Option<bool>,
    trace: Option<TraceArg>,
    deadline_ms: Option<u64>,
    delay_ms: Option<u64>,
    ttl_ms: Option<u64>,
}

impl PublishOptionsArg {
    fn into_core(self) -> PublishOptions {
        let default = PublishOptions::default();
        PublishOptions {
            headers: self.headers.unwrap_or(default.headers),
            message_id: self.message_id,
            correlation_id: self.correlation_id,
            persistent: self.persistent.unwrap_or(default.persistent),
            trace: self.trace.map(TraceArg::into_core),
            deadline: self.deadline_ms.map(Duration::from_millis),
            delay: self.delay_ms.map(Duration::from_millis),
            ttl: self.ttl_ms.map(Duration::from_millis),
        }
    }
}

/// `consume`'s options: core's [`ConsumeOptions`].
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct ConsumeOptionsArg {
    prefetch: Option<u16>,
    dedup: Option<bool>,
}

impl ConsumeOptionsArg {
    fn into_core(self) -> ConsumeOptions {
        let default = ConsumeOptions::default();
        ConsumeOptions {
            prefetch: self.prefetch,
            dedup: self.dedup.unwrap_or(default.dedup),
        }
    }
}

/// `request`'s options: core's [`RequestOptions`].
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub(crate) struct RequestOptionsArg {
    exchange: Option<String>,
    timeout_ms: Option<u64>,
    headers: Option<BTreeMap<String, String>>,
    trace: Option<TraceArg>,
}

impl RequestOptionsArg {
    fn into_core(self) -> RequestOptions {
        let default = RequestOptions::default();
        RequestOptions {
            exchange: self.exchange.unwrap_or(default.exchange),
            timeout: self
                .timeout_ms
                .map_or(default.timeout, Duration::from_millis),
            headers: self.headers.unwrap_or(default.headers),
            trace: self.trace.map(TraceArg::into_core),
        }
    }
}

/// One `publish_many` message: `(exchange, routing_key, body, options)`.
type BatchMessageArg = (String, String, Vec<u8>, PublishOptionsArg);

/// One `publish_many` result as Python sees it: `(message_id, trace)` when confirmed,
/// else the exception `publish` would have raised, as a value (like
/// `asyncio.gather(..., return_exceptions=True)`).
pub(crate) struct PublishOutcome(courierkit::Result<courierkit::Receipt>);

impl<'py> IntoPyObject<'py> for PublishOutcome {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0 {
            Ok(receipt) => Ok((receipt.message_id, TraceContext::from(receipt.trace))
                .into_pyobject(py)?
                .into_any()),
            Err(e) => Ok(to_py(e).into_value(py).into_bound(py).into_any()),
        }
    }
}

impl Bus {
    fn connect_op(config_json: &str) -> PyResult<impl Op<Bus>> {
        let config = BusConfig::from_json(config_json).py()?;
        Ok(async move {
            courierkit::Bus::connect(config)
                .await
                .map(|inner| Bus { inner })
        })
    }

    fn declare_queue_op(&self, name: String, options: QueueOptionsArg) -> impl Op<()> {
        let (bus, options) = (self.inner.clone(), options.into_core());
        async move { bus.declare_queue(&name, &options).await }
    }

    fn declare_exchange_op(&self, name: String, kind: Option<&str>) -> PyResult<impl Op<()>> {
        let kind: ExchangeKind = kind.map(str::parse).transpose().py()?.unwrap_or_default();
        let bus = self.inner.clone();
        Ok(async move { bus.declare_exchange(&name, kind).await })
    }

    fn bind_op(&self, queue: String, exchange: String, routing_key: String) -> impl Op<()> {
        let bus = self.inner.clone();
        async move { bus.bind(&queue, &exchange, &routing_key).await }
    }

    fn publish_op(
        &self,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        options: PublishOptionsArg,
    ) -> impl Op<(String, TraceContext)> {
        let (bus, options) = (self.inner.clone(), options.into_core());
        async move {
            let receipt = bus
                .publish(&exchange, &routing_key, body.into(), options)
                .await?;
            Ok((receipt.message_id, TraceContext::from(receipt.trace)))
        }
    }

    fn publish_many_op(&self, messages: Vec<BatchMessageArg>) -> impl Op<Vec<PublishOutcome>> {
        let bus = self.inner.clone();
        let messages = messages
            .into_iter()
            .map(
                |(exchange, routing_key, body, options)| courierkit::BatchMessage {
                    exchange,
                    routing_key,
                    body: body.into(),
                    options: options.into_core(),
                },
            )
            .collect();
        async move {
            let results = bus.publish_many(messages).await?;
            Ok(results.into_iter().map(PublishOutcome).collect())
        }
    }

    fn consume_op(&self, queue: String, options: ConsumeOptionsArg) -> impl Op<Consumer> {
        let (bus, options) = (self.inner.clone(), options.into_core());
        async move { bus.consume(&queue, options).await.map(Consumer::from) }
    }

    fn serve_op(&self, queue: String) -> impl Op<Consumer> {
        let bus = self.inner.clone();
        async move { bus.serve(&queue).await.map(Consumer::from) }
    }

    fn request_op(
        &self,
        routing_key: String,
        body: Vec<u8>,
        options: RequestOptionsArg,
    ) -> impl Op<Delivery> {
        let (bus, options) = (self.inner.clone(), options.into_core());
        async move {
            bus.request(&routing_key, body.into(), options)
                .await
                .map(Delivery::from)
        }
    }

    fn close_op(&self) -> impl Op<()> {
        let bus = self.inner.clone();
        async move { bus.close().await }
    }
}

#[pymethods]
impl Bus {
    #[staticmethod]
    fn connect(py: Python<'_>, config_json: &str) -> PyResult<Bus> {
        block(py, Self::connect_op(config_json)?)
    }

    #[staticmethod]
    fn connect_async<'py>(py: Python<'py>, config_json: &str) -> Awaitable<'py> {
        awaitable(py, Self::connect_op(config_json)?)
    }

    fn declare_queue(
        &self,
        py: Python<'_>,
        name: String,
        options: QueueOptionsArg,
    ) -> PyResult<()> {
        block(py, self.declare_queue_op(name, options))
    }

    fn declare_queue_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        options: QueueOptionsArg,
    ) -> Awaitable<'py> {
        awaitable(py, self.declare_queue_op(name, options))
    }

    /// `kind` None is core's default kind.
    fn declare_exchange(&self, py: Python<'_>, name: String, kind: Option<&str>) -> PyResult<()> {
        block(py, self.declare_exchange_op(name, kind)?)
    }

    fn declare_exchange_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        kind: Option<&str>,
    ) -> Awaitable<'py> {
        awaitable(py, self.declare_exchange_op(name, kind)?)
    }

    fn bind(
        &self,
        py: Python<'_>,
        queue: String,
        exchange: String,
        routing_key: String,
    ) -> PyResult<()> {
        block(py, self.bind_op(queue, exchange, routing_key))
    }

    fn bind_async<'py>(
        &self,
        py: Python<'py>,
        queue: String,
        exchange: String,
        routing_key: String,
    ) -> Awaitable<'py> {
        awaitable(py, self.bind_op(queue, exchange, routing_key))
    }

    /// Returns the confirmed message id and the trace context the message carries.
    fn publish(
        &self,
        py: Python<'_>,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        options: PublishOptionsArg,
    ) -> PyResult<(String, TraceContext)> {
        block(py, self.publish_op(exchange, routing_key, body, options))
    }

    fn publish_async<'py>(
        &self,
        py: Python<'py>,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        options: PublishOptionsArg,
    ) -> Awaitable<'py> {
        awaitable(py, self.publish_op(exchange, routing_key, body, options))
    }

    /// One result per message: `(message_id, trace)` or the exception, at its index.
    fn publish_many(
        &self,
        py: Python<'_>,
        messages: Vec<BatchMessageArg>,
    ) -> PyResult<Vec<PublishOutcome>> {
        block(py, self.publish_many_op(messages))
    }

    fn publish_many_async<'py>(
        &self,
        py: Python<'py>,
        messages: Vec<BatchMessageArg>,
    ) -> Awaitable<'py> {
        awaitable(py, self.publish_many_op(messages))
    }

    fn consume(
        &self,
        py: Python<'_>,
        queue: String,
        options: ConsumeOptionsArg,
    ) -> PyResult<Consumer> {
        block(py, self.consume_op(queue, options))
    }

    fn consume_async<'py>(
        &self,
        py: Python<'py>,
        queue: String,
        options: ConsumeOptionsArg,
    ) -> Awaitable<'py> {
        awaitable(py, self.consume_op(queue, options))
    }

    /// A consumer of RPC requests on `queue`.
    fn serve(&self, py: Python<'_>, queue: String) -> PyResult<Consumer> {
        block(py, self.serve_op(queue))
    }

    fn serve_async<'py>(&self, py: Python<'py>, queue: String) -> Awaitable<'py> {
        awaitable(py, self.serve_op(queue))
    }

    /// Sends a request and returns the reply as a Delivery.
    fn request(
        &self,
        py: Python<'_>,
        routing_key: String,
        body: Vec<u8>,
        options: RequestOptionsArg,
    ) -> PyResult<Delivery> {
        block(py, self.request_op(routing_key, body, options))
    }

    fn request_async<'py>(
        &self,
        py: Python<'py>,
        routing_key: String,
        body: Vec<u8>,
        options: RequestOptionsArg,
    ) -> Awaitable<'py> {
        awaitable(py, self.request_op(routing_key, body, options))
    }

    /// Counters since the bus connected, as JSON (the Python layer returns a dict).
    fn stats_json(&self) -> String {
        // BusStats holds only numbers: serialising cannot fail.
        serde_json::to_string(&self.inner.stats()).unwrap_or_default()
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        block(py, self.close_op())
    }

    fn close_async<'py>(&self, py: Python<'py>) -> Awaitable<'py> {
        awaitable(py, self.close_op())
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

impl Consumer {
    fn next_op(&self, timeout_ms: Option<u64>) -> impl Op<Option<Delivery>> {
        let consumer = self.inner.clone();
        async move {
            let next = consumer.next(timeout_ms.map(Duration::from_millis)).await?;
            Ok(next.map(Delivery::from))
        }
    }

    fn next_batch_op(&self, max: usize, timeout_ms: u64) -> impl Op<Option<Batch>> {
        let consumer = self.inner.clone();
        async move {
            courierkit::check_duration_ms("timeout_ms", timeout_ms, true)?;
            let batch = consumer
                .next_batch(max, Duration::from_millis(timeout_ms))
                .await?;
            Ok(batch.map(|inner| Batch {
                inner: Arc::new(inner),
            }))
        }
    }

    fn close_op(&self) -> impl Op<()> {
        let consumer = self.inner.clone();
        async move { consumer.close().await }
    }
}

#[pymethods]
impl Consumer {
    /// The next delivery, or None once closed.
    fn next(&self, py: Python<'_>, timeout_ms: Option<u64>) -> PyResult<Option<Delivery>> {
        block(py, self.next_op(timeout_ms))
    }

    fn next_async<'py>(&self, py: Python<'py>, timeout_ms: Option<u64>) -> Awaitable<'py> {
        awaitable(py, self.next_op(timeout_ms))
    }

    /// Up to `max` deliveries within `timeout_ms`, or None once closed.
    fn next_batch(&self, py: Python<'_>, max: usize, timeout_ms: u64) -> PyResult<Option<Batch>> {
        block(py, self.next_batch_op(max, timeout_ms))
    }

    fn next_batch_async<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout_ms: u64,
    ) -> Awaitable<'py> {
        awaitable(py, self.next_batch_op(max, timeout_ms))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        block(py, self.close_op())
    }

    fn close_async<'py>(&self, py: Python<'py>) -> Awaitable<'py> {
        awaitable(py, self.close_op())
    }
}

/// The native batch of deliveries.
#[pyclass(frozen, module = "courierkit._courier")]
pub(crate) struct Batch {
    inner: Arc<courierkit::Batch>,
}

impl Batch {
    fn settle_op(&self, outcome: Settle) -> impl Op<()> {
        let batch = self.inner.clone();
        async move {
            match outcome {
                Settle::Ack => batch.ack().await,
                Settle::Nack(requeue) => batch.nack(requeue).await,
                Settle::Reject => batch.reject().await,
            }
        }
    }
}

/// How `Batch` settles what is left.
enum Settle {
    Ack,
    Nack(bool),
    Reject,
}

impl Settle {
    fn nack(requeue: Option<bool>) -> Settle {
        Settle::Nack(requeue.unwrap_or(courierkit::Delivery::DEFAULT_REQUEUE))
    }
}

#[pymethods]
impl Batch {
    /// The deliveries, in the order the broker sent them.
    #[getter]
    fn deliveries(&self) -> Vec<Delivery> {
        self.inner
            .deliveries()
            .iter()
            .map(|d| Delivery { inner: d.clone() })
            .collect()
    }

    fn ack(&self, py: Python<'_>) -> PyResult<()> {
        block(py, self.settle_op(Settle::Ack))
    }

    fn ack_async<'py>(&self, py: Python<'py>) -> Awaitable<'py> {
        awaitable(py, self.settle_op(Settle::Ack))
    }

    fn nack(&self, py: Python<'_>, requeue: Option<bool>) -> PyResult<()> {
        block(py, self.settle_op(Settle::nack(requeue)))
    }

    fn nack_async<'py>(&self, py: Python<'py>, requeue: Option<bool>) -> Awaitable<'py> {
        awaitable(py, self.settle_op(Settle::nack(requeue)))
    }

    fn reject(&self, py: Python<'_>) -> PyResult<()> {
        block(py, self.settle_op(Settle::Reject))
    }

    fn reject_async<'py>(&self, py: Python<'py>) -> Awaitable<'py> {
        awaitable(py, self.settle_op(Settle::Reject))
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

impl Delivery {
    fn ack_op(&self) -> impl Op<()> {
        let d = self.inner.clone();
        async move { d.ack().await }
    }

    fn nack_op(&self, requeue: Option<bool>) -> impl Op<()> {
        let d = self.inner.clone();
        let requeue = requeue.unwrap_or(courierkit::Delivery::DEFAULT_REQUEUE);
        async move { d.nack(requeue).await }
    }

    fn reject_op(&self) -> impl Op<()> {
        let d = self.inner.clone();
        async move { d.reject().await }
    }

    fn finish_op(&self, succeeded: bool, requeue: Option<bool>) -> impl Op<()> {
        let d = self.inner.clone();
        async move { d.finish(succeeded, requeue).await }
    }

    fn reply_op(&self, body: Vec<u8>, headers: Option<BTreeMap<String, String>>) -> impl Op<()> {
        let d = self.inner.clone();
        async move { d.reply(body.into(), headers.unwrap_or_default()).await }
    }

    fn forward_op(
        &self,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        options: PublishOptionsArg,
    ) -> impl Op<(String, TraceContext)> {
        let (d, options) = (self.inner.clone(), options.into_core());
        async move {
            let receipt = d
                .forward(&exchange, &routing_key, body.into(), options)
                .await?;
            Ok((receipt.message_id, TraceContext::from(receipt.trace)))
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

    /// Milliseconds left until the message's deadline (0 once passed); None without one.
    #[getter]
    fn remaining_ms(&self) -> Option<u64> {
        self.inner
            .remaining()
            .map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
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

    fn ack(&self, py: Python<'_>) -> PyResult<()> {
        block(py, self.ack_op())
    }

    fn ack_async<'py>(&self, py: Python<'py>) -> Awaitable<'py> {
        awaitable(py, self.ack_op())
    }

    /// `requeue` None is core's default ([`courierkit::Delivery::DEFAULT_REQUEUE`]).
    fn nack(&self, py: Python<'_>, requeue: Option<bool>) -> PyResult<()> {
        block(py, self.nack_op(requeue))
    }

    fn nack_async<'py>(&self, py: Python<'py>, requeue: Option<bool>) -> Awaitable<'py> {
        awaitable(py, self.nack_op(requeue))
    }

    fn reject(&self, py: Python<'_>) -> PyResult<()> {
        block(py, self.reject_op())
    }

    fn reject_async<'py>(&self, py: Python<'py>) -> Awaitable<'py> {
        awaitable(py, self.reject_op())
    }

    /// Settles at the end of a scope unless settled: ack when `succeeded`, else nack.
    fn finish(&self, py: Python<'_>, succeeded: bool, requeue: Option<bool>) -> PyResult<()> {
        block(py, self.finish_op(succeeded, requeue))
    }

    fn finish_async<'py>(
        &self,
        py: Python<'py>,
        succeeded: bool,
        requeue: Option<bool>,
    ) -> Awaitable<'py> {
        awaitable(py, self.finish_op(succeeded, requeue))
    }

    #[getter]
    fn is_settled(&self) -> bool {
        self.inner.is_settled()
    }

    /// Answers a request on its `reply_to`; does not settle it.
    fn reply(
        &self,
        py: Python<'_>,
        body: Vec<u8>,
        headers: Option<BTreeMap<String, String>>,
    ) -> PyResult<()> {
        block(py, self.reply_op(body, headers))
    }

    fn reply_async<'py>(
        &self,
        py: Python<'py>,
        body: Vec<u8>,
        headers: Option<BTreeMap<String, String>>,
    ) -> Awaitable<'py> {
        awaitable(py, self.reply_op(body, headers))
    }

    /// Publishes the next step under a derived id, then acks this delivery; returns the
    /// next step's message id and trace context.
    fn forward(
        &self,
        py: Python<'_>,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        options: PublishOptionsArg,
    ) -> PyResult<(String, TraceContext)> {
        block(py, self.forward_op(exchange, routing_key, body, options))
    }

    fn forward_async<'py>(
        &self,
        py: Python<'py>,
        exchange: String,
        routing_key: String,
        body: Vec<u8>,
        options: PublishOptionsArg,
    ) -> Awaitable<'py> {
        awaitable(py, self.forward_op(exchange, routing_key, body, options))
    }
}
