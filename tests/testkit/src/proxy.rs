//! A TCP proxy between courier and RabbitMQ that a test controls: it can swallow what
//! clients send (so publishes are on the wire but never reach the broker: unconfirmed), cut every connection,
//! stop or start listening on its port, and counts the connections it accepted. Recovery
//! is then driven by state the test sets, not by timing a disturbance against a
//! publishing loop. Included with `#[path]` by the test binaries that use it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Default)]
struct State {
    accepted: AtomicUsize,
    /// Bytes read from clients while holding, and dropped.
    held_bytes: AtomicUsize,
    holding: AtomicBool,
    tasks: Mutex<Vec<JoinHandle<()>>>,
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

    /// `{"address": ..., "accepted": ..., "held_bytes": ...}`, for the control API.
    pub(crate) fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "address": self.addr.to_string(),
            "accepted": self.accepted(),
            "held_bytes": self.held_bytes(),
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

/// Client → broker as read, unless holding; broker → client as is. One future, so
/// aborting its task drops both sockets.
async fn relay(client: TcpStream, upstream: SocketAddr, state: Arc<State>) {
    let Ok(broker) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut broker_rx, mut broker_tx) = broker.into_split();
    let down = async {
        let _ = tokio::io::copy(&mut broker_rx, &mut client_tx).await;
    };
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if state.holding.load(Ordering::SeqCst) {
                // Counted and dropped: the connection is cut before it could matter.
                state.held_bytes.fetch_add(n, Ordering::SeqCst);
                continue;
            }
            if broker_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = down => {}
        () = up => {}
    }
}
