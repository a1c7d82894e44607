//! Telemetry as the bindings install it (feature `telemetry`): core log records reach a
//! host sink at the level set, metrics are readable as Prometheus text and arrive at an
//! OTLP receiver with the spans, an unsampled trace exports nothing, and no record
//! carries a secret. One test in its own binary: it installs the global subscriber.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier_testkit::{Action, Behavior, OtlpReceiver, Testkit};
use courierkit::telemetry::{self, LogLevel, LogRecord, LogSink, Settings};
use courierkit::{
    Bus, BusConfig, Client, ClientConfig, QueueOptions, Request, RequestOptions, TraceContext,
    Validate,
};
use serde_json::Value;

#[derive(Default)]
struct Captured(Mutex<Vec<LogRecord>>);

impl LogSink for Captured {
    fn log(&self, record: LogRecord) {
        self.0.lock().unwrap().push(record);
    }
}

impl Captured {
    fn take(&self) -> Vec<LogRecord> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    /// The records so far once one says `message`, waiting up to 10 s for the log
    /// thread (it delivers asynchronously by design).
    async fn until(&self, message: &str) -> Vec<LogRecord> {
        for _ in 0..200 {
            if self
                .0
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.message.starts_with(message))
            {
                return self.take();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {message:?} record in {:#?}", self.take());
    }
}

fn failing_once() -> Behavior {
    Behavior {
        script: vec![Action {
            status: 503,
            ..Action::default()
        }],
        ..Behavior::default()
    }
}

fn metric<'a>(metrics: &'a [Value], name: &str) -> Vec<&'a Value> {
    metrics.iter().filter(|m| m["name"] == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_metrics_and_spans_reach_the_host_and_the_collector() {
    let sink = Arc::new(Captured::default());
    telemetry::set_log_sink(Some(sink.clone()));
    telemetry::install().unwrap();
    let receiver = OtlpReceiver::start().await.unwrap();
    telemetry::configure(&Settings {
        traces_endpoint: Some(receiver.traces_url()),
        metrics_endpoint: Some(receiver.metrics_url()),
        service_name: Some("telemetry-test".into()),
        ..Settings::default()
    })
    .unwrap();
    telemetry::set_log_level(LogLevel::Debug);

    let kit = Testkit::start(1).await.unwrap();
    kit.set_behavior(0, failing_once());
    // Credentials in the endpoint URL must show in no record, metric or span.
    let endpoint = kit.urls()[0].replace("http://", "http://ops:s3cret-pw@");
    let client = Client::new(
        ClientConfig::from_value(serde_json::json!({
            "services": { "traced": { "endpoints": [endpoint] } }
        }))
        .unwrap(),
    )
    .unwrap();
    let response = client
        .call(Request::new("GET", "traced", "/items"))
        .await
        .unwrap();
    assert_eq!(response.attempts, 2);

    // The retry, a debug event, reaches the sink with its module and fields.
    let records = sink.until("retry").await;
    let retry = records
        .iter()
        .find(|r| r.message.starts_with("retry"))
        .unwrap();
    assert_eq!(
        (retry.level, retry.target.as_str()),
        (LogLevel::Debug, "http::call")
    );
    assert!(
        retry
            .fields
            .iter()
            .any(|(k, v)| k == "service" && v == "traced"),
        "{retry:?}"
    );
    assert!(
        records
            .iter()
            .all(|r| !format!("{r:?}").contains("s3cret-pw")),
        "{records:#?}"
    );

    // Below the level, events are off before they are formatted.
    telemetry::set_log_level(LogLevel::Warn);
    assert!(!tracing::enabled!(target: "courierkit::http::call", tracing::Level::DEBUG));
    assert_eq!(
        tracing::level_filters::LevelFilter::current(),
        tracing::level_filters::LevelFilter::INFO,
        "info spans stay on while exporting"
    );
    kit.set_behavior(0, failing_once());
    client
        .call(Request::new("GET", "traced", "/items"))
        .await
        .unwrap();
    // An unsampled caller: courier sends its flag on and exports nothing of it.
    let unsampled = TraceContext::parse(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        None,
    )
    .unwrap();
    let mut request = Request::new("GET", "traced", "/items");
    request.trace = Some(unsampled.clone());
    client.call(request).await.unwrap();
    let last = kit.requests(0).requests.last().unwrap().headers["traceparent"].clone();
    assert!(last.ends_with("-00"), "{last}");
    // A method outside the standard nine is recorded by its own name.
    client
        .call(Request::new("PURGE", "traced", "/items"))
        .await
        .unwrap();

    // Prometheus text, read in-process.
    let text = telemetry::metrics_text();
    assert!(
        text.contains("# TYPE http_client_request_duration_seconds histogram"),
        "{text}"
    );
    // The exporter does not order its series, so each is found by all its labels.
    let count = |method: &str, status: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("http_client_request_duration_seconds_count{")
                    && l.contains(&format!("http_request_method=\"{method}\""))
                    && l.contains(&format!("http_response_status_code=\"{status}\""))
                    && l.contains("courier_service=\"traced\"")
                    && l.contains("server_address=\"127.0.0.1\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(count("GET", "503").as_deref(), Some("2"), "{text}");
    assert_eq!(count("GET", "200").as_deref(), Some("3"), "{text}");
    assert_eq!(count("PURGE", "200").as_deref(), Some("1"), "{text}");
    assert!(
        text.contains("courier_retry_attempts_total{courier_service=\"traced\"} 2"),
        "{text}"
    );
    assert!(!text.contains("s3cret-pw"), "{text}");

    // A request and its answer: the request's PRODUCER span is exported, and the
    // server's CONSUMER span, its child, ends when the server acks (the delivery is
    // still alive here, as a binding's garbage-collected wrapper would be).
    let bus = Bus::connect(
        BusConfig::from_value(serde_json::json!({"urls": ["memory://telemetry-rpc"]})).unwrap(),
    )
    .await
    .unwrap();
    bus.declare_queue("rpc", &QueueOptions::default())
        .await
        .unwrap();
    let server = bus.serve("rpc").await.unwrap();
    let answering = tokio::spawn(async move {
        let request = server.next(None).await.unwrap().unwrap();
        request
            .reply(b"pong".to_vec().into(), Default::default())
            .await
            .unwrap();
        request.ack().await.unwrap();
        (server, request)
    });
    let reply = bus
        .request("rpc", b"ping".to_vec().into(), RequestOptions::default())
        .await
        .unwrap();
    assert_eq!(reply.body.as_ref(), b"pong");
    let (_server, _request_kept_alive) = answering.await.unwrap();

    // The same readings and the spans at the collector after a flush.
    telemetry::flush().unwrap();
    let spans = receiver.wait_for(6, Duration::from_secs(10)).await;
    let request_span = spans
        .iter()
        .find(|s| s["name"] == "publish rpc")
        .unwrap_or_else(|| panic!("the request's span: {spans:#?}"));
    assert_eq!(request_span["kind"], 4, "PRODUCER");
    let process = spans
        .iter()
        .find(|s| s["name"] == "process rpc")
        .unwrap_or_else(|| panic!("the server's span, ended by its ack: {spans:#?}"));
    assert_eq!(process["parentSpanId"], request_span["spanId"]);
    let exported: Vec<&Value> = spans.iter().filter(|s| s["name"] == "GET").collect();
    assert_eq!(
        exported.len(),
        4,
        "2 + 2 attempts, none of the unsampled call: {spans:#?}"
    );
    assert!(
        spans.iter().all(|s| s["traceId"] != unsampled.trace_id()),
        "{spans:#?}"
    );
    let service = &exported[0]["resource"]["attributes"];
    assert!(
        service.to_string().contains("telemetry-test"),
        "service.name on the resource: {service}"
    );
    let metrics = receiver.metrics();
    let durations = metric(&metrics, "http.client.request.duration");
    assert!(!durations.is_empty(), "{metrics:#?}");
    assert_eq!(durations[0]["unit"], "s");
    assert!(
        !metric(&metrics, "courier.retry.attempts").is_empty(),
        "{metrics:#?}"
    );
    assert!(
        !serde_json::to_string(&metrics)
            .unwrap()
            .contains("s3cret-pw")
    );
    assert!(!serde_json::to_string(&spans).unwrap().contains("s3cret-pw"));
}
