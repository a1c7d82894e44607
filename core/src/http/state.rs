//! What a [`crate::Client`]'s calls run on: the HTTP connection pool, the services and the
//! limits, built from one [`ClientConfig`]. The client holds it behind an `ArcSwap`: each
//! call loads the state once and keeps it to its end, and `reconfigure` swaps in a new
//! one, so calls in flight finish under the configuration they started with.

use std::collections::HashMap;
use std::sync::Arc;

use super::config::ClientConfig;
use super::service::Service;
use crate::error::{Error, Result};
use crate::limits::HttpLimits;

pub(super) struct State {
    pub(super) http: reqwest::Client,
    pub(super) services: HashMap<String, Arc<Service>>,
    pub(super) limits: HttpLimits,
    /// The (validated) config this state was built from, to tell what a
    /// reconfiguration changed.
    config: ClientConfig,
}

impl State {
    /// Builds the state for `config`, reusing what `previous` already has for it: the
    /// connection pool when TLS is unchanged, a service whose settings are unchanged
    /// (its breaker, limits, latencies and counters with it), and for a changed
    /// service its counters and its unchanged endpoints (their latency estimates and
    /// ejections).
    pub(super) fn build(config: ClientConfig, previous: Option<&State>) -> Result<State> {
        let http = match previous {
            Some(old) if old.config.tls == config.tls => old.http.clone(),
            _ => {
                let tls = crate::tls::client_config(config.tls.as_ref(), &[b"h2", b"http/1.1"])?;
                reqwest::Client::builder()
                    .tls_backend_preconfigured(tls)
                    .build()
                    .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))?
            }
        };
        let mut services = HashMap::with_capacity(config.services.len());
        for (name, cfg) in &config.services {
            let old =
                previous.and_then(|p| Some((p.config.services.get(name)?, p.services.get(name)?)));
            let service = match old {
                Some((old_cfg, old)) if old_cfg == cfg => Arc::clone(old),
                _ => Arc::new(Service::new(name, cfg.clone(), old.map(|(_, s)| &**s))?),
            };
            services.insert(name.clone(), service);
        }
        Ok(State {
            http,
            services,
            limits: config.limits.clone(),
            config,
        })
    }
}
