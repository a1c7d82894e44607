//! The spans courier emits, named and attributed by the OpenTelemetry semantic
//! conventions. One test in its own binary with a global capturing subscriber:
//! tracing caches each callsite's interest process-wide, so a per-thread subscriber
//! racing with other tests' threads could miss spans.

mod capture;
#[path = "../support/mod.rs"]
mod support;

use support::amqp_url;

use capture::Capture;
use courier_testkit::{Action, Behavior, Testkit};
use courierkit::{
    Bus, BusConfig, Client, ClientConfig, ConsumeOptions, PublishOptions, QueueOptions, Request,
    Validate,
};

fn status(code: u16) -> Action {
    Action {
        status: code,
        ..Action::default()
    }
}

#[tokio::test]
async fn spans_follow_the_semantic_conventions() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone())
        .expect("the only subscriber in this binary");
    http_attempts(&capture).await;
    publishes(&capture).await;
}

async fn http_attempts(capture: &Capture) {
    let kit = Testkit::start(1).await.unwrap();
    kit.set_behavior(
        0,
        Behavior {
            script: vec![status(503), status(503)],
            default: status(200),
            ..Behavior::default()
        },
    );
    let config = ClientConfig::from_value(
        serde_json::json!({ "services": { "spans": { "endpoints": kit.urls() } } }),
    )
    .unwrap();
    let c = Client::new(config).unwrap();
    let resp = c
        .call(Request::new("GET", "spans", "/items?secret=no"))
        .await
        .unwrap();
    assert_eq!(resp.attempts, 3);

    let spans = capture.named("http.client");
    assert_eq!(spans.len(), 3, "one span per attempt");
    let sent: Vec<String> = kit
        .requests(0)
        .requests
        .iter()
        .map(|r| r.headers["traceparent"].clone())
        .collect();
    let port = kit.urls()[0].rsplit(':').next().unwrap().to_owned();
    for (i, span) in spans.iter().enumerate() {
        assert_eq!(span["otel.kind"], "client");
        assert_eq!(span["http.request.method"], "GET");
        assert_eq!(span["server.address"], "127.0.0.1");
        assert_eq!(span["server.port"], port);
        assert!(
            span["url.full"].starts_with("http://127.0.0.1:"),
            "{}",
            span["url.full"]
        );
        assert_eq!(
            span["network.peer.address"].trim_end_matches('/'),
            kit.urls()[0]
        );
        let parts: Vec<&str> = sent[i].split('-').collect();
        assert_eq!(
            (span["trace_id"].as_str(), span["span_id"].as_str()),
            (parts[1], parts[2]),
            "the span is what was sent"
        );
        assert_eq!(
            span.get("http.request.resend_count").map(String::as_str),
            (i > 0).then(|| ["1", "2"][i - 1])
        );
    }
    assert_eq!(spans[0]["http.response.status_code"], "503");
    assert_eq!(spans[0]["error.type"], "503");
    assert_eq!(spans[2]["http.response.status_code"], "200");
    assert!(
        !spans[2].contains_key("error.type"),
        "a success has no error.type"
    );
}

async fn publishes(capture: &Capture) {
    let config = BusConfig::from_value(serde_json::json!({ "urls": [amqp_url()] })).unwrap();
    let bus = Bus::connect(config).await.unwrap();
    let q = format!("courier-test.span.{}", uuid::Uuid::now_v7());
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let opts = PublishOptions {
        correlation_id: Some("conv-1".to_owned()),
        ..PublishOptions::default()
    };
    let receipt = bus
        .publish("", &q, b"x".to_vec().into(), opts)
        .await
        .unwrap();
    let nowhere = format!("courier-test.span-nowhere.{}", uuid::Uuid::now_v7());
    bus.publish(
        "",
        &nowhere,
        b"x".to_vec().into(),
        PublishOptions::default(),
    )
    .await
    .unwrap_err();

    let spans = capture.named("amqp.publish");
    assert_eq!(spans.len(), 2);
    let ok = &spans[0];
    assert_eq!(ok["otel.kind"], "producer");
    assert_eq!(ok["otel.name"], format!("publish {q}"));
    assert_eq!(ok["messaging.system"], "rabbitmq");
    assert_eq!(
        ok["messaging.destination.name"], q,
        "the default exchange routes by queue name"
    );
    assert_eq!(ok["messaging.rabbitmq.destination.routing_key"], q);
    assert_eq!(ok["messaging.message.id"], receipt.message_id);
    assert_eq!(ok["messaging.message.conversation_id"], "conv-1");
    assert_eq!(
        (ok["trace_id"].clone(), ok["span_id"].clone()),
        (receipt.trace.trace_id(), receipt.trace.span_id())
    );
    assert!(!ok.contains_key("error.type"));
    assert_eq!(spans[1]["error.type"], "unroutable");

    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let d = consumer.next(None).await.unwrap().unwrap();
    d.reject().await.unwrap();
    drop(d);
    let spans = capture.named("amqp.process");
    assert_eq!(spans.len(), 1, "one process span per delivery");
    let process = &spans[0];
    assert_eq!(process["otel.kind"], "consumer");
    assert_eq!(process["otel.name"], format!("process {q}"));
    assert_eq!(process["messaging.operation.type"], "process");
    assert_eq!(process["messaging.destination.name"], q);
    assert_eq!(process["messaging.message.id"], receipt.message_id);
    assert_eq!(process["messaging.message.conversation_id"], "conv-1");
    assert_eq!(
        (process["trace_id"].clone(), process["link.span_id"].clone()),
        (receipt.trace.trace_id(), receipt.trace.span_id()),
        "linked to the producer's context"
    );
    assert_eq!(process["error.type"], "rejected");
    consumer.close().await.unwrap();
    bus.close().await.unwrap();
    support::delete_queues(&[&q, &format!("{q}.dlq")]).await;
}
