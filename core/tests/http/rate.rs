//! The client-side rate limit against the testkit: counted refusals, the 429 feedback,
//! keys. One bound on time only where a token bucket makes it certain (calls can never
//! come faster than the rate).

use std::time::{Duration, Instant};

use courier_testkit::Action;
use courierkit::{Error, ErrorKind, Request};

use super::support;

fn keyed(key: &str) -> Request {
    let mut req = Request::new("GET", "limited", "/x");
    req.rate_key = Some(key.to_owned());
    req
}

#[tokio::test]
async fn past_the_burst_a_limit_that_does_not_wait_refuses() {
    let kit = courier_testkit::Testkit::start(1).await.unwrap();
    let c = support::client_for(
        "limited",
        &kit.urls(),
        serde_json::json!({"rate_limit": {"per_second": 0.5, "burst": 2, "wait": false}}),
    );
    for _ in 0..2 {
        assert_eq!(c.get("limited", "/x").await.unwrap().status, 200);
    }
    let err = c.get("limited", "/x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    match err {
        Error::RateLimited {
            service,
            retry_after,
        } => {
            assert_eq!(service, "limited");
            assert!(retry_after > Duration::from_secs(1) && retry_after <= Duration::from_secs(2));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(kit.requests(0).total(), 2, "the refused call sent nothing");
    let stats = &c.stats().services["limited"];
    assert_eq!(
        (stats.requests, stats.rate_limited),
        (2, 1),
        "a refused call never started"
    );
    assert_eq!(stats.rate_per_sec, Some(0.5));
}

#[tokio::test]
async fn a_waiting_limit_spaces_calls_at_its_rate() {
    let kit = courier_testkit::Testkit::start(1).await.unwrap();
    let c = support::client_for(
        "paced",
        &kit.urls(),
        serde_json::json!({"rate_limit": {"per_second": 20, "burst": 1}}),
    );
    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(c.get("paced", "/x").await.unwrap().status, 200);
    }
    // The burst is 1: calls 2..5 each wait 50 ms for their token; a bucket never
    // lets them through sooner (a lower bound, so a slow machine cannot fail it).
    assert!(
        start.elapsed() >= Duration::from_millis(195),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(c.stats().services["paced"].rate_limited, 0);
    // A wait longer than the call's deadline is refused at once instead.
    let mut hurried = Request::new("GET", "paced", "/x");
    hurried.deadline = Some(Duration::from_millis(1));
    for _ in 0..3 {
        let _ = c.call(hurried.clone()).await;
    }
    assert!(c.stats().services["paced"].rate_limited >= 1);
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_the_bucket_and_halves_the_rate() {
    let kit = courier_testkit::Testkit::start(1).await.unwrap();
    let slow_down = Action {
        status: 429,
        retry_after: Some("30".into()),
        ..Action::default()
    };
    support::behave(&kit, 0, vec![slow_down], Action::default());
    let c = support::client_for(
        "throttled",
        &kit.urls(),
        serde_json::json!({"rate_limit": {"per_second": 1000, "burst": 100, "wait": false}}),
    );
    // 30 s is more than the 10 s deadline: the 429 is returned, not retried.
    let resp = c.get("throttled", "/x").await.unwrap();
    assert_eq!((resp.status, resp.attempts), (429, 1));
    let err = c.get("throttled", "/x").await.unwrap_err();
    match err {
        Error::RateLimited { retry_after, .. } => {
            assert!(retry_after > Duration::from_secs(25), "{retry_after:?}")
        }
        other => panic!("the bucket should be paused: {other:?}"),
    }
    let stats = &c.stats().services["throttled"];
    assert!(
        stats
            .rate_per_sec
            .is_some_and(|r| (500.0..1000.0).contains(&r)),
        "halved, recovering: {stats:?}"
    );
    assert_eq!(kit.requests(0).total(), 1);
}

#[tokio::test]
async fn each_key_has_its_own_bucket_and_a_key_needs_a_limit() {
    let kit = courier_testkit::Testkit::start(1).await.unwrap();
    let c = support::client(
        "limited",
        serde_json::json!({
            "endpoints": kit.urls(),
            "rate_limit": {"per_second": 0.5, "burst": 1, "wait": false},
        }),
    );
    c.call(keyed("tenant-a")).await.unwrap();
    assert_eq!(
        c.call(keyed("tenant-a")).await.unwrap_err().kind(),
        ErrorKind::RateLimited
    );
    c.call(keyed("tenant-b")).await.unwrap();
    c.get("limited", "/x").await.unwrap();
    assert_eq!(kit.requests(0).total(), 3);

    let unlimited = support::client_for("open", &kit.urls(), serde_json::json!({}));
    let mut req = Request::new("GET", "open", "/x");
    req.rate_key = Some("tenant-a".into());
    let err = unlimited.call(req).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "rate_key: the target has no rate_limit configured"
    );
}
