use std::sync::Arc;
use std::time::Duration;

use super::routing::topic_matches;
use futures_util::FutureExt;

use super::{Broker, Subscription, Ticket};
use crate::error::{Error, Result};
use crate::messaging::message::{Confirm, Incoming, Outcome, Outgoing};
use crate::messaging::queue::{DEFAULT_DELIVERY_LIMIT, ExchangeKind, QueueOptions};

fn message(exchange: &str, routing_key: &str, body: &str) -> Outgoing {
    Outgoing {
        exchange: exchange.to_owned(),
        routing_key: routing_key.to_owned(),
        body: body.to_owned().into(),
        headers: [("x-tenant".to_owned(), "acme".to_owned())].into(),
        message_id: format!("id-{body}"),
        correlation_id: Some("c-1".to_owned()),
        reply_to: Some("replies".to_owned()),
        expiration_ms: None,
        persistent: true,
        mandatory: true,
    }
}

fn classic() -> QueueOptions {
    QueueOptions {
        quorum: false,
        delivery_limit: None,
        dead_letter: false,
        ttl: None,
        retry_delays: Vec::new(),
    }
}

fn quorum(limit: u32) -> QueueOptions {
    QueueOptions {
        delivery_limit: Some(limit),
        ..QueueOptions::default()
    }
}

fn publish(broker: &Broker, exchange: &str, routing_key: &str, body: &str) {
    assert_eq!(
        broker
            .publish(message(exchange, routing_key, body))
            .unwrap(),
        Confirm::Ack,
        "{body} to {exchange:?}/{routing_key:?}"
    );
}

/// What the broker has pushed to the subscription so far. Dispatch is synchronous, so
/// this shows exactly what RabbitMQ would have sent within the prefetch.
fn pushed(subscription: &mut Subscription) -> Vec<Incoming> {
    std::iter::from_fn(|| subscription.deliveries.try_recv().ok()).collect()
}

fn bodies(deliveries: &[Incoming]) -> Vec<&str> {
    deliveries
        .iter()
        .map(|d| std::str::from_utf8(&d.body).unwrap_or("<binary>"))
        .collect()
}

fn one(subscription: &mut Subscription) -> Incoming {
    let mut all = pushed(subscription);
    assert_eq!(
        all.len(),
        1,
        "expected one delivery, got {:?}",
        bodies(&all)
    );
    all.remove(0)
}

/// Settles through the transport boundary; the in-process broker answers at once.
fn try_settle(delivery: &Incoming, outcome: Outcome) -> Result<()> {
    delivery
        .settle
        .as_ref()
        .expect("a delivery that needs settling")
        .settle(outcome)
        .now_or_never()
        .expect("the in-process broker settles without waiting")
}

fn settle(delivery: &Incoming, outcome: Outcome) {
    try_settle(delivery, outcome).unwrap();
}

fn refusal(error: Error) -> (&'static str, u16, String) {
    match error {
        Error::Broker {
            operation,
            reply_code,
            reply_text,
        } => (operation, reply_code, reply_text),
        other => panic!("expected a broker refusal, got {other}"),
    }
}

fn closed_what(error: Error) -> &'static str {
    match error {
        Error::Closed { what } => what,
        other => panic!("expected closed, got {other}"),
    }
}

#[test]
fn default_exchange_round_trip_carries_every_field() {
    let broker = Broker::new();
    broker.declare_queue("orders", &classic()).unwrap();
    let mut sub = broker.subscribe("orders", 10).unwrap();
    publish(&broker, "", "orders", "hello");

    let d = one(&mut sub);
    assert_eq!(&d.body[..], b"hello");
    assert_eq!(d.headers.get("x-tenant").map(String::as_str), Some("acme"));
    assert_eq!(d.message_id.as_deref(), Some("id-hello"));
    assert_eq!(d.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(d.reply_to.as_deref(), Some("replies"));
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("", "orders")
    );
    assert!(!d.redelivered);
    assert_eq!(d.delivery_count, None);
    settle(&d, Outcome::Ack);
    assert!(pushed(&mut sub).is_empty(), "an acked message is gone");
}

