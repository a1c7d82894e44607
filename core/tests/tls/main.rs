//! TLS and mutual TLS against real servers: the testkit's HTTPS upstreams (certificates
//! generated at start-up with rcgen) and RabbitMQ's TLS listener (certificates from the
//! PKI directory the test scripts configured it with). Each failure mode is its own
//! test and must surface as the `tls` kind (or `connect` where the server hangs up
//! first), never as a panic or a hang.

use courier_testkit::{Pki, Testkit, TlsUpstream};
use courierkit::{
    Bus, BusConfig, Client, ClientConfig, ConsumeOptions, ErrorKind, PublishOptions, QueueOptions,
    Request, Validate,
};

#[path = "../support/mod.rs"]
mod support;

/// The client side of a TLS config, from certificate names in the PKI.
fn tls(pki: &Pki, ca: &str, client: Option<&str>) -> serde_json::Value {
    let mut tls = serde_json::json!({ "ca_pem": pki.pem(ca) });
    if let Some(name) = client {
        tls["client_cert_pem"] = pki.pem(name).into();
        tls["client_key_pem"] = pki.key(name).into();
    }
    tls
}

mod https {
    use super::*;

    async fn call_with(
        pki: &Pki,
        variant: TlsUpstream,
        tls: impl Fn(&Pki) -> serde_json::Value,
    ) -> courierkit::Result<u16> {
        let kit = Testkit::start_with_tls(0, pki).await.unwrap();
        let config = ClientConfig::from_value(serde_json::json!({
            "services": { "secure": {
                "endpoints": [kit.tls_url(variant)],
                // One attempt: a handshake failure must surface, not be retried away.
                "retry": { "max_attempts": 1 },
            }},
            "tls": tls(pki),
        }))?;
        let client = Client::new(config)?;
        let response = client.call(Request::new("GET", "secure", "/")).await?;
        Ok(response.status)
    }

    async fn refused(variant: TlsUpstream, tls: impl Fn(&Pki) -> serde_json::Value, why: &str) {
        let pki = Pki::generate();
        let err = call_with(&pki, variant, tls)
            .await
            .expect_err("the handshake must fail");
        assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        assert!(
            err.to_string().contains(why),
            "expected {why:?} in the message: {err}"
        );
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
    }

