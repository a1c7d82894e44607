//! A service's endpoints and how one is chosen for an attempt.
//!
//! Per attempt: narrow to the requested version (or the service's split or default
//! version); drop ejected endpoints unless more than half the candidates are unhealthy
//! (panic mode: a degraded service is better served by all its endpoints than failed);
//! avoid endpoints this call already tried when others remain; then let the balancer
//! choose.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rand::RngExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::config::{Balancer, OutlierConfig, VersionConfig};
use super::endpoint::{Endpoint, EndpointStats, InFlight};

#[derive(Debug)]
pub(crate) struct EndpointSet {
    balancer: Balancer,
    outlier: Option<OutlierConfig>,
    versions: VersionConfig,
    /// Readers take a cheap snapshot; discovery replaces the list as a whole.
    endpoints: RwLock<Arc<Vec<Arc<Endpoint>>>>,
    round_robin: Mutex<()>,
    /// False until discovery's first resolution has finished; calls wait for it (see
    /// [`EndpointSet::ready`]). A configured list is ready from the start.
    ready: watch::Sender<bool>,
}

impl EndpointSet {
    pub(crate) fn new(
        endpoints: Vec<Arc<Endpoint>>,
        balancer: Balancer,
        outlier: Option<OutlierConfig>,
        versions: VersionConfig,
    ) -> EndpointSet {
        EndpointSet {
            balancer,
            outlier,
            versions,
            // Only a discovered service starts empty (validation requires a configured
            // list to have an endpoint), so an empty set awaits discovery.
            ready: watch::Sender::new(!endpoints.is_empty()),
            endpoints: RwLock::new(Arc::new(endpoints)),
            round_robin: Mutex::new(()),
        }
    }

    /// Swaps in discovery's new list and marks the set ready. Calls in flight keep
    /// their endpoint's `Arc`, so a removed endpoint drains instead of failing them.
    pub(crate) fn replace(&self, endpoints: Vec<Arc<Endpoint>>) {
        *self
            .endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(endpoints);
        self.mark_ready();
    }

    /// Releases calls waiting in [`EndpointSet::ready`]: discovery's first resolution
    /// has finished, whether or not it found endpoints.
    pub(crate) fn mark_ready(&self) {
        self.ready
            .send_if_modified(|ready| !std::mem::replace(ready, true));
    }

    pub(crate) fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the set has been resolved once; returns at once for configured
    /// endpoints.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future only stops waiting.
    pub(crate) async fn ready(&self) {
        // `wait_for` fails only once the sender is dropped, and `self` owns it.
        let _ = self.ready.subscribe().wait_for(|ready| *ready).await;
    }

    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The endpoint for the next attempt, or why there is none.
    pub(crate) fn select(
        &self,
        version: Option<&str>,
        tried: &[Arc<Endpoint>],
    ) -> Result<Arc<Endpoint>, String> {
        let all = self.snapshot();
        let version = match version {
            Some(v) => Some(v.to_owned()),
            None => self.routed_version(),
        };
        let mut candidates: Vec<&Arc<Endpoint>> = match &version {
            Some(v) => all
                .iter()
                .filter(|ep| ep.version.as_deref() == Some(v))
                .collect(),
            None => all.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(match version {
                Some(v) => format!("no endpoint has version {v:?}"),
                None => "the service has no endpoints (discovery found none)".to_owned(),
            });
        }
        let now = Instant::now();
        if let Some(outlier) = &self.outlier {
            let unhealthy = candidates
                .iter()
                .filter(|ep| ep.is_unhealthy(now, outlier))
                .count();
            let panic = unhealthy * 2 > candidates.len();
            if !panic {
                let healthy: Vec<_> = candidates
                    .iter()
                    .copied()
                    .filter(|ep| !ep.is_ejected(now))
                    .collect();
                if !healthy.is_empty() {
                    candidates = healthy;
                }
            }
        }
        if !tried.is_empty() {
            let fresh: Vec<_> = candidates
                .iter()
                .copied()
                .filter(|ep| !tried.iter().any(|t| Arc::ptr_eq(t, ep)))
                .collect();
            if !fresh.is_empty() {
                candidates = fresh;
            }
        }
        Ok(self.choose(&candidates).clone())
    }

