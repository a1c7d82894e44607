//! One fake upstream: its port, its behaviour, its request log, and a listener that
//! can be stopped and restarted on the same port.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::behavior::{Action, Behavior, Reset, Selector};
use crate::http1::{self, Conn, Request, Response, Transport};
use crate::log::{RecordedRequest, Recorder, RequestLog};

/// What a `mid_response` reset promises versus what it delivers.
const TRUNCATED_DECLARED: usize = 1000;
const TRUNCATED_SENT: usize = 100;

/// Headers that describe framing, which the server decides; letting a behaviour set
/// them would desynchronise client and server instead of injecting a clean fault.
const FRAMING_HEADERS: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

pub(crate) struct Upstream {
    state: Arc<State>,
    /// Fixed at the first bind so a restart comes back where clients expect it.
    addr: SocketAddr,
    /// Makes this an HTTPS upstream; everything past the handshake is the same.
    tls: Option<TlsAcceptor>,
    running: Mutex<Option<Running>>,
}

/// What the connections share with the control side.
struct State {
    index: usize,
    selector: Mutex<Selector>,
    recorder: Mutex<Recorder>,
}

/// A live listener. Dropping the sender also stops it, so an upstream whose owner
/// disappears without calling `stop` does not linger.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Upstream {
    /// Binds an ephemeral port and starts serving on the current runtime, over TLS
    /// when given an acceptor.
    pub(crate) fn bind(index: usize, tls: Option<TlsAcceptor>) -> io::Result<Upstream> {
        let listener = listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let upstream = Upstream {
            state: Arc::new(State {
                index,
                selector: Mutex::new(Selector::new(Behavior::default())),
                recorder: Mutex::new(Recorder::default()),
            }),
            addr: listener.local_addr()?,
            tls,
            running: Mutex::new(None),
        };
        *lock(&upstream.running) = Some(upstream.spawn(listener));
        Ok(upstream)
    }

    pub(crate) fn index(&self) -> usize {
        self.state.index
    }

    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    pub(crate) fn set_behavior(&self, behavior: Behavior) {
        *lock(&self.state.selector) = Selector::new(behavior);
    }

    pub(crate) fn requests(&self) -> RequestLog {
        lock(&self.state.recorder).snapshot()
    }

    /// Forgets requests and behaviour so one test's setup cannot leak into the next.
    pub(crate) fn reset(&self) {
        self.set_behavior(Behavior::default());
        *lock(&self.state.recorder) = Recorder::default();
    }

    /// Returns once the port refuses connections and every open one is closed.
    pub(crate) async fn stop(&self) {
        let running = lock(&self.running).take();
        if let Some(Running { stop, task }) = running {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Listens on the original port again; a no-op if already listening.
    pub(crate) fn start(&self) -> io::Result<()> {
        let mut running = lock(&self.running);
        if running.is_none() {
            *running = Some(self.spawn(listen(self.addr)?));
        }
        Ok(())
    }

    /// For `Drop`, which cannot await a graceful stop.
    pub(crate) fn abort(&self) {
        if let Some(running) = lock(&self.running).take() {
            running.task.abort();
        }
    }

    fn spawn(&self, listener: TcpListener) -> Running {
        let (stop, stopped) = oneshot::channel::<()>();
        let state = Arc::clone(&self.state);
        let tls = self.tls.clone();
        let task = tokio::spawn(http1::serve(
            listener,
            async {
                let _ = stopped.await;
            },
            move |stream| {
                let state = Arc::clone(&state);
                let tls = tls.clone();
                async move {
                    match tls {
                        None => serve_connection(state, stream).await,
                        // A failed handshake is what the TLS tests provoke on purpose;
                        // the client sees the alert, so there is nothing left to do.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                serve_connection(state, stream).await;
                            }
                        }
                    }
                }
            },
        ));
        Running { stop, task }
    }
}

/// SO_REUSEADDR lets a restart bind the port while the connections `stop` closed are
/// still in TIME_WAIT.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// The locks guard plain data that stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve_connection(state: Arc<State>, stream: impl Transport) {
    let mut conn = Conn::new(stream);
    while let Some(request) = conn.next_request().await {
        // Recorded before acting, so requests that end in a reset are counted too.
        lock(&state.recorder).record(RecordedRequest::of(&request));
        let action = lock(&state.selector).next_action();
        if action.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(action.latency_ms)).await;
        }
        let response = state.response(&action, &request);
        match action.reset {
            Some(Reset::BeforeHeaders) => {
                conn.reset();
                return;
            }
            Some(Reset::MidResponse) => {
                let _ = conn
                    .respond_truncated(&response, TRUNCATED_DECLARED, TRUNCATED_SENT)
                    .await;
                conn.reset();
                return;
            }
            None => {}
        }
        if let Some(total) = action.stream_body_bytes {
            let _ = conn.respond_streamed(&response, total).await;
            break;
        }
        let close = !request.keep_alive;
        let head_only = request.method == "HEAD";
        if conn.respond(&response, head_only, close).await.is_err() || close {
            break;
        }
    }
    conn.close().await;
}

impl State {
    fn response(&self, action: &Action, request: &Request) -> Response {
        let (content_type, body) = match &action.body {
            Some(text) => ("text/plain; charset=utf-8", text.clone().into_bytes()),
            None => ("application/json", self.echo(request)),
        };
        let mut headers = Vec::new();
        if !action
            .headers
            .keys()
            .any(|name| name.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".to_owned(), content_type.to_owned()));
        }
        if let Some(retry_after) = &action.retry_after {
            headers.push(("Retry-After".to_owned(), retry_after.clone()));
        }
        headers.extend(
            action
                .headers
                .iter()
                .filter(|(name, _)| {
                    !FRAMING_HEADERS
                        .iter()
                        .any(|framing| name.eq_ignore_ascii_case(framing))
                })
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        Response {
            status: action.status,
            headers,
            body,
        }
    }

    /// Echoing the request lets a test see which upstream answered and what arrived
    /// there (after proxies, header rewriting, retries) from the client side alone.
    fn echo(&self, request: &Request) -> Vec<u8> {
        serde_json::json!({
            "upstream": self.index,
            "method": request.method,
            "path": request.path,
            "query": request.query,
            "headers": request.header_map(),
            "body_len": request.body.len(),
        })
        .to_string()
        .into_bytes()
    }
}
