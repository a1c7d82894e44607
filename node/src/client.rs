//! `NativeClient` and `NativeResponse`.

use std::collections::HashMap;

use courierkit::{ClientConfig, Request, TraceContext, Validate};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::cancel::{CancelToken, cancellable};
use crate::error::OrThrow;
use crate::numbers;
use crate::promise;
use crate::trace::NativeTraceContext;

/// Request fields as `index.js` passes them.
#[napi(object)]
pub struct NativeRequest {
    pub method: String,
    pub target: String,
    pub path: Option<String>,
    pub headers: Option<Vec<Vec<String>>>,
    pub query: Option<Vec<Vec<String>>>,
    pub body: Option<Buffer>,
    pub deadline_ms: Option<f64>,
    pub timeout_ms: Option<f64>,
    pub idempotency_key: Option<String>,
    pub idempotent: Option<bool>,
    pub version: Option<String>,
    pub rate_key: Option<String>,
    pub trace: Option<HashMap<String, String>>,
}

fn pairs(field: &str, list: Option<Vec<Vec<String>>>) -> courierkit::Result<Vec<(String, String)>> {
    list.unwrap_or_default()
        .into_iter()
        .map(|pair| match <[String; 2]>::try_from(pair) {
            Ok([k, v]) => Ok((k, v)),
            Err(_) => Err(courierkit::Error::config(
                field,
                "each entry must be a [name, value] pair",
            )),
        })
        .collect()
}

impl NativeRequest {
    fn into_core(self) -> courierkit::Result<Request> {
        Ok(Request {
            method: self.method,
            target: self.target,
            path: self.path.unwrap_or_default(),
            headers: pairs("headers", self.headers)?,
            query: pairs("query", self.query)?,
            body: self.body.map(|b| b.to_vec().into()).unwrap_or_default(),
            deadline: numbers::millis("deadline_ms", self.deadline_ms)?,
            timeout: numbers::millis("timeout_ms", self.timeout_ms)?,
            idempotency_key: self.idempotency_key,
            idempotent: self.idempotent.unwrap_or_default(),
            version: self.version,
            rate_key: self.rate_key,
            trace: self.trace.map(TraceContext::from_carrier),
        })
    }
}

#[napi]
pub struct NativeClient {
    inner: courierkit::Client,
}

impl NativeClient {
    fn build(env: &Env, config: courierkit::Result<ClientConfig>) -> Result<Self> {
        let inner = config.and_then(courierkit::Client::new).or_throw(env)?;
        Ok(NativeClient { inner })
    }
}

#[napi]
impl NativeClient {
    #[napi(constructor)]
    pub fn new(env: Env, config_json: String) -> Result<Self> {
        Self::build(&env, ClientConfig::from_json(&config_json))
    }

    #[napi(factory)]
    pub fn from_file(env: Env, path: String) -> Result<Self> {
        Self::build(&env, ClientConfig::from_file(path))
    }

    #[napi(ts_return_type = "Promise<NativeResponse>")]
    pub fn call<'env>(
        &self,
        env: &'env Env,
        request: NativeRequest,
        cancel: Option<&CancelToken>,
    ) -> Result<Object<'env>> {
        let req = request.into_core().or_throw(env)?;
        let client = self.inner.clone();
        let call = async move { client.call(req).await.map(|inner| NativeResponse { inner }) };
        promise::spawn(env, cancellable(cancel, call))
    }

    /// Replaces the configuration atomically (core's `Client::reconfigure`).
    #[napi]
    pub fn reconfigure(&self, env: Env, config_json: String) -> Result<()> {
        ClientConfig::from_json(&config_json)
            .and_then(|config| self.inner.reconfigure(config))
            .or_throw(&env)
    }

    /// Counters per service, as JSON (index.js returns the parsed object).
    #[napi]
    pub fn stats_json(&self) -> String {
        // ClientStats holds only numbers and strings: serialising cannot fail.
        serde_json::to_string(&self.inner.stats()).unwrap_or_default()
    }

    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }
}

#[napi]
pub struct NativeResponse {
    inner: courierkit::Response,
}

#[napi]
impl NativeResponse {
    #[napi(getter)]
    pub fn status(&self) -> u32 {
        u32::from(self.inner.status)
    }

    #[napi(getter)]
    pub fn headers(&self) -> HashMap<String, String> {
        self.inner.header_map().into_iter().collect()
    }

    #[napi(getter)]
    pub fn body(&self) -> Buffer {
        self.inner.body.to_vec().into()
    }

    #[napi(getter)]
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    #[napi(getter)]
    pub fn endpoint(&self) -> String {
        self.inner.endpoint.clone()
    }

    /// The `Idempotency-Key` every attempt sent, if any.
    #[napi(getter)]
    pub fn idempotency_key(&self) -> Option<String> {
        self.inner.idempotency_key.clone()
    }

    /// The trace carrier the answered attempt sent.
    #[napi(getter)]
    pub fn trace(&self) -> HashMap<String, String> {
        crate::trace::carrier(&self.inner.trace)
    }

    /// The same context as a `TraceContext`.
    #[napi(getter)]
    pub fn trace_context(&self) -> NativeTraceContext {
        self.inner.trace.clone().into()
    }
}
