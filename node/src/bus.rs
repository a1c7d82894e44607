//! `NativeBus`, `NativeConsumer` and `NativeDelivery`.

use std::collections::HashMap;
use std::sync::Arc;

use courierkit::{
    BusConfig, ConsumeOptions, ExchangeKind, PublishOptions, QueueOptions, RequestOptions,
    TraceContext, Validate,
};
use napi::bindgen_prelude::*;
use napi::{JsValue, sys};
use napi_derive::napi;

use crate::cancel::{CancelToken, cancellable};
use crate::error::{OrThrow, error_object};
use crate::numbers;
use crate::promise;
use crate::trace::NativeTraceContext;

#[napi(object)]
pub struct NativeQueueOptions {
    pub quorum: Option<bool>,
    pub delivery_limit: Option<f64>,
    pub dead_letter: Option<bool>,
    pub ttl_ms: Option<f64>,
    pub retry_delays_ms: Option<Vec<f64>>,
}

#[napi(object)]
pub struct NativePublish {
    pub exchange: String,
    pub routing_key: String,
    pub body: Buffer,
    pub headers: Option<HashMap<String, String>>,
    pub message_id: Option<String>,
    pub correlation_id: Option<String>,
    pub persistent: Option<bool>,
    /// The caller's trace carrier (`traceparent`, `tracestate`, `baggage`).
    pub trace: Option<HashMap<String, String>>,
    /// How long the publish may wait in all; the bus's `publish_deadline_ms` when absent.
    pub deadline_ms: Option<f64>,
    /// Deliver no earlier than this many milliseconds from now.
    pub delay_ms: Option<f64>,
    /// How long the message stays worth processing, from now.
    pub ttl_ms: Option<f64>,
}

#[napi(object)]
pub struct NativeConsumeOptions {
    pub prefetch: Option<f64>,
    /// Skip message ids already acked. Default true.
    pub dedup: Option<bool>,
}

/// An RPC request as `index.js` passes it.
#[napi(object)]
pub struct NativeRpcRequest {
    pub exchange: Option<String>,
    pub routing_key: String,
    pub body: Buffer,
    pub timeout_ms: Option<f64>,
    pub headers: Option<HashMap<String, String>>,
    pub trace: Option<HashMap<String, String>>,
}

/// A confirmed publish: its id and the trace context it sent, as a carrier and as a
/// `TraceContext`.
///
/// A class whose fields are read on demand rather than a plain object built on every
/// confirm: building the id string, the carrier object and a `TraceContext` instance cost
/// the JavaScript thread that much on each publish, and most callers never look.
#[napi]
pub struct NativeReceipt {
    inner: courierkit::Receipt,
}

#[napi]
impl NativeReceipt {
    #[napi(getter)]
    pub fn message_id(&self) -> String {
        self.inner.message_id.clone()
    }

    #[napi(getter)]
    pub fn trace(&self) -> HashMap<String, String> {
        crate::trace::carrier(&self.inner.trace)
    }

    #[napi(getter)]
    pub fn trace_context(&self) -> NativeTraceContext {
        self.inner.trace.clone().into()
    }
}

impl From<courierkit::Receipt> for NativeReceipt {
    fn from(inner: courierkit::Receipt) -> Self {
        NativeReceipt { inner }
    }
}

/// `publishMany`'s results, in the shape of `Promise.allSettled`: for each message
/// `{ status: 'fulfilled', value: receipt }` or `{ status: 'rejected', reason: error }`,
/// the error being the one `publish` would reject with. Built on the JavaScript thread.
pub struct Settled(Vec<courierkit::Result<courierkit::Receipt>>);

