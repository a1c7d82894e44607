//! `Client`: HTTP calls to named services, as a uniffi object.

use std::collections::HashMap;

use courier::{ClientConfig, Validate};

use crate::error::CourierError;

/// One query parameter. A list of pairs rather than a map, so order and repeated names
/// (`?tag=a&tag=b`) reach the server as given.
#[derive(Debug, Clone, uniffi::Record)]
pub struct QueryParam {
    /// Parameter name, unencoded.
    pub name: String,
    /// Parameter value, unencoded.
    pub value: String,
}

/// One HTTP call; the fields of core's `Request`. Every field but `method` and `target`
/// has a default, so Kotlin and Swift callers name only what they set.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HttpRequest {
    /// HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// A service name from the config, or an absolute `http(s)://` URL.
    pub target: String,
    /// Path appended to the endpoint's base URL.
    #[uniffi(default = "")]
    pub path: String,
    /// Request headers; they override the service's configured headers.
    #[uniffi(default)]
    pub headers: HashMap<String, String>,
    /// Query parameters, appended in order.
    #[uniffi(default)]
    pub query: Vec<QueryParam>,
    /// Request body; none sends an empty body.
    #[uniffi(default = None)]
    pub body: Option<Vec<u8>>,
    /// Whole-call deadline covering every attempt, overriding the service's.
    #[uniffi(default = None)]
    pub deadline_ms: Option<u64>,
    /// Per-attempt timeout, overriding the service's.
    #[uniffi(default = None)]
    pub timeout_ms: Option<u64>,
    /// Sent as `Idempotency-Key`; makes POST and PATCH retryable.
    #[uniffi(default = None)]
    pub idempotency_key: Option<String>,
    /// Route only to endpoints labelled with this version.
    #[uniffi(default = None)]
    pub version: Option<String>,
}

impl From<HttpRequest> for courier::Request {
    fn from(r: HttpRequest) -> Self {
        courier::Request {
            method: r.method,
            target: r.target,
            path: r.path,
            query: r.query.into_iter().map(|q| (q.name, q.value)).collect(),
            headers: r.headers.into_iter().collect(),
            body: r.body.map(Into::into).unwrap_or_default(),
            deadline_ms: r.deadline_ms,
            timeout_ms: r.timeout_ms,
            idempotency_key: r.idempotency_key,
            version: r.version,
        }
    }
}

/// A completed exchange, whatever its status: a final 4xx or 5xx is a response, not an
/// error.
#[derive(Debug, Clone, uniffi::Record)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// Headers with lowercase names; repeated names joined with `", "` by core.
    pub headers: HashMap<String, String>,
    /// Response body.
    pub body: Vec<u8>,
    /// Attempts made, 1 when the first attempt answered.
    pub attempts: u32,
    /// Base URL of the endpoint that answered, credentials redacted.
    pub endpoint: String,
}

impl From<courier::Response> for HttpResponse {
    fn from(r: courier::Response) -> Self {
        HttpResponse {
            status: r.status,
            headers: r.header_map().into_iter().collect(),
            body: r.body.into(),
            attempts: r.attempts,
            endpoint: r.endpoint,
        }
    }
}

/// Sends requests to the services named in its config.
///
/// Kotlin: `Client(configJson)` and `suspend fun call`; its `close()` is renamed
/// `shutdown()` there, because uniffi objects already implement `AutoCloseable.close()`
/// (which frees the Rust handle). Swift: `Client(configJson:)`, `call` is `async throws`.
#[derive(uniffi::Object)]
pub struct Client {
    inner: courier::Client,
}

#[uniffi::export]
impl Client {
    /// Builds a client from a `ClientConfig` as JSON text (see API.md for the schema).
    ///
    /// # Errors
    /// `Config` naming the field path of the first invalid value; `Tls` when TLS
    /// cannot be set up.
    #[uniffi::constructor]
    pub fn new(config_json: String) -> Result<Self, CourierError> {
        let config = ClientConfig::from_json(&config_json)?;
        Ok(Client {
            inner: courier::Client::new(config)?,
        })
    }

    /// Sends `request` and returns the response, whatever its status.
    ///
    /// # Errors
    /// `Config` for an invalid request or unknown service, `NoEndpoint`, `Timeout`
    /// when the deadline passes, `Connect` or `Tls` for transport failures, `Closed`
    /// after `close()`.
    ///
    /// # Cancel safety
    /// Cancelling the coroutine or task aborts the request.
    pub async fn call(&self, request: HttpRequest) -> Result<HttpResponse, CourierError> {
        let client = self.inner.clone();
        let request = courier::Request::from(request);
        crate::run(async move { client.call(request).await })
            .await
            .map(HttpResponse::from)
    }

    /// Marks the client closed: later calls fail with `Closed`; calls in flight finish.
    pub fn close(&self) {
        self.inner.close();
    }
}
