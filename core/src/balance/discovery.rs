//! DNS discovery: a service's endpoints, re-resolved from DNS every `refresh_ms`.
//!
//! One task per discovered service runs on core's runtime ([`crate::runtime`]) and owns
//! a resolver built from [`DiscoveryConfig`]. Each refresh turns the answer into URLs:
//!
//! - with a `port`, A and AAAA records, each address becoming `scheme://ip:port` with
//!   weight 1;
//! - without one, SRV records (RFC 2782): only the lowest priority present is used
//!   (the RFC's "MUST attempt to contact the target host with the lowest-numbered
//!   priority"), targets of `.` ("decidedly not available") are skipped, each target
//!   is resolved to its addresses, and the record's weight becomes the endpoint's
//!   (at least 1, since the balancers treat 0 as "never").
//!
//! The new list reuses the `Arc<Endpoint>` of every URL already present with the same
//! weight, so an endpoint's latency estimate, counters and ejection state survive a
//! refresh; re-creating them would send a burst to every endpoint as if all were new.
//! A removed endpoint leaves the list but lives on in the calls that hold it, which
//! finish normally (draining). A failed refresh, or one that finds nothing, keeps the
//! previous list, as gRPC's DNS resolver does: a flapping DNS server should not empty a
//! service that still answers.
//!
//! Answers are not cached between refreshes, so `refresh_ms` alone bounds how stale
//! the list can be. Endpoints are addressed by IP rather than host name: the HTTP
//! client resolves host names with the system resolver, which may not be the one
//! configured here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};
use reqwest::Url;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::config::DiscoveryConfig;
use super::endpoint::Endpoint;
use super::set::EndpointSet;
use crate::error::{Error, Result};
use crate::urls::redact_url;

/// A service's discovery task; dropping it stops the task (the client keeps it in its
/// shared state, so that happens when the last clone of the client is dropped).
#[derive(Debug)]
pub(crate) struct Discovery {
    task: JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Discovery {
    /// Starts keeping `set` filled with what `cfg.dns` resolves to; the first
    /// resolution starts at once. `at` is the config path of `cfg`, for errors.
    ///
    /// # Errors
    /// [`Error::Config`] when no resolver is configured and the system's DNS
    /// configuration cannot be read; [`Error::Internal`] when the runtime cannot start.
    pub(crate) fn spawn(
        service: &str,
        at: &str,
        cfg: &DiscoveryConfig,
        set: Arc<EndpointSet>,
    ) -> Result<Discovery> {
        let runtime = crate::runtime::handle()?;
        let resolver = {
            // hickory spawns its connection tasks on the current runtime; build it under
            // core's, where its lookups run, and never outside any runtime.
            let _entered = runtime.enter();
            build_resolver(cfg).map_err(|reason| Error::config(format!("{at}.resolver"), reason))?
        };
        let source = Source {
            name: cfg.dns.clone(),
            port: cfg.port,
            scheme: cfg.scheme.clone(),
        };
        let refresh = Duration::from_millis(cfg.refresh_ms);
        let task = runtime.spawn(run(service.to_owned(), resolver, source, refresh, set));
        Ok(Discovery { task })
    }
}

fn build_resolver(cfg: &DiscoveryConfig) -> std::result::Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match cfg.resolver_addr()? {
        Some(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let server = NameServerConfig::new(addr.ip(), true, vec![udp]);
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                provider,
            )
        }
        None => TokioResolver::builder(provider).map_err(|e| {
            format!("cannot read the system's DNS configuration ({e}); set a resolver")
        })?,
    };
    let options = builder.options_mut();
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // A zero TTL cap is "do not cache": each refresh asks the server again.
    options.positive_max_ttl = Some(Duration::ZERO);
    options.negative_max_ttl = Some(Duration::ZERO);
    builder
        .build()
        .map_err(|e| format!("cannot build the DNS resolver: {e}"))
}

