//! The CLIENT span of each HTTP attempt, captured by a small in-test subscriber.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use courier::Request;
use courier_testkit::{Action, Testkit};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use super::support;

/// A span's name and its fields, rendered as text.
type CapturedSpan = (String, BTreeMap<String, String>);

/// Every span's name and fields (recorded values overwrite), in creation order.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<CapturedSpan>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push((attrs.metadata().name().to_owned(), fields));
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().unwrap();
        let index = usize::try_from(id.into_u64()).unwrap() - 1;
        values.record(&mut Fields(&mut spans[index].1));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn status(code: u16) -> Action {
    Action {
        status: code,
        ..Action::default()
    }
}

#[tokio::test]
async fn each_attempt_is_a_client_span_with_semantic_convention_attributes() {
    let capture = Capture::default();
    // This test's runtime is single-threaded, so the thread-local default sees every span.
    let _guard = tracing::subscriber::set_default(capture.clone());
    let kit = Testkit::start(1).await.unwrap();
    support::behave(&kit, 0, vec![status(503), status(503)], status(200));
    let c = support::client_for("spans", &kit.urls(), serde_json::json!({}));
    let resp = c
        .call(Request::new("GET", "spans", "/items?secret=no"))
        .await
        .unwrap();
    assert_eq!(resp.attempts, 3);

    let spans: Vec<_> = capture
        .spans
        .lock()
        .unwrap()
        .iter()
        .filter(|(name, _)| name == "http.client")
        .map(|(_, fields)| fields.clone())
        .collect();
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