#[tokio::test]
async fn next_yields_deliveries_and_none_after_cancel() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let mut sub = broker.subscribe("q", 0).unwrap();
    publish(&broker, "", "q", "a");
    publish(&broker, "", "q", "b");
    let first = sub.next().await.expect("a delivery");
    assert_eq!(&first.body[..], b"a");
    sub.cancel();
    assert!(
        sub.next().await.is_none(),
        "a buffered delivery is not handed out after cancel: the queue has it again"
    );

    let mut again = broker.subscribe("q", 0).unwrap();
    let redelivered = pushed(&mut again);
    assert_eq!(bodies(&redelivered), ["a", "b"]);
    assert!(redelivered.iter().all(|d| d.redelivered));
}

#[test]
fn default_exchange_to_a_missing_queue_is_unroutable_not_an_error() {
    let broker = Broker::new();
    assert_eq!(
        broker.publish(message("", "nowhere", "m")).unwrap(),
        Confirm::Returned("NO_ROUTE".to_owned())
    );
    let fire_and_forget = Outgoing {
        mandatory: false,
        ..message("", "nowhere", "m")
    };
    assert_eq!(broker.publish(fire_and_forget).unwrap(), Confirm::Ack);
}

#[test]
fn topic_patterns_match_words() {
    let cases = [
        ("order.*", "order.created", true),
        ("order.*", "order", false),
        ("order.*", "order.created.eu", false),
        ("order.#", "order", true),
        ("order.#", "order.created.eu", true),
        ("#.eu", "order.created.eu", true),
        ("#.eu", "eu", true),
        ("*.created.*", "order.created.eu", true),
        ("order.#.eu", "order.eu", true),
        ("order.#.eu", "order.a.b.eu", true),
        ("order.#.eu", "order.a.b.us", false),
        ("#", "", true),
        ("*", "", false),
        ("", "", true),
        ("#.#", "a.b", true),
        ("a.*.c", "a..c", true),
        ("order.created", "order.created", true),
        ("order.created", "order.deleted", false),
    ];
    for (pattern, key, expected) in cases {
        assert_eq!(
            topic_matches(pattern, key),
            expected,
            "{pattern:?} vs {key:?}"
        );
    }
}

#[test]
fn topic_exchange_routes_by_pattern() {
    let broker = Broker::new();
    broker
        .declare_exchange("events", ExchangeKind::Topic)
        .unwrap();
    broker.declare_queue("created", &classic()).unwrap();
    broker.declare_queue("eu", &classic()).unwrap();
    broker.bind("created", "events", "order.created").unwrap();
    broker.bind("eu", "events", "#.eu").unwrap();
    broker.bind("eu", "events", "*.*.eu").unwrap();
    let mut created = broker.subscribe("created", 0).unwrap();
    let mut eu = broker.subscribe("eu", 0).unwrap();

    publish(&broker, "events", "order.created", "1");
    publish(&broker, "events", "order.created.eu", "2");
    publish(&broker, "events", "eu", "3");
    assert_eq!(
        broker
            .publish(message("events", "order.deleted", "4"))
            .unwrap(),
        Confirm::Returned("NO_ROUTE".to_owned())
    );

    assert_eq!(bodies(&pushed(&mut created)), ["1"]);
    let eu_deliveries = pushed(&mut eu);
    assert_eq!(
        bodies(&eu_deliveries),
        ["2", "3"],
        "two matching bindings still give one copy"
    );
    assert_eq!(eu_deliveries[0].exchange, "events");
    assert_eq!(eu_deliveries[0].routing_key, "order.created.eu");
}

#[test]
fn fanout_copies_to_every_bound_queue_once() {
    let broker = Broker::new();
    broker
        .declare_exchange("all", ExchangeKind::Fanout)
        .unwrap();
    for q in ["a", "b"] {
        broker.declare_queue(q, &classic()).unwrap();
        broker.bind(q, "all", "").unwrap();
    }
    broker.bind("a", "all", "").unwrap();
    broker.bind("a", "all", "other").unwrap();
    let mut a = broker.subscribe("a", 0).unwrap();
    let mut b = broker.subscribe("b", 0).unwrap();
    publish(&broker, "all", "whatever", "m");
    assert_eq!(bodies(&pushed(&mut a)), ["m"]);
    assert_eq!(bodies(&pushed(&mut b)), ["m"]);
}

