use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn ep(port: u16, version: Option<&str>, weight: u32) -> Arc<Endpoint> {
    let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    Arc::new(Endpoint::new(
        url.clone(),
        url.to_string(),
        version.map(str::to_owned),
        weight,
    ))
}

fn set(endpoints: Vec<Arc<Endpoint>>, balancer: Balancer) -> EndpointSet {
    EndpointSet::new(
        endpoints,
        balancer,
        Some(OutlierConfig::default()),
        VersionConfig::default(),
    )
}

/// Reports one failed attempt on `endpoint` the way the client does.
fn fail(set: &EndpointSet, endpoint: &Arc<Endpoint>) {
    set.finish(endpoint.start(), true);
}

#[tokio::test(start_paused = true)]
async fn ejects_after_exactly_five_consecutive_failures_and_readmits() {
    let eps: Vec<_> = (1..=10).map(|p| ep(p, None, 1)).collect();
    let s = set(eps.clone(), Balancer::RoundRobin);
    for _ in 0..4 {
        fail(&s, &eps[0]);
    }
    assert!(
        !eps[0].is_ejected(Instant::now()),
        "4 failures do not eject"
    );
    fail(&s, &eps[0]);
    assert!(
        eps[0].is_ejected(Instant::now()),
        "the 5th consecutive failure ejects"
    );
    for _ in 0..100 {
        assert!(
            !Arc::ptr_eq(&s.select(None, &[]).unwrap(), &eps[0]),
            "ejected endpoints get no traffic"
        );
    }
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(!eps[0].is_ejected(Instant::now()), "re-admitted after 30 s");
    for _ in 0..5 {
        fail(&s, &eps[0]);
    }
    tokio::time::advance(Duration::from_secs(31)).await;
    assert!(
        eps[0].is_ejected(Instant::now()),
        "the second ejection lasts 60 s"
    );
    assert_eq!(eps[0].stats().times_ejected, 2);
}

#[tokio::test(start_paused = true)]
async fn a_success_resets_the_failure_count() {
    let eps: Vec<_> = (1..=10).map(|p| ep(p, None, 1)).collect();
    let s = set(eps.clone(), Balancer::RoundRobin);
    for _ in 0..4 {
        fail(&s, &eps[0]);
    }
    s.finish(eps[0].start(), false);
    for _ in 0..4 {
        fail(&s, &eps[0]);
    }
    assert!(
        !eps[0].is_ejected(Instant::now()),
        "failures must be consecutive"
    );
}

#[tokio::test(start_paused = true)]
async fn at_most_the_capped_share_is_ejected_but_at_least_one() {
    let eps: Vec<_> = (1..=4).map(|p| ep(p, None, 1)).collect();
    let s = set(eps.clone(), Balancer::RoundRobin);
    for e in &eps[..2] {
        for _ in 0..5 {
            fail(&s, e);
        }
    }
    let ejected = eps.iter().filter(|e| e.is_ejected(Instant::now())).count();
    assert_eq!(
        ejected, 1,
        "10% of 4 rounds down to 0, but one may always be ejected"
    );
}

#[tokio::test(start_paused = true)]
async fn panic_mode_uses_every_endpoint_when_most_are_unhealthy() {
    let eps: Vec<_> = (1..=4).map(|p| ep(p, None, 1)).collect();
    let s = set(eps.clone(), Balancer::RoundRobin);
    for e in &eps[..3] {
        for _ in 0..5 {
            fail(&s, e);
        }
    }
    let mut picked = std::collections::HashSet::new();
    for _ in 0..40 {
        picked.insert(s.select(None, &[]).unwrap().url.port());
    }
    assert_eq!(
        picked.len(),
        4,
        "3 of 4 unhealthy: balance over all rather than fail"
    );
}

#[test]
fn smooth_round_robin_interleaves_by_weight() {
    let eps = vec![ep(1, None, 5), ep(2, None, 1), ep(3, None, 1)];
    let s = EndpointSet::new(eps, Balancer::RoundRobin, None, VersionConfig::default());
    let order: Vec<u16> = (0..7)
        .map(|_| s.select(None, &[]).unwrap().url.port().unwrap())
        .collect();
    assert_eq!(
        order,
        [1, 1, 2, 1, 3, 1, 1],
        "nginx's sequence for weights 5, 1, 1"
    );
}

#[test]
fn version_routing_filters_and_splits() {
    let eps = vec![ep(1, Some("v1"), 1), ep(2, Some("v2"), 1)];
    let versions = VersionConfig {
        default: Some("v1".into()),
        split: BTreeMap::from([("v1".to_owned(), 90), ("v2".to_owned(), 10)]),
    };
    let s = EndpointSet::new(eps, Balancer::P2cEwma, None, versions);
    for _ in 0..20 {
        assert_eq!(s.select(Some("v2"), &[]).unwrap().url.port(), Some(2));
    }
    assert!(s.select(Some("v3"), &[]).unwrap_err().contains("v3"));
    let v2 = (0..10_000)
        .filter(|_| s.select(None, &[]).unwrap().url.port() == Some(2))
        .count();
    assert!(
        (700..=1_300).contains(&v2),
        "about 10% to v2, got {v2} of 10000"
    );
}

#[test]
fn retries_avoid_endpoints_already_tried() {
    let eps = vec![ep(1, None, 1), ep(2, None, 1)];
    let s = set(eps.clone(), Balancer::P2cEwma);
    for _ in 0..20 {
        let next = s.select(None, std::slice::from_ref(&eps[0])).unwrap();
        assert!(Arc::ptr_eq(&next, &eps[1]));
    }
}

#[tokio::test(start_paused = true)]
async fn p2c_ewma_avoids_an_endpoint_that_fails_fast() {
    let eps = vec![ep(1, None, 1), ep(2, None, 1)];
    let s = EndpointSet::new(
        eps.clone(),
        Balancer::P2cEwma,
        None,
        VersionConfig::default(),
    );
    // Endpoint 1 answers errors instantly; endpoint 2 succeeds in 20 ms.
    assert!(!eps[0].start().finish(true, None));
    let slow_ok = eps[1].start();
    tokio::time::advance(Duration::from_millis(20)).await;
    assert!(!slow_ok.finish(false, None));
    let to_failing = (0..100)
        .filter(|_| Arc::ptr_eq(&s.select(None, &[]).unwrap(), &eps[0]))
        .count();
    assert_eq!(
        to_failing, 0,
        "a fast failure costs like a 1 s response, so it never wins"
    );
}

#[tokio::test]
async fn an_empty_set_waits_for_discovery_and_replace_releases_it() {
    assert!(
        set(vec![ep(1, None, 1)], Balancer::P2cEwma).is_ready(),
        "configured endpoints are ready at once"
    );
    let s = Arc::new(set(vec![], Balancer::P2cEwma));
    assert!(!s.is_ready(), "a discovered service starts unresolved");
    let waiter = tokio::spawn({
        let s = Arc::clone(&s);
        async move { s.ready().await }
    });
    let found = ep(2, None, 1);
    s.replace(vec![found.clone()]);
    waiter.await.unwrap();
    assert!(s.is_ready());
    assert!(Arc::ptr_eq(&s.select(None, &[]).unwrap(), &found));
}
