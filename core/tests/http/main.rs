//! HTTP behaviour against the testkit's loopback upstreams (in-process, fault-injecting).

mod adaptive;
mod balance;
mod discovery;
mod hedge;
mod rate;
mod reconfigure;
mod resilience;
mod support;

use std::time::Duration;

use courier_testkit::{Action, Reset, Testkit, closed_port};
use courierkit::{Client, ClientConfig, ErrorKind, Request, Validate};

fn client(kit: &Testkit, service: serde_json::Value) -> Client {
    support::client_for("orders", &kit.urls()[..1], service)
}

fn behave(kit: &Testkit, default: Action) {
    support::behave(kit, 0, Vec::new(), default);
}

#[tokio::test]
async fn get_reaches_the_service_endpoint_once() {
    let kit = Testkit::start(1).await.unwrap();
    let c = client(
        &kit,
        serde_json::json!({ "headers": { "x-from": "config" } }),
    );
    let mut req = Request::new("GET", "orders", "/v1/items").header("x-trace", "t1");
    req.query.push(("page".into(), "2".into()));
    let resp = c.call(req).await.unwrap();
    assert_eq!((resp.status, resp.attempts), (200, 1));
    assert_eq!(resp.endpoint.trim_end_matches('/'), kit.urls()[0]);
    let echo: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["path"], "/v1/items");
    assert_eq!(echo["query"], "page=2");
    assert_eq!(echo["headers"]["x-trace"], "t1");
    assert_eq!(
        echo["headers"]["x-from"], "config",
        "service headers are sent"
    );
    let log = kit.requests(0);
    assert_eq!(log.total(), 1, "exactly one request reached the server");
    assert_eq!(log.by_method.get("GET"), Some(&1));
}

/// The seven verb shortcuts are `call` with that method: each reaches the server with
/// its method, path and body (none for the bodyless verbs), as in every binding.
#[tokio::test]
async fn verb_shortcuts_send_their_method_path_and_body() {
    let kit = Testkit::start(1).await.unwrap();
    let c = client(&kit, serde_json::json!({}));
    let responses = [
        ("GET", c.get("orders", "/v/get").await),
        ("HEAD", c.head("orders", "/v/head").await),
        ("OPTIONS", c.options("orders", "/v/options").await),
        ("DELETE", c.delete("orders", "/v/delete").await),
        ("POST", c.post("orders", "/v/post", "post!").await),
        ("PUT", c.put("orders", "/v/put", b"put".to_vec()).await),
        (
            "PATCH",
            c.patch("orders", "/v/patch", bytes::Bytes::from_static(b"patch"))
                .await,
        ),
    ];
    for (method, resp) in responses {
        let resp = resp.unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!((resp.status, resp.attempts), (200, 1), "{method}");
        if method != "HEAD" {
            let echo: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(echo["method"], method);
        }
    }
    let sent: Vec<_> = kit
        .requests(0)
        .requests
        .iter()
        .map(|r| (r.method.clone(), r.path.clone(), r.body_len))
        .collect();
    let want: Vec<_> = [
        ("GET", "/v/get", 0),
        ("HEAD", "/v/head", 0),
        ("OPTIONS", "/v/options", 0),
        ("DELETE", "/v/delete", 0),
        ("POST", "/v/post", 5),
        ("PUT", "/v/put", 3),
        ("PATCH", "/v/patch", 5),
    ]
    .into_iter()
    .map(|(m, p, n)| (m.to_owned(), p.to_owned(), n))
    .collect();
    assert_eq!(sent, want);

    // Their failures are call's: an unknown service, a closed client.
    match c.post("nope", "/", "x").await.unwrap_err() {
        courierkit::Error::Config { field, .. } => assert_eq!(field, "target"),
        other => panic!("expected a config error on target, got {other}"),
    }
    c.close();
    assert_eq!(
        c.get("orders", "/").await.unwrap_err().kind(),
        ErrorKind::Closed
    );
}

#[tokio::test]
async fn idempotency_key_and_body_are_sent() {
    let kit = Testkit::start(1).await.unwrap();
    let c = client(&kit, serde_json::json!({}));
    let mut req = Request::new("POST", "orders", "/v1/orders").body(&b"{\"sku\":1}"[..]);
    req.idempotency_key = Some("k-1".into());
    let resp = c.call(req).await.unwrap();
    let echo: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(echo["body_len"], 9);
    assert_eq!(kit.requests(0).by_idempotency_key.get("k-1"), Some(&1));
}