impl ToNapiValue for Settled {
    unsafe fn to_napi_value(raw: sys::napi_env, settled: Self) -> Result<sys::napi_value> {
        let env = Env::from_raw(raw);
        let mut array = env.create_array(u32::try_from(settled.0.len()).unwrap_or(u32::MAX))?;
        for (i, result) in settled.0.into_iter().enumerate() {
            let mut entry = Object::new(&env)?;
            match result {
                Ok(receipt) => {
                    entry.set_named_property("status", "fulfilled")?;
                    entry.set_named_property("value", NativeReceipt::from(receipt))?;
                }
                Err(e) => {
                    entry.set_named_property("status", "rejected")?;
                    entry.set_named_property("reason", error_object(&env, &e)?)?;
                }
            }
            array.set(u32::try_from(i).unwrap_or(u32::MAX), entry)?;
        }
        Ok(array.raw())
    }
}

impl NativePublish {
    /// The destination, body and core options of a publish or a forward.
    fn into_core(self) -> courierkit::Result<(String, String, Vec<u8>, PublishOptions)> {
        let defaults = PublishOptions::default();
        let options = PublishOptions {
            headers: self.headers.unwrap_or_default().into_iter().collect(),
            message_id: self.message_id,
            correlation_id: self.correlation_id,
            persistent: self.persistent.unwrap_or(defaults.persistent),
            trace: self
                .trace
                .map(|carrier| TraceContext::from_carrier(&carrier)),
            deadline: numbers::millis("deadline_ms", self.deadline_ms)?,
            delay: numbers::millis("delay_ms", self.delay_ms)?,
            ttl: numbers::millis("ttl_ms", self.ttl_ms)?,
        };
        Ok((self.exchange, self.routing_key, self.body.to_vec(), options))
    }
}

#[napi]
pub struct NativeBus {
    inner: courierkit::Bus,
}

