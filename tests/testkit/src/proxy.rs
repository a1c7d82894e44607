//! A TCP proxy between courier and a server (RabbitMQ, Redis) that a test controls: it
//! can swallow what clients send (so publishes are on the wire but never reach the
//! broker: unconfirmed), cut every connection (FIN) or reset it (RST), stop or start
//! listening on its port, and inject network faults per direction of every connection:
//! added latency, a bandwidth cap, and a blackhole (nothing forwarded either way and
//! nothing closed, so only heartbeats or timeouts can notice). It counts the connections
//! it accepted. Recovery is then driven by state the test sets, not by timing a
//! disturbance against a publishing loop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Network faults applied to every connection, both directions, from the moment they
/// are set: `PUT /proxies/{i}/faults` takes this as JSON (missing fields: off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay added before each chunk is forwarded.
    pub latency_ms: u64,
    /// Forwarding rate per direction and connection; 0 is unlimited.
    pub bandwidth_bytes_per_sec: u64,
    /// Read and drop everything, both ways, closing nothing.
    pub blackhole: bool,
}

#[derive(Default)]
struct State {
    accepted: AtomicUsize,
    /// Bytes read from clients while holding, and dropped.
    held_bytes: AtomicUsize,
    holding: AtomicBool,
    latency_ms: AtomicU64,
    bandwidth: AtomicU64,
    blackhole: AtomicBool,
    /// Bumped by `reset`: every relay then closes its client socket with RST.
    resets: watch::Sender<u64>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl State {
    fn faults(&self) -> Faults {
        Faults {
            latency_ms: self.latency_ms.load(Ordering::SeqCst),
            bandwidth_bytes_per_sec: self.bandwidth.load(Ordering::SeqCst),
            blackhole: self.blackhole.load(Ordering::SeqCst),
        }
    }
}

/// One proxy on a loopback port; dropping it stops it and cuts its connections.
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    state: Arc<State>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    /// A proxy to `target` on a free port of 127.0.0.1, listening.
    ///
    /// # Errors
    /// When no port can be bound.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = Proxy {
            addr: listener.local_addr()?,
            upstream: target,
            state: Arc::default(),
            listener: Mutex::new(None),
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` with its host and port replaced by the proxy's: `amqp://u:p@broker/%2f`
    /// becomes `amqp://u:p@127.0.0.1:<proxy port>/%2f`.
    ///
    /// # Panics
    /// When `url` does not parse or cannot have a host.
    pub fn url(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a URL");
        url.set_ip_host(self.addr.ip()).expect("a URL with a host");
        url.set_port(Some(self.addr.port()))
            .expect("a URL with a port");
        url.to_string()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Bytes clients sent since `hold`, none forwarded.
    pub fn held_bytes(&self) -> usize {
        self.state.held_bytes.load(Ordering::SeqCst)
    }

    /// From now on, what clients send is read and dropped, not forwarded.
    pub fn hold(&self) {
        self.state.holding.store(true, Ordering::SeqCst);
    }

    /// Drops every connection and forwards again (for new connections).
    pub fn cut(&self) {
        for task in self.state.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        self.state.holding.store(false, Ordering::SeqCst);
        self.state.held_bytes.store(0, Ordering::SeqCst);
    }

    /// Resets every connection now: the client reads `ECONNRESET` (an RST, not the FIN
    /// of [`Proxy::cut`]). New connections are forwarded.
    pub fn reset(&self) {
        self.state.resets.send_modify(|n| *n += 1);
        self.state
            .tasks
            .lock()
            .unwrap()
            .retain(|task| !task.is_finished());
    }

    /// Applies `faults` to every connection, open and new, from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.state
            .latency_ms
            .store(faults.latency_ms, Ordering::SeqCst);
        self.state
            .bandwidth
            .store(faults.bandwidth_bytes_per_sec, Ordering::SeqCst);
        self.state
            .blackhole
            .store(faults.blackhole, Ordering::SeqCst);
    }

    /// Stops listening (new connections are refused) and cuts every connection.
    pub fn stop(&self) {
        if let Some(listener) = self.listener.lock().unwrap().take() {
            listener.abort();
        }
        self.cut();
    }

    /// Listens again on the same port.
    ///
    /// # Errors
    /// When the port was taken while the proxy was stopped.
    pub fn listen(&self) -> std::io::Result<()> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(self.addr)?;
        self.serve(socket.listen(128)?);
        Ok(())
    }

    /// `{"address", "accepted", "held_bytes", "faults"}`, for the control API.
    pub(crate) fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "address": self.addr.to_string(),
            "accepted": self.accepted(),
            "held_bytes": self.held_bytes(),
            "faults": self.state.faults(),
        })
    }

    fn serve(&self, listener: TcpListener) {
        let (state, upstream) = (self.state.clone(), self.upstream);
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                state.accepted.fetch_add(1, Ordering::SeqCst);
                let task = tokio::spawn(relay(client, upstream, state.clone()));
                state.tasks.lock().unwrap().push(task);
            }
        });
        *self.listener.lock().unwrap() = Some(accepting);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Both directions of one connection, with the faults in force; client → broker bytes
/// are dropped while holding. One future, so aborting its task drops both sockets; a
/// reset sets SO_LINGER 0 on the client socket first, so dropping it sends an RST.
async fn relay(client: TcpStream, upstream: SocketAddr, state: Arc<State>) {
    let Ok(broker) = TcpStream::connect(upstream).await else {
        return;
    };
    let mut resets = state.resets.subscribe();
    resets.mark_unchanged();
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    let reset = {
        let down = forward(&mut broker_rx, &mut client_tx, &state, false);
        let up = forward(&mut client_rx, &mut broker_tx, &state, true);
        tokio::select! {
            () = down => false,
            () = up => false,
            Ok(()) = resets.changed() => true,
        }
    };
    if reset {
        // Dropping the write half would send a FIN first: forget it, and close with
        // linger 0, which sends the RST.
        #[allow(deprecated)] // set_linger: deprecated for blocking on close, wanted here
        let _ = client_rx.as_ref().set_linger(Some(Duration::ZERO));
        client_tx.forget();
    }
}

async fn forward(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    state: &State,
    from_client: bool,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if from_client && state.holding.load(Ordering::SeqCst) {
            // Counted and dropped: the connection is cut before it could matter.
            state.held_bytes.fetch_add(n, Ordering::SeqCst);
            continue;
        }
        let faults = state.faults();
        if faults.blackhole {
            continue;
        }
        if faults.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if faults.bandwidth_bytes_per_sec > 0 {
            let per_byte = 1.0 / faults.bandwidth_bytes_per_sec as f64;
            tokio::time::sleep(Duration::from_secs_f64(n as f64 * per_byte)).await;
        }
    }
}
