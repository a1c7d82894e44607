//! One behavioural suite, run against RabbitMQ (`amqp://`) and the in-process broker
//! (`memory://`): the two transports must be indistinguishable to an application.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use courierkit::{
    BatchMessage, Bus, BusConfig, ConsumeOptions, Consumer, ErrorKind, ExchangeKind,
    PublishOptions, QueueOptions, RequestOptions, Validate,
};
use futures_util::StreamExt;

use super::{SHORT, amqp_url, delete_queues, unique};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Transport {
    Amqp,
    Memory,
}

impl Transport {
    /// A bus on this transport; every memory bus gets a broker of its own so tests
    /// running in parallel never share queues.
    pub(crate) async fn bus(self) -> Bus {
        self.bus_with(serde_json::json!({})).await
    }

    pub(crate) async fn bus_with(self, extra: serde_json::Value) -> Bus {
        connect(&self.new_broker(), extra).await
    }

    /// Two buses on one broker (for `memory://`, the same in-process broker).
    pub(crate) async fn pair(self) -> (Bus, Bus) {
        let url = self.new_broker();
        let extra = serde_json::json!({});
        (
            connect(&url, extra.clone()).await,
            connect(&url, extra).await,
        )
    }

    /// The URL of a broker for one test: RabbitMQ's, or a fresh in-process one.
    fn new_broker(self) -> String {
        match self {
            Transport::Amqp => amqp_url(),
            Transport::Memory => format!("memory://{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// Removes a test's queues from a shared broker.
    pub(crate) async fn cleanup(self, queues: &[&str]) {
        if let Transport::Amqp = self {
            delete_queues(queues).await;
        }
    }
}

/// Generates `amqp_<case>` and `memory_<case>` tests for each case.
macro_rules! on_both_transports {
    ($($case:ident),* $(,)?) => {
        mod amqp_transport {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::Transport::Amqp).await })*
        }
        mod memory_transport {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::Transport::Memory).await })*
        }
    };
}

on_both_transports!(
    topic_routing_round_trip,
    nack_requeues_and_reject_dead_letters,
    unroutable_and_missing_exchange,
    dedup_skips_ids_already_processed,
    dedup_holds_a_copy_back_until_the_first_settles,
    dedup_off_delivers_every_copy,
    poison_message_ends_in_the_dead_letter_queue,
    request_reply_and_timeout,
    many_requests_in_flight_with_unanswered_ones,
    close_wakes_a_waiting_next,
    oversized_messages_are_refused_before_sending,
    delayed_publish_arrives_no_earlier_than_its_delay,
    nacks_come_back_after_each_retry_delay_then_dead_letter,
    forward_hands_on_once_under_a_derived_id,
    publish_many_and_next_batch_settle_together,
    expired_messages_are_dead_lettered_not_processed,
    finish_settles_what_the_scope_left,
);

/// Pulls from `consumer` (30 s at most) until the bus has handed `delivered` messages
/// to the application and skipped `deduplicated` copies, failing on any delivery: the
/// copies are skipped inside `next()`, so they must be pulled. When the counts account for
/// every message published, nothing more can arrive; a "nothing arrived within N ms"
/// wait would let a late copy slip past.
async fn accounted_for(bus: &Bus, consumer: &Consumer, delivered: u64, deduplicated: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = bus.stats();
        if (s.delivered, s.deduplicated) == (delivered, deduplicated) {
            return;
        }
        assert!(
            s.delivered <= delivered && s.deduplicated <= deduplicated,
            "more than expected: {s:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "not accounted for within 30 s: {s:?}"
        );
        match consumer.next(Some(Duration::from_millis(50))).await {
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            other => panic!("nothing more may reach the application: {other:?}"),
        }
    }
}

fn body(s: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(s.as_bytes())
}

fn with_id(id: &str) -> PublishOptions {
    PublishOptions {
        message_id: Some(id.to_owned()),
        ..PublishOptions::default()
    }
}