#[napi]
impl NativeBus {
    #[napi(ts_return_type = "Promise<NativeBus>")]
    pub fn connect<'env>(
        env: &'env Env,
        config_json: String,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let config = BusConfig::from_json(&config_json).or_throw(env)?;
        let connect = async move {
            courierkit::Bus::connect(config)
                .await
                .map(|inner| NativeBus { inner })
        };
        promise::spawn(env, cancellable(cancel, connect))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn declare_queue<'env>(
        &self,
        env: &'env Env,
        name: String,
        options: Option<NativeQueueOptions>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let defaults = QueueOptions::default();
        let options = match options {
            None => defaults,
            Some(o) => QueueOptions {
                quorum: o.quorum.unwrap_or(defaults.quorum),
                delivery_limit: o
                    .delivery_limit
                    .map(|n| {
                        numbers::integer("delivery_limit", n, u32::MAX.into()).map(|n| n as u32)
                    })
                    .transpose()
                    .or_throw(env)?,
                dead_letter: o.dead_letter.unwrap_or(defaults.dead_letter),
                ttl: numbers::millis("ttl_ms", o.ttl_ms).or_throw(env)?,
                retry_delays: o
                    .retry_delays_ms
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(i, ms)| numbers::duration(&format!("retry_delays_ms[{i}]"), ms))
                    .collect::<courierkit::Result<_>>()
                    .or_throw(env)?,
            },
        };
        let bus = self.inner.clone();
        let declare = async move { bus.declare_queue(&name, &options).await };
        promise::spawn(env, cancellable(cancel, declare))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn declare_exchange<'env>(
        &self,
        env: &'env Env,
        name: String,
        kind: Option<String>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let kind: ExchangeKind = kind
            .as_deref()
            .map(str::parse)
            .transpose()
            .or_throw(env)?
            .unwrap_or_default();
        let bus = self.inner.clone();
        let declare = async move { bus.declare_exchange(&name, kind).await };
        promise::spawn(env, cancellable(cancel, declare))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn bind<'env>(
        &self,
        env: &'env Env,
        queue: String,
        exchange: String,
        routing_key: String,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let bus = self.inner.clone();
        let bind = async move { bus.bind(&queue, &exchange, &routing_key).await };
        promise::spawn(env, cancellable(cancel, bind))
    }

    /// Resolves once confirmed, with the message id and its trace carrier.
    #[napi(ts_return_type = "Promise<NativeReceipt>")]
    pub fn publish<'env>(
        &self,
        env: &'env Env,
        message: NativePublish,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let (exchange, routing_key, body, options) = message.into_core().or_throw(env)?;
        let bus = self.inner.clone();
        let publish = async move {
            let receipt = bus
                .publish(&exchange, &routing_key, body.into(), options)
                .await?;
            Ok(NativeReceipt::from(receipt))
        };
        promise::spawn(env, cancellable(cancel, publish))
    }

    /// Publishes every message at once and resolves, once all are confirmed or refused,
    /// with one `Promise.allSettled`-shaped entry per message.
    #[napi(
        ts_return_type = "Promise<Array<{ status: 'fulfilled', value: NativeReceipt } | { status: 'rejected', reason: Error }>>"
    )]
    pub fn publish_many<'env>(
        &self,
        env: &'env Env,
        messages: Vec<NativePublish>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let messages = messages
            .into_iter()
            .map(|m| {
                let (exchange, routing_key, body, options) = m.into_core()?;
                Ok(courierkit::BatchMessage {
                    exchange,
                    routing_key,
                    body: body.into(),
                    options,
                })
            })
            .collect::<courierkit::Result<Vec<_>>>()
            .or_throw(env)?;
        let bus = self.inner.clone();
        let publish = async move { bus.publish_many(messages).await.map(Settled) };
        promise::spawn(env, cancellable(cancel, publish))
    }

    #[napi(ts_return_type = "Promise<NativeConsumer>")]
    pub fn consume<'env>(
        &self,
        env: &'env Env,
        queue: String,
        options: Option<NativeConsumeOptions>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let defaults = ConsumeOptions::default();
        let options = match options {
            None => defaults,
            Some(o) => ConsumeOptions {
                prefetch: o
                    .prefetch
                    .map(|p| numbers::integer("prefetch", p, u16::MAX.into()).map(|p| p as u16))
                    .transpose()
                    .or_throw(env)?,
                dedup: o.dedup.unwrap_or(defaults.dedup),
            },
        };
        let bus = self.inner.clone();
        let consume = async move {
            let inner = bus.consume(&queue, options).await?;
            Ok(NativeConsumer::from(inner))
        };
        promise::spawn(env, cancellable(cancel, consume))
    }

    /// A consumer of RPC requests: each delivery's `reply()` answers its caller.
    #[napi(ts_return_type = "Promise<NativeConsumer>")]
    pub fn serve<'env>(
        &self,
        env: &'env Env,
        queue: String,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let bus = self.inner.clone();
        let serve = async move {
            let inner = bus.serve(&queue).await?;
            Ok(NativeConsumer::from(inner))
        };
        promise::spawn(env, cancellable(cancel, serve))
    }

    /// Resolves to the reply; rejects with COURIER_TIMEOUT when none comes in time.
    #[napi(ts_return_type = "Promise<NativeDelivery>")]
    pub fn request<'env>(
        &self,
        env: &'env Env,
        request: NativeRpcRequest,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let defaults = RequestOptions::default();
        let options = RequestOptions {
            exchange: request.exchange.unwrap_or(defaults.exchange),
            timeout: numbers::millis("timeout_ms", request.timeout_ms)
                .or_throw(env)?
                .unwrap_or(defaults.timeout),
            headers: request.headers.unwrap_or_default().into_iter().collect(),
            trace: request
                .trace
                .map(|carrier| TraceContext::from_carrier(&carrier)),
        };
        let body = request.body.to_vec().into();
        let routing_key = request.routing_key;
        let bus = self.inner.clone();
        let request = async move {
            let reply = bus.request(&routing_key, body, options).await?;
            Ok(NativeDelivery::from(reply))
        };
        promise::spawn(env, cancellable(cancel, request))
    }

    /// Counters since the bus connected, as JSON (index.js returns the parsed object).
    #[napi]
    pub fn stats_json(&self) -> String {
        // BusStats holds only numbers: serialising cannot fail.
        serde_json::to_string(&self.inner.stats()).unwrap_or_default()
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let bus = self.inner.clone();
        promise::spawn(env, async move { bus.close().await })
    }
}

