//! Retries, Retry-After, deadlines, the retry budget, the breaker and the concurrency
//! limit, asserted by counting requests at the server (no tight timing).

use std::time::{Duration, Instant};

use courier_testkit::{Action, Reset, Testkit, closed_port};
use courierkit::{ClientConfig, ErrorKind, Request, Validate};

use super::support;

fn status(code: u16) -> Action {
    Action {
        status: code,
        ..Action::default()
    }
}

fn post_with_key(key: Option<&str>) -> Request {
    let mut req = Request::new("POST", "svc", "/orders").body(&b"{}"[..]);
    req.idempotency_key = key.map(str::to_owned);
    req
}

#[tokio::test]
async fn retries_503_until_success() {
    let kit = Testkit::start(1).await.unwrap();
    support::behave(&kit, 0, vec![status(503), status(503)], status(200));
    let c = support::client_for("retry-503", &kit.urls(), serde_json::json!({}));
    let resp = c
        .call(Request::new("GET", "retry-503", "/x"))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.attempts), (200, 3));
    assert_eq!(kit.requests(0).total(), 3, "the server saw every attempt");
    let stats = &c.stats().services["retry-503"];
    assert_eq!((stats.requests, stats.attempts, stats.retries), (1, 3, 2));
}

#[tokio::test]
async fn post_without_key_is_not_resent_after_a_reset() {
    let kit = Testkit::start(1).await.unwrap();
    let mid_reset = Action {
        reset: Some(Reset::MidResponse),
        ..Action::default()
    };
    support::behave(&kit, 0, vec![], mid_reset.clone());
    let c = support::client_for("svc", &kit.urls(), serde_json::json!({}));
    let err = c.call(post_with_key(None)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert_eq!(
        kit.requests(0).total(),
        1,
        "a POST that may have run is never re-sent"
    );

    kit.reset();
    support::behave(&kit, 0, vec![], mid_reset);
    let mut req = post_with_key(Some("order-7"));
    req.path = "/orders".into();
    let err = c.call(req).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect);
    let log = kit.requests(0);
    assert_eq!(
        log.total(),
        3,
        "with an idempotency key the POST is retried"
    );
    assert_eq!(
        log.by_idempotency_key.get("order-7"),
        Some(&3),
        "every attempt carries the same key"
    );
}

#[tokio::test]
async fn post_is_retried_when_nothing_was_sent() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let c = support::client_for(
        "closed-port",
        &[url],
        serde_json::json!({ "retry": { "base_delay_ms": 1, "max_delay_ms": 5 } }),
    );
    let mut req = post_with_key(None);
    req.target = "closed-port".into();
    let err = c.call(req).await.unwrap_err();
    assert!(
        matches!(
            err,
            courierkit::Error::Connect {
                operation: "connect",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        c.stats().services["closed-port"].attempts,
        3,
        "refused connections prove nothing was sent"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_never_slept_past_the_deadline() {
    let kit = Testkit::start(1).await.unwrap();
    let busy = Action {
        status: 503,
        retry_after: Some("2".into()),
        ..Action::default()
    };
    support::behave(&kit, 0, vec![busy.clone()], status(200));
    let c = support::client_for("retry-after", &kit.urls(), serde_json::json!({}));
    let started = Instant::now();
    let resp = c
        .call(Request::new("GET", "retry-after", "/"))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.attempts), (200, 2));
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the second attempt waited for Retry-After"
    );

    kit.reset();
    support::behave(&kit, 0, vec![busy], status(200));
    let mut req = Request::new("GET", "retry-after", "/");
    req.deadline = Some(Duration::from_secs(1));
    let resp = c
        .call(req)
        .await
        .expect("the 503 itself, not a Timeout from sleeping into the deadline");
    assert_eq!((resp.status, resp.attempts), (503, 1));
    assert_eq!(kit.requests(0).total(), 1);
}

