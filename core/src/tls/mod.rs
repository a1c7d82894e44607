//! The one rustls client configuration shared by HTTP (reqwest) and AMQP (lapin), built
//! from a [`TlsConfig`], and the translation of rustls failures into messages that say
//! what was wrong.
//!
//! courier pins the crypto provider to ring explicitly instead of relying on a process
//! default: a second provider in the dependency tree (aws-lc-rs comes in through default
//! features of reqwest and lapin) makes rustls refuse to pick one at run time.
//!
//! Without a CA bundle, certificates are checked by the platform verifier (the OS trust
//! store and its revocation and policy checks, like a browser) rather than a compiled-in
//! webpki root list: the roots an operator installed, corporate ones included, are the
//! ones that count, and they are updated with the OS rather than with courier.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::{Error, Result};

mod config;

pub use config::{TlsConfig, TlsVersion};

/// A client config with ring, the versions `tls` allows, its trust anchors and its client
/// certificate (the platform verifier and no client certificate without one).
///
/// `alpn` lists the protocols to offer (HTTP offers `h2` and `http/1.1`; AMQP none).
///
/// # Errors
/// [`Error::Config`] naming the `tls.*` field that holds unusable material.
pub(crate) fn client_config(
    tls: Option<&TlsConfig>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig> {
    let default = TlsConfig::default();
    let tls = tls.unwrap_or(&default);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut verifier = verifier(tls, &provider)?;
    if let Some(name) = &tls.server_name {
        let name = ServerName::try_from(name.clone()).map_err(|_| {
            Error::config(
                "tls.server_name",
                format!("{name:?} is not a DNS name or an IP address"),
            )
        })?;
        verifier = Arc::new(NameOverride {
            inner: verifier,
            name,
        });
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| Error::config("tls.min_version", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(Error::config(
                "tls.client_key_pem",
                "is required with client_cert_pem",
            ));
        }
        (None, Some(_)) => {
            return Err(Error::config(
                "tls.client_cert_pem",
                "is required with client_key_pem",
            ));
        }
        (Some(chain), Some(key)) => {
            let chain = certificates("tls.client_cert_pem", chain)?;
            // The parser's message could quote the key; say only what was expected.
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|_| {
                Error::config(
                    "tls.client_key_pem",
                    "holds no PEM private key (PKCS#8, RSA or SEC1)",
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                let reason = match e {
                    rustls::Error::InconsistentKeys(_) => {
                        "does not belong to the certificate in client_cert_pem".to_owned()
                    }
                    other => format!("is not a usable key: {other}"),
                };
                Error::config("tls.client_key_pem", reason)
            })?
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn verifier(
    tls: &TlsConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>> {
    let Some(pem) = &tls.ca_pem else {
        let platform =
            rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| Error::Tls {
                reason: format!("the platform trust store cannot be used: {e}"),
                source: Some(Box::new(e)),
            })?;
        return Ok(Arc::new(platform));
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates("tls.ca_pem", pem)? {
        roots.add(cert).map_err(|e| {
            Error::config(
                "tls.ca_pem",
                format!("holds an unusable CA certificate: {e}"),
            )
        })?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map(|v| v as Arc<dyn ServerCertVerifier>)
        .map_err(|e| Error::config("tls.ca_pem", e.to_string()))
}

fn certificates(field: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::config(field, format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::config(
            field,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// Checks the server certificate against a configured name instead of the URL's host.
#[derive(Debug)]
struct NameOverride {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for NameOverride {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What went wrong, when `err` or anything in its source chain is a rustls error: the
/// message names the certificate or the missing piece, which rustls's own text
/// ("invalid peer certificate: UnknownIssuer") leaves to the reader to decode.
pub(crate) fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(tls));
        }
        // An io::Error's source() skips the error it wraps (it returns that error's
        // source), and the wrapped one is where a TLS stack puts its failure.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(cert) => {
            let what = match cert {
                CertificateError::UnknownIssuer => {
                    "is not signed by a trusted CA (unknown issuer)".to_owned()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "has expired".to_owned()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "is not valid yet".to_owned()
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "is not valid for the server's name (set tls.server_name if the name differs from the URL's host)".to_owned()
                }
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                    "is not meant for a TLS server (extended key usage)".to_owned()
                }
                CertificateError::Revoked => "has been revoked".to_owned(),
                other => format!("was refused: {other}"),
            };
            format!("the server's certificate {what}")
        }
        rustls::Error::AlertReceived(alert) => {
            let what = match alert {
                AlertDescription::CertificateRequired => {
                    "requires a client certificate (set tls.client_cert_pem and tls.client_key_pem)"
                }
                AlertDescription::UnknownCA => {
                    "does not trust the client certificate's CA (unknown_ca)"
                }
                AlertDescription::CertificateExpired => {
                    "refused the client certificate as expired or not yet valid (certificate_expired)"
                }
                AlertDescription::BadCertificate | AlertDescription::UnsupportedCertificate => {
                    "refused the client certificate (bad_certificate)"
                }
                AlertDescription::ProtocolVersion => {
                    "supports none of the TLS versions offered (protocol_version; see tls.min_version)"
                }
                AlertDescription::HandshakeFailure => {
                    "aborted the handshake (handshake_failure): it may require a client certificate, or share no version or cipher suite"
                }
                AlertDescription::AccessDenied => "denied access (access_denied)",
                _ => return format!("the server aborted the handshake ({alert:?} alert)"),
            };
            format!("the server {what}")
        }
        rustls::Error::PeerIncompatible(why) => format!(
            "the server shares no TLS version or algorithm with courier ({why:?}); a server limited to TLS 1.2 against tls.min_version 1.3 fails this way"
        ),
        other => format!("TLS failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(value: serde_json::Value) -> TlsConfig {
        serde_json::from_value(value).unwrap()
    }

    fn config_error(tls: &TlsConfig) -> String {
        match client_config(Some(tls), &[]) {
            Err(Error::Config { field, reason }) => format!("{field}: {reason}"),
            other => panic!("expected a config error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn defaults_build_with_the_platform_verifier() {
        client_config(None, &[b"h2"]).unwrap();
    }

    #[test]
    fn unusable_material_names_the_field_and_never_echoes_a_key() {
        let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n";
        let cases = [
            (
                serde_json::json!({"ca_pem": "not pem"}),
                "tls.ca_pem: holds no PEM certificate",
            ),
            (
                serde_json::json!({"client_cert_pem": "x"}),
                "tls.client_key_pem: is required",
            ),
            (
                serde_json::json!({"client_key_pem": secret}),
                "tls.client_cert_pem: is required",
            ),
            (
                serde_json::json!({"server_name": "bad name!"}),
                "tls.server_name",
            ),
        ];
        for (value, expected) in cases {
            let message = config_error(&config(value));
            assert!(message.starts_with(expected), "{message}");
            assert!(!message.contains("c2VjcmV0"), "{message}");
        }
    }

    #[test]
    fn versions_parse_from_their_written_form() {
        assert_eq!(
            config(serde_json::json!({"min_version": "1.3"})).min_version,
            TlsVersion::Tls13
        );
        assert!(
            serde_json::from_value::<TlsConfig>(serde_json::json!({"min_version": "1.1"})).is_err()
        );
    }

    #[test]
    fn debug_redacts_the_key() {
        let tls = config(serde_json::json!({"client_key_pem": "SECRET"}));
        assert!(!format!("{tls:?}").contains("SECRET"));
    }

    #[test]
    fn failures_are_described_by_cause() {
        let cases = [
            (
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
                "unknown issuer",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::Expired),
                "has expired",
            ),
            (
                rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
                "not valid for the server's name",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                "requires a client certificate",
            ),
            (
                rustls::Error::AlertReceived(AlertDescription::UnknownCA),
                "unknown_ca",
            ),
        ];
        for (error, expected) in cases {
            let io = std::io::Error::other(error);
            let described = tls_failure(&io).unwrap();
            assert!(described.contains(expected), "{described}");
        }
        assert!(tls_failure(&std::io::Error::other("plain")).is_none());
    }
}