#[napi]
pub struct NativeConsumer {
    inner: Arc<courierkit::Consumer>,
}

impl From<courierkit::Consumer> for NativeConsumer {
    fn from(inner: courierkit::Consumer) -> Self {
        NativeConsumer {
            inner: Arc::new(inner),
        }
    }
}

#[napi]
impl NativeConsumer {
    /// Resolves to the next delivery, or null once the consumer is closed.
    #[napi(ts_return_type = "Promise<NativeDelivery | null>")]
    pub fn next<'env>(
        &self,
        env: &'env Env,
        timeout_ms: Option<f64>,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let timeout = numbers::millis("timeout_ms", timeout_ms).or_throw(env)?;
        let consumer = self.inner.clone();
        let next = async move {
            let next = consumer.next(timeout).await?;
            Ok(next.map(NativeDelivery::from))
        };
        promise::spawn(env, cancellable(cancel, next))
    }

    /// Resolves to up to `max` deliveries once `max` came or `timeoutMs` passed (fewer,
    /// possibly none), or null once the consumer is closed.
    #[napi(ts_return_type = "Promise<NativeBatch | null>")]
    pub fn next_batch<'env>(
        &self,
        env: &'env Env,
        max: f64,
        timeout_ms: f64,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let max = numbers::integer("max", max, u32::MAX.into()).or_throw(env)? as usize;
        let timeout = numbers::millis("timeout_ms", Some(timeout_ms))
            .or_throw(env)?
            .unwrap_or_default();
        let consumer = self.inner.clone();
        let next = async move {
            let batch = consumer.next_batch(max, timeout).await?;
            Ok(batch.map(|inner| NativeBatch {
                inner: Arc::new(inner),
            }))
        };
        promise::spawn(env, cancellable(cancel, next))
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let consumer = self.inner.clone();
        promise::spawn(env, async move { consumer.close().await })
    }
}

/// Deliveries from `nextBatch`, settled one by one or all at once.
#[napi]
pub struct NativeBatch {
    inner: Arc<courierkit::Batch>,
}

#[napi]
impl NativeBatch {
    /// The deliveries, in the order the broker sent them.
    #[napi(getter)]
    pub fn deliveries(&self) -> Vec<NativeDelivery> {
        self.inner
            .deliveries()
            .iter()
            .map(|d| NativeDelivery { inner: d.clone() })
            .collect()
    }

    /// Acks every delivery not settled yet; rejects with the first failure.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn ack<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let batch = self.inner.clone();
        promise::spawn(env, async move { batch.ack().await })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn nack<'env>(&self, env: &'env Env, requeue: Option<bool>) -> Result<Object<'env>> {
        let batch = self.inner.clone();
        let requeue = requeue.unwrap_or(courierkit::Delivery::DEFAULT_REQUEUE);
        promise::spawn(env, async move { batch.nack(requeue).await })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn reject<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let batch = self.inner.clone();
        promise::spawn(env, async move { batch.reject().await })
    }
}

#[napi]
pub struct NativeDelivery {
    inner: Arc<courierkit::Delivery>,
}

impl From<courierkit::Delivery> for NativeDelivery {
    fn from(inner: courierkit::Delivery) -> Self {
        NativeDelivery {
            inner: Arc::new(inner),
        }
    }
}

#[napi]
impl NativeDelivery {
    #[napi(getter)]
    pub fn body(&self) -> Buffer {
        self.inner.body.to_vec().into()
    }

    #[napi(getter)]
    pub fn headers(&self) -> HashMap<String, String> {
        self.inner.headers.clone().into_iter().collect()
    }

