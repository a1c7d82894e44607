//! A minimal OTLP/HTTP trace receiver (JSON encoding) on 127.0.0.1: it keeps every span
//! posted to `/v1/traces`, so a test can check what an exporter sent.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::http1::{self, Conn, Response};

/// Receives OTLP/HTTP JSON trace exports; dropping it closes the port.
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Spans>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Spans {
    all: Mutex<Vec<serde_json::Value>>,
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
        let spans = Arc::new(Spans::default());
        let shared = Arc::clone(&spans);
        let task = tokio::spawn(http1::serve(
            listener,
            std::future::pending(),
            move |stream| receive(Arc::clone(&shared), stream),
        ));
        Ok(OtlpReceiver { addr, spans, task })
    }

    /// The traces URL to export to: `http://127.0.0.1:PORT/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Every span received so far, as OTLP JSON objects (`traceId`, `spanId`,
    /// `parentSpanId`, `name`, `kind`, `attributes`, `links`...), in arrival order.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        self.spans
            .all
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until at least `count` spans arrived, or `limit` passed; returns them.
    pub async fn wait_for(
        &self,
        count: usize,
        limit: std::time::Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let arrived = self.spans.arrived.notified();
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

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(spans: Arc<Spans>, stream: TcpStream) {
    let mut conn = Conn::new(stream);
    while let Some(request) = conn.next_request().await {
        let response = if request.method == "POST" && request.path == "/v1/traces" {
            match serde_json::from_slice::<serde_json::Value>(&request.body) {
                Ok(export) => {
                    let received = flatten(&export);
                    spans
                        .all
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend(received);
                    spans.arrived.notify_waiters();
                    Response::json(200, &serde_json::json!({}))
                }
                Err(e) => Response::error(400, format!("not OTLP JSON: {e}")),
            }
        } else {
            Response::error(404, "only POST /v1/traces")
        };
        let close = !request.keep_alive;
        if conn.respond(&response, false, close).await.is_err() || close {
            return;
        }
    }
}

/// `resourceSpans[].scopeSpans[].spans[]`, flattened.
fn flatten(export: &serde_json::Value) -> Vec<serde_json::Value> {
    let list = |v: &serde_json::Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
    list(export, "resourceSpans")
        .iter()
        .flat_map(|r| list(r, "scopeSpans"))
        .flat_map(|s| list(&s, "spans"))
        .collect()
}
