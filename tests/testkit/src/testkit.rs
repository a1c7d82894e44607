//! The in-process handle Rust tests hold; the binary wraps the same thing.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::behavior::Behavior;
use crate::control;
use crate::dns::{self, DnsRecords, DnsTable};
use crate::http1;
use crate::https::TlsUpstream;
use crate::log::RequestLog;
use crate::pki::Pki;
use crate::upstream::Upstream;

/// A set of fake upstreams plus their control API and a DNS server, all on 127.0.0.1.
///
/// Started [with TLS](Testkit::start_with_tls), it also has one HTTPS upstream per
/// [`TlsUpstream`], numbered after the plain ones. They are upstreams like the
/// others (behaviours, request logs, stop and start, the control API) except that
/// [`urls`](Testkit::urls) leaves them out, since callers that predate TLS count on it
/// listing plain ones only.
///
/// Dropping it shuts everything down, so a test cannot leak listeners into the next.
pub struct Testkit {
    /// The plain upstreams, then the HTTPS ones if any.
    upstreams: Arc<[Upstream]>,
    plain: usize,
    control_addr: SocketAddr,
    control_task: JoinHandle<()>,
    dns: Arc<DnsTable>,
    dns_addr: SocketAddr,
    dns_task: JoinHandle<()>,
}

impl Testkit {
    /// Starts `upstreams` upstreams, the control server and the DNS server (UDP) on
    /// ephemeral ports of 127.0.0.1, serving from the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(upstreams: usize) -> io::Result<Testkit> {
        Testkit::start_all(upstreams, Vec::new()).await
    }

    /// Like [`start`](Testkit::start), plus the HTTPS upstreams, with certificates
    /// from `pki`. Fails if `pki` was loaded from files that do not parse.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start_with_tls(upstreams: usize, pki: &Pki) -> io::Result<Testkit> {
        let acceptors = TlsUpstream::ALL
            .iter()
            .map(|variant| variant.acceptor(pki))
            .collect::<io::Result<_>>()?;
        Testkit::start_all(upstreams, acceptors).await
    }

    async fn start_all(plain: usize, tls: Vec<TlsAcceptor>) -> io::Result<Testkit> {
        let upstreams: Arc<[Upstream]> = (0..plain)
            .map(|index| Upstream::bind(index, None))
            .chain(
                tls.into_iter()
                    .enumerate()
                    .map(|(i, acceptor)| Upstream::bind(plain + i, Some(acceptor))),
            )
            .collect::<io::Result<Vec<_>>>()?
            .into();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let control_addr = listener.local_addr()?;
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let dns_addr = socket.local_addr()?;
        let dns = Arc::new(DnsTable::default());
        let dns_task = tokio::spawn(dns::serve(socket, Arc::clone(&dns)));
        let shared = Arc::clone(&upstreams);
        let table = Arc::clone(&dns);
        // Proxies made through the control API live as long as the control server.
        let proxies = Arc::new(control::Proxies::default());
        let control_task = tokio::spawn(http1::serve(
            listener,
            std::future::pending(),
            move |stream| {
                control::serve_connection(
                    Arc::clone(&shared),
                    Arc::clone(&table),
                    Arc::clone(&proxies),
                    stream,
                )
            },
        ));
        Ok(Testkit {
            upstreams,
            plain,
            control_addr,
            control_task,
            dns,
            dns_addr,
            dns_task,
        })
    }

    /// Base URLs (`http://127.0.0.1:port`, no trailing slash) of the plain upstreams,
    /// indexed like upstreams.
    pub fn urls(&self) -> Vec<String> {
        self.upstreams[..self.plain]
            .iter()
            .map(Upstream::url)
            .collect()
    }

    /// Base URL (`https://127.0.0.1:port`) of an HTTPS upstream. `localhost` in place of
    /// the IP works as well: the server certificates name both.
    ///
    /// # Panics
    ///
    /// If the testkit was started without TLS.
    pub fn tls_url(&self, variant: TlsUpstream) -> String {
        self.upstream(self.tls_index(variant)).url()
    }

    /// The upstream index of an HTTPS upstream, for [`set_behavior`](Testkit::set_behavior),
    /// [`requests`](Testkit::requests) and the rest.
    ///
    /// # Panics
    ///
    /// If the testkit was started without TLS.
    pub fn tls_index(&self, variant: TlsUpstream) -> usize {
        assert!(
            self.upstreams.len() > self.plain,
            "this testkit has no HTTPS upstreams: start it with Testkit::start_with_tls"
        );
        let offset = TlsUpstream::ALL
            .iter()
            .position(|v| *v == variant)
            .expect("ALL lists every variant");
        self.plain + offset
    }

    /// Base URL of the control API.
    pub fn control_url(&self) -> String {
        format!("http://{}", self.control_addr)
    }

    /// Address of the DNS server (UDP), `127.0.0.1:port`.
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    /// Sets what the DNS server answers for `name` (case-insensitive, trailing dot
    /// optional), replacing any earlier answer. Every answer has TTL 0.
    ///
    /// # Panics
    ///
    /// If `name` or an SRV target is not a valid DNS name.
    pub fn set_dns(&self, name: &str, records: DnsRecords) {
        if let Err(e) = self.dns.set(name, records) {
            panic!("invalid DNS records: {e}");
        }
    }

    /// Replaces an upstream's behaviour, restarting its script and random sequence.
    ///
    /// # Panics
    ///
    /// If there is no upstream `upstream`.
    pub fn set_behavior(&self, upstream: usize, behavior: Behavior) {
        self.upstream(upstream).set_behavior(behavior);
    }

    /// A snapshot of what an upstream has received since its last reset.
    ///
    /// # Panics
    ///
    /// If there is no upstream `upstream`.
    pub fn requests(&self, upstream: usize) -> RequestLog {
        self.upstream(upstream).requests()
    }

    /// Restores every upstream's default behaviour (HTTPS ones included) and clears
    /// every log; listeners that were stopped stay stopped.
    pub fn reset(&self) {
        self.upstreams.iter().for_each(Upstream::reset);
    }

    /// Closes an upstream's listener and open connections; returns once connecting to
    /// its port is refused. Stopping a stopped upstream does nothing.
    ///
    /// # Panics
    ///
    /// If there is no upstream `upstream`.
    pub async fn stop_upstream(&self, upstream: usize) {
        self.upstream(upstream).stop().await;
    }

    /// Listens again on the port the upstream had; fails (`AddrInUse`) if something
    /// else took it meanwhile. Starting a running upstream does nothing.
    ///
    /// # Panics
    ///
    /// If there is no upstream `upstream`.
    pub async fn start_upstream(&self, upstream: usize) -> io::Result<()> {
        self.upstream(upstream).start()
    }

    fn upstream(&self, index: usize) -> &Upstream {
        self.upstreams.get(index).unwrap_or_else(|| {
            panic!(
                "no upstream {index}: this testkit has {}",
                self.upstreams.len()
            )
        })
    }
}

impl Drop for Testkit {
    fn drop(&mut self) {
        self.control_task.abort();
        self.dns_task.abort();
        self.upstreams.iter().for_each(Upstream::abort);
    }
}

/// A port on 127.0.0.1 where nothing listens, for connection-refused tests.
///
/// The port is free when returned but not reserved: another process could take it,
/// which on a test machine is rare enough not to matter.
///
/// # Panics
///
/// If no ephemeral port can be bound at all.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding an ephemeral port on 127.0.0.1")
}
