//! AMQP behaviour against a real RabbitMQ (`tests/scripts/ensure-rabbitmq.sh` starts one;
//! `COURIER_AMQP_URL` points elsewhere).

use std::time::Duration;

use courierkit::{
    Bus, BusConfig, ConsumeOptions, ErrorKind, PublishOptions, QueueOptions, Validate,
};

mod forward;
mod suite;
#[path = "../support/mod.rs"]
mod support;

pub(crate) use support::{amqp_url, delete_queues};

async fn bus() -> Bus {
    suite::Transport::Amqp.bus().await
}

/// A queue name no other test run uses, so runs never see each other's messages.
pub(crate) fn unique(prefix: &str) -> String {
    format!("courier-test.{prefix}.{}", uuid::Uuid::now_v7())
}

pub(crate) const SHORT: Option<Duration> = Some(Duration::from_secs(5));

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

    let consumer = bus
        .consume(
            &q,
            ConsumeOptions {
                prefetch: Some(10),
                ..ConsumeOptions::default()
            },
        )
        .await
        .unwrap();
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

    // Closing returns unacknowledged deliveries to the queue, at the moment the broker
    // drops the consumer: once it has, the queue is empty only if the ack reached the
    // broker, so the message cannot be delivered again.
    consumer.close().await.unwrap();
    let mut counts = support::queue_counts(&q).await;
    for _ in 0..300 {
        if counts.1 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        counts = support::queue_counts(&q).await;
    }
    assert_eq!(counts, (0, 0), "an acked message is not delivered again");
    assert!(
        consumer.next(SHORT).await.unwrap().is_none(),
        "a closed consumer ends"
    );
    bus.close().await.unwrap();
    delete_queues(&[&q, &format!("{q}.dlq")]).await;
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
    let parent = courierkit::TraceContext::parse(
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
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
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

/// Where the child consumers of [`redis_dedup_is_shared_by_consumer_processes`] find
/// their queue and their Redis key prefix; unset in a normal run.
const CHILD_QUEUE: &str = "COURIER_TEST_CHILD_QUEUE";
const CHILD_PREFIX: &str = "COURIER_TEST_CHILD_PREFIX";

fn redis_bus_config(prefix: &str) -> BusConfig {
    let redis = std::env::var("COURIER_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    BusConfig::from_value(serde_json::json!({
        "urls": [amqp_url()],
        "dedup": {"store": "redis", "url": redis, "prefix": prefix},
    }))
    .unwrap()
}

/// Two consumer processes (this test binary, run again as children) share a queue and a
/// Redis dedup window; every id is published twice. Each id must be processed exactly
/// once across both processes, and both take part.
///
/// Synchronised by state, not by time: nothing is published until both children said
/// they are subscribed (so the broker spreads deliveries over both), and the children
/// stop when the parent, counting what they report, has seen every id processed and
/// every copy skipped (it then closes their stdin).
#[tokio::test]
async fn redis_dedup_is_shared_by_consumer_processes() {
    const IDS: usize = 300;
    let prefix = format!("courier-test:{}:", uuid::Uuid::now_v7());
    let q = unique("redis-dedup");
    let publisher = bus().await;
    publisher
        .declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();

    let exe = std::env::current_exe().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<(usize, String)>();
    let mut children = Vec::new();
    for index in 0..2 {
        let mut child = tokio::process::Command::new(&exe)
            .args([
                "redis_dedup_child_consumer",
                "--exact",
                "--include-ignored",
                "--nocapture",
            ])
            .env(CHILD_QUEUE, &q)
            .env(CHILD_PREFIX, &prefix)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the test binary runs again as a child");
        let stdout = child.stdout.take().unwrap();
        let tx = lines_tx.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = tx.send((index, line));
            }
        });
        children.push(child);
    }
    drop(lines_tx);
    let next_line = async |lines: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, String)>| {
        tokio::time::timeout(Duration::from_secs(120), lines.recv())
            .await
            .expect("the children report within 120 s")
            .expect("the children are still running")
    };

    let mut subscribed = [false; 2];
    while subscribed != [true; 2] {
        let (index, line) = next_line(&mut lines).await;
        subscribed[index] |= line == "subscribed";
    }
    for round in 0..2 {
        for i in 0..IDS {
            let options = PublishOptions {
                message_id: Some(format!("d-{i}")),
                ..PublishOptions::default()
            };
            let body = format!("{round}").into_bytes().into();
            publisher.publish("", &q, body, options).await.unwrap();
        }
    }

    let mut processed = std::collections::HashMap::<String, usize>::new();
    let mut per_child = [0usize; 2];
    let mut deduplicated = [0u64; 2];
    while per_child.iter().sum::<usize>() < IDS || deduplicated.iter().sum::<u64>() < IDS as u64 {
        let (index, line) = next_line(&mut lines).await;
        if let Some(id) = line.strip_prefix("processed ") {
            *processed.entry(id.to_owned()).or_default() += 1;
            per_child[index] += 1;
        } else if let Some(n) = line.strip_prefix("deduplicated ") {
            deduplicated[index] = n.parse().unwrap();
        }
    }
    for mut child in children {
        drop(child.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("a child stops when its stdin closes")
            .unwrap();
        assert!(status.success(), "a child consumer failed: {status:?}");
    }
    assert_eq!(processed.len(), IDS);
    let repeated: Vec<_> = processed.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "processed twice: {repeated:?}");
    assert_eq!(
        deduplicated.iter().sum::<u64>(),
        IDS as u64,
        "every second copy was skipped"
    );
    assert!(
        per_child.iter().all(|n| *n > 0),
        "both processes took part: {per_child:?}"
    );
    publisher.close().await.unwrap();
    delete_queues(&[&q, &format!("{q}.dlq")]).await;
}