#[test]
fn direct_routes_by_exact_key_and_headers_matches_everything() {
    let broker = Broker::new();
    broker.declare_exchange("d", ExchangeKind::Direct).unwrap();
    broker.declare_exchange("h", ExchangeKind::Headers).unwrap();
    broker.declare_queue("q", &classic()).unwrap();
    broker.bind("q", "d", "k").unwrap();
    broker.bind("q", "h", "").unwrap();
    let mut sub = broker.subscribe("q", 0).unwrap();
    publish(&broker, "d", "k", "direct");
    assert_eq!(
        broker.publish(message("d", "k.more", "no")).unwrap(),
        Confirm::Returned("NO_ROUTE".to_owned())
    );
    publish(&broker, "h", "anything", "headers");
    assert_eq!(bodies(&pushed(&mut sub)), ["direct", "headers"]);
}

#[test]
fn predeclared_amq_exchanges_route() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    broker.bind("q", "amq.topic", "a.#").unwrap();
    let mut sub = broker.subscribe("q", 0).unwrap();
    publish(&broker, "amq.topic", "a.b", "m");
    assert_eq!(bodies(&pushed(&mut sub)), ["m"]);
}

#[test]
fn missing_exchange_or_queue_is_404() {
    let broker = Broker::new();
    let (operation, code, text) = refusal(broker.publish(message("nope", "k", "m")).unwrap_err());
    assert_eq!(
        (operation, code, text.as_str()),
        (
            "basic.publish",
            404,
            "NOT_FOUND - no exchange 'nope' in vhost '/'"
        )
    );

    broker.declare_queue("q", &classic()).unwrap();
    broker.declare_exchange("x", ExchangeKind::Direct).unwrap();
    let (_, code, text) = refusal(broker.bind("q", "nope", "k").unwrap_err());
    assert_eq!(
        (code, text.as_str()),
        (404, "NOT_FOUND - no exchange 'nope' in vhost '/'")
    );
    let (_, code, text) = refusal(broker.bind("missing", "nope", "k").unwrap_err());
    assert_eq!(
        (code, text.as_str()),
        (404, "NOT_FOUND - no exchange 'nope' in vhost '/'"),
        "RabbitMQ names the exchange first"
    );
    let (_, code, text) = refusal(broker.bind("missing", "x", "k").unwrap_err());
    assert_eq!(
        (code, text.as_str()),
        (404, "NOT_FOUND - no queue 'missing' in vhost '/'")
    );
    let (operation, code, _) = refusal(broker.subscribe("missing", 1).err().expect("404"));
    assert_eq!((operation, code), ("basic.consume", 404));
}

#[test]
fn default_exchange_and_amq_names_are_refused_with_403() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let (_, code, text) = refusal(broker.bind("q", "", "q").unwrap_err());
    assert_eq!(
        (code, text.as_str()),
        (
            403,
            "ACCESS_REFUSED - operation not permitted on the default exchange"
        )
    );
    let (_, code, text) = refusal(broker.declare_queue("amq.x", &classic()).unwrap_err());
    assert_eq!(
        (code, text.as_str()),
        (
            403,
            "ACCESS_REFUSED - queue name 'amq.x' contains reserved prefix 'amq.*'"
        )
    );
    let (_, code, _) = refusal(
        broker
            .declare_exchange("amq.topic", ExchangeKind::Topic)
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    let (_, code, _) = refusal(
        broker
            .declare_exchange("", ExchangeKind::Direct)
            .unwrap_err(),
    );
    assert_eq!(code, 403);
}

