//! Secrets never leave courier: every error path reachable with a URL that carries a
//! password (`user:PASSWORD@`) or a token (`TOKEN@`) is driven, and the errors (their
//! `Display`, `Debug` and whole `source()` chain), the stats, every log event of every
//! crate and every span field are searched for the secret. One test in its own binary
//! with a global capturing subscriber, like the spans test.

#[path = "../spans/capture.rs"]
mod capture;
#[path = "../support/mod.rs"]
mod support;

use capture::Capture;
use courier_testkit::{Action, Behavior, Testkit, closed_port};
use courierkit::{Bus, BusConfig, Client, ClientConfig, ConsumeOptions, Request, Validate};

/// Everything an error shows: Display, Debug and each source's Display and Debug.
fn error_text(err: &courierkit::Error) -> String {
    let mut text = format!("{err} | {err:?}");
    let mut next = std::error::Error::source(err);
    while let Some(source) = next {
        text.push_str(&format!(" | {source} | {source:?}"));
        next = source.source();
    }
    text
}

struct Secrets {
    password: String,
    token: String,
    /// Every text an error or a stats snapshot produced, with what produced it. (Not the
    /// upstream's answers: the testkit echoes the `Authorization` header it received.)
    seen: Vec<(String, String)>,
}

impl Secrets {
    fn new() -> Secrets {
        Secrets {
            password: format!("pw-{}", uuid::Uuid::new_v4().simple()),
            token: format!("tok-{}", uuid::Uuid::new_v4().simple()),
            seen: Vec::new(),
        }
    }

    fn keep<T>(&mut self, what: &str, result: courierkit::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                self.seen.push((what.to_owned(), error_text(&err)));
                None
            }
        }
    }

    /// `http://user:PASSWORD@authority` and `http://TOKEN@authority`.
    fn http_urls(&self, authority: &str) -> [String; 2] {
        [
            format!("http://user:{}@{authority}", self.password),
            format!("http://{}@{authority}", self.token),
        ]
    }
}

#[tokio::test]
async fn no_secret_reaches_errors_stats_logs_or_spans() {
    let capture = Capture::default();
    tracing::subscriber::set_global_default(capture.clone())
        .expect("the only subscriber in this binary");
    let mut s = Secrets::new();
    http_paths(&mut s).await;
    amqp_paths(&mut s).await;
    config_paths(&mut s);

    assert!(s.seen.len() >= 20, "the paths ran: {:?}", s.seen);
    let redacted = s
        .seen
        .iter()
        .filter(|(_, text)| text.contains("***@"))
        .count();
    assert!(
        redacted >= 10,
        "URLs with credentials were reported, masked: {:?}",
        s.seen
    );
    let events = capture.events.lock().unwrap().clone();
    let spans = capture.spans.lock().unwrap().clone();
    assert!(!events.is_empty(), "log events were captured");
    assert!(
        !capture.named("http.client").is_empty(),
        "HTTP spans were captured"
    );
    let haystacks = s
        .seen
        .iter()
        .map(|(what, text)| (what.clone(), text.clone()))
        .chain(
            events
                .iter()
                .map(|(target, fields)| (format!("event {target}"), format!("{fields:?}"))),
        )
        .chain(
            spans
                .iter()
                .map(|(name, fields)| (format!("span {name}"), format!("{fields:?}"))),
        );
    for (what, text) in haystacks {
        for secret in [&s.password, &s.token] {
            assert!(
                !text.contains(secret.as_str()),
                "{what} leaked a secret: {text}"
            );
        }
    }
}