    #[tokio::test]
    async fn mutual_tls_call_succeeds() {
        let pki = Pki::generate();
        let status = call_with(&pki, TlsUpstream::Mtls, |p| tls(p, "ca", Some("client")))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn a_ca_alone_is_enough_where_no_client_certificate_is_asked() {
        let pki = Pki::generate();
        let status = call_with(&pki, TlsUpstream::NoClientAuth, |p| tls(p, "ca", None))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn server_name_override_accepts_a_certificate_for_another_name() {
        let pki = Pki::generate();
        let status = call_with(&pki, TlsUpstream::WrongSan, |p| {
            let mut t = tls(p, "ca", Some("client"));
            t["server_name"] = "wrong.example".into();
            t
        })
        .await
        .unwrap();
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn tls_1_2_still_works_by_default() {
        let pki = Pki::generate();
        let status = call_with(&pki, TlsUpstream::Tls12, |p| tls(p, "ca", Some("client")))
            .await
            .unwrap();
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn no_client_certificate() {
        refused(
            TlsUpstream::Mtls,
            |p| tls(p, "ca", None),
            "client certificate",
        )
        .await;
    }

    #[tokio::test]
    async fn client_certificate_from_an_untrusted_ca() {
        refused(
            TlsUpstream::Mtls,
            |p| tls(p, "ca", Some("client-other-ca")),
            "the server",
        )
        .await;
    }

    #[tokio::test]
    async fn expired_client_certificate() {
        refused(
            TlsUpstream::Mtls,
            |p| tls(p, "ca", Some("client-expired")),
            "the server",
        )
        .await;
    }

    #[tokio::test]
    async fn not_yet_valid_client_certificate() {
        refused(
            TlsUpstream::Mtls,
            |p| tls(p, "ca", Some("client-not-yet-valid")),
            "the server",
        )
        .await;
    }

    #[tokio::test]
    async fn server_certificate_from_an_untrusted_ca() {
        refused(
            TlsUpstream::OtherCa,
            |p| tls(p, "ca", Some("client")),
            "unknown issuer",
        )
        .await;
    }

    #[tokio::test]
    async fn server_name_mismatch() {
        refused(
            TlsUpstream::WrongSan,
            |p| tls(p, "ca", Some("client")),
            "not valid for the server's name",
        )
        .await;
    }

    #[tokio::test]
    async fn expired_server_certificate() {
        refused(
            TlsUpstream::Expired,
            |p| tls(p, "ca", Some("client")),
            "has expired",
        )
        .await;
    }

    #[tokio::test]
    async fn server_limited_to_tls_1_2_when_1_3_is_required() {
        refused(
            TlsUpstream::Tls12,
            |p| {
                let mut t = tls(p, "ca", Some("client"));
                t["min_version"] = "1.3".into();
                t
            },
            "protocol_version",
        )
        .await;
    }

    #[tokio::test]
    async fn client_certificate_not_meant_for_client_auth() {
        refused(
            TlsUpstream::Mtls,
            |p| tls(p, "ca", Some("client-no-clientauth")),
            "bad_certificate",
        )
        .await;
    }

    #[tokio::test]
    async fn a_key_that_does_not_match_the_certificate_is_a_config_error() {
        let pki = Pki::generate();
        let mut t = tls(&pki, "ca", Some("client"));
        t["client_key_pem"] = pki.key("client-expired").into();
        let err = ClientConfig::from_value(serde_json::json!({ "tls": t })).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("tls.client_key_pem"), "{err}");
    }
}

/// RabbitMQ's TLS listener, set up by tests/scripts/ensure-rabbitmq-tls.sh: it requires a
/// client certificate from the PKI in `COURIER_PKI_DIR` and logs EXTERNAL clients in by
/// the certificate's CN.
mod amqps {
    use super::*;
    use std::process::Command;

    fn pki() -> Pki {
        let dir = std::env::var("COURIER_PKI_DIR")
            .unwrap_or_else(|_| format!("{}/.cache/courier/pki", std::env::var("HOME").unwrap()));
        Pki::load(&dir).unwrap_or_else(|e| {
            panic!("no PKI in {dir} ({e}); tests/scripts/ensure-rabbitmq-tls.sh creates it")
        })
    }

    fn url() -> String {
        std::env::var("COURIER_AMQPS_URL")
            .unwrap_or_else(|_| "amqps://127.0.0.1:5671/%2f?auth_mechanism=external".to_owned())
    }

    async fn connect(tls: serde_json::Value, url: &str) -> courierkit::Result<Bus> {
        let config = BusConfig::from_value(serde_json::json!({
            "urls": [url],
            "tls": tls,
        }))?;
        Bus::connect(config).await
    }

    #[tokio::test]
    async fn publish_and_consume_with_a_client_certificate_as_its_user() {
        let pki = pki();
        let bus = connect(tls(&pki, "ca", Some("client")), &url())
            .await
            .expect("the broker accepts the client certificate");
        let q = format!("courier-test.tls.{}", uuid::Uuid::now_v7());
        bus.declare_queue(&q, &QueueOptions::default())
            .await
            .unwrap();
        let receipt = bus
            .publish(
                "",
                &q,
                b"over tls".to_vec().into(),
                PublishOptions::default(),
            )
            .await
            .unwrap();
        let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
        let d = consumer.next(None).await.unwrap().unwrap();
        assert_eq!(&d.body[..], b"over tls");
        assert_eq!(d.message_id.as_deref(), Some(receipt.message_id.as_str()));
        d.ack().await.unwrap();

        // EXTERNAL logged the connection in as the certificate's CN.
        let out = Command::new("rabbitmqctl")
            .args(["list_connections", "-q", "user", "ssl", "client_properties"])
            .output()
            .expect("rabbitmqctl");
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            listing.lines().any(|l| l.starts_with("courier-client")
                && l.contains("true")
                && l.contains("courier")),
            "no TLS connection of user courier-client in:\n{listing}"
        );
        consumer.close().await.unwrap();
        bus.close().await.unwrap();
        crate::support::delete_queues(&[&q, &format!("{q}.dlq")]).await;
    }

    async fn refused(tls: serde_json::Value, url: &str, kinds: &[ErrorKind], why: &str) {
        let err = match connect(tls, url).await {
            Ok(_) => panic!("the broker must refuse"),
            Err(e) => e,
        };
        assert!(kinds.contains(&err.kind()), "{:?}: {err}", err.kind());
        assert!(err.to_string().contains(why), "expected {why:?} in: {err}");
        assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
    }

    #[tokio::test]
    async fn no_client_certificate() {
        let pki = pki();
        refused(
            tls(&pki, "ca", None),
            &url(),
            &[ErrorKind::Tls, ErrorKind::Connect],
            "client certificate",
        )
        .await;
    }

    #[tokio::test]
    async fn client_certificate_from_an_untrusted_ca() {
        let pki = pki();
        refused(
            tls(&pki, "ca", Some("client-other-ca")),
            &url(),
            &[ErrorKind::Tls, ErrorKind::Connect],
            "client certificate",
        )
        .await;
    }

    #[tokio::test]
    async fn server_certificate_from_an_untrusted_ca() {
        let pki = pki();
        refused(
            tls(&pki, "other-ca", Some("client")),
            &url(),
            &[ErrorKind::Tls],
            "unknown issuer",
        )
        .await;
    }

    #[tokio::test]
    async fn plain_amqp_against_the_tls_port() {
        let err = Bus::connect(
            BusConfig::from_value(serde_json::json!({
                "urls": ["amqp://guest:guest@127.0.0.1:5671/%2f"],
            }))
            .unwrap(),
        )
        .await
        .err()
        .expect("a TLS port does not speak plain AMQP");
        assert!(
            matches!(err.kind(), ErrorKind::Connect | ErrorKind::Timeout),
            "{:?}: {err}",
            err.kind()
        );
        assert!(!err.to_string().contains("guest:guest"), "{err}");
    }

    /// Through a counting proxy: a refused login is final, so the bus does not try again.
    #[tokio::test]
    async fn external_login_for_an_unknown_user_is_refused_once() {
        let pki = pki();
        let proxy = courier_testkit::Proxy::start(crate::support::socket_addr(&url()))
            .await
            .unwrap();
        refused(
            tls(&pki, "ca", Some("client-unknown-user")),
            &proxy.url(&url()),
            &[ErrorKind::Broker, ErrorKind::Connect],
            "ACCESS_REFUSED",
        )
        .await;
        assert_eq!(proxy.accepted(), 1, "one connection attempt, not retried");
    }

    #[test]
    fn a_plaintext_url_with_tls_configured_is_a_config_error() {
        let err = BusConfig::from_value(serde_json::json!({
            "urls": ["amqp://127.0.0.1:5672/%2f"],
            "tls": {},
        }))
        .unwrap_err();
        assert!(err.to_string().starts_with("urls[0]: is amqp://"), "{err}");
    }
}