#[test]
fn redeclaring_is_idempotent_but_other_arguments_are_406() {
    let broker = Broker::new();
    broker.declare_exchange("x", ExchangeKind::Topic).unwrap();
    broker.declare_exchange("x", ExchangeKind::Topic).unwrap();
    let (operation, code, text) = refusal(
        broker
            .declare_exchange("x", ExchangeKind::Fanout)
            .unwrap_err(),
    );
    assert_eq!(
        (operation, code, text.as_str()),
        (
            "exchange.declare",
            406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': received 'fanout' but current is 'topic'"
        )
    );

    broker.declare_queue("q", &QueueOptions::default()).unwrap();
    broker.declare_queue("q", &QueueOptions::default()).unwrap();
    let (operation, code, text) = refusal(broker.declare_queue("q", &quorum(3)).unwrap_err());
    assert_eq!(
        (operation, code, text.as_str()),
        (
            "queue.declare",
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received '3' but current is none"
        )
    );
    let classic_with_dlq = QueueOptions {
        dead_letter: true,
        ..classic()
    };
    let (_, code, text) = refusal(broker.declare_queue("q", &classic_with_dlq).unwrap_err());
    assert_eq!(code, 406);
    assert!(text.contains("'x-queue-type'"), "{text}");

    // The dead-letter queue was declared with the queue and is checked like it.
    let (_, code, text) = refusal(
        broker
            .declare_queue("q.dlq", &QueueOptions::default())
            .unwrap_err(),
    );
    assert_eq!(code, 406);
    assert!(text.contains("'x-dead-letter-exchange'"), "{text}");
    broker
        .declare_queue(
            "q.dlq",
            &QueueOptions {
                dead_letter: false,
                ..QueueOptions::default()
            },
        )
        .unwrap();
}

#[test]
fn options_amqp_would_refuse_are_config_errors() {
    let broker = Broker::new();
    let classic_with_limit = QueueOptions {
        delivery_limit: Some(3),
        ..classic()
    };
    assert!(matches!(
        broker.declare_queue("q", &classic_with_limit),
        Err(Error::Config { .. })
    ));
}

#[test]
fn prefetch_bounds_unsettled_deliveries() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let mut sub = broker.subscribe("q", 2).unwrap();
    for body in ["1", "2", "3", "4", "5"] {
        publish(&broker, "", "q", body);
    }
    let first = pushed(&mut sub);
    assert_eq!(bodies(&first), ["1", "2"]);
    assert!(pushed(&mut sub).is_empty(), "nothing beyond the prefetch");

    settle(&first[0], Outcome::Ack);
    let next = pushed(&mut sub);
    assert_eq!(bodies(&next), ["3"], "one settled, one more delivered");
    settle(&first[1], Outcome::Ack);
    settle(&next[0], Outcome::Ack);
    assert_eq!(bodies(&pushed(&mut sub)), ["4", "5"]);
}

#[test]
fn subscribers_share_a_queue_round_robin() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let mut a = broker.subscribe("q", 0).unwrap();
    let mut b = broker.subscribe("q", 0).unwrap();
    for body in ["1", "2", "3", "4"] {
        publish(&broker, "", "q", body);
    }
    assert_eq!(bodies(&pushed(&mut a)), ["1", "3"]);
    assert_eq!(bodies(&pushed(&mut b)), ["2", "4"]);
}

#[test]
fn a_full_subscriber_is_skipped() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let mut a = broker.subscribe("q", 1).unwrap();
    let mut b = broker.subscribe("q", 0).unwrap();
    for body in ["1", "2", "3"] {
        publish(&broker, "", "q", body);
    }
    assert_eq!(bodies(&pushed(&mut a)), ["1"]);
    assert_eq!(bodies(&pushed(&mut b)), ["2", "3"]);
}

#[test]
fn messages_published_before_subscribing_are_delivered_on_subscribe() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    publish(&broker, "", "q", "early");
    let mut sub = broker.subscribe("q", 1).unwrap();
    assert_eq!(bodies(&pushed(&mut sub)), ["early"]);
}

