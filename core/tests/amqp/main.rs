//! AMQP behaviour against a real RabbitMQ (`tests/scripts/ensure-rabbitmq.sh` starts one;
//! `COURIER_AMQP_URL` points elsewhere).

use std::time::Duration;

use courier::{Bus, BusConfig, ErrorKind, PublishOptions, QueueOptions, Validate};

fn amqp_url() -> String {
    std::env::var("COURIER_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

async fn bus() -> Bus {
    let config = BusConfig::from_value(serde_json::json!({ "urls": [amqp_url()] })).unwrap();
    Bus::connect(config)
        .await
        .expect("RabbitMQ must be running (tests/scripts/ensure-rabbitmq.sh)")
}

/// A queue name no other test run uses, so runs never see each other's messages.
fn unique(prefix: &str) -> String {
    format!("courier-test.{prefix}.{}", uuid::Uuid::now_v7())
}

/// Removes a test's queues; the tests leave nothing behind on a shared broker.
async fn delete_queues(names: &[&str]) {
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for name in names {
        ch.queue_delete(
            (*name).into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    }
    conn.close(200, "bye".into()).await.unwrap();
}

const SHORT: Option<Duration> = Some(Duration::from_secs(5));

#[tokio::test]
async fn publish_consume_ack_round_trip() {
    let bus = bus().await;
    let q = unique("roundtrip");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let opts = PublishOptions {
        headers: [("x-tenant".to_owned(), "acme".to_owned())].into(),
        correlation_id: Some("c-1".to_owned()),
        ..PublishOptions::default()
    };
    let receipt = bus
        .publish("", &q, b"hello".to_vec().into(), opts)
        .await
        .unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(&receipt.message_id)
            .unwrap()
            .get_version_num(),
        7,
        "ids are UUIDv7"
    );

    let consumer = bus.consume(&q, Some(10)).await.unwrap();
    let d = consumer.next(SHORT).await.unwrap().expect("a delivery");
    assert_eq!(&d.body[..], b"hello");
    assert_eq!(d.message_id.as_deref(), Some(receipt.message_id.as_str()));
    assert_eq!(d.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(d.headers.get("x-tenant").map(String::as_str), Some("acme"));
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str(), d.redelivered),
        ("", q.as_str(), false)
    );
    d.ack().await.unwrap();
    assert_eq!(
        d.ack().await.unwrap_err().kind(),
        ErrorKind::Closed,
        "a delivery settles once"
    );

    let err = consumer
        .next(Some(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout,
        "an acked message is not delivered again"
    );
    consumer.close().await.unwrap();
    assert!(
        consumer.next(SHORT).await.unwrap().is_none(),
        "a closed consumer ends"
    );
    bus.close().await.unwrap();
    delete_queues(&[&q, &format!("{q}.dlq")]).await;
}

#[tokio::test]
async fn nack_requeues_and_reject_dead_letters() {
    let bus = bus().await;
    let q = unique("poison");
    let dlq = format!("{q}.dlq");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let receipt = bus
        .publish("", &q, b"bad".to_vec().into(), PublishOptions::default())
        .await
        .unwrap();

    let consumer = bus.consume(&q, None).await.unwrap();
    let first = consumer.next(SHORT).await.unwrap().unwrap();
    first.nack(true).await.unwrap();
    let again = consumer.next(SHORT).await.unwrap().unwrap();
    assert!(
        again.redelivered,
        "a requeued message comes back marked redelivered"
    );
    assert_eq!(
        again.delivery_count,
        Some(1),
        "quorum queues count deliveries"
    );
    again.reject().await.unwrap();

    let dead = bus.consume(&dlq, None).await.unwrap();
    let parked = dead
        .next(SHORT)
        .await
        .unwrap()
        .expect("rejected message in the dead-letter queue");
    assert_eq!(
        parked.message_id.as_deref(),
        Some(receipt.message_id.as_str())
    );
    parked.ack().await.unwrap();
    bus.close().await.unwrap();
    delete_queues(&[&q, &dlq]).await;
}

#[tokio::test]
async fn unroutable_and_missing_exchange_are_typed_errors() {
    let bus = bus().await;
    let nowhere = unique("nowhere");
    let err = bus
        .publish(
            "",
            &nowhere,
            b"x".to_vec().into(),
            PublishOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unroutable, "{err}");

    let err = bus
        .publish(
            &unique("no-exchange"),
            "k",
            b"x".to_vec().into(),
            PublishOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            courier::Error::Broker {
                reply_code: 404,
                ..
            }
        ),
        "{err}"
    );

    // The 404 closed the publishing channel; the next publish must reopen it.
    let q = unique("after-404");
    bus.declare_queue(
        &q,
        &QueueOptions {
            dead_letter: false,
            ..QueueOptions::default()
        },
    )
    .await
    .unwrap();
    bus.publish("", &q, b"ok".to_vec().into(), PublishOptions::default())
        .await
        .unwrap();
    bus.close().await.unwrap();
    delete_queues(&[&q]).await;
}

#[tokio::test]
async fn bad_credentials_fail_without_leaking_the_password() {
    let url = amqp_url().replacen("guest:guest", "guest:hunter2-secret", 1);
    let config = BusConfig::from_value(serde_json::json!({ "urls": [url] })).unwrap();
    let err = Bus::connect(config)
        .await
        .err()
        .expect("wrong password must fail");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2-secret"), "password leaked: {text}");
}

#[tokio::test]
async fn closed_bus_refuses_work() {
    let bus = bus().await;
    bus.close().await.unwrap();
    let err = bus
        .publish("", "q", b"x".to_vec().into(), PublishOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[tokio::test]
async fn a_message_carries_its_trace_to_the_consumer() {
    let bus = bus().await;
    let q = unique("trace");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let parent = courier::TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("vendor=1"),
    )
    .unwrap();
    let opts = PublishOptions {
        trace: Some(parent.clone()),
        ..PublishOptions::default()
    };
    let receipt = bus
        .publish("", &q, b"traced".to_vec().into(), opts)
        .await
        .unwrap();
    assert_eq!(
        receipt.trace.trace_id(),
        parent.trace_id(),
        "the message continues the caller's trace"
    );
    assert_ne!(receipt.trace.span_id(), parent.span_id(), "as a child span");

    let untraced = bus
        .publish("", &q, b"root".to_vec().into(), PublishOptions::default())
        .await
        .unwrap();
    let consumer = bus.consume(&q, None).await.unwrap();
    let d = consumer.next(SHORT).await.unwrap().unwrap();
    assert_eq!(
        d.trace, receipt.trace,
        "the consumer sees exactly what the publisher sent"
    );
    assert_eq!(d.trace.tracestate().get("vendor"), Some("1"));
    assert_eq!(
        d.headers.get("traceparent"),
        Some(&receipt.trace.traceparent())
    );
    d.ack().await.unwrap();
    let d = consumer.next(SHORT).await.unwrap().unwrap();
    assert_eq!(
        d.trace.trace_id(),
        untraced.trace.trace_id(),
        "a message without a caller trace starts one"
    );
    d.ack().await.unwrap();
    bus.close().await.unwrap();
    delete_queues(&[&q, &format!("{q}.dlq")]).await;
}
