//! The control API over HTTP, as the other languages' tests use it.

use std::io::ErrorKind;

use tokio::net::TcpStream;

use crate::client::{self, get, send};

#[tokio::test]
async fn lists_upstreams() {
    let kit = courier_testkit::Testkit::start(2).await.expect("start");
    let listing = get(&kit.control_url(), "/upstreams").await.json();
    let expected: Vec<serde_json::Value> = kit
        .urls()
        .iter()
        .enumerate()
        .map(|(index, url)| serde_json::json!({ "index": index, "url": url }))
        .collect();
    assert_eq!(listing, serde_json::Value::from(expected));
}

#[tokio::test]
async fn behavior_and_request_counts() {
    let kit = courier_testkit::Testkit::start(1).await.expect("start");
    let control = kit.control_url();
    let upstream = &kit.urls()[0];

    let behavior = br#"{"script": [{"status": 502}], "default": {"status": 201}}"#;
    let put = send(&control, "PUT", "/upstreams/0/behavior", &[], behavior).await;
    assert_eq!(put.status, 204);

    let key = [("Idempotency-Key", "k1")];
    assert_eq!(
        send(upstream, "POST", "/orders?a=b", &key, b"{}")
            .await
            .status,
        502
    );
    assert_eq!(
        send(upstream, "POST", "/orders", &key, b"{}").await.status,
        201
    );
    assert_eq!(get(upstream, "/health").await.status, 201);

    let log = get(&control, "/upstreams/0/requests").await.json();
    assert_eq!(log["total"], 3);
    assert_eq!(log["by_method"], serde_json::json!({ "GET": 1, "POST": 2 }));
    assert_eq!(
        log["by_path"],
        serde_json::json!({ "/health": 1, "/orders": 2 })
    );
    assert_eq!(log["by_idempotency_key"], serde_json::json!({ "k1": 2 }));
    let first = &log["requests"][0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/orders");
    assert_eq!(first["query"], "a=b");
    assert_eq!(first["idempotency_key"], "k1");
    assert_eq!(first["headers"]["idempotency-key"], "k1");
    assert_eq!(first["body_len"], 2);
    assert_eq!(
        log["requests"][2]["idempotency_key"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn invalid_behavior_is_rejected_with_the_reason() {
    let kit = courier_testkit::Testkit::start(1).await.expect("start");
    let control = kit.control_url();
    let put = |body: &'static [u8]| {
        let control = control.clone();
        async move { send(&control, "PUT", "/upstreams/0/behavior", &[], body).await }
    };

    let reply = put(br#"{"default": {"latency": 5}}"#).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("latency")),
        "{}",
        reply.text()
    );

    let reply = put(br#"{"default": {"reset": "sometimes"}}"#).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("sometimes"), "{}", reply.text());

    let reply = put(br#"{"failure_ratio": 2}"#).await;
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("failure_ratio"), "{}", reply.text());

    assert_eq!(put(b"not json").await.status, 400);
    // The upstream kept its previous behaviour.
    assert_eq!(get(&kit.urls()[0], "/").await.status, 200);
}

#[tokio::test]
async fn unknown_upstreams_and_routes_are_404() {
    let kit = courier_testkit::Testkit::start(1).await.expect("start");
    let control = kit.control_url();
    assert_eq!(get(&control, "/upstreams/1/requests").await.status, 404);
    assert_eq!(get(&control, "/upstreams/x/requests").await.status, 404);
    assert_eq!(get(&control, "/upstreams/0/nothing").await.status, 404);
    assert_eq!(get(&control, "/elsewhere").await.status, 404);
    assert_eq!(get(&control, "/reset").await.status, 404);
}

#[tokio::test]
async fn reset_restores_defaults_and_clears_logs() {
    let kit = courier_testkit::Testkit::start(2).await.expect("start");
    let control = kit.control_url();
    let fail = br#"{"default": {"status": 500}}"#;
    for index in 0..2 {
        let path = format!("/upstreams/{index}/behavior");
        assert_eq!(send(&control, "PUT", &path, &[], fail).await.status, 204);
        assert_eq!(get(&kit.urls()[index], "/").await.status, 500);
    }

    assert_eq!(
        send(&control, "POST", "/upstreams/0/reset", &[], b"")
            .await
            .status,
        204
    );
    assert_eq!(kit.requests(0).total(), 0);
    assert_eq!(kit.requests(1).total(), 1);
    assert_eq!(get(&kit.urls()[0], "/").await.status, 200);
    assert_eq!(get(&kit.urls()[1], "/").await.status, 500);

    assert_eq!(send(&control, "POST", "/reset", &[], b"").await.status, 204);
    assert_eq!(get(&kit.urls()[1], "/").await.status, 200);
    assert_eq!(kit.requests(1).total(), 1);
}

#[tokio::test]
async fn stop_and_start_over_http() {
    let kit = courier_testkit::Testkit::start(1).await.expect("start");
    let control = kit.control_url();
    let url = &kit.urls()[0];

    assert_eq!(
        send(&control, "POST", "/upstreams/0/stop", &[], b"")
            .await
            .status,
        204
    );
    let refused = TcpStream::connect(client::authority(url))
        .await
        .expect_err("stopped");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    // Stopping twice is harmless.
    assert_eq!(
        send(&control, "POST", "/upstreams/0/stop", &[], b"")
            .await
            .status,
        204
    );

    assert_eq!(
        send(&control, "POST", "/upstreams/0/start", &[], b"")
            .await
            .status,
        204
    );
    assert_eq!(get(url, "/").await.status, 200);
}

/// Asks the testkit's DNS server for `name`'s A records (id 7, one question) and
/// returns the reply's rcode and addresses.
async fn query_a(server: std::net::SocketAddr, name: &str) -> (u8, Vec<[u8; 4]>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut query = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    socket.send_to(&query, server).await.unwrap();
    let mut reply = [0u8; 512];
    let len = tokio::time::timeout(client::PATIENCE, socket.recv(&mut reply))
        .await
        .expect("a DNS reply within the time limit")
        .unwrap();
    let reply = &reply[..len];
    assert_eq!(&reply[..2], &[0, 7], "the reply answers this query");
    let count = usize::from(u16::from_be_bytes([reply[6], reply[7]]));
    // Each A answer: a 2-byte name pointer, type, class, TTL, length, then 4 bytes.
    let addresses = (0..count)
        .map(|i| {
            let at = query.len() + i * 16 + 12;
            [reply[at], reply[at + 1], reply[at + 2], reply[at + 3]]
        })
        .collect();
    (reply[3] & 0x0f, addresses)
}

#[tokio::test]
async fn dns_answers_change_over_http() {
    let kit = courier_testkit::Testkit::start(0).await.expect("start");
    let control = kit.control_url();
    assert_eq!(
        query_a(kit.dns_addr(), "orders.test").await,
        (3, vec![]),
        "unknown names are NXDOMAIN"
    );
    let body = br#"{"a": ["127.0.0.1", "127.0.0.2"], "srv": [{"target": "host.", "port": 1234}]}"#;
    let put = send(&control, "PUT", "/dns/Orders.Test.", &[], body).await;
    assert_eq!(put.status, 204);
    assert_eq!(
        query_a(kit.dns_addr(), "orders.test").await,
        (0, vec![[127, 0, 0, 1], [127, 0, 0, 2]]),
        "names are case-insensitive and the trailing dot optional"
    );
    let bad = send(&control, "PUT", "/dns/orders.test", &[], br#"{"mx": []}"#).await;
    assert_eq!(bad.status, 400, "unknown record kinds are refused");
}