#[test]
fn nack_requeue_redelivers_first_with_a_delivery_count_on_quorum_queues() {
    let broker = Broker::new();
    broker.declare_queue("q", &quorum(10)).unwrap();
    let mut sub = broker.subscribe("q", 1).unwrap();
    publish(&broker, "", "q", "poison");
    publish(&broker, "", "q", "next");

    let first = one(&mut sub);
    assert_eq!(first.delivery_count, None, "no count on a first delivery");
    assert!(!first.headers.contains_key("x-delivery-count"));
    settle(&first, Outcome::Nack { requeue: true });

    let again = one(&mut sub);
    assert_eq!(&again.body[..], b"poison", "requeued to the head");
    assert!(again.redelivered);
    assert_eq!(again.delivery_count, Some(1));
    assert_eq!(
        again.headers.get("x-delivery-count").map(String::as_str),
        Some("1")
    );
    settle(&again, Outcome::Nack { requeue: true });
    let third = one(&mut sub);
    assert_eq!(third.delivery_count, Some(2));
}

#[test]
fn classic_queues_requeue_to_original_positions_without_a_count() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let mut a = broker.subscribe("q", 1).unwrap();
    let mut b = broker.subscribe("q", 1).unwrap();
    for body in ["1", "2", "3"] {
        publish(&broker, "", "q", body);
    }
    assert_eq!(bodies(&pushed(&mut a)), ["1"]);
    assert_eq!(bodies(&pushed(&mut b)), ["2"]);
    // 2 comes back first (a is full, so it waits), then 1: they line up by position.
    b.cancel();
    a.cancel();
    let mut next = broker.subscribe("q", 0).unwrap();
    let again = pushed(&mut next);
    assert_eq!(bodies(&again), ["1", "2", "3"]);
    assert!(again[0].redelivered && again[1].redelivered && !again[2].redelivered);
    assert!(again.iter().all(|d| d.delivery_count.is_none()));
}

#[test]
fn quorum_queues_requeue_in_return_order() {
    let broker = Broker::new();
    broker.declare_queue("q", &quorum(5)).unwrap();
    let mut a = broker.subscribe("q", 1).unwrap();
    let mut b = broker.subscribe("q", 1).unwrap();
    for body in ["1", "2", "3"] {
        publish(&broker, "", "q", body);
    }
    assert_eq!(bodies(&pushed(&mut a)), ["1"]);
    assert_eq!(bodies(&pushed(&mut b)), ["2"]);
    b.cancel();
    a.cancel();
    let mut next = broker.subscribe("q", 0).unwrap();
    assert_eq!(bodies(&pushed(&mut next)), ["2", "1", "3"]);
}

#[test]
fn delivery_limit_dead_letters_only_the_poison_message() {
    let broker = Broker::new();
    broker.declare_queue("q", &quorum(2)).unwrap();
    let mut sub = broker.subscribe("q", 1).unwrap();
    let mut dead = broker.subscribe("q.dlq", 0).unwrap();
    publish(&broker, "", "q", "poison");
    publish(&broker, "", "q", "fine");

    // Limit 2: returned twice and requeued, the third return exceeds it.
    for count in [None, Some(1), Some(2)] {
        let d = one(&mut sub);
        assert_eq!((&d.body[..], d.delivery_count), (&b"poison"[..], count));
        settle(&d, Outcome::Nack { requeue: true });
    }
    let parked = one(&mut dead);
    assert_eq!(&parked.body[..], b"poison");
    assert_eq!(parked.message_id.as_deref(), Some("id-poison"));
    assert_eq!(
        parked
            .headers
            .get("x-first-death-reason")
            .map(String::as_str),
        Some("delivery_limit")
    );
    assert_eq!(
        parked
            .headers
            .get("x-first-death-queue")
            .map(String::as_str),
        Some("q")
    );
    assert_eq!(
        parked.delivery_count, None,
        "a new life in the dead-letter queue"
    );

    let fine = one(&mut sub);
    assert_eq!(&fine.body[..], b"fine");
    assert!(!fine.redelivered);
    assert_eq!(fine.delivery_count, None);
}

#[test]
fn quorum_queues_default_the_delivery_limit() {
    let broker = Broker::new();
    broker.declare_queue("q", &QueueOptions::default()).unwrap();
    let mut sub = broker.subscribe("q", 1).unwrap();
    let mut dead = broker.subscribe("q.dlq", 0).unwrap();
    publish(&broker, "", "q", "poison");
    for _ in 0..=DEFAULT_DELIVERY_LIMIT {
        assert!(pushed(&mut dead).is_empty());
        settle(&one(&mut sub), Outcome::Nack { requeue: true });
    }
    assert_eq!(bodies(&pushed(&mut dead)), ["poison"]);
}

