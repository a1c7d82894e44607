//! Upstream behaviour seen from a raw socket, driven through the Rust API.

use std::io::ErrorKind;

use courier_testkit::{Action, Behavior, Reset, Testkit, closed_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::{self, exchange, get, parse, send};

fn status(status: u16) -> Action {
    Action {
        status,
        ..Action::default()
    }
}

#[tokio::test]
async fn script_runs_in_order_then_default() {
    let kit = Testkit::start(1).await.expect("start");
    let url = &kit.urls()[0];
    kit.set_behavior(
        0,
        Behavior {
            script: vec![status(503), status(503)],
            ..Behavior::default()
        },
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(get(url, "/work").await.status);
    }
    assert_eq!(statuses, [503, 503, 200]);
    let log = kit.requests(0);
    assert_eq!(log.total(), 3);
    assert_eq!(log.by_path["/work"], 3);
}

#[tokio::test]
async fn reset_before_headers_sends_nothing() {
    let kit = Testkit::start(1).await.expect("start");
    kit.set_behavior(
        0,
        Behavior {
            default: Action {
                reset: Some(Reset::BeforeHeaders),
                ..Action::default()
            },
            ..Behavior::default()
        },
    );
    let request =
        b"POST /pay HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k1\r\nContent-Length: 3\r\n\r\nabc";
    let (received, error) = exchange(&kit.urls()[0], request).await;
    assert!(received.is_empty(), "got {received:?}");
    if let Some(error) = error {
        assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    }
    // Counted although it got no answer: the request did reach the upstream.
    let log = kit.requests(0);
    assert_eq!(log.total(), 1);
    assert_eq!(log.by_idempotency_key["k1"], 1);
    assert_eq!(log.requests[0].body_len, 3);
}

#[tokio::test]
async fn mid_response_reset_truncates_the_body() {
    let kit = Testkit::start(1).await.expect("start");
    kit.set_behavior(
        0,
        Behavior {
            script: vec![Action {
                reset: Some(Reset::MidResponse),
                ..Action::default()
            }],
            ..Behavior::default()
        },
    );
    let (received, _) = exchange(&kit.urls()[0], b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (reply, _) = parse(&received).expect("headers arrive before the reset");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("1000"));
    assert!(
        reply.body.len() < 1000,
        "body of {} bytes",
        reply.body.len()
    );
    // The script is used up, so the next request is answered normally.
    assert_eq!(get(&kit.urls()[0], "/big").await.status, 200);
}

#[tokio::test]
async fn stopped_upstream_refuses_then_restarts_on_the_same_port() {
    let kit = Testkit::start(2).await.expect("start");
    let url = kit.urls()[1].clone();
    assert_eq!(get(&url, "/").await.status, 200);

    kit.stop_upstream(1).await;
    let refused = TcpStream::connect(client::authority(&url))
        .await
        .expect_err("connect to a stopped upstream");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    // The other upstream is unaffected.
    assert_eq!(get(&kit.urls()[0], "/").await.status, 200);

    kit.start_upstream(1).await.expect("restart");
    assert_eq!(kit.urls()[1], url);
    assert_eq!(get(&url, "/").await.status, 200);
    assert_eq!(kit.requests(1).total(), 2);
}

#[tokio::test]
async fn closed_port_refuses_connections() {
    let refused = TcpStream::connect(("127.0.0.1", closed_port()))
        .await
        .expect_err("nothing listens there");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn echo_reports_the_request_including_a_chunked_body() {
    let kit = Testkit::start(2).await.expect("start");
    let request = b"PUT /items/7?x=1&y=2 HTTP/1.1\r\nHost: x\r\nX-Trace: t\r\nX-Trace: u\r\n\
        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
        5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: v\r\n\r\n";
    let (received, error) = exchange(&kit.urls()[1], request).await;
    assert!(error.is_none(), "{error:?}");
    let (reply, _) = parse(&received).expect("response");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let echo = reply.json();
    assert_eq!(echo["upstream"], 1);
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/items/7");
    assert_eq!(echo["query"], "x=1&y=2");
    assert_eq!(echo["headers"]["x-trace"], "t, u");
    assert_eq!(echo["body_len"], 11);

    let recorded = &kit.requests(1).requests[0];
    assert_eq!(recorded.query, "x=1&y=2");
    assert_eq!(recorded.body_len, 11);
    assert_eq!(recorded.idempotency_key, None);
}

#[tokio::test]
async fn keep_alive_serves_pipelined_requests() {
    let kit = Testkit::start(1).await.expect("start");
    let requests = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
        POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi\
        GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (received, error) = exchange(&kit.urls()[0], requests).await;
    assert!(error.is_none(), "{error:?}");
    let mut rest = received.as_slice();
    let mut paths = Vec::new();
    while let Some((reply, used)) = parse(rest) {
        paths.push(reply.json()["path"].as_str().map(str::to_owned));
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
    assert_eq!(
        paths,
        [Some("/a".into()), Some("/b".into()), Some("/c".into())]
    );
    assert_eq!(kit.requests(0).by_method["GET"], 2);
}

#[tokio::test]
async fn action_body_headers_and_retry_after() {
    let kit = Testkit::start(1).await.expect("start");
    kit.set_behavior(
        0,
        Behavior {
            default: Action {
                status: 429,
                retry_after: Some("2".into()),
                body: Some("slow down".into()),
                headers: [("X-Limit".to_owned(), "10".to_owned())].into(),
                ..Action::default()
            },
            ..Behavior::default()
        },
    );
    let reply = get(&kit.urls()[0], "/").await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("2"));
    assert_eq!(reply.header("x-limit"), Some("10"));
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    assert_eq!(reply.text(), "slow down");
}

#[tokio::test]
async fn failure_ratio_one_always_fails() {
    let kit = Testkit::start(1).await.expect("start");
    kit.set_behavior(
        0,
        Behavior {
            failure_ratio: 1.0,
            ..Behavior::default()
        },
    );
    for _ in 0..3 {
        assert_eq!(get(&kit.urls()[0], "/").await.status, 503);
    }
}

#[tokio::test]
async fn bad_requests_get_an_error_status() {
    let kit = Testkit::start(1).await.expect("start");
    let url = &kit.urls()[0];

    let (received, _) = exchange(url, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert_eq!(parse(&received).expect("response").0.status, 400);

    let too_big = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        17 << 20
    );
    let (received, _) = exchange(url, too_big.as_bytes()).await;
    assert_eq!(parse(&received).expect("response").0.status, 413);

    let bad_length = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n";
    let (received, _) = exchange(url, bad_length).await;
    assert_eq!(parse(&received).expect("response").0.status, 400);

    // None of these was a request the upstream could act on.
    assert_eq!(kit.requests(0).total(), 0);
    assert_eq!(send(url, "HEAD", "/", &[], b"").await.body, b"");
}

#[tokio::test]
async fn stop_closes_idle_keep_alive_connections() {
    let kit = Testkit::start(1).await.expect("start");
    let mut stream = TcpStream::connect(client::authority(&kit.urls()[0]))
        .await
        .expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while parse(&received).is_none_or(|(reply, _)| reply.body.len() < body_len(&reply)) {
        let n = stream.read(&mut chunk).await.expect("read");
        assert_ne!(n, 0, "closed before the response was complete");
        received.extend_from_slice(&chunk[..n]);
    }

    kit.stop_upstream(0).await;
    let after = tokio::time::timeout(client::PATIENCE, stream.read(&mut chunk))
        .await
        .expect("closed within the time limit");
    assert!(matches!(after, Ok(0) | Err(_)), "{after:?}");
}

fn body_len(reply: &client::Reply) -> usize {
    reply
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}