#[tokio::test]
async fn error_status_is_a_response_with_its_headers() {
    let kit = Testkit::start(1).await.unwrap();
    behave(
        &kit,
        Action {
            status: 503,
            retry_after: Some("2".into()),
            ..Action::default()
        },
    );
    let resp = client(&kit, serde_json::json!({}))
        .call(Request::new("GET", "orders", "/"))
        .await
        .unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.header("Retry-After"), Some("2"));
}

#[tokio::test]
async fn deadline_and_attempt_timeout_are_timeouts() {
    let kit = Testkit::start(1).await.unwrap();
    behave(
        &kit,
        Action {
            latency_ms: 5_000,
            ..Action::default()
        },
    );
    let c = client(&kit, serde_json::json!({ "deadline_ms": 100 }));
    let err = c
        .call(Request::new("GET", "orders", "/"))
        .await
        .unwrap_err();
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
    let mut req = Request::new("GET", "orders", "/");
    req.deadline = Some(Duration::from_secs(5));
    req.timeout = Some(Duration::from_millis(100));
    let err = c.call(req).await.unwrap_err();
    assert!(
        matches!(
            err,
            courierkit::Error::Timeout {
                operation: "attempt",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn resets_and_refused_connections_are_connect_errors() {
    let kit = Testkit::start(1).await.unwrap();
    let c = client(&kit, serde_json::json!({}));
    for reset in [Reset::BeforeHeaders, Reset::MidResponse] {
        behave(
            &kit,
            Action {
                reset: Some(reset),
                ..Action::default()
            },
        );
        let err = c
            .call(Request::new("GET", "orders", "/"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{reset:?}: {err}");
    }
    let url = format!("http://user:s3cret-pw@127.0.0.1:{}/", closed_port());
    let err = c.call(Request::new("GET", url, "")).await.unwrap_err();
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
    assert!(
        !format!("{err} {err:?}").contains("s3cret-pw"),
        "credentials leaked: {err:?}"
    );
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let kit = Testkit::start(1).await.unwrap();
    let c = client(&kit, serde_json::json!({}));
    let cases = [
        (Request::new("GET", "nope", "/"), "target"),
        (Request::new("GET", "ftp://h/x", ""), "target"),
        (Request::new("GE T", "orders", "/"), "method"),
        (
            Request::new("GET", "orders", "/").header("x-bad", "a\nb"),
            "headers.x-bad",
        ),
        // Durations are named as the service settings and the bindings' arguments are.
        (
            Request {
                deadline: Some(Duration::ZERO),
                ..Request::new("GET", "orders", "/")
            },
            "deadline_ms",
        ),
        (
            Request {
                deadline: Some(Duration::from_micros(500)),
                ..Request::new("GET", "orders", "/")
            },
            "deadline_ms",
        ),
        (
            Request {
                timeout: Some(Duration::from_millis(courierkit::MAX_DURATION_MS + 1)),
                ..Request::new("GET", "orders", "/")
            },
            "timeout_ms",
        ),
    ];
    for (req, field) in cases {
        match c.call(req).await.unwrap_err() {
            courierkit::Error::Config { field: f, .. } => assert_eq!(f, field),
            other => panic!("expected a config error on {field}, got {other}"),
        }
    }
    assert_eq!(
        kit.requests(0).total(),
        0,
        "invalid requests never reach the network"
    );
}

#[tokio::test]
async fn version_routing_and_no_endpoint() {
    let kit = Testkit::start(2).await.unwrap();
    let urls = kit.urls();
    let config =
        ClientConfig::from_value(serde_json::json!({ "services": { "orders": { "endpoints": [
        { "url": urls[0], "version": "v1" }, { "url": urls[1], "version": "v2" }
    ] } } }))
        .unwrap();
    let c = Client::new(config).unwrap();
    for _ in 0..4 {
        let mut req = Request::new("GET", "orders", "/");
        req.version = Some("v2".into());
        assert_eq!(
            c.call(req).await.unwrap().endpoint.trim_end_matches('/'),
            urls[1]
        );
    }
    assert_eq!(
        kit.requests(0).total(),
        0,
        "v1 endpoint must not receive v2 traffic"
    );
    let mut req = Request::new("GET", "orders", "/");
    req.version = Some("v3".into());
    assert_eq!(c.call(req).await.unwrap_err().kind(), ErrorKind::NoEndpoint);
}

#[tokio::test]
async fn closed_client_fails_fast() {
    let kit = Testkit::start(1).await.unwrap();
    let c = client(&kit, serde_json::json!({}));
    c.close();
    assert_eq!(
        c.call(Request::new("GET", "orders", "/"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    );
}

/// An upstream streaming an endless body: the call fails with LimitExceeded once the
/// configured limit is passed (memory stays at the limit), and the attempt is not retried.
#[tokio::test]
async fn a_response_body_over_the_limit_fails_without_reading_the_rest() {
    let kit = Testkit::start(1).await.unwrap();
    behave(
        &kit,
        Action {
            stream_body_bytes: Some(u64::MAX),
            ..Action::default()
        },
    );
    let config = ClientConfig::from_value(serde_json::json!({
        "services": { "orders": { "endpoints": [kit.urls()[0]] } },
        "limits": { "max_response_body_bytes": 1_000_000 },
    }))
    .unwrap();
    let err = Client::new(config)
        .unwrap()
        .call(Request::new("GET", "orders", "/endless"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{err}");
    assert_eq!(
        err.to_string(),
        "response body is larger than limits.max_response_body_bytes (1000000 bytes)"
    );
    assert_eq!(kit.requests(0).total(), 1, "a limit hit is not retried");
}

/// Response heads over the limit fail with LimitExceeded naming it, whether courier
/// counts them (over 64 KiB) or hyper refuses them first (over its 400 KiB buffer, or
/// more than 100 headers); a head within the limit is read.
#[tokio::test]
async fn a_response_head_over_the_limit_fails_and_is_not_retried() {
    let kit = Testkit::start(1).await.unwrap();
    let c = client(&kit, serde_json::json!({}));
    let big =
        |bytes: usize| std::collections::BTreeMap::from([("x-big".to_owned(), "a".repeat(bytes))]);
    let many: std::collections::BTreeMap<_, _> = (0..150)
        .map(|i| (format!("x-h{i}"), "v".to_owned()))
        .collect();
    for (case, headers) in [
        ("over courier's limit", big(70_000)),
        ("over hyper's buffer", big(500_000)),
        ("over hyper's header count", many),
    ] {
        let before = kit.requests(0).total();
        behave(
            &kit,
            Action {
                headers,
                ..Action::default()
            },
        );
        let err = c
            .call(Request::new("GET", "orders", "/head"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LimitExceeded, "{case}: {err}");
        assert_eq!(
            err.to_string(),
            "response head is larger than limits.max_response_header_bytes (65536 bytes)",
            "{case}"
        );
        assert_eq!(
            kit.requests(0).total() - before,
            1,
            "{case}: a limit hit is not retried"
        );
    }
    behave(
        &kit,
        Action {
            headers: big(60_000),
            ..Action::default()
        },
    );
    let resp = c
        .call(Request::new("GET", "orders", "/head"))
        .await
        .unwrap();
    assert_eq!(resp.header("x-big").map(str::len), Some(60_000));
}

#[tokio::test]
async fn a_body_within_the_limit_is_read_whole() {
    let kit = Testkit::start(1).await.unwrap();
    behave(
        &kit,
        Action {
            stream_body_bytes: Some(300_000),
            ..Action::default()
        },
    );
    let c = client(&kit, serde_json::json!({}));
    let resp = c.call(Request::new("GET", "orders", "/big")).await.unwrap();
    assert_eq!(resp.body.len(), 300_000);
}

#[tokio::test]
async fn a_request_body_over_the_limit_is_a_config_error_before_sending() {
    let kit = Testkit::start(1).await.unwrap();
    let config = ClientConfig::from_value(serde_json::json!({
        "services": { "orders": { "endpoints": [kit.urls()[0]] } },
        "limits": { "max_request_body_bytes": 10 },
    }))
    .unwrap();
    let err = Client::new(config)
        .unwrap()
        .call(Request::new("POST", "orders", "/x").body(vec![0u8; 11]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "body: is 11 bytes, more than limits.max_request_body_bytes (10)"
    );
    assert_eq!(kit.requests(0).total(), 0);
}

#[tokio::test]
async fn paths_climbing_out_of_the_base_path_are_refused_before_sending() {
    let kit = Testkit::start(1).await.unwrap();
    let base = format!("{}/api/v1", kit.urls()[0]);
    let c = support::client_for("orders", &[base], serde_json::json!({}));
    for path in ["../../admin", "%2e%2e/%2e%2e/admin"] {
        let err = c
            .call(Request::new("GET", "orders", path))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{path}: {err}");
        assert!(err.to_string().starts_with("path: "), "{err}");
    }
    assert_eq!(kit.requests(0).total(), 0, "nothing was sent");
}
