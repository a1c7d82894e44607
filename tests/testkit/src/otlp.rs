//! A minimal OTLP/HTTP receiver on 127.0.0.1 for traces and metrics, in JSON (what
//! courier sends) or protobuf (what the Python and Java SDKs send): it keeps every span
//! posted to `/v1/traces` and every metric posted to `/v1/metrics`, so a test can check
//! what exporters sent. Tests in other languages read them back over HTTP from the same
//! port: `GET /spans` and `GET /metrics` (JSON arrays), `POST /reset`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::http1::{self, Conn, Request, Response};

/// Receives OTLP/HTTP exports; dropping it closes the port.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Received>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Received {
    spans: Mutex<Vec<serde_json::Value>>,
    metrics: Mutex<Vec<serde_json::Value>>,
    arrived: Notify,
}

impl OtlpReceiver {
    /// Listens on an ephemeral port of 127.0.0.1, from the current tokio runtime.
    ///
    /// # Errors
    /// When the port cannot be bound.
    pub async fn start() -> io::Result<OtlpReceiver> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Received::default());
        let shared = Arc::clone(&received);
        let task = tokio::spawn(http1::serve(
            listener,
            std::future::pending(),
            move |stream| receive(Arc::clone(&shared), stream),
        ));
        Ok(OtlpReceiver {
            addr,
            received,
            task,
        })
    }

    /// The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The traces URL to export to: `http://127.0.0.1:PORT/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// The metrics URL to export to: `http://127.0.0.1:PORT/v1/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/v1/metrics", self.addr)
    }

    /// Every span received so far, as OTLP JSON objects (`traceId`, `spanId`,
    /// `parentSpanId`, `name`, `kind`, `attributes`, `links`...) with the exporting
    /// resource's attributes under `resource`, in arrival order.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        lock(&self.received.spans).clone()
    }

    /// Every metric received so far (`name`, `unit`, `sum`/`gauge`/`histogram`...), with
    /// `resource` as for spans, in arrival order.
    pub fn metrics(&self) -> Vec<serde_json::Value> {
        lock(&self.received.metrics).clone()
    }

    /// Waits until at least `count` spans arrived, or `limit` passed; returns them.
    pub async fn wait_for(
        &self,
        count: usize,
        limit: std::time::Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.received.arrived.notified();
            let spans = self.spans();
            if spans.len() >= count {
                return spans;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.spans();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(received: Arc<Received>, stream: TcpStream) {
    let mut conn = Conn::new(stream);
    while let Some(request) = conn.next_request().await {
        let response = match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/v1/traces") => match decode::<ExportTraceServiceRequest>(&request) {
                Ok(export) => {
                    let spans = flatten(&export, "resourceSpans", "scopeSpans", "spans");
                    lock(&received.spans).extend(spans);
                    received.arrived.notify_waiters();
                    Response::json(200, &serde_json::json!({}))
                }
                Err(e) => Response::error(400, e),
            },
            ("POST", "/v1/metrics") => match decode::<ExportMetricsServiceRequest>(&request) {
                Ok(export) => {
                    let metrics = flatten(&export, "resourceMetrics", "scopeMetrics", "metrics");
                    lock(&received.metrics).extend(metrics);
                    received.arrived.notify_waiters();
                    Response::json(200, &serde_json::json!({}))
                }
                Err(e) => Response::error(400, e),
            },
            ("GET", "/spans") => Response::json(200, &*lock(&received.spans)),
            ("GET", "/metrics") => Response::json(200, &*lock(&received.metrics)),
            ("POST", "/reset") => {
                lock(&received.spans).clear();
                lock(&received.metrics).clear();
                Response::empty(204)
            }
            _ => Response::error(
                404,
                "POST /v1/traces, POST /v1/metrics, GET /spans, GET /metrics, POST /reset",
            ),
        };
        let close = !request.keep_alive;
        if conn.respond(&response, false, close).await.is_err() || close {
            return;
        }
    }
}

/// An export body as OTLP JSON, whichever encoding it came in.
fn decode<M: Message + Default + serde::Serialize>(
    request: &Request,
) -> Result<serde_json::Value, String> {
    let protobuf = request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/x-protobuf"));
    if protobuf {
        let message =
            M::decode(request.body.as_slice()).map_err(|e| format!("not OTLP protobuf: {e}"))?;
        serde_json::to_value(&message).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice(&request.body).map_err(|e| format!("not OTLP JSON: {e}"))
    }
}

/// `resourceX[].scopeX[].items[]`, flattened, each item with its resource's attributes
/// as `resource`.
fn flatten(
    export: &serde_json::Value,
    resources: &str,
    scopes: &str,
    items: &str,
) -> Vec<serde_json::Value> {
    let list = |v: &serde_json::Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for resource in list(export, resources) {
        for scope in list(&resource, scopes) {
            for mut item in list(&scope, items) {
                item["resource"] = resource["resource"].clone();
                out.push(item);
            }
        }
    }
    out
}
