//! `Client::reconfigure` against the testkit: swapped atomically under load, rejected
//! whole when invalid, calls in flight finishing under the old configuration, and what
//! did not change (services, endpoints, counters) kept.

use std::time::Duration;

use courier_testkit::{Action, Testkit};
use courierkit::{Client, ClientConfig, ErrorKind, Validate};
use tokio::task::JoinSet;

fn config(services: serde_json::Value) -> ClientConfig {
    ClientConfig::from_value(serde_json::json!({ "services": services })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconfigure_under_64_concurrent_calls_loses_none() {
    const WORKERS: usize = 64;
    const CALLS: usize = 30;
    let kit = Testkit::start(3).await.unwrap();
    let urls = kit.urls();
    let a = config(serde_json::json!({"svc": {"endpoints": [urls[0], urls[1]]}}));
    let b = config(serde_json::json!({
        "svc": {"endpoints": [urls[1], urls[2]], "retry": {"max_attempts": 2}, "balancer": "round_robin"}
    }));
    let c = Client::new(a.clone()).unwrap();
    let mut workers = JoinSet::new();
    for _ in 0..WORKERS {
        let c = c.clone();
        workers.spawn(async move {
            for _ in 0..CALLS {
                let resp = c.get("svc", "/x").await.map_err(|e| e.to_string())?;
                if resp.status != 200 {
                    return Err(format!("status {}", resp.status));
                }
            }
            Ok::<_, String>(())
        });
    }
    let mut swaps = 0;
    while !workers.is_empty() && swaps < 200 {
        let next = if swaps % 2 == 0 { &b } else { &a };
        c.reconfigure(next.clone()).unwrap();
        swaps += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        while let Some(done) = workers.try_join_next() {
            done.unwrap().unwrap();
        }
    }
    while let Some(done) = workers.join_next().await {
        done.unwrap().unwrap();
    }
    assert!(
        swaps >= 2,
        "the calls ran across reconfigurations ({swaps})"
    );
    let total = (WORKERS * CALLS) as u64;
    let seen: u64 = (0..3).map(|i| kit.requests(i).total()).sum();
    assert_eq!(seen, total, "every call sent once, none lost");
    let stats = &c.stats().services["svc"];
    assert_eq!(
        (stats.requests, stats.attempts),
        (total, total),
        "counters carried over"
    );
    assert_eq!(stats.in_flight, 0);
    // Upstream 1 is in both configs: one endpoint, kept, counted all along.
    let kept = stats
        .endpoints
        .iter()
        .find(|ep| ep.url.trim_end_matches('/') == urls[1].trim_end_matches('/'))
        .expect("upstream 1 is configured");
    assert_eq!(kept.requests, kit.requests(1).total());
}

#[tokio::test]
async fn an_invalid_config_is_rejected_whole_and_the_old_one_stays() {
    let kit = Testkit::start(2).await.unwrap();
    let urls = kit.urls();
    let c = Client::new(config(serde_json::json!({"svc": {"endpoints": [urls[0]]}}))).unwrap();
    let bad = ClientConfig {
        services: config(serde_json::json!({
            "svc": {"endpoints": [urls[1]]},
            "other": {"endpoints": ["http://127.0.0.1:1"]},
        }))
        .services
        .into_iter()
        .map(|(name, mut svc)| {
            if name == "other" {
                svc.endpoints[0].url = "not a url".into();
            }
            (name, svc)
        })
        .collect(),
        ..ClientConfig::default()
    };
    let err = c.reconfigure(bad).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string()
            .starts_with("services.other.endpoints[0].url:"),
        "{err}"
    );
    let resp = c.get("svc", "/x").await.unwrap();
    assert_eq!(
        resp.endpoint.trim_end_matches('/'),
        urls[0].trim_end_matches('/')
    );
    assert_eq!(
        c.get("other", "/x").await.unwrap_err().kind(),
        ErrorKind::Config,
        "nothing of the rejected config was applied"
    );
}

#[tokio::test]
async fn calls_in_flight_finish_under_the_config_they_started_with() {
    let kit = Testkit::start(2).await.unwrap();
    let urls = kit.urls();
    let slow = Action {
        latency_ms: 300,
        ..Action::default()
    };
    kit.set_behavior(
        0,
        courier_testkit::Behavior {
            default: slow,
            ..Default::default()
        },
    );
    let c = Client::new(config(serde_json::json!({"svc": {"endpoints": [urls[0]]}}))).unwrap();
    let in_flight = tokio::spawn({
        let c = c.clone();
        async move { c.get("svc", "/x").await }
    });
    while kit.requests(0).total() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.reconfigure(config(
        serde_json::json!({"moved": {"endpoints": [urls[1]]}}),
    ))
    .unwrap();
    let old = in_flight.await.unwrap().unwrap();
    assert_eq!(
        old.endpoint.trim_end_matches('/'),
        urls[0].trim_end_matches('/')
    );
    let err = c.get("svc", "/x").await.unwrap_err();
    assert!(err.to_string().contains("unknown service \"svc\""), "{err}");
    let moved = c.get("moved", "/x").await.unwrap();
    assert_eq!(
        moved.endpoint.trim_end_matches('/'),
        urls[1].trim_end_matches('/')
    );
    assert_eq!(c.stats().services.keys().collect::<Vec<_>>(), ["moved"]);
}

#[tokio::test]
async fn an_unchanged_service_keeps_its_state() {
    let kit = Testkit::start(1).await.unwrap();
    let urls = kit.urls();
    kit.set_behavior(
        0,
        courier_testkit::Behavior {
            default: Action {
                status: 503,
                ..Action::default()
            },
            ..Default::default()
        },
    );
    let breaker = serde_json::json!({"min_calls": 2, "failure_ratio": 0.5, "open_ms": 60000, "max_open_ms": 60000, "probes": 1});
    let svc = serde_json::json!({"endpoints": [urls[0]], "retry": {"max_attempts": 1}, "breaker": breaker});
    let c = Client::new(config(serde_json::json!({"svc": svc}))).unwrap();
    for _ in 0..2 {
        c.get("svc", "/x").await.unwrap();
    }
    assert_eq!(c.stats().services["svc"].breaker_state, "open");
    c.reconfigure(config(
        serde_json::json!({"svc": svc, "more": {"endpoints": [urls[0]]}}),
    ))
    .unwrap();
    let stats = c.stats();
    assert_eq!(stats.services["svc"].breaker_state, "open", "kept whole");
    assert_eq!(stats.services["svc"].requests, 2);
    assert_eq!(
        c.get("svc", "/x").await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    c.close();
    assert_eq!(
        c.reconfigure(config(serde_json::json!({"svc": svc})))
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    );
}