async fn topic_routing_round_trip(t: Transport) {
    let bus = t.bus().await;
    let q = unique("topic");
    let ex = unique("events");
    bus.declare_exchange(&ex, ExchangeKind::Topic)
        .await
        .unwrap();
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    bus.bind(&q, &ex, "order.*").await.unwrap();
    let opts = PublishOptions {
        headers: BTreeMap::from([("x-tenant".to_owned(), "acme".to_owned())]),
        correlation_id: Some("c-1".to_owned()),
        ..PublishOptions::default()
    };
    let receipt = bus
        .publish(&ex, "order.placed", body("o1"), opts)
        .await
        .unwrap();
    let err = bus
        .publish(&ex, "invoice.sent", body("i1"), PublishOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unroutable, "{err}");

    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let d = consumer.next(SHORT).await.unwrap().expect("a delivery");
    assert_eq!(&d.body[..], b"o1");
    assert_eq!(d.message_id.as_deref(), Some(receipt.message_id.as_str()));
    assert_eq!(d.correlation_id.as_deref(), Some("c-1"));
    assert_eq!(d.headers.get("x-tenant").map(String::as_str), Some("acme"));
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        (ex.as_str(), "order.placed")
    );
    assert!(!d.redelivered);
    assert_eq!(d.delivery_count, None, "a first delivery has no count");
    assert_eq!(d.trace.trace_id(), receipt.trace.trace_id());
    d.ack().await.unwrap();
    assert_eq!(d.ack().await.unwrap_err().kind(), ErrorKind::Closed);

    let stats = bus.stats();
    assert_eq!(
        (
            stats.published,
            stats.confirmed,
            stats.returned,
            stats.delivered,
            stats.acked
        ),
        (2, 2, 1, 1, 1),
        "{stats:?}"
    );
    consumer.close().await.unwrap();
    assert!(
        consumer.next(SHORT).await.unwrap().is_none(),
        "closed consumers end"
    );
    bus.close().await.unwrap();
    t.cleanup(&[&q, &format!("{q}.dlq")]).await;
}

async fn nack_requeues_and_reject_dead_letters(t: Transport) {
    let bus = t.bus().await;
    let q = unique("nack");
    let dlq = format!("{q}.dlq");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let receipt = bus
        .publish("", &q, body("bad"), PublishOptions::default())
        .await
        .unwrap();
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
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

    let dead = bus.consume(&dlq, ConsumeOptions::default()).await.unwrap();
    let parked = dead
        .next(SHORT)
        .await
        .unwrap()
        .expect("rejected message in the DLQ");
    assert_eq!(
        parked.message_id.as_deref(),
        Some(receipt.message_id.as_str())
    );
    parked.ack().await.unwrap();
    let stats = bus.stats();
    assert_eq!(
        (stats.nacked, stats.rejected, stats.redelivered),
        (1, 1, 1),
        "{stats:?}"
    );
    bus.close().await.unwrap();
    t.cleanup(&[&q, &dlq]).await;
}

async fn unroutable_and_missing_exchange(t: Transport) {
    let bus = t.bus().await;
    let err = bus
        .publish("", &unique("nowhere"), body("x"), PublishOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unroutable, "{err}");
    let err = bus
        .publish(
            &unique("no-exchange"),
            "k",
            body("x"),
            PublishOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            courierkit::Error::Broker {
                reply_code: 404,
                ..
            }
        ),
        "{err}"
    );
    // The 404 closed the publishing channel on RabbitMQ; the next publish reopens it.
    let q = unique("after-404");
    let classic = QueueOptions {
        quorum: false,
        dead_letter: false,
        ..QueueOptions::default()
    };
    bus.declare_queue(&q, &classic).await.unwrap();
    bus.publish("", &q, body("ok"), PublishOptions::default())
        .await
        .unwrap();
    let err = bus
        .declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            courierkit::Error::Broker {
                reply_code: 406,
                ..
            }
        ),
        "redeclaring with other arguments is refused: {err}"
    );
    bus.close().await.unwrap();
    t.cleanup(&[&q]).await;
}

async fn dedup_skips_ids_already_processed(t: Transport) {
    let bus = t.bus().await;
    let q = unique("dedup");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    for id in ["a", "b", "a", "c", "b"] {
        bus.publish("", &q, body(id), with_id(id)).await.unwrap();
    }
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = consumer.next(SHORT).await.unwrap().unwrap();
        seen.push(d.message_id.clone().unwrap());
        d.ack().await.unwrap();
    }
    assert_eq!(seen, ["a", "b", "c"]);
    // All five published are accounted for: three delivered, the two copies skipped.
    accounted_for(&bus, &consumer, 3, 2).await;
    bus.close().await.unwrap();
    t.cleanup(&[&q, &format!("{q}.dlq")]).await;
}

