//! Load balancing across testkit upstreams, asserted by counting requests at each
//! upstream. Loops are bounded by call count; no timing assertions.

use courier_testkit::{Action, Testkit};
use courierkit::{Client, ClientConfig, Request, Validate};

use super::support;

/// Runs `calls` GETs to `name` with `concurrency` workers; returns how many succeeded
/// (final status 200).
async fn run(client: &Client, name: &str, calls: usize, concurrency: usize) -> usize {
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (client, name) = (client.clone(), name.to_owned());
        workers.spawn(async move {
            let mut ok = 0;
            for _ in (worker..calls).step_by(concurrency) {
                if let Ok(resp) = client.call(Request::new("GET", &name, "/")).await
                    && resp.status == 200
                {
                    ok += 1;
                }
            }
            ok
        });
    }
    let mut ok = 0;
    while let Some(done) = workers.join_next().await {
        ok += done.unwrap();
    }
    ok
}

async fn slow_endpoint_share(balancer: &str) -> (u64, u64) {
    let kit = Testkit::start(4).await.unwrap();
    support::behave(
        &kit,
        3,
        vec![],
        Action {
            latency_ms: 50,
            ..Action::default()
        },
    );
    let name = format!("slow-{balancer}");
    let client = support::client(
        &name,
        serde_json::json!({ "endpoints": kit.urls(), "balancer": balancer }),
    );
    assert_eq!(run(&client, &name, 2_000, 16).await, 2_000);
    let total: u64 = (0..4).map(|i| kit.requests(i).total()).sum();
    (kit.requests(3).total(), total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_ewma_starves_a_slow_endpoint_that_round_robin_feeds() {
    let (slow, total) = slow_endpoint_share("p2c_ewma").await;
    assert_eq!(total, 2_000);
    // Under half of round robin's share. Not near zero: P2C weighs in-flight calls, so
    // the idle slow endpoint still wins a few picks, more when a loaded machine slows
    // the fast ones too (5% failed three times on a busy 2-core machine: 138 of 2000).
    assert!(
        slow < 250,
        "p2c_ewma sent {slow} of 2000 calls (>= 12.5%) to the +50 ms endpoint"
    );

    let (slow, total) = slow_endpoint_share("round_robin").await;
    assert_eq!(total, 2_000);
    assert!(
        (450..=550).contains(&slow),
        "round robin (the control) sent {slow} of 2000, not ~25%"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_fast_is_ejected_and_calls_still_succeed() {
    let kit = Testkit::start(4).await.unwrap();
    support::behave(
        &kit,
        0,
        vec![],
        Action {
            status: 503,
            ..Action::default()
        },
    );
    // Round robin keeps offering the failing endpoint its turn until ejection takes it
    // out; P2C over peak-EWMA would stop picking it after a failure or two (each weighs
    // like a 1 s sample), before it fails the five times in a row that eject it.
    let client = support::client(
        "fast-503",
        serde_json::json!({ "endpoints": kit.urls(), "balancer": "round_robin" }),
    );
    let ok = run(&client, "fast-503", 2_000, 16).await;
    assert!(
        ok >= 1_980,
        "retries on other endpoints keep success at 99%+, got {ok}/2000"
    );
    let failing = kit.requests(0).total();
    assert!(
        failing <= 20,
        "the 503 endpoint got {failing} requests (> 1%)"
    );
    let stats = &client.stats().services["fast-503"];
    let bad = stats
        .endpoints
        .iter()
        .find(|e| e.url.trim_end_matches('/') == kit.urls()[0])
        .unwrap();
    assert_eq!(bad.requests, failing, "stats count what the server saw");
    // Five failures in a row eject it for 30 s, far longer than this test runs.
    assert!(
        bad.ejected && bad.times_ejected >= 1,
        "the failing endpoint was ejected: {bad:?}"
    );
    // (How much a failure weighs in the latency estimate is checked on a paused clock in
    // balance/endpoint.rs: here the estimate decays in real time while the endpoint idles.)
}

/// An endpoint that accepts and never answers in time makes each call that lands on it
/// run out its deadline (not retried: the time is gone); those failures still count
/// against the endpoint, so it is ejected and later calls avoid it. (A fatal outcome
/// once counted as a success and reset the streak: a hung endpoint was never ejected.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_hangs_past_the_deadline_is_ejected() {
    let kit = Testkit::start(2).await.unwrap();
    support::behave(
        &kit,
        0,
        vec![],
        Action {
            latency_ms: 5_000,
            ..Action::default()
        },
    );
    let client = support::client(
        "hangs",
        serde_json::json!({
            "endpoints": kit.urls(),
            "balancer": "round_robin",
            // Far above a healthy answer on a loaded machine, far below the hang.
            "deadline_ms": 1000,
            "outlier": { "consecutive_failures": 2, "max_ejected_ratio": 0.5 },
        }),
    );
    let mut timeouts = 0;
    for _ in 0..10 {
        match client.call(Request::new("GET", "hangs", "/")).await {
            Ok(resp) => assert_eq!(resp.status, 200),
            Err(e) => {
                assert!(e.is_timeout(), "{e}");
                timeouts += 1;
            }
        }
    }
    assert_eq!(
        timeouts, 2,
        "two deadlines ran out on the hung endpoint, then it was out"
    );
    let stats = &client.stats().services["hangs"];
    let hung = stats
        .endpoints
        .iter()
        .find(|e| e.url.trim_end_matches('/') == kit.urls()[0])
        .unwrap();
    assert!(hung.ejected && hung.failures == 2, "{hung:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_mode_keeps_serving_with_three_of_four_down() {
    let kit = Testkit::start(4).await.unwrap();
    for i in 0..3 {
        support::behave(
            &kit,
            i,
            vec![],
            Action {
                status: 503,
                ..Action::default()
            },
        );
    }
    // An ample budget: this test is about routing, not about the budget (which would
    // rightly refuse some of the many retries a mostly-down service needs).
    let client = support::client(
        "mostly-down",
        serde_json::json!({ "endpoints": kit.urls(), "breaker": null, "budget": { "ratio": 1.0 } }),
    );
    let ok = run(&client, "mostly-down", 300, 4).await;
    assert_eq!(
        ok, 300,
        "the third attempt reaches the healthy endpoint every time"
    );
    let stats = &client.stats().services["mostly-down"];
    let ejected = stats.endpoints.iter().filter(|e| e.ejected).count();
    assert!(
        ejected <= 1,
        "at most one of four may be ejected, got {ejected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_route_by_default_and_split() {
    let kit = Testkit::start(2).await.unwrap();
    let urls = kit.urls();
    let endpoints = serde_json::json!([{ "url": urls[0], "version": "v1" }, { "url": urls[1], "version": "v2" }]);
    let client = support::client(
        "split",
        serde_json::json!({ "endpoints": endpoints, "versions": { "split": { "v1": 90, "v2": 10 } } }),
    );
    assert_eq!(run(&client, "split", 2_000, 8).await, 2_000);
    let v2 = kit.requests(1).total();
    assert!(
        (140..=260).contains(&v2),
        "10% ± 3% to v2, got {v2} of 2000"
    );

    kit.reset();
    let client = support::client(
        "default-v",
        serde_json::json!({ "endpoints": endpoints, "versions": { "default": "v2" } }),
    );
    assert_eq!(run(&client, "default-v", 50, 2).await, 50);
    assert_eq!((kit.requests(0).total(), kit.requests(1).total()), (0, 50));

    let err = ClientConfig::from_value(serde_json::json!({ "services": { "s": {
        "endpoints": endpoints, "versions": { "default": "v9" } } } }))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "services.s.versions: version \"v9\" has no endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_shape_the_share() {
    let kit = Testkit::start(2).await.unwrap();
    let urls = kit.urls();
    for balancer in ["round_robin", "random", "least_request", "p2c_ewma"] {
        kit.reset();
        let name = format!("weighted-{balancer}");
        let client = support::client(
            &name,
            serde_json::json!({ "balancer": balancer,
                "endpoints": [{ "url": urls[0], "weight": 3 }, { "url": urls[1], "weight": 1 }] }),
        );
        assert_eq!(run(&client, &name, 800, 1).await, 800);
        let heavy = kit.requests(0).total();
        assert!(
            heavy > 400,
            "{balancer}: the weight-3 endpoint got only {heavy} of 800"
        );
    }
}
