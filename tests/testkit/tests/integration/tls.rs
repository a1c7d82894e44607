//! The HTTPS upstreams and the PKI, seen by a rustls client (ring, like courier's).

use std::io;
use std::sync::{Arc, OnceLock};

use courier_testkit::{Action, Behavior, Pki, Testkit, TlsUpstream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, ProtocolVersion, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::{PATIENCE, Reply, parse};

/// One PKI for the whole binary: generating is cheap, but not free.
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(Pki::generate)
}

async fn kit() -> Testkit {
    Testkit::start_with_tls(1, pki()).await.expect("start")
}

/// Trusts `ca` and presents the certificate `client`, if any.
fn config(client: Option<&str>) -> ClientConfig {
    let pki = pki();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.pem("ca").as_bytes()).expect("CA PEM"))
        .expect("CA certificate");
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots);
    match client {
        None => builder.with_no_client_auth(),
        Some(name) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pki.pem(name).as_bytes()).expect("PEM")],
                PrivateKeyDer::from_pem_slice(pki.key(name).as_bytes()).expect("key PEM"),
            )
            .expect("client certificate"),
    }
}

/// `GET /tls` over a fresh connection to `url`, verifying the server as `host`.
/// Returns the reply and the negotiated protocol version.
async fn get(
    url: &str,
    host: &str,
    client: Option<&str>,
) -> io::Result<(Reply, Option<ProtocolVersion>)> {
    let authority = url.strip_prefix("https://").expect("an https:// URL");
    let name = ServerName::try_from(host.to_owned()).expect("a server name");
    let run = async {
        let tcp = TcpStream::connect(authority).await?;
        let mut tls = TlsConnector::from(Arc::new(config(client)))
            .connect(name, tcp)
            .await?;
        let version = tls.get_ref().1.protocol_version();
        tls.write_all(b"GET /tls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        // Reading to the end also proves the server closes with a close_notify: rustls
        // reports an EOF without one as an error.
        let mut received = Vec::new();
        tls.read_to_end(&mut received).await?;
        let (reply, _) = parse(&received).expect("a complete response");
        Ok((reply, version))
    };
    tokio::time::timeout(PATIENCE, run)
        .await
        .expect("exchange within the time limit")
}

/// Why a client with the `client` certificate could not verify `variant`'s server.
async fn rejection(kit: &Testkit, variant: TlsUpstream) -> CertificateError {
    let error = get(&kit.tls_url(variant), "127.0.0.1", Some("client"))
        .await
        .expect_err("verification should fail");
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(e)) => e.clone(),
        _ => panic!("{}: not a certificate error: {error}", variant.name()),
    }
}

#[tokio::test]
async fn mtls_serves_a_client_certificate_and_refuses_no_certificate() {
    let kit = kit().await;
    let url = kit.tls_url(TlsUpstream::Mtls);
    let index = kit.tls_index(TlsUpstream::Mtls);
    kit.set_behavior(
        index,
        Behavior {
            script: vec![Action {
                status: 503,
                ..Action::default()
            }],
            ..Behavior::default()
        },
    );

    let (reply, _) = get(&url, "127.0.0.1", Some("client"))
        .await
        .expect("handshake");
    assert_eq!(reply.status, 503, "behaviours apply to HTTPS upstreams too");
    let (reply, version) = get(&url, "127.0.0.1", Some("client"))
        .await
        .expect("handshake");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["upstream"], index);
    assert_eq!(version, Some(ProtocolVersion::TLSv1_3));

    let refused = get(&url, "127.0.0.1", None).await;
    assert!(refused.is_err(), "served without a client certificate");
    assert_eq!(kit.requests(index).total(), 2, "only the accepted requests");
    assert_eq!(kit.urls().len(), 1, "urls() lists the plain upstreams only");
}

#[tokio::test]
async fn localhost_matches_the_server_certificate() {
    let kit = kit().await;
    let url = kit
        .tls_url(TlsUpstream::Mtls)
        .replace("127.0.0.1", "localhost");
    let (reply, _) = get(&url, "localhost", Some("client"))
        .await
        .expect("handshake");
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn the_server_checks_every_client_certificate_fault() {
    let kit = kit().await;
    let url = kit.tls_url(TlsUpstream::Mtls);
    for name in [
        "client-expired",
        "client-not-yet-valid",
        "client-other-ca",
        "client-no-clientauth",
    ] {
        let result = get(&url, "127.0.0.1", Some(name)).await;
        assert!(result.is_err(), "{name} was accepted");
    }
    // Only the broker knows its users; to TLS this one is fine.
    let (reply, _) = get(&url, "127.0.0.1", Some("client-unknown-user"))
        .await
        .expect("client-unknown-user is a valid certificate");
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn tls12_speaks_tls12_only() {
    let kit = kit().await;
    let (reply, version) = get(
        &kit.tls_url(TlsUpstream::Tls12),
        "127.0.0.1",
        Some("client"),
    )
    .await
    .expect("handshake");
    assert_eq!(reply.status, 200);
    assert_eq!(version, Some(ProtocolVersion::TLSv1_2));
}

#[tokio::test]
async fn bad_server_certificates_fail_verification_for_their_own_reason() {
    let kit = kit().await;
    let expired = rejection(&kit, TlsUpstream::Expired).await;
    assert!(
        matches!(
            expired,
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ),
        "{expired:?}"
    );
    let wrong_san = rejection(&kit, TlsUpstream::WrongSan).await;
    assert!(
        matches!(
            wrong_san,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ),
        "{wrong_san:?}"
    );
    let other_ca = rejection(&kit, TlsUpstream::OtherCa).await;
    assert!(
        matches!(other_ca, CertificateError::UnknownIssuer),
        "{other_ca:?}"
    );
}

#[tokio::test]
async fn no_client_auth_serves_a_client_with_only_the_ca() {
    let kit = kit().await;
    let (reply, _) = get(&kit.tls_url(TlsUpstream::NoClientAuth), "127.0.0.1", None)
        .await
        .expect("handshake");
    assert_eq!(reply.status, 200);
}

#[test]
fn pki_round_trips_through_its_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    pki().write(dir.path()).expect("write");
    assert_eq!(&Pki::load(dir.path()).expect("load"), pki());
    assert_eq!(
        &Pki::load_or_generate(dir.path()).expect("load_or_generate"),
        pki(),
        "an existing PKI is kept"
    );
}

#[test]
fn load_or_generate_makes_the_directory_once() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("a/pki");
    let made = Pki::load_or_generate(&dir).expect("generate");
    assert_eq!(Pki::load_or_generate(&dir).expect("load"), made);
    assert!(
        made.key("client")
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    // The staging directory was renamed into place, not left behind.
    let left: Vec<_> = std::fs::read_dir(parent.path().join("a"))
        .expect("list")
        .map(|entry| entry.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["pki"]);

    // A directory that already has other files gets the PKI written into it.
    let crowded = parent.path().join("crowded");
    std::fs::create_dir(&crowded).expect("mkdir");
    std::fs::write(crowded.join("notes.txt"), "mine").expect("write");
    let made = Pki::load_or_generate(&crowded).expect("generate");
    assert_eq!(Pki::load(&crowded).expect("load"), made);
}