#[test]
fn reject_and_nack_without_requeue_dead_letter() {
    let broker = Broker::new();
    broker.declare_queue("q", &QueueOptions::default()).unwrap();
    let mut sub = broker.subscribe("q", 0).unwrap();
    let mut dead = broker.subscribe("q.dlq", 0).unwrap();
    publish(&broker, "", "q", "a");
    publish(&broker, "", "q", "b");
    let got = pushed(&mut sub);
    settle(&got[0], Outcome::Reject);
    settle(&got[1], Outcome::Nack { requeue: false });

    let parked = pushed(&mut dead);
    assert_eq!(bodies(&parked), ["a", "b"]);
    let a = &parked[0];
    assert_eq!((a.exchange.as_str(), a.routing_key.as_str()), ("", "q.dlq"));
    assert_eq!(a.message_id.as_deref(), Some("id-a"));
    assert_eq!(a.headers.get("x-tenant").map(String::as_str), Some("acme"));
    assert_eq!(
        a.headers.get("x-first-death-reason").map(String::as_str),
        Some("rejected")
    );
    assert_eq!(
        a.headers.get("x-first-death-queue").map(String::as_str),
        Some("q")
    );
    assert!(!a.redelivered);
}

#[test]
fn rejecting_without_a_dead_letter_queue_drops() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let mut sub = broker.subscribe("q", 0).unwrap();
    publish(&broker, "", "q", "a");
    settle(&one(&mut sub), Outcome::Reject);
    assert!(pushed(&mut sub).is_empty());
    let probe = Outgoing {
        mandatory: true,
        ..message("", "q.dlq", "probe")
    };
    assert_eq!(
        broker.publish(probe).unwrap(),
        Confirm::Returned("NO_ROUTE".to_owned()),
        "no dead-letter queue was declared"
    );
}

#[test]
fn cancel_requeues_unsettled_deliveries_in_order() {
    let broker = Broker::new();
    broker.declare_queue("q", &quorum(5)).unwrap();
    let sub = {
        let mut sub = broker.subscribe("q", 2).unwrap();
        for body in ["1", "2", "3"] {
            publish(&broker, "", "q", body);
        }
        let got = pushed(&mut sub);
        assert_eq!(bodies(&got), ["1", "2"]);
        sub.cancel();
        got
    };
    let mut next = broker.subscribe("q", 0).unwrap();
    let again = pushed(&mut next);
    assert_eq!(bodies(&again), ["1", "2", "3"]);
    assert!(again[0].redelivered && again[1].redelivered && !again[2].redelivered);
    assert_eq!(
        again[0].delivery_count,
        Some(1),
        "a cancel counts as a return"
    );

    let what = closed_what(try_settle(&sub[0], Outcome::Ack).unwrap_err());
    assert_eq!(
        what,
        "delivery (its consumer was closed; the message was requeued)"
    );
}

#[test]
fn dropping_a_subscription_cancels_it() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let mut sub = broker.subscribe("q", 1).unwrap();
    publish(&broker, "", "q", "m");
    let got = one(&mut sub);
    drop(sub);
    let mut next = broker.subscribe("q", 1).unwrap();
    assert_eq!(bodies(&pushed(&mut next)), ["m"]);
    assert!(try_settle(&got, Outcome::Ack).is_err());
}

#[test]
fn a_delivery_settles_once() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let mut sub = broker.subscribe("q", 1).unwrap();
    publish(&broker, "", "q", "m");
    let d = one(&mut sub);
    settle(&d, Outcome::Ack);
    let what = closed_what(try_settle(&d, Outcome::Ack).unwrap_err());
    assert_eq!(what, "delivery (already settled)");
    sub.cancel();
    let what = closed_what(try_settle(&d, Outcome::Reject).unwrap_err());
    assert_eq!(
        what, "delivery (already settled)",
        "settled before the cancel, so not requeued"
    );
}

