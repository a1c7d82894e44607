//! HTTPS upstreams: the plain upstreams' behaviour behind TLS servers set up the way
//! each TLS test needs, all from one [`Pki`].

use std::io;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::http1::Transport;
use crate::pki::Pki;

/// The HTTPS upstreams a [`Testkit`](crate::Testkit) started with TLS has, one of each.
///
/// All but [`NoClientAuth`](Self::NoClientAuth) demand a client certificate issued by
/// the PKI's `ca`, so a client that gets past verifying the server is also checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsUpstream {
    /// `server` certificate; TLS 1.2 and 1.3. The one that should just work.
    Mtls,
    /// `server` certificate; TLS 1.2 only, for clients that must still speak it.
    Tls12,
    /// `server-expired` certificate.
    Expired,
    /// `server-wrong-san` certificate: valid, but not for 127.0.0.1 or localhost.
    WrongSan,
    /// `server-other-ca` certificate: valid, but issued by a CA the client does not trust.
    OtherCa,
    /// `server` certificate and no client certificate asked for: a client that only
    /// configures the CA succeeds here.
    NoClientAuth,
}

impl TlsUpstream {
    /// Every variant, in the order of their upstream indices.
    pub const ALL: [TlsUpstream; 6] = [
        TlsUpstream::Mtls,
        TlsUpstream::Tls12,
        TlsUpstream::Expired,
        TlsUpstream::WrongSan,
        TlsUpstream::OtherCa,
        TlsUpstream::NoClientAuth,
    ];

    /// The key under `tls.urls` in the binary's ready line: `mtls`, `tls12`, `expired`,
    /// `wrong_san`, `other_ca`, `no_client_auth`.
    pub fn name(self) -> &'static str {
        match self {
            TlsUpstream::Mtls => "mtls",
            TlsUpstream::Tls12 => "tls12",
            TlsUpstream::Expired => "expired",
            TlsUpstream::WrongSan => "wrong_san",
            TlsUpstream::OtherCa => "other_ca",
            TlsUpstream::NoClientAuth => "no_client_auth",
        }
    }

    fn certificate(self) -> &'static str {
        match self {
            TlsUpstream::Mtls | TlsUpstream::Tls12 | TlsUpstream::NoClientAuth => "server",
            TlsUpstream::Expired => "server-expired",
            TlsUpstream::WrongSan => "server-wrong-san",
            TlsUpstream::OtherCa => "server-other-ca",
        }
    }

    /// Fails only on PEM that does not parse, i.e. a PKI directory edited by hand.
    pub(crate) fn acceptor(self, pki: &Pki) -> io::Result<TlsAcceptor> {
        // Named explicitly rather than installed as the process default, which a test
        // binary linking courier might also try to set.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&SupportedProtocolVersion] = match self {
            TlsUpstream::Tls12 => &[&rustls::version::TLS12],
            _ => rustls::DEFAULT_VERSIONS,
        };
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(invalid)?;
        let builder = match self {
            TlsUpstream::NoClientAuth => builder.with_no_client_auth(),
            _ => builder.with_client_cert_verifier(client_verifier(pki, provider)?),
        };
        let name = self.certificate();
        let cert = CertificateDer::from_pem_slice(pki.pem(name).as_bytes()).map_err(invalid)?;
        let key = PrivateKeyDer::from_pem_slice(pki.key(name).as_bytes()).map_err(invalid)?;
        let mut config = builder.with_single_cert(vec![cert], key).map_err(invalid)?;
        // Says outright that this server speaks HTTP/1.1 only, so a client that would
        // like HTTP/2 knows before sending a request.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Requires a client certificate chaining to `ca`, valid now, for clientAuth.
fn client_verifier(
    pki: &Pki,
    provider: Arc<CryptoProvider>,
) -> io::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(pki.pem("ca").as_bytes()).map_err(invalid)?;
    roots.add(ca).map_err(invalid)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(invalid)
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Transport for TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}