async fn http_paths(s: &mut Secrets) {
    let kit = Testkit::start(2).await.unwrap();
    // Upstream 0 fails every request with 503 (retries, then the final answer; the breaker
    // opens); upstream 1 answers slowly with an endless body (timeout, limit).
    kit.set_behavior(
        0,
        Behavior {
            default: Action {
                status: 503,
                ..Action::default()
            },
            ..Behavior::default()
        },
    );
    kit.set_behavior(
        1,
        Behavior {
            default: Action {
                stream_body_bytes: Some(u64::MAX),
                ..Action::default()
            },
            ..Behavior::default()
        },
    );
    let closed = format!("127.0.0.1:{}", closed_port());
    let up = |i: usize| kit.urls()[i].trim_start_matches("http://").to_owned();
    let [pw_closed, tok_closed] = s.http_urls(&closed);
    let [pw_503, tok_503] = s.http_urls(&up(0));
    let [pw_big, tok_big] = s.http_urls(&up(1));
    let config = ClientConfig::from_value(serde_json::json!({
        "services": {
            "pw-closed": { "endpoints": [pw_closed], "deadline_ms": 2000 },
            "tok-closed": { "endpoints": [tok_closed], "deadline_ms": 2000 },
            "pw-503": { "endpoints": [pw_503], "breaker": { "min_calls": 2, "failure_ratio": 0.5 } },
            "tok-503": { "endpoints": [tok_503], "retry": { "max_attempts": 5 } },
            "pw-big": { "endpoints": [pw_big] },
            "tok-big": { "endpoints": [tok_big], "timeout_ms": 50 },
        },
        "limits": { "max_response_body_bytes": 10_000 },
    }))
    .unwrap();
    let client = Client::new(config).unwrap();
    for service in ["pw-closed", "tok-closed", "pw-big", "tok-big"] {
        let result = client.call(Request::new("GET", service, "/x")).await;
        s.keep(service, result.map(|_| ()));
    }
    for service in ["pw-503", "tok-503"] {
        for _ in 0..4 {
            // 503 is an answer, not an error, until the breaker opens on "pw-503".
            let result = client.call(Request::new("GET", service, "/x")).await;
            if let Some(resp) = s.keep(service, result) {
                s.seen
                    .push((format!("{service} response"), format!("{resp:?}")));
            }
        }
    }
    // Absolute URLs, with the secret in the URL itself.
    for base in [pw_closed.clone(), tok_closed.clone()] {
        let mut req = Request::new("GET", format!("{base}/abs"), "");
        req.deadline = Some(std::time::Duration::from_secs(1));
        let result = client.call(req).await;
        s.keep("absolute url", result.map(|_| ()));
    }
    s.seen
        .push(("client stats".into(), format!("{:?}", client.stats())));
    s.seen.push((
        "client stats json".into(),
        serde_json::to_string(&client.stats()).unwrap(),
    ));
}

async fn amqp_paths(s: &mut Secrets) {
    let broker = support::amqp_url();
    let authority = broker
        .trim_start_matches("amqp://")
        .split_once('@')
        .map_or(broker.as_str(), |(_, rest)| rest)
        .to_owned();
    let closed = format!("127.0.0.1:{}", closed_port());
    let urls = [
        // Wrong credentials at the real broker, and nothing listening.
        format!("amqp://guest:{}@{authority}", s.password),
        format!("amqp://{}@{authority}", s.token),
        format!("amqp://guest:{}@{closed}/%2f", s.password),
        format!("amqp://{}@{closed}/%2f", s.token),
    ];
    for url in urls {
        let config = BusConfig::from_value(serde_json::json!({ "urls": [url] }));
        if let Some(config) = s.keep("bus config", config) {
            let result = Bus::connect(config).await;
            s.keep("bus connect", result.map(|_| ()));
        }
    }
    // A working bus whose Redis dedup store has a wrong password: the consumer fails to
    // start; the bus's own stats come along.
    let redis =
        std::env::var("COURIER_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let redis_authority = redis.trim_start_matches("redis://").to_owned();
    let config = BusConfig::from_value(serde_json::json!({
        "urls": [broker],
        "dedup": { "store": "redis", "url": format!("redis://:{}@{redis_authority}", s.password) },
    }));
    if let Some(config) = s.keep("bus config with redis", config) {
        if let Some(bus) = s.keep("bus with redis", Bus::connect(config).await) {
            let queue = format!("courier-test.secrets.{}", uuid::Uuid::new_v4());
            let declared = bus.declare_queue(&queue, &Default::default()).await;
            s.keep("declare", declared);
            let consumer = bus.consume(&queue, ConsumeOptions::default()).await;
            s.keep("consume with redis dedup", consumer.map(|_| ()));
            s.seen
                .push(("bus stats".into(), format!("{:?}", bus.stats())));
            let _ = bus.close().await;
            support::delete_queues(&[&queue]).await;
        }
    }
}

fn config_paths(s: &mut Secrets) {
    // Invalid URLs that still carry a secret: the config error must not echo it.
    for url in [
        format!("http://user:{}@127.0.0.1:99999", s.password),
        format!("http://{}@", s.token),
        format!("ftp://user:{}@h", s.password),
    ] {
        let config = ClientConfig::from_value(
            serde_json::json!({ "services": { "s": { "endpoints": [url] } } }),
        );
        s.keep("client config", config.map(|_| ()));
    }
    for url in [
        format!("amqp://guest:{}@127.0.0.1:99999", s.password),
        format!("http://{}@127.0.0.1:5672", s.token),
    ] {
        let config = BusConfig::from_value(serde_json::json!({ "urls": [url] }));
        s.keep("bus config", config.map(|_| ()));
    }
}