/// The child side of [`redis_dedup_is_shared_by_consumer_processes`]: says `subscribed`,
/// then prints each id it processed and its deduplicated count whenever that changes,
/// until its stdin closes. Ignored, so a normal run does not count it as a passing test;
/// only its parent runs it.
#[tokio::test]
#[ignore = "a child process of redis_dedup_is_shared_by_consumer_processes"]
async fn redis_dedup_child_consumer() {
    let q = std::env::var(CHILD_QUEUE).expect("run by its parent test, which sets the queue");
    let prefix = std::env::var(CHILD_PREFIX).expect("run by its parent test");
    let bus = Bus::connect(redis_bus_config(&prefix))
        .await
        .expect("Redis must be running (tests/scripts/ensure-redis.sh)");
    let options = ConsumeOptions {
        prefetch: Some(20),
        ..ConsumeOptions::default()
    };
    let consumer = bus.consume(&q, options).await.unwrap();
    println!("subscribed");
    let mut stdin_closed = tokio::task::spawn_blocking(|| {
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest);
    });
    let mut reported = 0;
    loop {
        tokio::select! {
            _ = &mut stdin_closed => break,
            next = consumer.next(Some(Duration::from_millis(50))) => match next {
                Ok(Some(d)) => {
                    // Processing takes a moment, so copies meet in-progress claims.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    d.ack().await.unwrap();
                    println!("processed {}", d.message_id.clone().unwrap());
                }
                Err(e) if e.kind() == ErrorKind::Timeout => {}
                other => panic!("consumer failed: {other:?}"),
            },
        }
        let deduplicated = bus.stats().deduplicated;
        if deduplicated != reported {
            reported = deduplicated;
            println!("deduplicated {deduplicated}");
        }
    }
    bus.close().await.unwrap();
}

#[tokio::test]
async fn connect_skips_brokers_that_refuse_and_server_named_queues_are_refused() {
    // A closed port first: the bus moves on to the next URL of the cluster.
    let config = BusConfig::from_value(serde_json::json!({
        "urls": ["amqp://guest:guest@127.0.0.1:1/%2f", amqp_url()],
    }))
    .unwrap();
    let bus = Bus::connect(config)
        .await
        .expect("the second broker accepts");
    let err = bus
        .declare_queue("", &QueueOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("server-named"), "{err}");
    bus.close().await.unwrap();
}