#[tokio::test(start_paused = true)]
async fn expired_messages_are_dead_lettered_by_a_timer() {
    let broker = Broker::new();
    let options = QueueOptions {
        ttl: Some(Duration::from_millis(1_000)),
        ..QueueOptions::default()
    };
    broker.declare_queue("q", &options).unwrap();
    let mut dead = broker.subscribe("q.dlq", 0).unwrap();
    let short = Outgoing {
        expiration_ms: Some(100),
        ..message("", "q", "short")
    };
    broker.publish(short).unwrap();
    publish(&broker, "", "q", "long");

    let parked = tokio::time::timeout(Duration::from_millis(500), dead.next())
        .await
        .expect("the smaller (per-message) TTL wins")
        .expect("a dead letter");
    assert_eq!(&parked.body[..], b"short");
    assert_eq!(
        parked
            .headers
            .get("x-first-death-reason")
            .map(String::as_str),
        Some("expired")
    );
    assert!(pushed(&mut dead).is_empty(), "the other one is still alive");

    let parked = tokio::time::timeout(Duration::from_secs(2), dead.next())
        .await
        .expect("the queue TTL applies too")
        .expect("a dead letter");
    assert_eq!(&parked.body[..], b"long");
}

#[tokio::test(start_paused = true)]
async fn an_expired_message_is_never_delivered() {
    let broker = Broker::new();
    let options = QueueOptions {
        ttl: Some(Duration::from_millis(100)),
        ..classic()
    };
    broker.declare_queue("q", &options).unwrap();
    let mut sub = broker.subscribe("q", 1).unwrap();
    publish(&broker, "", "q", "1");
    publish(&broker, "", "q", "2");
    let first = one(&mut sub);
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle(&first, Outcome::Ack);
    assert!(pushed(&mut sub).is_empty(), "2 expired while 1 was held");
}

#[test]
fn a_message_with_ttl_zero_reaches_a_ready_consumer() {
    let broker = Broker::new();
    broker.declare_queue("q", &classic()).unwrap();
    let mut sub = broker.subscribe("q", 1).unwrap();
    let now_or_never = Outgoing {
        expiration_ms: Some(0),
        ..message("", "q", "m")
    };
    broker.publish(now_or_never).unwrap();
    assert_eq!(bodies(&pushed(&mut sub)), ["m"]);
}

#[tokio::test]
async fn reply_addresses_deliver_until_their_receiver_is_dropped() {
    let broker = Broker::new();
    let (address, mut replies) = broker.reply_address();
    let id = address
        .strip_prefix("amq.rabbitmq.reply-to.")
        .expect("RabbitMQ's prefix");
    assert_eq!(id.len(), 32);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    publish(&broker, "", &address, "pong");
    let reply = replies.recv().await.expect("a reply");
    assert_eq!(&reply.body[..], b"pong");
    assert_eq!(reply.correlation_id.as_deref(), Some("c-1"));
    assert!(reply.settle.is_none());

    drop(replies);
    assert_eq!(
        broker.publish(message("", &address, "late")).unwrap(),
        Confirm::Returned("NO_ROUTE".to_owned())
    );
}

#[test]
fn a_url_names_a_process_wide_broker() {
    let url = |s: &str| url::Url::parse(s).unwrap();
    let default = Broker::named(&url("memory://"));
    assert!(Arc::ptr_eq(
        &default,
        &Broker::named(&url("memory://default"))
    ));
    let other = Broker::named(&url("memory://memory-tests-other"));
    assert!(!Arc::ptr_eq(&default, &other));
    assert!(Arc::ptr_eq(
        &other,
        &Broker::named(&url("memory://memory-tests-other"))
    ));

    other.declare_queue("shared", &classic()).unwrap();
    let mut sub = Broker::named(&url("memory://memory-tests-other"))
        .subscribe("shared", 0)
        .unwrap();
    publish(&other, "", "shared", "m");
    assert_eq!(bodies(&pushed(&mut sub)), ["m"]);
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Broker>();
    send_sync::<Ticket>();
    send_sync::<Subscription>();
}
