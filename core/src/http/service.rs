//! A configured service as the client holds it: its endpoints (and their discovery),
//! its time limits and headers, its resilience policy; and where a call goes.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::HeaderMap;

use super::config::ServiceConfig;
use super::request::check_header;
use crate::balance::{Discovery, Endpoint, EndpointSet};
use crate::error::{Error, Result};
use crate::resilience::{Concurrency, Policy};
use crate::urls::{parse_http_url, redact_url};

/// Where a call goes: a configured service or an absolute URL.
pub(super) enum Target<'a> {
    Service(&'a Service),
    Url { base: Url, display: String },
}

pub(super) struct Service {
    /// Shared with the discovery task, if any, which replaces its list.
    pub(super) endpoints: Arc<EndpointSet>,
    pub(super) deadline: Duration,
    pub(super) timeout: Option<Duration>,
    pub(super) headers: HeaderMap,
    pub(super) policy: Arc<Policy>,
    /// Keeps a discovered service's DNS task running; dropping it (with the client's
    /// last clone) aborts the task.
    _discovery: Option<Discovery>,
}

impl Service {
    /// Builds the service; `previous` is the one it replaces in a reconfiguration,
    /// whose counters it continues and whose endpoints it keeps where the new config
    /// lists the same URL, version and weight (a discovered service starts from the
    /// previous list until its first DNS answer).
    pub(super) fn new(
        name: &str,
        cfg: ServiceConfig,
        previous: Option<&Service>,
    ) -> Result<Service> {
        let known = previous.map(|p| p.endpoints.snapshot());
        let endpoints: Vec<Arc<Endpoint>> = match (&known, cfg.discovery.is_some()) {
            (Some(known), true) => known.to_vec(),
            _ => cfg
                .endpoints
                .into_iter()
                .map(|ep| {
                    // Validated already; the error arm only guards hand-built configs.
                    let url = parse_http_url(&ep.url)
                        .map_err(|reason| Error::config("endpoints", reason))?;
                    let kept = known.iter().flat_map(|k| k.iter()).find(|old| {
                        old.url == url && old.version == ep.version && old.weight == ep.weight
                    });
                    Ok(match kept {
                        Some(old) => Arc::clone(old),
                        None => Arc::new(Endpoint::new(
                            url.clone(),
                            redact_url(url.as_str()),
                            ep.version,
                            ep.weight,
                        )),
                    })
                })
                .collect::<Result<_>>()?,
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let (n, v) = check_header(name, value)
                .map_err(|reason| Error::config(format!("headers.{name}"), reason))?;
            headers.insert(n, v);
        }
        let endpoints = Arc::new(EndpointSet::new(
            endpoints,
            cfg.balancer,
            cfg.outlier,
            cfg.versions,
        ));
        let discovery = cfg
            .discovery
            .map(|d| {
                let at = format!("services.{name}.discovery");
                Discovery::spawn(name, &at, &d, Arc::clone(&endpoints))
            })
            .transpose()?;
        let mut policy = Policy::new(
            name,
            cfg.retry,
            &cfg.budget,
            cfg.breaker,
            cfg.hedge.as_ref(),
            cfg.rate_limit.as_ref(),
            match &cfg.adaptive_concurrency {
                Some(adaptive) => Concurrency::Adaptive(adaptive),
                None => Concurrency::Fixed(cfg.max_concurrency),
            },
        );
        if let Some(previous) = previous {
            // The stats of a reconfigured service go on counting where they were.
            policy.counters = Arc::clone(&previous.policy.counters);
        }
        Ok(Service {
            endpoints,
            deadline: Duration::from_millis(cfg.deadline_ms),
            timeout: cfg.timeout_ms.map(Duration::from_millis),
            headers,
            policy: Arc::new(policy),
            _discovery: discovery,
        })
    }
}