async fn run(
    service: String,
    resolver: TokioResolver,
    source: Source,
    refresh: Duration,
    set: Arc<EndpointSet>,
) {
    let mut ticks = tokio::time::interval(refresh);
    // A slow DNS server delays the next refresh instead of causing a burst of them.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match source.resolve(&resolver).await {
            Ok(found) if !found.is_empty() => {
                let endpoints = merge(&set.snapshot(), found);
                tracing::debug!(service, endpoints = endpoints.len(), "dns discovery");
                set.replace(endpoints);
            }
            Ok(_) => tracing::warn!(
                service,
                name = %source.name,
                "dns discovery found no endpoints; keeping the previous ones"
            ),
            Err(e) => tracing::warn!(
                service,
                name = %source.name,
                error = %e,
                "dns discovery failed; keeping the previous endpoints"
            ),
        }
        // Calls waiting for the first resolution go ahead even when it failed: they
        // fail with NoEndpoint instead of waiting out their deadline.
        set.mark_ready();
    }
}

/// What to resolve and how to turn the answer into URLs.
struct Source {
    name: String,
    port: Option<u16>,
    scheme: String,
}

/// One discovered endpoint before it becomes an [`Endpoint`].
#[derive(Debug, PartialEq)]
struct Found {
    url: Url,
    weight: u32,
}

impl Source {
    async fn resolve(&self, resolver: &TokioResolver) -> std::result::Result<Vec<Found>, NetError> {
        if let Some(port) = self.port {
            let ips = resolver.lookup_ip(self.name.as_str()).await?;
            return Ok(found(&self.scheme, ips.iter().map(|ip| (ip, port, 1))));
        }
        let answer = resolver.srv_lookup(self.name.as_str()).await?;
        let records: Vec<_> = answer
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) if !srv.target.is_root() => Some(srv),
                _ => None,
            })
            .collect();
        let best = records.iter().map(|srv| srv.priority).min();
        let mut addresses = Vec::new();
        for srv in records.iter().filter(|srv| Some(srv.priority) == best) {
            let weight = u32::from(srv.weight).max(1);
            // One unresolvable target fails the refresh: a partial list would drop
            // healthy endpoints because of a transient error.
            for ip in target_ips(resolver, &srv.target).await? {
                addresses.push((ip, srv.port, weight));
            }
        }
        Ok(found(&self.scheme, addresses))
    }
}

/// A target's addresses; a target written as an IP address (not standard, but common
/// in tests and small setups) is used as is.
async fn target_ips(
    resolver: &TokioResolver,
    target: &Name,
) -> std::result::Result<Vec<IpAddr>, NetError> {
    let text = target.to_ascii();
    if let Ok(ip) = text.trim_end_matches('.').parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    Ok(resolver.lookup_ip(target.clone()).await?.iter().collect())
}

/// URLs for `(address, port, weight)`s, the first of each URL kept.
fn found(scheme: &str, addresses: impl IntoIterator<Item = (IpAddr, u16, u32)>) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for (ip, port, weight) in addresses {
        // `SocketAddr` brackets IPv6 addresses as URLs need. Parsing cannot fail for a
        // validated scheme and a socket address; skipping keeps this total.
        let Ok(url) = Url::parse(&format!("{scheme}://{}", SocketAddr::new(ip, port))) else {
            continue;
        };
        if !found.iter().any(|f| f.url == url) {
            found.push(Found { url, weight });
        }
    }
    found
}

/// The endpoints for `found`, reusing each current endpoint with the same URL and
/// weight (its statistics carry over); an endpoint whose weight changed starts afresh.
fn merge(current: &[Arc<Endpoint>], found: Vec<Found>) -> Vec<Arc<Endpoint>> {
    found
        .into_iter()
        .map(|f| {
            current
                .iter()
                .find(|ep| ep.url == f.url && ep.weight == f.weight)
                .cloned()
                .unwrap_or_else(|| {
                    let display = redact_url(f.url.as_str());
                    Arc::new(Endpoint::new(f.url, display, None, f.weight))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests;