/// Another client's message with an empty `message_id` has no id: dedup must not treat
/// "" as one, or every later empty-id message would be acked and dropped as a duplicate.
#[tokio::test]
async fn empty_message_ids_from_other_publishers_are_not_deduplicated() {
    let bus = bus().await;
    let q = unique("empty-id");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    for body in [b"first".as_slice(), b"second"] {
        let props = lapin::BasicProperties::default().with_message_id("".into());
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    conn.close(200, "bye".into()).await.unwrap();

    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    for expected in [b"first".as_slice(), b"second"] {
        let d = consumer.next(SHORT).await.unwrap().expect("a delivery");
        assert_eq!(d.message_id, None, "an empty id is no id");
        assert_eq!(d.body.as_ref(), expected);
        d.ack().await.unwrap();
    }
    assert_eq!(bus.stats().deduplicated, 0);
    consumer.close().await.unwrap();
    bus.close().await.unwrap();
    delete_queues(&[&q, &format!("{q}.dlq")]).await;
}

/// A nacked publish is sent again, same message id, until the broker takes it or the
/// deadline leaves no time: a queue at `x-max-length` with `reject-publish` nacks
/// every publish until a consumer makes room (as a quorum queue electing a leader nacks
/// until it has one).
#[tokio::test]
async fn nacked_publishes_are_sent_again_within_their_deadline() {
    let bus = bus().await;
    let q = unique("nacked");
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut arguments = lapin::types::FieldTable::default();
    arguments.insert("x-max-length".into(), lapin::types::AMQPValue::LongInt(1));
    arguments.insert(
        "x-overflow".into(),
        lapin::types::AMQPValue::LongString("reject-publish".into()),
    );
    ch.queue_declare(
        q.as_str().into(),
        lapin::options::QueueDeclareOptions::default(),
        arguments,
    )
    .await
    .unwrap();

    bus.publish("", &q, b"first".to_vec().into(), PublishOptions::default())
        .await
        .unwrap();
    // The queue is full: this one is nacked until the first leaves.
    let second = {
        let bus = bus.clone();
        let q = q.clone();
        tokio::spawn(async move {
            let options = PublishOptions {
                deadline: Some(Duration::from_secs(30)),
                ..PublishOptions::default()
            };
            bus.publish("", &q, b"second".to_vec().into(), options)
                .await
        })
    };
    for _ in 0..200 {
        if bus.stats().republished >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bus.stats().republished >= 2, "{:?}", bus.stats());
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let first = consumer
        .next(SHORT)
        .await
        .unwrap()
        .expect("the first message");
    assert_eq!(first.body.as_ref(), b"first");
    first.ack().await.unwrap();
    let receipt = second.await.unwrap().expect("taken once there was room");
    let delivered = consumer
        .next(SHORT)
        .await
        .unwrap()
        .expect("the second message");
    assert_eq!(delivered.body.as_ref(), b"second");
    assert_eq!(
        delivered.message_id.as_deref(),
        Some(receipt.message_id.as_str())
    );
    delivered.ack().await.unwrap();
    let stats = bus.stats();
    assert_eq!(
        (stats.published, stats.confirmed),
        (2, 2),
        "one publish call each, both confirmed in the end: {stats:?}"
    );
    assert_eq!(stats.publish_rejected, stats.republished, "{stats:?}");

    // Full again (x-max-length counts ready messages: no consumer may take it), and a
    // deadline too short to wait for room: the caller gets the nack. When the last
    // backoff ends within a round trip of the deadline, the re-send's confirm wait runs
    // out first and the caller gets the timeout instead; either way the broker refused.
    consumer.close().await.unwrap();
    bus.publish("", &q, b"third".to_vec().into(), PublishOptions::default())
        .await
        .unwrap();
    let short = PublishOptions {
        deadline: Some(Duration::from_millis(300)),
        ..PublishOptions::default()
    };
    let rejected_before = bus.stats().publish_rejected;
    let refused = bus
        .publish("", &q, b"fourth".to_vec().into(), short)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            courierkit::Error::PublishRejected { .. }
                | courierkit::Error::Timeout {
                    operation: "publish confirm",
                    ..
                }
        ),
        "{refused:?}"
    );
    assert!(
        bus.stats().publish_rejected > rejected_before,
        "{refused:?}"
    );

    bus.close().await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    delete_queues(&[&q]).await;
}