    #[napi(getter)]
    pub fn message_id(&self) -> Option<String> {
        self.inner.message_id.clone()
    }

    #[napi(getter)]
    pub fn correlation_id(&self) -> Option<String> {
        self.inner.correlation_id.clone()
    }

    /// Where a reply goes: set on requests from `serve`, null otherwise.
    #[napi(getter)]
    pub fn reply_to(&self) -> Option<String> {
        self.inner.reply_to.clone()
    }

    #[napi(getter)]
    pub fn exchange(&self) -> String {
        self.inner.exchange.clone()
    }

    #[napi(getter)]
    pub fn routing_key(&self) -> String {
        self.inner.routing_key.clone()
    }

    #[napi(getter)]
    pub fn redelivered(&self) -> bool {
        self.inner.redelivered
    }

    #[napi(getter)]
    pub fn delivery_count(&self) -> Option<u32> {
        self.inner.delivery_count
    }

    /// Whether it was acked, nacked, rejected or forwarded.
    #[napi(getter)]
    pub fn is_settled(&self) -> bool {
        self.inner.is_settled()
    }

    /// Milliseconds left until the message's deadline (0 once passed); null without one.
    #[napi(getter)]
    pub fn remaining_ms(&self) -> Option<f64> {
        self.inner.remaining().map(|left| left.as_millis() as f64)
    }

    /// The trace context the message carried, as a carrier object.
    #[napi(getter)]
    pub fn trace(&self) -> HashMap<String, String> {
        crate::trace::carrier(&self.inner.trace)
    }

    /// The same context as a `TraceContext`.
    #[napi(getter)]
    pub fn trace_context(&self) -> NativeTraceContext {
        self.inner.trace.clone().into()
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn ack<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let d = self.inner.clone();
        promise::spawn(env, async move { d.ack().await })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn nack<'env>(&self, env: &'env Env, requeue: Option<bool>) -> Result<Object<'env>> {
        let d = self.inner.clone();
        let requeue = requeue.unwrap_or(courierkit::Delivery::DEFAULT_REQUEUE);
        promise::spawn(env, async move { d.nack(requeue).await })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn reject<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let d = self.inner.clone();
        promise::spawn(env, async move { d.reject().await })
    }

    /// Settles at the end of `process` unless settled already: ack when `succeeded`, else
    /// nack (`requeue`, core's default when absent).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn finish<'env>(
        &self,
        env: &'env Env,
        succeeded: bool,
        requeue: Option<bool>,
    ) -> Result<Object<'env>> {
        let d = self.inner.clone();
        promise::spawn(env, async move { d.finish(succeeded, requeue).await })
    }

    /// Answers a request on its `replyTo` with the same correlation id; rejects with
    /// COURIER_CONFIG when this delivery is not a request.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn reply<'env>(
        &self,
        env: &'env Env,
        body: Buffer,
        headers: Option<HashMap<String, String>>,
    ) -> Result<Object<'env>> {
        let body = body.to_vec().into();
        let headers = headers.unwrap_or_default().into_iter().collect();
        let d = self.inner.clone();
        promise::spawn(env, async move { d.reply(body, headers).await })
    }

    /// Publishes the next workflow step under a message id derived from this delivery's
    /// and the destination, then acks this delivery; resolves with the next step's
    /// receipt.
    #[napi(ts_return_type = "Promise<NativeReceipt>")]
    pub fn forward<'env>(
        &self,
        env: &'env Env,
        message: NativePublish,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let (exchange, routing_key, body, options) = message.into_core().or_throw(env)?;
        let d = self.inner.clone();
        let forward = async move {
            let receipt = d
                .forward(&exchange, &routing_key, body.into(), options)
                .await?;
            Ok(NativeReceipt::from(receipt))
        };
        promise::spawn(env, cancellable(cancel, forward))
    }
}