    /// Reports an attempt's outcome on its endpoint (latency, failure streak) and ejects
    /// the endpoint when the streak crosses the threshold and the cap allows.
    pub(crate) fn finish(&self, flight: InFlight, failed: bool) {
        let endpoint = Arc::clone(&flight.endpoint);
        if flight.finish(failed, self.outlier.as_ref()) {
            self.try_eject(&endpoint);
        }
    }

    /// Ejects `endpoint` unless the ejection cap (a share of the endpoints, at least
    /// one) is already reached.
    fn try_eject(&self, endpoint: &Endpoint) {
        let Some(outlier) = &self.outlier else { return };
        let all = self.snapshot();
        let now = Instant::now();
        let ejected = all.iter().filter(|ep| ep.is_ejected(now)).count();
        let cap = ((all.len() as f64 * outlier.max_ejected_ratio).floor() as usize).max(1);
        if ejected < cap {
            endpoint.eject(outlier);
        }
    }

    pub(crate) fn stats(&self) -> Vec<EndpointStats> {
        self.snapshot().iter().map(|ep| ep.stats()).collect()
    }

    /// The version for a request that names none.
    fn routed_version(&self) -> Option<String> {
        if self.versions.split.is_empty() {
            return self.versions.default.clone();
        }
        let total: u64 = self.versions.split.values().map(|w| u64::from(*w)).sum();
        let mut ticket = rand::rng().random_range(0..total);
        for (version, weight) in &self.versions.split {
            if ticket < u64::from(*weight) {
                return Some(version.clone());
            }
            ticket -= u64::from(*weight);
        }
        self.versions.default.clone()
    }

    fn choose<'a>(&self, candidates: &[&'a Arc<Endpoint>]) -> &'a Arc<Endpoint> {
        if candidates.len() == 1 {
            return candidates[0];
        }
        match self.balancer {
            Balancer::P2cEwma => p2c(candidates, Endpoint::cost),
            Balancer::LeastRequest => p2c(candidates, |ep| {
                (ep.in_flight() + 1) as f64 / f64::from(ep.weight)
            }),
            Balancer::Random => candidates[weighted_index(candidates, None)],
            Balancer::RoundRobin => self.smooth_round_robin(candidates),
        }
    }

    /// nginx's smooth weighted round robin: each pick adds every candidate's weight to
    /// its running total and takes the largest, which then pays back the sum of weights.
    /// Interleaves heavy and light endpoints instead of sending runs to the heavy one.
    fn smooth_round_robin<'a>(&self, candidates: &[&'a Arc<Endpoint>]) -> &'a Arc<Endpoint> {
        let _turn = self
            .round_robin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let total: i64 = candidates.iter().map(|ep| i64::from(ep.weight)).sum();
        let mut best = candidates[0];
        let mut best_current = i64::MIN;
        for ep in candidates {
            let current = ep
                .rr_current
                .fetch_add(i64::from(ep.weight), Ordering::Relaxed)
                + i64::from(ep.weight);
            if current > best_current {
                best = ep;
                best_current = current;
            }
        }
        best.rr_current.fetch_sub(total, Ordering::Relaxed);
        best
    }
}

/// Power of two choices: two distinct candidates drawn by weight, the cheaper wins.
/// Comparing two random endpoints instead of all of them gives nearly the load
/// spread of "pick the best" without its herding (Mitzenmacher, "The Power of Two
/// Choices in Randomized Load Balancing", 2001).
fn p2c<'a>(candidates: &[&'a Arc<Endpoint>], cost: impl Fn(&Endpoint) -> f64) -> &'a Arc<Endpoint> {
    let a = weighted_index(candidates, None);
    let b = weighted_index(candidates, Some(a));
    if cost(candidates[b]) < cost(candidates[a]) {
        candidates[b]
    } else {
        candidates[a]
    }
}

/// A candidate index drawn with probability proportional to weight, never `except`.
fn weighted_index(candidates: &[&Arc<Endpoint>], except: Option<usize>) -> usize {
    let weight = |i: usize| {
        if Some(i) == except {
            0
        } else {
            u64::from(candidates[i].weight)
        }
    };
    let total: u64 = (0..candidates.len()).map(weight).sum();
    let mut ticket = rand::rng().random_range(0..total.max(1));
    for i in 0..candidates.len() {
        if ticket < weight(i) {
            return i;
        }
        ticket -= weight(i);
    }
    // Unreachable with positive weights; the first allowed index keeps it total.
    (0..candidates.len())
        .find(|i| Some(*i) != except)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