/// The Redis dedup store goes away while consuming (the proxy in front of it stops
/// listening and cuts its connections) and comes back. Documented behaviour: no message
/// is lost and none processed twice; while the store is unreachable, `next()` fails
/// with the store's error and each message it could not check goes back to the queue
/// (processing pauses, it does not fall back to an in-memory window that other
/// processes would not share).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_going_away_pauses_processing_and_loses_nothing() {
    const IDS: usize = 40;
    let redis = std::env::var("COURIER_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let proxy = courier_testkit::Proxy::start(support::socket_addr(&redis))
        .await
        .unwrap();
    let prefix = unique("redis-outage");
    let config = BusConfig::from_value(serde_json::json!({
        "urls": [amqp_url()],
        "dedup": {"store": "redis", "url": proxy.url(&redis), "prefix": prefix},
    }))
    .unwrap();
    let bus = Bus::connect(config).await.unwrap();
    let q = unique("redis-outage");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    for i in 0..IDS {
        let options = PublishOptions {
            message_id: Some(format!("{prefix}-{i}")),
            ..PublishOptions::default()
        };
        // Every id twice: the second copy must be skipped, before and after the outage.
        for _ in 0..2 {
            bus.publish("", &q, b"x".to_vec().into(), options.clone())
                .await
                .unwrap();
        }
    }
    let consumer = bus
        .consume(
            &q,
            ConsumeOptions {
                dedup: true,
                ..ConsumeOptions::default()
            },
        )
        .await
        .unwrap();
    let mut processed = std::collections::HashMap::<String, usize>::new();
    let mut failures = 0;
    let mut outage_done = false;
    while processed.len() < IDS {
        if processed.len() == IDS / 4 && !outage_done {
            proxy.stop();
            // Fails until the store is back; each unchecked message is requeued.
            for _ in 0..3 {
                match consumer.next(SHORT).await {
                    Err(_) => failures += 1,
                    Ok(Some(d)) => {
                        *processed.entry(d.message_id.clone().unwrap()).or_default() += 1;
                        d.ack().await.unwrap();
                    }
                    Ok(None) => panic!("the consumer closed"),
                }
            }
            proxy.listen().unwrap();
            outage_done = true;
            continue;
        }
        match tokio::time::timeout(Duration::from_secs(30), consumer.next(SHORT)).await {
            Ok(Ok(Some(d))) => {
                *processed.entry(d.message_id.clone().unwrap()).or_default() += 1;
                d.ack().await.unwrap();
            }
            Ok(Ok(None)) => panic!("the consumer closed"),
            // The store's connection may need a moment to come back.
            Ok(Err(_)) => failures += 1,
            Err(_) => panic!("no delivery within 30 s; processed {}", processed.len()),
        }
        assert!(failures < 200, "the store never came back");
    }
    assert!(failures >= 1, "the outage was seen by next()");
    assert!(processed.values().all(|n| *n == 1), "{processed:?}");
    // Every second copy is skipped once its first is processed: the queue drains.
    let mut left = 0;
    while let Ok(Some(d)) = consumer.next(Some(Duration::from_secs(2))).await {
        left += 1;
        d.ack().await.unwrap();
    }
    assert_eq!(left, 0, "no duplicate reached the application");
    consumer.close().await.unwrap();
    bus.close().await.unwrap();
    delete_queues(&[&q, &format!("{q}.dlq")]).await;
}

/// Consumers closed one after another on one connection, each right after it settles,
/// must never cost the connection: lapin's consumer used to send its own basic.cancel
/// when dropped, racing the channel's close, and RabbitMQ closes the whole connection
/// for a frame on a closed channel (seen as parity flakes: a later consume failed with
/// a broker error, or a connect error during the reconnect).
#[tokio::test]
async fn consumers_closed_one_after_another_never_cost_the_connection() {
    let bus = bus().await;
    let q = unique("churn");
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    for i in 0..60 {
        bus.publish(
            "",
            &q,
            format!("m{i}").into_bytes().into(),
            PublishOptions::default(),
        )
        .await
        .unwrap();
        let consumer = bus
            .consume(
                &q,
                ConsumeOptions {
                    prefetch: Some(1),
                    ..ConsumeOptions::default()
                },
            )
            .await
            .unwrap();
        let d = consumer.next(SHORT).await.unwrap().expect("a delivery");
        d.ack().await.unwrap();
        // As the parity drivers do: wait a moment for more, then close.
        let more = consumer.next(Some(Duration::from_millis(5))).await;
        assert_eq!(more.map(|_| ()).unwrap_err().kind(), ErrorKind::Timeout);
        if i % 2 == 0 {
            consumer.close().await.unwrap();
        } else {
            drop(consumer);
        }
    }
    assert_eq!(
        bus.stats().reconnects,
        0,
        "the connection was lost and remade"
    );
    bus.close().await.unwrap();
}
