//! The one rustls client configuration shared by HTTP (reqwest) and AMQP (lapin).
//!
//! courier pins the crypto provider to ring explicitly instead of relying on a process
//! default: a second provider in the dependency tree (aws-lc-rs comes in through default
//! features of reqwest and lapin) makes rustls refuse to pick one at run time.
//! Certificates are verified against the platform's trust store, like a browser would.

use std::sync::Arc;

use rustls_platform_verifier::BuilderVerifierExt;

use crate::error::{Error, Result};

/// A client config with ring, safe protocol versions and the platform verifier.
///
/// `alpn` lists the protocols to offer (HTTP offers `h2` and `http/1.1`; AMQP none).
pub(crate) fn client_config(alpn: &[&[u8]]) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            reason: e.to_string(),
        })?
        .with_platform_verifier()
        .map_err(|e| Error::Tls {
            reason: e.to_string(),
        })?
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Whether `err` or anything in its source chain is a rustls error.
pub(crate) fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        next = e.source();
    }
    false
}
