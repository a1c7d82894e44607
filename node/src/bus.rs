//! `NativeBus`, `NativeConsumer` and `NativeDelivery`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use courier::{BusConfig, ExchangeKind, PublishOptions, QueueOptions, TraceContext, Validate};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::OrThrow;
use crate::promise;

#[napi(object)]
pub struct NativeQueueOptions {
    pub quorum: Option<bool>,
    pub delivery_limit: Option<u32>,
    pub dead_letter: Option<bool>,
    pub ttl_ms: Option<u32>,
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
}

/// A confirmed publish: its id and the trace carrier it sent.
#[napi(object)]
pub struct NativeReceipt {
    pub message_id: String,
    pub trace: HashMap<String, String>,
}

#[napi]
pub struct NativeBus {
    inner: courier::Bus,
}

#[napi]
impl NativeBus {
    #[napi(ts_return_type = "Promise<NativeBus>")]
    pub fn connect(env: &Env, config_json: String) -> Result<Object<'_>> {
        let config = BusConfig::from_json(&config_json).or_throw(env)?;
        promise::spawn(env, async move {
            courier::Bus::connect(config)
                .await
                .map(|inner| NativeBus { inner })
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn declare_queue<'env>(
        &self,
        env: &'env Env,
        name: String,
        options: Option<NativeQueueOptions>,
    ) -> Result<Object<'env>> {
        let defaults = QueueOptions::default();
        let options = match options {
            None => defaults,
            Some(o) => QueueOptions {
                quorum: o.quorum.unwrap_or(defaults.quorum),
                delivery_limit: o.delivery_limit,
                dead_letter: o.dead_letter.unwrap_or(defaults.dead_letter),
                ttl_ms: o.ttl_ms.map(u64::from),
            },
        };
        let bus = self.inner.clone();
        promise::spawn(env, async move { bus.declare_queue(&name, &options).await })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn declare_exchange<'env>(
        &self,
        env: &'env Env,
        name: String,
        kind: String,
    ) -> Result<Object<'env>> {
        let kind: ExchangeKind = kind.parse().or_throw(env)?;
        let bus = self.inner.clone();
        promise::spawn(env, async move { bus.declare_exchange(&name, kind).await })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn bind<'env>(
        &self,
        env: &'env Env,
        queue: String,
        exchange: String,
        routing_key: String,
    ) -> Result<Object<'env>> {
        let bus = self.inner.clone();
        promise::spawn(env, async move {
            bus.bind(&queue, &exchange, &routing_key).await
        })
    }

    /// Resolves once confirmed, with the message id and its trace carrier.
    #[napi(ts_return_type = "Promise<NativeReceipt>")]
    pub fn publish<'env>(&self, env: &'env Env, message: NativePublish) -> Result<Object<'env>> {
        let defaults = PublishOptions::default();
        let options = PublishOptions {
            headers: message.headers.unwrap_or_default().into_iter().collect(),
            message_id: message.message_id,
            correlation_id: message.correlation_id,
            persistent: message.persistent.unwrap_or(defaults.persistent),
            trace: message
                .trace
                .map(|carrier| TraceContext::from_carrier(&carrier)),
        };
        let body = message.body.to_vec().into();
        let (exchange, routing_key) = (message.exchange, message.routing_key);
        let bus = self.inner.clone();
        promise::spawn(env, async move {
            let receipt = bus.publish(&exchange, &routing_key, body, options).await?;
            Ok(NativeReceipt {
                message_id: receipt.message_id,
                trace: receipt.trace.to_carrier().into_iter().collect(),
            })
        })
    }

    #[napi(ts_return_type = "Promise<NativeConsumer>")]
    pub fn consume<'env>(
        &self,
        env: &'env Env,
        queue: String,
        prefetch: Option<u32>,
    ) -> Result<Object<'env>> {
        let prefetch = prefetch
            .map(|p| {
                u16::try_from(p).map_err(|_| {
                    courier::Error::config("prefetch", format!("must be 1..=65535, got {p}"))
                })
            })
            .transpose()
            .or_throw(env)?;
        let bus = self.inner.clone();
        promise::spawn(env, async move {
            let inner = bus.consume(&queue, prefetch).await?;
            Ok(NativeConsumer {
                inner: Arc::new(inner),
            })
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let bus = self.inner.clone();
        promise::spawn(env, async move { bus.close().await })
    }
}

#[napi]
pub struct NativeConsumer {
    inner: Arc<courier::Consumer>,
}

#[napi]
impl NativeConsumer {
    /// Resolves to the next delivery, or null once the consumer is closed.
    #[napi(ts_return_type = "Promise<NativeDelivery | null>")]
    pub fn next<'env>(&self, env: &'env Env, timeout_ms: Option<u32>) -> Result<Object<'env>> {
        let consumer = self.inner.clone();
        promise::spawn(env, async move {
            let next = consumer
                .next(timeout_ms.map(|t| Duration::from_millis(u64::from(t))))
                .await?;
            Ok(next.map(|d| NativeDelivery { inner: Arc::new(d) }))
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let consumer = self.inner.clone();
        promise::spawn(env, async move { consumer.close().await })
    }
}

#[napi]
pub struct NativeDelivery {
    inner: Arc<courier::Delivery>,
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

    /// The trace context the message carried, as a carrier object.
    #[napi(getter)]
    pub fn trace(&self) -> HashMap<String, String> {
        self.inner.trace.to_carrier().into_iter().collect()
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn ack<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let d = self.inner.clone();
        promise::spawn(env, async move { d.ack().await })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn nack<'env>(&self, env: &'env Env, requeue: bool) -> Result<Object<'env>> {
        let d = self.inner.clone();
        promise::spawn(env, async move { d.nack(requeue).await })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn reject<'env>(&self, env: &'env Env) -> Result<Object<'env>> {
        let d = self.inner.clone();
        promise::spawn(env, async move { d.reject().await })
    }
}
