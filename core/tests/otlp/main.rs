//! OTLP export (feature `otlp`) against the testkit's OTLP/HTTP receiver: courier's
//! spans arrive with the ids courier put on the wire, parented and linked as the
//! W3C context says. One test in its own binary: it installs the global subscriber.

use std::time::Duration;

use courier_testkit::{Action, Behavior, OtlpReceiver, Testkit};
use courierkit::{
    Bus, BusConfig, Client, ClientConfig, ConsumeOptions, OtlpLayer, PublishOptions, QueueOptions,
    Request, TraceContext, Validate,
};
use serde_json::Value;
use tracing_subscriber::prelude::*;

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector_with_their_wire_ids() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let otlp = OtlpLayer::new(&receiver.traces_url()).unwrap();
    tracing_subscriber::registry().with(otlp.clone()).init();
    let parent = TraceContext::new_root();

    // An HTTP call retried once: two CLIENT spans, children of the caller's context.
    let kit = Testkit::start(1).await.unwrap();
    kit.set_behavior(
        0,
        Behavior {
            script: vec![Action {
                status: 503,
                ..Action::default()
            }],
            ..Behavior::default()
        },
    );
    let client = Client::new(
        ClientConfig::from_value(serde_json::json!({
            "services": { "traced": { "endpoints": kit.urls() } }
        }))
        .unwrap(),
    )
    .unwrap();
    let mut request = Request::new("GET", "traced", "/items");
    request.trace = Some(parent.clone());
    assert_eq!(client.call(request).await.unwrap().attempts, 2);
    let sent: Vec<String> = kit
        .requests(0)
        .requests
        .iter()
        .map(|r| r.headers["traceparent"].clone())
        .collect();

    // A publish and its delivery: PRODUCER, then CONSUMER linked to it.
    let bus = Bus::connect(
        BusConfig::from_value(serde_json::json!({"urls": ["memory://otlp"]})).unwrap(),
    )
    .await
    .unwrap();
    bus.declare_queue("otlp", &QueueOptions::default())
        .await
        .unwrap();
    let options = PublishOptions {
        trace: Some(parent.clone()),
        ..PublishOptions::default()
    };
    let receipt = bus
        .publish("", "otlp", b"x".to_vec().into(), options)
        .await
        .unwrap();
    let consumer = bus
        .consume("otlp", ConsumeOptions::default())
        .await
        .unwrap();
    let delivery = consumer.next(None).await.unwrap().unwrap();
    delivery.ack().await.unwrap();
    drop(delivery);

    otlp.flush().unwrap();
    let spans = receiver.wait_for(4, Duration::from_secs(10)).await;

    let attempts = named(&spans, "GET");
    assert_eq!(attempts.len(), 2, "one span per attempt: {spans:#?}");
    for (span, traceparent) in attempts.iter().zip(&sent) {
        assert_eq!(span["traceId"], parent.trace_id());
        assert_eq!(
            traceparent.split('-').nth(2),
            span["spanId"].as_str(),
            "the span id is the parent-id the attempt sent"
        );
        assert_eq!(span["parentSpanId"], parent.span_id());
        assert_eq!(span["kind"], 3, "CLIENT");
        assert_eq!(
            attribute(span, "http.request.method").unwrap()["stringValue"],
            "GET"
        );
    }
    assert_eq!(
        attribute(attempts[1], "http.request.resend_count").unwrap()["intValue"],
        "1"
    );

    let publish = named(&spans, "publish otlp");
    assert_eq!(publish.len(), 1, "{spans:#?}");
    assert_eq!(publish[0]["kind"], 4, "PRODUCER");
    assert_eq!(publish[0]["traceId"], receipt.trace.trace_id());
    assert_eq!(publish[0]["spanId"], receipt.trace.span_id());
    assert_eq!(publish[0]["parentSpanId"], parent.span_id());

    let process = named(&spans, "process otlp");
    assert_eq!(process.len(), 1, "{spans:#?}");
    assert_eq!(process[0]["kind"], 5, "CONSUMER");
    assert_eq!(process[0]["traceId"], receipt.trace.trace_id());
    assert_eq!(process[0]["parentSpanId"], receipt.trace.span_id());
    assert_eq!(process[0]["links"][0]["spanId"], receipt.trace.span_id());

    consumer.close().await.unwrap();
    bus.close().await.unwrap();
}