async fn dedup_holds_a_copy_back_until_the_first_settles(t: Transport) {
    let bus = t.bus().await;
    let q = unique("hold");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    bus.publish("", &q, body("1"), with_id("x")).await.unwrap();
    bus.publish("", &q, body("2"), with_id("x")).await.unwrap();
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let first = consumer.next(SHORT).await.unwrap().unwrap();
    assert_eq!(&first.body[..], b"1");
    let err = consumer
        .next(Some(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout,
        "the copy waits while the first is processed"
    );
    // The first failed: the held copy is delivered.
    first.nack(true).await.unwrap();
    let copy = consumer.next(SHORT).await.unwrap().unwrap();
    assert_eq!(copy.message_id.as_deref(), Some("x"));
    copy.ack().await.unwrap();
    // The requeued first copy is now a duplicate of a processed message: skipped.
    accounted_for(&bus, &consumer, 2, 1).await;
    bus.close().await.unwrap();
    t.cleanup(&[&q, &format!("{q}.dlq")]).await;
}

async fn dedup_off_delivers_every_copy(t: Transport) {
    let bus = t.bus().await;
    let q = unique("nodedup");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    bus.publish("", &q, body("1"), with_id("same"))
        .await
        .unwrap();
    bus.publish("", &q, body("2"), with_id("same"))
        .await
        .unwrap();
    let options = ConsumeOptions {
        dedup: false,
        ..ConsumeOptions::default()
    };
    let consumer = bus.consume(&q, options).await.unwrap();
    for expected in ["1", "2"] {
        let d = consumer.next(SHORT).await.unwrap().unwrap();
        assert_eq!(&d.body[..], expected.as_bytes());
        d.ack().await.unwrap();
    }
    bus.close().await.unwrap();
    t.cleanup(&[&q, &format!("{q}.dlq")]).await;
}

/// 1,000 messages, one of them poison: the handler nacks it every time; after the
/// queue's delivery limit it is parked in `<queue>.dlq` and the other 999 are processed.
async fn poison_message_ends_in_the_dead_letter_queue(t: Transport) {
    let bus = t.bus().await;
    let q = unique("poison");
    let dlq = format!("{q}.dlq");
    let options = QueueOptions {
        delivery_limit: Some(3),
        ..QueueOptions::default()
    };
    bus.declare_queue(&q, &options).await.unwrap();
    let publishes = (0..1000).map(|i| {
        let id = if i == 500 {
            "poison".to_owned()
        } else {
            format!("m-{i}")
        };
        let bus = bus.clone();
        let q = q.clone();
        async move { bus.publish("", &q, body(&id), with_id(&id)).await }
    });
    let results: Vec<_> = futures_util::stream::iter(publishes)
        .buffer_unordered(128)
        .collect()
        .await;
    assert!(results.iter().all(Result::is_ok));

    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let mut processed = 0;
    let mut poison_deliveries = 0;
    while processed < 999 {
        let d = consumer.next(SHORT).await.unwrap().expect("a delivery");
        if d.message_id.as_deref() == Some("poison") {
            poison_deliveries += 1;
            d.nack(true).await.unwrap();
        } else {
            processed += 1;
            d.ack().await.unwrap();
        }
    }
    let dead = bus.consume(&dlq, ConsumeOptions::default()).await.unwrap();
    let parked = dead
        .next(Some(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parked.message_id.as_deref(), Some("poison"));
    parked.ack().await.unwrap();
    // Deliveries still in flight when the 999th arrived may include more poison copies;
    // drain what is left so the count is final.
    while let Ok(Some(d)) = consumer.next(Some(Duration::from_millis(300))).await {
        poison_deliveries += 1;
        d.nack(true).await.unwrap();
    }
    assert_eq!(
        poison_deliveries, 4,
        "delivery_limit 3: the first delivery and 3 more"
    );
    bus.close().await.unwrap();
    t.cleanup(&[&q, &dlq]).await;
}
/// A bus on `url`, with `extra` config keys.
async fn connect(url: &str, extra: serde_json::Value) -> Bus {
    let mut config = serde_json::json!({ "urls": [url] });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    Bus::connect(BusConfig::from_value(config).unwrap())
        .await
        .expect("RabbitMQ must be running (tests/scripts/ensure-rabbitmq.sh)")
}

/// Serves `queue` until the bus closes: echoes the body upper-cased, and leaves
/// requests whose body starts with "ignore" unanswered (acked, never replied).
fn spawn_server(bus: &Bus, queue: &str) -> tokio::task::JoinHandle<()> {
    let bus = bus.clone();
    let queue = queue.to_owned();
    tokio::spawn(async move {
        let server = bus.serve(&queue).await.unwrap();
        while let Ok(Some(request)) = server.next(None).await {
            let mut settled = Ok(());
            if !request.body.starts_with(b"ignore") {
                let reply = request.body.to_ascii_uppercase();
                let headers = BTreeMap::from([("x-served".to_owned(), "yes".to_owned())]);
                settled = request.reply(reply.into(), headers).await;
            }
            match settled.and(request.ack().await) {
                Ok(()) => {}
                // The test closed the bus with this request in hand (a late one whose
                // caller had given up): nothing more to serve.
                Err(e) if matches!(e.kind(), ErrorKind::Connect | ErrorKind::Closed) => break,
                Err(e) => panic!("serving failed: {e}"),
            }
        }
    })
}

async fn request_reply_and_timeout(t: Transport) {
    // The server on a bus of its own, so `bus.stats()` counts the requests alone.
    let (bus, server_bus) = t.pair().await;
    let q = unique("pricing");
    let classic = QueueOptions {
        quorum: false,
        dead_letter: false,
        ..QueueOptions::default()
    };
    bus.declare_queue(&q, &classic).await.unwrap();
    let server = spawn_server(&server_bus, &q);

    let parent = courierkit::TraceContext::new_root();
    let options = RequestOptions {
        trace: Some(parent.clone()),
        ..RequestOptions::default()
    };
    let reply = bus.request(&q, body("quote"), options).await.unwrap();
    assert_eq!(&reply.body[..], b"QUOTE");
    assert_eq!(
        reply.headers.get("x-served").map(String::as_str),
        Some("yes")
    );
    assert!(reply.correlation_id.is_some());
    assert_eq!(
        reply.trace.trace_id(),
        parent.trace_id(),
        "the reply continues the request's trace"
    );
    reply.ack().await.unwrap();
    // A fast reply can overtake its request's confirm: every answered request still
    // counts as confirmed.
    let replies = futures_util::future::join_all(
        (0..200).map(|_| bus.request(&q, body("quote"), RequestOptions::default())),
    )
    .await;
    assert!(replies.iter().all(Result::is_ok));
    let stats = bus.stats();
    assert_eq!((stats.published, stats.confirmed), (201, 201), "{stats:?}");

    let options = RequestOptions {
        timeout: Duration::from_millis(300),
        ..RequestOptions::default()
    };
    let err = bus
        .request(&q, body("ignore me"), options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");

    let err = bus
        .request(&unique("nobody"), body("x"), RequestOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unroutable, "{err}");
    assert_eq!(bus.stats().rpc_in_flight, 0);
    bus.close().await.unwrap();
    server_bus.close().await.unwrap();
    server.await.unwrap();
    t.cleanup(&[&q]).await;
}

/// 5,000 requests, 10% deliberately unanswered: each of those times out, every other
/// one gets its own reply, and nothing is left in flight. The answered ones may take 60 s,
/// so a busy machine cannot turn a slow reply into a timeout; only the unanswered ones
/// have a short timeout.
async fn many_requests_in_flight_with_unanswered_ones(t: Transport) {
    let bus = t.bus().await;
    let q = unique("rpc-load");
    let classic = QueueOptions {
        quorum: false,
        dead_letter: false,
        ..QueueOptions::default()
    };
    bus.declare_queue(&q, &classic).await.unwrap();
    let server = spawn_server(&bus, &q);
    let outcomes = Arc::new(std::sync::Mutex::new(HashMap::<&'static str, usize>::new()));
    let requests = (0..5000).map(|i| {
        let bus = bus.clone();
        let q = q.clone();
        let outcomes = outcomes.clone();
        async move {
            let (text, timeout) = if i % 10 == 0 {
                (format!("ignore-{i}"), Duration::from_millis(300))
            } else {
                (format!("req-{i}"), Duration::from_secs(60))
            };
            let options = RequestOptions {
                timeout,
                ..RequestOptions::default()
            };
            let key = match bus.request(&q, body(&text), options).await {
                Ok(reply) if reply.body[..] == *text.to_ascii_uppercase().as_bytes() => "answered",
                Ok(_) => "wrong reply",
                Err(e) if e.kind() == ErrorKind::Timeout && text.starts_with("ignore") => {
                    "timed out"
                }
                Err(_) => "failed",
            };
            *outcomes.lock().unwrap().entry(key).or_default() += 1;
        }
    });
    futures_util::stream::iter(requests)
        .buffer_unordered(250)
        .collect::<Vec<()>>()
        .await;
    let outcomes = outcomes.lock().unwrap().clone();
    assert_eq!(
        outcomes,
        HashMap::from([("answered", 4500), ("timed out", 500)]),
    );
    assert_eq!(bus.stats().rpc_in_flight, 0);
    bus.close().await.unwrap();
    server.await.unwrap();
    t.cleanup(&[&q]).await;
}

async fn close_wakes_a_waiting_next(t: Transport) {
    let bus = t.bus().await;
    let q = unique("idle");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let consumer = Arc::new(bus.consume(&q, ConsumeOptions::default()).await.unwrap());
    let waiting = {
        let consumer = consumer.clone();
        tokio::spawn(async move { consumer.next(None).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(5), consumer.close())
        .await
        .expect("close does not wait for the blocked next()")
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the blocked next() ends")
        .unwrap();
    assert!(ended.unwrap().is_none());
    bus.close().await.unwrap();
    t.cleanup(&[&q, &format!("{q}.dlq")]).await;
}

/// A header name longer than an AMQP short string (255 bytes) once panicked inside the
/// AMQP encoder; now it, and every other size limit, is a config error naming the field
/// before anything is sent, on both transports.
async fn oversized_messages_are_refused_before_sending(t: Transport) {
    let bus = t
        .bus_with(serde_json::json!({ "limits": { "max_message_bytes": 1024, "max_headers": 2 } }))
        .await;
    let q = unique("limits");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let with_headers = |pairs: &[(&str, &str)]| PublishOptions {
        headers: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..PublishOptions::default()
    };
    let long_name = "h".repeat(256);
    let cases = [
        (
            body("x"),
            with_headers(&[(long_name.as_str(), "v")]),
            "headers: a header name must be 1..=255 bytes",
        ),
        (
            body("x"),
            with_headers(&[("a", "1"), ("b", "2"), ("c", "3")]),
            "headers: has 3 entries",
        ),
        (
            bytes::Bytes::from(vec![0u8; 1025]),
            PublishOptions::default(),
            "body: is 1025 bytes",
        ),
    ];
    for (payload, options, expected) in cases {
        let err = bus
            .publish("", &q, payload.clone(), options)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
        assert!(err.to_string().starts_with(expected), "{err}");
    }
    let err = bus
        .request(
            &q,
            body("x"),
            RequestOptions {
                headers: [(long_name.clone(), "v".to_owned())].into(),
                ..RequestOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert_eq!(bus.stats().published, 0, "nothing was sent");
    bus.close().await.unwrap();
    t.cleanup(&[&q, &format!("{q}.dlq")]).await;
}

/// A delayed message overtaken by one published after it, arriving no earlier than its
/// delay (a lower bound: the one timing assertion a delay can honestly make) through
/// its exchange, with its routing key, id, headers and trace.
async fn delayed_publish_arrives_no_earlier_than_its_delay(t: Transport) {
    let bus = t.bus().await;
    let q = unique("delayed");
    let ex = unique("delayed-events");
    bus.declare_exchange(&ex, ExchangeKind::Topic)
        .await
        .unwrap();
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    bus.bind(&q, &ex, "order.*").await.unwrap();
    let delay = Duration::from_millis(1500);
    let sent = tokio::time::Instant::now();
    let later = PublishOptions {
        headers: BTreeMap::from([("x-tenant".to_owned(), "acme".to_owned())]),
        delay: Some(delay),
        ..PublishOptions::default()
    };
    let receipt = bus
        .publish(&ex, "order.placed", body("later"), later)
        .await
        .unwrap();
    bus.publish(&ex, "order.placed", body("now"), PublishOptions::default())
        .await
        .unwrap();
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let first = consumer.next(SHORT).await.unwrap().unwrap();
    assert_eq!(&first.body[..], b"now", "the undelayed message overtakes");
    first.ack().await.unwrap();
    let d = consumer.next(SHORT).await.unwrap().unwrap();
    assert!(
        sent.elapsed() >= delay,
        "arrived after {:?}",
        sent.elapsed()
    );
    assert_eq!(&d.body[..], b"later");
    assert_eq!(d.message_id.as_deref(), Some(receipt.message_id.as_str()));
    assert_eq!(d.headers.get("x-tenant").map(String::as_str), Some("acme"));
    assert_eq!(d.trace.trace_id(), receipt.trace.trace_id());
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        (ex.as_str(), "order.placed")
    );
    d.ack().await.unwrap();

    let bad = |delay_ms| PublishOptions {
        delay: Some(Duration::from_millis(delay_ms)),
        ..PublishOptions::default()
    };
    let err = bus.publish(&ex, "order.placed", body("x"), bad(0)).await;
    assert_eq!(
        err.unwrap_err().to_string(),
        "delay_ms: must be 1..=2592000000 ms (30 days), got 0"
    );
    let stats = bus.stats();
    assert_eq!((stats.delayed, stats.published), (1, 2), "{stats:?}");
    bus.close().await.unwrap();
    let delay_queue = format!("courier.delay.1472ms.{ex}");
    t.cleanup(&[&q, &format!("{q}.dlq"), &delay_queue]).await;
}

/// `retry_delays`: each nack brings the message back after the next delay with the
/// same id, trace and original routing, counting `x-courier-retries`; past the last
/// delay it is parked in the dead-letter queue. `reject` skips the delays.
async fn nacks_come_back_after_each_retry_delay_then_dead_letter(t: Transport) {
    let bus = t.bus().await;
    let q = unique("retry");
    let dlq = format!("{q}.dlq");
    let ex = unique("retry-events");
    let retrying = QueueOptions {
        retry_delays: vec![Duration::from_millis(300), Duration::from_millis(600)],
        ..QueueOptions::default()
    };
    bus.declare_exchange(&ex, ExchangeKind::Topic)
        .await
        .unwrap();
    bus.declare_queue(&q, &retrying).await.unwrap();
    bus.bind(&q, &ex, "order.*").await.unwrap();
    let receipt = bus
        .publish(&ex, "order.placed", body("flaky"), with_id("order-1"))
        .await
        .unwrap();
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let mut d = consumer.next(SHORT).await.unwrap().unwrap();
    for (retry, delay_ms) in [(1, 300), (2, 600)] {
        let nacked = tokio::time::Instant::now();
        d.nack(true).await.unwrap();
        d = consumer.next(SHORT).await.unwrap().unwrap();
        assert!(
            nacked.elapsed() >= Duration::from_millis(delay_ms),
            "retry {retry} came back after {:?}",
            nacked.elapsed()
        );
        assert_eq!(d.message_id.as_deref(), Some("order-1"));
        assert_eq!(&d.body[..], b"flaky");
        assert_eq!(d.trace.trace_id(), receipt.trace.trace_id());
        assert_eq!(
            d.headers.get("x-courier-retries").map(String::as_str),
            Some(retry.to_string().as_str())
        );
        assert_eq!(
            (d.exchange.as_str(), d.routing_key.as_str()),
            (ex.as_str(), "order.placed"),
            "the original routing is restored"
        );
    }
    d.nack(true).await.unwrap();
    let dead = bus.consume(&dlq, ConsumeOptions::default()).await.unwrap();
    let parked = dead.next(SHORT).await.unwrap().expect("dead-lettered");
    assert_eq!(parked.message_id.as_deref(), Some("order-1"));
    assert_eq!(
        parked.headers.get("x-courier-retries").map(String::as_str),
        Some("2")
    );
    if let Transport::Amqp = t {
        // RabbitMQ's x-death, readable as JSON: the last death is the rejection here.
        let deaths: serde_json::Value = serde_json::from_str(&parked.headers["x-death"]).unwrap();
        assert!(
            deaths
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["reason"] == "rejected" && d["queue"] == q.as_str()),
            "{deaths}"
        );
    }
    parked.ack().await.unwrap();

    bus.publish("", &q, body("poison"), with_id("order-2"))
        .await
        .unwrap();
    let poison = consumer.next(SHORT).await.unwrap().unwrap();
    poison.reject().await.unwrap();
    let parked = dead.next(SHORT).await.unwrap().expect("rejected at once");
    assert_eq!(parked.message_id.as_deref(), Some("order-2"));
    assert!(!parked.headers.contains_key("x-courier-retries"));
    parked.ack().await.unwrap();

    let stats = bus.stats();
    assert_eq!(
        (stats.retried, stats.nacked, stats.rejected, stats.delayed),
        (2, 3, 1, 0),
        "{stats:?}"
    );
    let err = bus
        .declare_queue(
            &q,
            &QueueOptions {
                retry_delays: vec![Duration::ZERO],
                ..QueueOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    bus.close().await.unwrap();
    t.cleanup(&[&q, &dlq]).await;
}

/// `forward`: the next step goes out under an id derived from the current one (the same
/// for a redelivered copy, so the next consumer skips it), continuing the trace, and the
/// current delivery is acked after the confirm.
async fn forward_hands_on_once_under_a_derived_id(t: Transport) {
    let bus = t.bus().await;
    let (first, second) = (unique("step1"), unique("step2"));
    for q in [&first, &second] {
        bus.declare_queue(q, &QueueOptions::default())
            .await
            .unwrap();
    }
    let receipt = bus
        .publish("", &first, body("order"), with_id("order-1"))
        .await
        .unwrap();
    // Without dedup on the first step, a second copy of order-1 stands for the
    // redelivery that follows a crash between the forward's confirm and its ack.
    let redelivered = PublishOptions {
        trace: Some(receipt.trace.clone()),
        ..with_id("order-1")
    };
    bus.publish("", &first, body("order"), redelivered)
        .await
        .unwrap();
    let no_dedup = ConsumeOptions {
        dedup: false,
        ..ConsumeOptions::default()
    };
    let step1 = bus.consume(&first, no_dedup).await.unwrap();
    let mut forwarded = Vec::new();
    for _ in 0..2 {
        let d = step1.next(SHORT).await.unwrap().unwrap();
        let next = d
            .forward("", &second, body("step 2"), PublishOptions::default())
            .await
            .unwrap();
        assert_eq!(
            d.ack().await.unwrap_err().kind(),
            ErrorKind::Closed,
            "forward acked it"
        );
        assert_eq!(next.trace.trace_id(), receipt.trace.trace_id());
        forwarded.push(next.message_id);
    }
    assert_eq!(forwarded[0], forwarded[1], "one id per step, however often");
    assert_ne!(forwarded[0], "order-1");

    let step2 = bus
        .consume(&second, ConsumeOptions::default())
        .await
        .unwrap();
    let d = step2.next(SHORT).await.unwrap().unwrap();
    assert_eq!(d.message_id.as_deref(), Some(forwarded[0].as_str()));
    assert_eq!(&d.body[..], b"step 2");
    assert_eq!(d.trace.trace_id(), receipt.trace.trace_id());
    let err = d
        .forward("", &first, body("x"), with_id("mine"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string().split(':').next(), Some("message_id"));
    d.ack().await.unwrap();
    accounted_for(&bus, &step2, 3, 1).await;
    bus.close().await.unwrap();
    t.cleanup(&[
        &first,
        &second,
        &format!("{first}.dlq"),
        &format!("{second}.dlq"),
    ])
    .await;
}

/// Gathers batches of at most `max` until `n` deliveries came (30 s at most).
async fn gather(consumer: &Consumer, max: usize, n: usize) -> Vec<courierkit::Batch> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (mut batches, mut got) = (Vec::new(), 0);
    while got < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{got} of {n} in 30 s"
        );
        let batch = consumer
            .next_batch(max, Duration::from_millis(500))
            .await
            .unwrap()
            .expect("an open consumer");
        assert!(batch.len() <= max);
        got += batch.len();
        batches.push(batch);
    }
    assert_eq!(got, n, "no more than was published");
    batches
}

async fn publish_many_and_next_batch_settle_together(t: Transport) {
    let bus = t.bus().await;
    let q = unique("batch");
    let dlq = format!("{q}.dlq");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let message = |rk: &str, id: &str| BatchMessage {
        exchange: String::new(),
        routing_key: rk.to_owned(),
        body: body(id),
        options: with_id(id),
    };
    let mut messages: Vec<_> = (0..10).map(|i| message(&q, &format!("m{i}"))).collect();
    messages[3] = message("nowhere", "lost");
    messages[5] = message(&q, "");
    let results = bus.publish_many(messages).await.unwrap();
    assert_eq!(results.len(), 10);
    for (i, result) in results.iter().enumerate() {
        match i {
            3 => assert_eq!(result.as_ref().unwrap_err().kind(), ErrorKind::Unroutable),
            5 => assert_eq!(result.as_ref().unwrap_err().kind(), ErrorKind::Config),
            _ => assert_eq!(result.as_ref().unwrap().message_id, format!("m{i}")),
        }
    }
    let err = bus.publish_many(Vec::new()).await.unwrap_err();
    assert!(err.to_string().starts_with("messages:"), "{err}");
    let too_many = vec![message(&q, "x"); courierkit::MAX_BATCH + 1];
    assert_eq!(
        bus.publish_many(too_many).await.unwrap_err().kind(),
        ErrorKind::Config
    );

    let options = ConsumeOptions {
        prefetch: Some(5),
        ..ConsumeOptions::default()
    };
    let consumer = bus.consume(&q, options).await.unwrap();
    let err = consumer.next_batch(6, SHORT.unwrap()).await.unwrap_err();
    assert!(
        err.to_string().starts_with("max:"),
        "over the prefetch: {err}"
    );
    // The first five, in publish order: prefetch 5 means the broker sends no more
    // until some are settled.
    let first = &gather(&consumer, 5, 5).await;
    let ids: Vec<_> = first
        .iter()
        .flat_map(|b| b.deliveries().iter().map(|d| d.message_id.clone().unwrap()))
        .collect();
    assert_eq!(ids, ["m0", "m1", "m2", "m4", "m6"]);
    // One failed on its own; the batch call settles the rest. (The first batch may hold
    // only one delivery when the others arrive after its wait.)
    let odd = first
        .iter()
        .flat_map(|b| b.deliveries())
        .nth(1)
        .unwrap()
        .clone();
    odd.reject().await.unwrap();
    for batch in first {
        batch.ack().await.unwrap();
        assert!(batch.deliveries().iter().all(|d| d.is_settled()));
    }
    let rest = gather(&consumer, 5, 3).await;
    for batch in &rest {
        batch.reject().await.unwrap();
    }
    let empty = consumer.next_batch(5, Duration::ZERO).await.unwrap();
    assert!(
        empty.is_some_and(|b| b.is_empty()),
        "nothing left, none ended"
    );
    let stats = bus.stats();
    assert_eq!(
        (
            stats.delivered,
            stats.acked,
            stats.rejected,
            stats.published
        ),
        (8, 4, 4, 9),
        "{stats:?}"
    );

    // Cancel safety: a call dropped while it waits for more keeps what it gathered for
    // the next calls, each taking no more than its own `max`.
    for id in ["c1", "c2", "c3"] {
        bus.publish("", &q, body(id), with_id(id)).await.unwrap();
    }
    let waiting = consumer.next_batch(5, Duration::from_secs(30));
    assert!(
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .is_err(),
        "3 of 5 never fill the batch"
    );
    let two = consumer
        .next_batch(2, Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<_> = two
        .deliveries()
        .iter()
        .map(|d| d.message_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["c1", "c2"]);
    two.ack().await.unwrap();
    let last = consumer.next(SHORT).await.unwrap().unwrap();
    assert_eq!(last.message_id.as_deref(), Some("c3"));
    last.ack().await.unwrap();

    let dead = bus.consume(&dlq, ConsumeOptions::default()).await.unwrap();
    let parked = gather(&dead, 4, 4).await;
    for batch in &parked {
        batch.ack().await.unwrap();
    }
    consumer.close().await.unwrap();
    assert!(
        consumer
            .next_batch(5, SHORT.unwrap())
            .await
            .unwrap()
            .is_none()
    );
    bus.close().await.unwrap();
    t.cleanup(&[&q, &dlq]).await;
}

async fn expired_messages_are_dead_lettered_not_processed(t: Transport) {
    let bus = t.bus().await;
    let (q, next) = (unique("ttl"), unique("ttl-next"));
    let dlq = format!("{q}.dlq");
    for name in [&q, &next] {
        bus.declare_queue(name, &QueueOptions::default())
            .await
            .unwrap();
    }
    for (ttl, delay) in [(Duration::ZERO, None), (SECOND, Some(SECOND * 2))] {
        let options = PublishOptions {
            ttl: Some(ttl),
            delay,
            ..PublishOptions::default()
        };
        let err = bus.publish("", &q, body("x"), options).await.unwrap_err();
        assert!(err.to_string().starts_with("ttl_ms:"), "{err}");
    }
    // A deadline long past (as from a publisher whose caller gave up): the consumer
    // dead-letters it. Set by hand, since a `ttl` that short lets the broker drop it.
    let mut stale = with_id("stale");
    stale
        .headers
        .insert("x-courier-deadline".to_owned(), "1000".to_owned());
    bus.publish("", &q, body("stale"), stale).await.unwrap();
    let fresh = PublishOptions {
        ttl: Some(SECOND * 60),
        ..with_id("fresh")
    };
    bus.publish("", &q, body("fresh"), fresh).await.unwrap();

    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let d = consumer.next(SHORT).await.unwrap().unwrap();
    assert_eq!(
        d.message_id.as_deref(),
        Some("fresh"),
        "the stale one is skipped"
    );
    let left = d.remaining().expect("a deadline");
    assert!(left > Duration::ZERO && left <= SECOND * 60, "{left:?}");
    // The next step keeps what is left of the budget.
    d.forward("", &next, body("step 2"), PublishOptions::default())
        .await
        .unwrap();
    let step2 = bus.consume(&next, ConsumeOptions::default()).await.unwrap();
    let d2 = step2.next(SHORT).await.unwrap().unwrap();
    let inherited = d2.remaining().expect("an inherited deadline");
    assert!(inherited <= left, "{inherited:?} > {left:?}");
    d2.ack().await.unwrap();
    step2.close().await.unwrap();

    let dead = bus.consume(&dlq, ConsumeOptions::default()).await.unwrap();
    let parked = dead.next(SHORT).await.unwrap().unwrap();
    assert_eq!(parked.message_id.as_deref(), Some("stale"));
    assert_eq!(parked.remaining(), Some(Duration::ZERO));
    parked.ack().await.unwrap();
    let stats = bus.stats();
    assert_eq!(stats.expired, 1, "{stats:?}");
    // One for `fresh`, one for step 2, one from the DLQ: the stale one never reached
    // the application.
    assert_eq!(stats.delivered, 3, "{stats:?}");

    // A request carries its caller's budget to the server.
    let server = bus.serve(&next).await.unwrap();
    let waiting = tokio::spawn({
        let bus = bus.clone();
        let next = next.clone();
        async move {
            let options = RequestOptions {
                timeout: SECOND * 5,
                ..RequestOptions::default()
            };
            bus.request(&next, body("ping"), options).await
        }
    });
    let request = server.next(SHORT).await.unwrap().unwrap();
    let budget = request.remaining().expect("a request has a deadline");
    assert!(
        budget > Duration::ZERO && budget <= SECOND * 5,
        "{budget:?}"
    );
    request.reply(body("pong"), BTreeMap::new()).await.unwrap();
    request.ack().await.unwrap();
    assert_eq!(&waiting.await.unwrap().unwrap().body[..], b"pong");
    bus.close().await.unwrap();
    t.cleanup(&[&q, &next, &dlq, &format!("{next}.dlq")]).await;
}

const SECOND: Duration = Duration::from_secs(1);

async fn finish_settles_what_the_scope_left(t: Transport) {
    let bus = t.bus().await;
    let q = unique("finish");
    let dlq = format!("{q}.dlq");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    for id in ["ok", "failed", "settled"] {
        bus.publish("", &q, body(id), with_id(id)).await.unwrap();
    }
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let ok = consumer.next(SHORT).await.unwrap().unwrap();
    ok.finish(true, None).await.unwrap();
    let failed = consumer.next(SHORT).await.unwrap().unwrap();
    failed.finish(false, Some(false)).await.unwrap();
    let settled = consumer.next(SHORT).await.unwrap().unwrap();
    settled.reject().await.unwrap();
    settled.finish(true, None).await.unwrap();
    assert!(ok.is_settled() && failed.is_settled() && settled.is_settled());
    let stats = bus.stats();
    assert_eq!(
        (stats.acked, stats.nacked, stats.rejected),
        (1, 1, 1),
        "{stats:?}"
    );
    bus.close().await.unwrap();
    t.cleanup(&[&q, &dlq]).await;
}
