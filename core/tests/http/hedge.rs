//! Hedged requests and the per-call idempotency key, asserted by what the upstreams saw
//! and by outcomes a call could only have with (or without) a hedge, not by timing.

use std::collections::BTreeMap;

use courier_testkit::{Action, Behavior, Testkit};
use courierkit::{ErrorKind, Request};

use super::support;

/// An answer after `ms`, marked so the test can tell slow answers from fast ones.
fn slow(ms: u64) -> Action {
    Action {
        latency_ms: ms,
        headers: BTreeMap::from([("x-slow".to_owned(), "1".to_owned())]),
        ..Action::default()
    }
}

/// Upstream 0 answers its first request after 10 s, upstream 1 at once. The services
/// below balance round robin, whose first pick is upstream 0: the first attempt hangs,
/// and only a hedge to upstream 1 can answer within the 3 s deadline.
fn first_request_hangs(kit: &Testkit) {
    support::behave(kit, 0, vec![slow(10_000)], Action::default());
    support::behave(kit, 1, Vec::new(), Action::default());
}

#[tokio::test]
async fn a_hedge_to_another_endpoint_answers_before_a_hung_attempt() {
    let kit = Testkit::start(2).await.unwrap();
    first_request_hangs(&kit);
    let c = support::client_for(
        "hedged",
        &kit.urls(),
        serde_json::json!({"deadline_ms": 3000, "balancer": "round_robin", "hedge": {"delay_ms": 50}}),
    );
    let resp = c.get("hedged", "/x").await.unwrap();
    assert_eq!((resp.status, resp.attempts), (200, 2));
    assert_eq!(resp.header("x-slow"), None, "the hedge answered");
    let stats = &c.stats().services["hedged"];
    assert_eq!((stats.hedges, stats.hedges_won), (1, 1));
    assert_eq!((stats.requests, stats.attempts, stats.retries), (1, 2, 0));
    assert_eq!(
        (kit.requests(0).total(), kit.requests(1).total()),
        (1, 1),
        "one attempt on each endpoint"
    );
    assert_eq!(stats.in_flight, 0);
    // The losing attempt was cancelled: its endpoint has nothing in flight.
    assert!(
        stats.endpoints.iter().all(|ep| ep.in_flight == 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn without_hedging_the_same_call_runs_out_its_deadline() {
    let kit = Testkit::start(2).await.unwrap();
    first_request_hangs(&kit);
    let c = support::client_for(
        "unhedged",
        &kit.urls(),
        serde_json::json!({"deadline_ms": 500, "balancer": "round_robin"}),
    );
    let err = c.get("unhedged", "/x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert_eq!(c.stats().services["unhedged"].hedges, 0);
}

#[tokio::test]
async fn hedges_are_paid_from_the_retry_budget() {
    let kit = Testkit::start(2).await.unwrap();
    for upstream in 0..2 {
        support::behave(&kit, upstream, vec![slow(300)], Action::default());
    }
    let c = support::client_for(
        "broke",
        &kit.urls(),
        serde_json::json!({
            "hedge": {"delay_ms": 20},
            "budget": {"ratio": 0.0, "min_per_sec": 0},
        }),
    );
    let resp = c.get("broke", "/x").await.unwrap();
    assert_eq!(
        resp.header("x-slow"),
        Some("1"),
        "no hedge: the slow answer"
    );
    let stats = &c.stats().services["broke"];
    assert_eq!(
        (stats.hedges, stats.budget_denied, stats.attempts),
        (0, 1, 1)
    );
    assert_eq!(kit.requests(0).total() + kit.requests(1).total(), 1);
}

#[tokio::test]
async fn a_post_is_hedged_only_with_an_idempotency_key() {
    let kit = Testkit::start(2).await.unwrap();
    let c = support::client_for(
        "orders",
        &kit.urls(),
        serde_json::json!({"deadline_ms": 3000, "balancer": "round_robin", "hedge": {"delay_ms": 50}}),
    );
    // Without a key the POST stays on the slow endpoint (round robin's first, 0).
    support::behave(&kit, 0, vec![slow(300)], Action::default());
    let plain = Request::new("POST", "orders", "/o").body(&b"{}"[..]);
    let resp = c.call(plain).await.unwrap();
    assert_eq!((resp.attempts, resp.header("x-slow")), (1, Some("1")));
    assert_eq!(resp.idempotency_key, None);
    assert_eq!(c.stats().services["orders"].hedges, 0);

    // `idempotent` makes one key; the hedge carries the same key as the first attempt,
    // which goes to upstream 1 (round robin's second pick) and hangs.
    support::behave(&kit, 1, vec![slow(10_000)], Action::default());
    let mut keyed = Request::new("POST", "orders", "/o").body(&b"{}"[..]);
    keyed.idempotent = true;
    let resp = c.call(keyed).await.unwrap();
    assert_eq!((resp.status, resp.attempts), (200, 2));
    let key = resp.idempotency_key.clone().expect("a generated key");
    assert_eq!(uuid_version(&key), Some('7'), "{key}");
    let sent: u64 = (0..2)
        .map(|i| {
            kit.requests(i)
                .by_idempotency_key
                .get(&key)
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(sent, 2, "both attempts sent the one key");
    assert_eq!(c.stats().services["orders"].hedges_won, 1);
}

#[tokio::test]
async fn an_idempotent_post_is_retried_with_one_key_and_a_given_key_wins() {
    let kit = Testkit::start(1).await.unwrap();
    let status = |code| Action {
        status: code,
        ..Action::default()
    };
    support::behave(&kit, 0, vec![status(503), status(503)], status(201));
    let c = support::client_for("pay", &kit.urls(), serde_json::json!({}));
    let mut req = Request::new("POST", "pay", "/charges").body(&b"{}"[..]);
    req.idempotent = true;
    let resp = c.call(req).await.unwrap();
    assert_eq!((resp.status, resp.attempts), (201, 3));
    let key = resp.idempotency_key.unwrap();
    let log = kit.requests(0);
    assert_eq!(log.by_idempotency_key.get(&key), Some(&3));
    assert_eq!(log.by_idempotency_key.len(), 1, "{log:?}");

    // A second call gets a new key; a caller's own key is sent and returned unchanged.
    let mut again = Request::new("POST", "pay", "/charges");
    again.idempotent = true;
    let second = c.call(again).await.unwrap().idempotency_key.unwrap();
    assert_ne!(second, key);
    let mut given = Request::new("POST", "pay", "/charges");
    given.idempotent = true;
    given.idempotency_key = Some("charge-17".into());
    let resp = c.call(given).await.unwrap();
    assert_eq!(resp.idempotency_key.as_deref(), Some("charge-17"));
    assert_eq!(
        kit.requests(0).by_idempotency_key.get("charge-17"),
        Some(&1)
    );
}

/// One of four endpoints answers 10% of its requests after 300 ms. With a 100 ms hedge
/// delay no call waits for a slow answer (the hedge goes to another endpoint, and only
/// one endpoint is ever slow), and the upstreams see at most one request per call plus
/// the hedges the budget paid for. The delay is far above an ordinary answer even on a
/// loaded machine: each ordinary answer slower than it would spend a hedge from the
/// budget that the slow ones need.
#[tokio::test]
async fn a_slow_tail_is_hedged_within_the_budget() {
    const CALLS: u64 = 200;
    let kit = Testkit::start(4).await.unwrap();
    kit.set_behavior(
        3,
        Behavior {
            failure_ratio: 0.1,
            failure: slow(300),
            seed: 7,
            ..Behavior::default()
        },
    );
    let c = support::client_for(
        "tail",
        &kit.urls(),
        serde_json::json!({
            "balancer": "round_robin",
            "hedge": {"delay_ms": 100},
            "budget": {"ratio": 0.1, "min_per_sec": 1, "window_ms": 10000},
        }),
    );
    let mut slow_answers = 0;
    for _ in 0..CALLS {
        let resp = c.get("tail", "/x").await.unwrap();
        assert_eq!(resp.status, 200);
        slow_answers += u64::from(resp.header("x-slow").is_some());
    }
    let stats = &c.stats().services["tail"];
    let seen: u64 = (0..4).map(|i| kit.requests(i).total()).sum();
    assert!(
        stats.hedges >= 1 && stats.hedges_won >= 1,
        "upstream 3 was slow for some calls: {stats:?}"
    );
    assert_eq!(slow_answers, 0, "every slow attempt lost to its hedge");
    // The budget: 10% of the calls plus 1/s over the 10 s window.
    assert!(stats.hedges <= CALLS / 10 + 10, "{stats:?}");
    assert!(
        seen <= CALLS + stats.hedges,
        "{seen} requests for {CALLS} calls"
    );
    assert_eq!(stats.attempts, CALLS + stats.hedges);
}

/// The version nibble of a hyphenated UUID.
fn uuid_version(id: &str) -> Option<char> {
    (id.len() == 36).then(|| id.chars().nth(14)).flatten()
}