#[tokio::test]
async fn hanging_upstream_times_out_at_the_deadline_with_the_header_sent() {
    let kit = Testkit::start(1).await.unwrap();
    support::behave(
        &kit,
        0,
        vec![],
        Action {
            latency_ms: 10_000,
            ..Action::default()
        },
    );
    let c = support::client_for(
        "hang",
        &kit.urls(),
        serde_json::json!({ "deadline_ms": 300 }),
    );
    let started = Instant::now();
    let err = c.call(Request::new("GET", "hang", "/")).await.unwrap_err();
    assert!(
        matches!(
            err,
            courierkit::Error::Timeout {
                operation: "call",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the deadline, not the hang, ended the call"
    );
    let log = kit.requests(0);
    assert_eq!(log.total(), 1, "no retry once the deadline has passed");
    let sent: u64 = log.requests[0].headers["x-courier-deadline-ms"]
        .parse()
        .unwrap();
    assert!(
        (1..=300).contains(&sent),
        "remaining deadline sent downstream, got {sent}"
    );
}

#[tokio::test]
async fn retry_budget_bounds_load_during_an_outage() {
    let kit = Testkit::start(1).await.unwrap();
    support::behave(&kit, 0, vec![], status(503));
    // A service name of its own: budgets are per process and per service.
    let c = support::client_for(
        "outage",
        &kit.urls(),
        serde_json::json!({ "retry": { "base_delay_ms": 1, "max_delay_ms": 2 }, "breaker": null }),
    );
    let calls = 1_000;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..20 {
        let c = c.clone();
        tasks.spawn(async move {
            for _ in (worker..calls).step_by(20) {
                let resp = c.call(Request::new("GET", "outage", "/")).await.unwrap();
                assert_eq!(resp.status, 503);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let seen = kit.requests(0).total();
    // 1,000 requests + 20% of them + the floor (10/s over the 10 s window).
    assert!(
        seen <= 1_000 + 200 + 100,
        "retries must stay within the budget, server saw {seen}"
    );
    assert!(seen > 1_000, "some retries are allowed, server saw {seen}");
    let stats = &c.stats().services["outage"];
    assert!(stats.budget_denied > 0);
    assert_eq!(stats.attempts, seen);
}

#[tokio::test]
async fn budget_denial_of_an_error_is_budget_exhausted() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let c = support::client_for(
        "no-budget",
        &[url],
        serde_json::json!({ "budget": { "ratio": 0.0, "min_per_sec": 0 }, "breaker": null }),
    );
    let err = c
        .call(Request::new("GET", "no-budget", "/"))
        .await
        .unwrap_err();
    match err {
        courierkit::Error::BudgetExhausted {
            attempts: 1, last, ..
        } => assert_eq!(last.kind(), ErrorKind::Connect),
        other => panic!("expected BudgetExhausted carrying the connect error, got {other}"),
    }
}

#[tokio::test]
async fn breaker_opens_fails_fast_then_probes_and_closes() {
    let kit = Testkit::start(1).await.unwrap();
    support::behave(&kit, 0, vec![], status(503));
    let c = support::client_for(
        "breaker",
        &kit.urls(),
        serde_json::json!({
            "retry": { "max_attempts": 1 },
            "breaker": { "min_calls": 4, "failure_ratio": 0.5, "open_ms": 200, "max_open_ms": 200, "probes": 2 }
        }),
    );
    for _ in 0..4 {
        assert_eq!(
            c.call(Request::new("GET", "breaker", "/"))
                .await
                .unwrap()
                .status,
            503
        );
    }
    for _ in 0..3 {
        let err = c
            .call(Request::new("GET", "breaker", "/"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::CircuitOpen, "{err}");
    }
    assert_eq!(
        kit.requests(0).total(),
        4,
        "an open breaker does not touch the network"
    );

    support::behave(&kit, 0, vec![], status(200));
    // The open period is 200 ms ±20%; after it, probes go through.
    tokio::time::sleep(Duration::from_millis(400)).await;
    for _ in 0..2 {
        assert_eq!(
            c.call(Request::new("GET", "breaker", "/"))
                .await
                .unwrap()
                .status,
            200
        );
    }
    let stats = &c.stats().services["breaker"];
    assert_eq!(stats.breaker_state, "closed", "two good probes close it");
    assert_eq!(
        (
            stats.breaker_opened,
            stats.breaker_half_opened,
            stats.breaker_closed
        ),
        (1, 1, 1)
    );
    assert_eq!(stats.circuit_rejected, 3);
}

#[tokio::test]
async fn concurrency_limit_rejects_the_call_over_it() {
    let kit = Testkit::start(1).await.unwrap();
    support::behave(
        &kit,
        0,
        vec![],
        Action {
            latency_ms: 2_000,
            ..Action::default()
        },
    );
    let c = support::client_for(
        "limited",
        &kit.urls(),
        serde_json::json!({ "max_concurrency": 4 }),
    );
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let c = c.clone();
        slow.spawn(async move { c.call(Request::new("GET", "limited", "/")).await });
    }
    // Wait (bounded) until all four are at the server, so the fifth is truly concurrent.
    for _ in 0..200 {
        if kit.requests(0).total() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(kit.requests(0).total(), 4);
    let err = c
        .call(Request::new("GET", "limited", "/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, courierkit::Error::Overloaded { limit: 4, .. }),
        "{err}"
    );
    while let Some(done) = slow.join_next().await {
        assert_eq!(done.unwrap().unwrap().status, 200);
    }
    assert_eq!(c.stats().services["limited"].overloaded, 1);
    assert_eq!(
        kit.requests(0).total(),
        4,
        "the rejected call never reached the server"
    );
}

#[tokio::test]
async fn absolute_urls_get_policies_keyed_by_host() {
    let kit = Testkit::start(1).await.unwrap();
    support::behave(&kit, 0, vec![status(502)], status(200));
    let c = support::client_for("unused", &kit.urls(), serde_json::json!({}));
    let resp = c
        .call(Request::new("GET", format!("{}/health", kit.urls()[0]), ""))
        .await
        .unwrap();
    assert_eq!((resp.status, resp.attempts), (200, 2));
    let host = kit.urls()[0].trim_start_matches("http://").to_owned();
    assert_eq!(c.stats().services[&host].retries, 1);
}

#[tokio::test]
async fn invalid_resilience_config_names_the_field() {
    for (svc, field) in [
        (
            serde_json::json!({ "retry": { "max_attempts": 0 } }),
            "services.s.retry.max_attempts",
        ),
        (
            serde_json::json!({ "retry": { "retry_on": ["sometimes"] } }),
            "services.s.retry.retry_on[0]",
        ),
        (
            serde_json::json!({ "budget": { "ratio": 2.0 } }),
            "services.s.budget.ratio",
        ),
        (
            serde_json::json!({ "breaker": { "probes": 0 } }),
            "services.s.breaker.probes",
        ),
        (
            serde_json::json!({ "max_concurrency": 0 }),
            "services.s.max_concurrency",
        ),
    ] {
        let mut s = serde_json::json!({ "endpoints": ["http://127.0.0.1:1"] });
        s.as_object_mut()
            .unwrap()
            .extend(svc.as_object().unwrap().clone());
        match ClientConfig::from_value(serde_json::json!({ "services": { "s": s } })) {
            Err(courierkit::Error::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected a config error on {field}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn every_attempt_sends_a_child_of_the_callers_trace() {
    let kit = Testkit::start(1).await.unwrap();
    support::behave(&kit, 0, vec![status(503), status(503)], status(200));
    let c = support::client_for("traced", &kit.urls(), serde_json::json!({}));
    let parent = courierkit::TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("vendor=1"),
    )
    .unwrap();
    let mut req = Request::new("GET", "traced", "/");
    req.trace = Some(parent.clone());
    let resp = c.call(req).await.unwrap();
    let sent: Vec<String> = kit
        .requests(0)
        .requests
        .iter()
        .map(|r| r.headers["traceparent"].clone())
        .collect();
    assert_eq!(sent.len(), 3);
    let ids: Vec<&str> = sent
        .iter()
        .map(|tp| tp.split('-').nth(1).unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == parent.trace_id()),
        "one trace across attempts: {sent:?}"
    );
    let spans: std::collections::HashSet<&str> = sent
        .iter()
        .map(|tp| tp.split('-').nth(2).unwrap())
        .collect();
    assert_eq!(spans.len(), 3, "a new parent-id per attempt: {sent:?}");
    assert!(!spans.contains(parent.span_id().as_str()));
    assert_eq!(
        resp.trace.traceparent(),
        sent[2],
        "the response carries the answered attempt's context"
    );
    assert!(
        kit.requests(0)
            .requests
            .iter()
            .all(|r| r.headers["tracestate"] == "vendor=1")
    );

    let untraced = c.call(Request::new("GET", "traced", "/")).await.unwrap();
    assert_ne!(
        untraced.trace.trace_id(),
        parent.trace_id(),
        "no caller context starts a new trace"
    );
}
