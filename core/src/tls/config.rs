//! [`TlsConfig`]: what TLS connections trust and present.

use serde::{Deserialize, Serialize};

/// TLS for HTTP and AMQP: one rustls client configuration built from this serves both
/// transports, so they trust exactly the same things.
///
/// Certificates and keys are PEM text, not paths: every binding can read a file, and a
/// config that carries its material can come from a secret store as it is.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates (PEM). When given, only these roots are trusted; otherwise the
    /// platform's trust store is.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The client certificate chain (PEM, leaf first), for mutual TLS.
    #[serde(default)]
    pub client_cert_pem: Option<String>,
    /// The client certificate's private key (PEM: PKCS#8, RSA or SEC1).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(extend("x-secret" = true)))]
    pub client_key_pem: Option<String>,
    /// The lowest protocol version offered. Default 1.2.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// The name the server certificate must be valid for, instead of the URL's host:
    /// for servers reached by an address their certificate does not name.
    #[serde(default)]
    pub server_name: Option<String>,
}

// By hand: a private key must never reach a log line.
impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(|_| "<pem>"),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("min_version", &self.min_version)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// A TLS protocol version, written `"1.2"` or `"1.3"`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}
