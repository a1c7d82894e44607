//! Recovery against a real RabbitMQ that the test disturbs with `rabbitmqctl`: the
//! connection is force-closed, or the broker application restarted, while 10,000
//! confirmed publishes and a dedup consumer are running. No message may be lost, and
//! each must be processed exactly once.
//!
//! These tests disturb every courier connection on the broker, so they live in their
//! own test binary (cargo runs test binaries one at a time) and take a lock so they
//! also run one at a time within it.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use courierkit::{Bus, BusConfig, ConsumeOptions, PublishOptions, QueueOptions, Validate};
use futures_util::StreamExt;
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep};

#[path = "../support/mod.rs"]
mod support;
use courier_testkit::Proxy;
use support::amqp_url;

const MESSAGES: usize = 10_000;
const PACE: Duration = Duration::from_micros(600);

static SERIAL: Mutex<()> = Mutex::const_new(());

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl must be on PATH (tests/scripts/ensure-rabbitmq.sh installs it)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Force-closes every connection courier opened (their client properties name them "courier").
fn close_courier_connections() -> usize {
    let listing = rabbitmqctl(&["list_connections", "-q", "pid", "client_properties"]);
    let pids: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains("courier"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for pid in &pids {
        rabbitmqctl(&["close_connection", pid, "closed by the recovery test"]);
    }
    pids.len()
}

async fn bus() -> Bus {
    bus_at(&[amqp_url()]).await
}

async fn bus_at(urls: &[String]) -> Bus {
    let config = BusConfig::from_value(serde_json::json!({
        "urls": urls,
        "reconnect": {"base_delay_ms": 50, "max_delay_ms": 1000},
        "publish_deadline_ms": 120_000,
    }))
    .unwrap();
    Bus::connect(config)
        .await
        .expect("RabbitMQ must be running")
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        sleep(Duration::from_millis(10)).await;
    }
}

/// Publishes `MESSAGES` messages with known ids while a dedup consumer processes them;
/// `disturb` runs once a fifth of them are confirmed. Returns how often each id was
/// processed.
async fn publish_and_consume_through(disturb: impl AsyncFnOnce()) -> HashMap<String, usize> {
    let bus = bus().await;
    let q = format!("courier-test.recovery.{}", uuid::Uuid::now_v7());
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();

    let processed = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let consumer = {
        let bus = bus.clone();
        let q = q.clone();
        let processed = processed.clone();
        tokio::spawn(async move {
            let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
            loop {
                let unique = processed.lock().unwrap().len();
                if unique == MESSAGES {
                    // Anything still coming is a duplicate the dedup must swallow.
                    match consumer.next(Some(Duration::from_secs(2))).await {
                        Err(e) if e.kind() == courierkit::ErrorKind::Timeout => return,
                        Ok(Some(d)) => {
                            *processed
                                .lock()
                                .unwrap()
                                .entry(d.message_id.clone().unwrap())
                                .or_default() += 1;
                            let _ = d.ack().await;
                        }
                        other => panic!("consumer ended: {other:?}"),
                    }
                    continue;
                }
                let d = consumer
                    .next(Some(Duration::from_secs(60)))
                    .await
                    .unwrap()
                    .expect("the consumer survives the disturbance");
                *processed
                    .lock()
                    .unwrap()
                    .entry(d.message_id.clone().unwrap())
                    .or_default() += 1;
                // An ack on a lost connection fails; the broker redelivers and the
                // dedup store, which recorded the id first, skips the copy.
                let _ = d.ack().await;
            }
        })
    };

    let publisher = {
        let bus = bus.clone();
        let q = q.clone();
        tokio::spawn(async move {
            // Paced over about six seconds, so that the disturbance (rabbitmqctl takes
            // a second to start) lands while publishes are in flight.
            let start = Instant::now();
            let publishes = (0..MESSAGES).map(move |i| {
                let bus = bus.clone();
                let q = q.clone();
                async move {
                    tokio::time::sleep_until(start + PACE * i as u32).await;
                    let options = PublishOptions {
                        message_id: Some(format!("m-{i}")),
                        ..PublishOptions::default()
                    };
                    bus.publish("", &q, bytes::Bytes::from(vec![b'x'; 256]), options)
                        .await
                }
            });
            futures_util::stream::iter(publishes)
                .buffer_unordered(256)
                .collect::<Vec<_>>()
                .await
        })
    };

    wait_for("a fifth of the publishes", Duration::from_secs(60), || {
        bus.stats().confirmed >= (MESSAGES / 5) as u64
    })
    .await;
    disturb().await;

    let results = tokio::time::timeout(Duration::from_secs(240), publisher)
        .await
        .expect("publishing finishes")
        .unwrap();
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "publishes failed: {:?}",
        &failed[..failed.len().min(3)]
    );
    match tokio::time::timeout(Duration::from_secs(240), consumer).await {
        Ok(joined) => joined.expect("the consumer task ends without a panic"),
        Err(_) => {
            let unique = processed.lock().unwrap().len();
            panic!(
                "consuming did not finish: {unique} ids processed; {:?}",
                bus.stats()
            );
        }
    }

    let stats = bus.stats();
    assert!(stats.reconnects >= 1, "{stats:?}");
    eprintln!("recovery stats: {stats:?}");
    bus.close().await.unwrap();
    support::delete_queues(&[&q, &format!("{q}.dlq")]).await;
    processed.lock().unwrap().clone()
}

fn assert_exactly_once(processed: &HashMap<String, usize>) {
    let missing: Vec<_> = (0..MESSAGES)
        .map(|i| format!("m-{i}"))
        .filter(|id| !processed.contains_key(id))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let twice: Vec<_> = processed.iter().filter(|(_, n)| **n != 1).take(5).collect();
    assert!(twice.is_empty(), "processed more than once: {twice:?}");
    assert_eq!(processed.len(), MESSAGES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_connection_close_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let processed = publish_and_consume_through(async || {
        let closed = close_courier_connections();
        assert!(
            closed >= 1,
            "the test must have closed the bus's connection"
        );
    })
    .await;
    assert_exactly_once(&processed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_and_duplicates_nothing() {
    let _serial = SERIAL.lock().await;
    let processed = publish_and_consume_through(async || {
        rabbitmqctl(&["stop_app"]);
        sleep(Duration::from_secs(1)).await;
        rabbitmqctl(&["start_app"]);
    })
    .await;
    assert_exactly_once(&processed);
}

/// Publishes on the wire but unconfirmed when the connection dies are re-sent on the
/// next one. The proxy swallows them, so none reached the broker: the queue then holds
/// exactly the re-sent copies, one per publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconfirmed_publishes_are_resent_on_the_next_connection() {
    const N: usize = 20;
    let _serial = SERIAL.lock().await;
    let proxy = Proxy::start(support::socket_addr(&amqp_url()))
        .await
        .unwrap();
    let bus = bus_at(&[proxy.url(&amqp_url())]).await;
    let q = format!("courier-test.recovery.resend.{}", uuid::Uuid::new_v4());
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    proxy.hold();
    let pending = tokio::spawn({
        let (bus, q) = (bus.clone(), q.clone());
        async move {
            let publishes = (0..N).map(|i| {
                let options = PublishOptions {
                    message_id: Some(format!("r-{i}")),
                    ..PublishOptions::default()
                };
                bus.publish("", &q, bytes::Bytes::from(vec![b'x'; 256]), options)
            });
            futures_util::future::join_all(publishes).await
        }
    });
    wait_for("every publish on the wire", Duration::from_secs(60), || {
        proxy.held_bytes() >= N * 256
    })
    .await;
    assert_eq!(bus.stats().confirmed, 0, "nothing reached the broker");
    proxy.cut();
    let results = tokio::time::timeout(Duration::from_secs(120), pending)
        .await
        .expect("the publishes finish after the reconnect")
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stats = bus.stats();
    assert!(stats.resent >= N as u64, "each was re-sent: {stats:?}");
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert_eq!(proxy.accepted(), 2, "one connection, then one reconnect");
    assert_eq!(
        support::queue_counts(&q).await.0,
        N as u32,
        "each publish stored once"
    );
    bus.close().await.unwrap();
    support::delete_queues(&[&q, &format!("{q}.dlq")]).await;
}

/// When the broker behind the first URL goes away, the bus reconnects over the next URL
/// and declares its topology again: the queue, deleted meanwhile (as on a node that never
/// had it), exists again — a mandatory publish to it is routed — and the consumer is
/// subscribed to it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_rotates_to_the_next_url_and_redeclares_the_topology() {
    let _serial = SERIAL.lock().await;
    let first = Proxy::start(support::socket_addr(&amqp_url()))
        .await
        .unwrap();
    let second = Proxy::start(support::socket_addr(&amqp_url()))
        .await
        .unwrap();
    second.stop();
    let bus = bus_at(&[first.url(&amqp_url()), second.url(&amqp_url())]).await;
    let q = format!("courier-test.recovery.rotate.{}", uuid::Uuid::new_v4());
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    first.stop();
    support::delete_queues(&[&q]).await;
    second.listen().unwrap();
    let options = PublishOptions {
        message_id: Some("after-rotation".into()),
        ..PublishOptions::default()
    };
    bus.publish("", &q, bytes::Bytes::from_static(b"after"), options)
        .await
        .expect("routed: the queue was declared again on the new connection");
    let d = consumer
        .next(Some(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the consumer is subscribed again");
    assert_eq!(d.message_id.as_deref(), Some("after-rotation"));
    d.ack().await.unwrap();
    assert_eq!(first.accepted(), 1, "the first URL is not used again");
    assert!(second.accepted() >= 1, "the bus moved to the second URL");
    assert!(bus.stats().reconnects >= 1);
    consumer.close().await.unwrap();
    bus.close().await.unwrap();
    support::delete_queues(&[&q, &format!("{q}.dlq")]).await;
}

/// A new consumer on a bus whose broker is unreachable fails with a timeout (after the
/// 30 s every setup operation gets) instead of waiting for the broker for an hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_consumer_does_not_wait_an_hour_for_a_lost_broker() {
    let proxy = Proxy::start(support::socket_addr(&amqp_url()))
        .await
        .unwrap();
    let bus = bus_at(&[proxy.url(&amqp_url())]).await;
    proxy.stop();
    // Right after the cut, a consume can still meet the dying connection and fail at
    // once with Connect; once the bus knows the broker is gone, it waits, bounded.
    let mut waited = None;
    for _ in 0..50 {
        let consumed = tokio::time::timeout(
            Duration::from_secs(120),
            bus.consume(
                "courier-test.recovery.unreachable",
                ConsumeOptions::default(),
            ),
        )
        .await
        .expect("consume gives up on its own");
        match consumed {
            Err(e) if e.kind() == courierkit::ErrorKind::Connect => {
                sleep(Duration::from_millis(100)).await
            }
            other => {
                waited = Some(other.err().expect("no broker, no consumer"));
                break;
            }
        }
    }
    let err = waited.expect("the bus noticed the lost broker");
    assert_eq!(err.kind(), courierkit::ErrorKind::Timeout, "{err}");
    bus.close().await.unwrap();
}

/// A network partition between the client and its broker (the proxy's blackhole: no
/// bytes either way, nothing closed) is noticed by the AMQP heartbeat (2 s here, from
/// the URL's `heartbeat` query), the bus moves to the next URL, the publishes that were
/// on the wire are re-sent there, and a request waiting for its reply fails with its
/// timeout and leaves no correlation entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_is_detected_by_heartbeat_and_the_bus_moves_on() {
    const N: usize = 20;
    let _serial = SERIAL.lock().await;
    let proxy = Proxy::start(support::socket_addr(&amqp_url()))
        .await
        .unwrap();
    let partitioned = format!("{}?heartbeat=2", proxy.url(&amqp_url()));
    let bus = bus_at(&[partitioned, amqp_url()]).await;
    let q = format!("courier-test.recovery.partition.{}", uuid::Uuid::new_v4());
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    let silent = format!("courier-test.recovery.silent.{}", uuid::Uuid::new_v4());
    bus.declare_queue(&silent, &QueueOptions::default())
        .await
        .unwrap();

    proxy.set_faults(courier_testkit::Faults {
        blackhole: true,
        ..courier_testkit::Faults::default()
    });
    let started = Instant::now();
    let request = tokio::spawn({
        let (bus, silent) = (bus.clone(), silent.clone());
        async move {
            let options = courierkit::RequestOptions {
                timeout: Duration::from_secs(5),
                ..courierkit::RequestOptions::default()
            };
            bus.request(&silent, bytes::Bytes::from_static(b"?"), options)
                .await
        }
    });
    let publishes = tokio::spawn({
        let (bus, q) = (bus.clone(), q.clone());
        async move {
            let publishes = (0..N).map(|i| {
                let options = PublishOptions {
                    message_id: Some(format!("p-{i}")),
                    ..PublishOptions::default()
                };
                bus.publish("", &q, bytes::Bytes::from(vec![b'x'; 256]), options)
            });
            futures_util::future::join_all(publishes).await
        }
    });
    wait_for("the partition noticed", Duration::from_secs(60), || {
        bus.stats().reconnects >= 1
    })
    .await;
    let detected = started.elapsed();
    println!("partition detected and left after {detected:?} (heartbeat 2 s)");
    let results = tokio::time::timeout(Duration::from_secs(120), publishes)
        .await
        .expect("the publishes finish on the next broker")
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let failed = request.await.unwrap().unwrap_err();
    assert!(
        matches!(
            failed,
            courierkit::Error::Timeout { .. } | courierkit::Error::Connect { .. }
        ),
        "{failed:?}"
    );
    let stats = bus.stats();
    assert_eq!(
        stats.rpc_in_flight, 0,
        "no correlation entry left: {stats:?}"
    );
    assert_eq!(
        (stats.published, stats.confirmed),
        (N as u64, N as u64),
        "every publish confirmed (the request, refused or timed out, is neither): {stats:?}"
    );
    assert_eq!(
        support::queue_counts(&q).await.0,
        N as u32,
        "each publish stored once"
    );
    bus.close().await.unwrap();
    support::delete_queues(&[&q, &format!("{q}.dlq"), &silent, &format!("{silent}.dlq")]).await;
}

/// Delay queues are topology like any other: one deleted while the bus was away is
/// declared again on the new connection, so a delayed publish after the reconnect is
/// routed and delivered, no earlier than its delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_queues_are_declared_again_after_a_reconnect() {
    let _serial = SERIAL.lock().await;
    let proxy = Proxy::start(support::socket_addr(&amqp_url()))
        .await
        .unwrap();
    let bus = bus_at(&[proxy.url(&amqp_url())]).await;
    let id = uuid::Uuid::new_v4();
    let (exchange, q) = (
        format!("courier-test.recovery.delayed.{id}"),
        format!("courier-test.recovery.delayed.{id}"),
    );
    bus.declare_exchange(&exchange, courierkit::ExchangeKind::Topic)
        .await
        .unwrap();
    bus.declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    bus.bind(&q, &exchange, "#").await.unwrap();
    let delayed = |n: &str| PublishOptions {
        message_id: Some(n.to_owned()),
        delay: Some(Duration::from_millis(200)),
        ..PublishOptions::default()
    };
    let body = || bytes::Bytes::from_static(b"later");
    bus.publish(&exchange, "order.placed", body(), delayed("before"))
        .await
        .unwrap();
    let consumer = bus.consume(&q, ConsumeOptions::default()).await.unwrap();
    let d = consumer
        .next(Some(Duration::from_secs(10)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.message_id.as_deref(), Some("before"));
    d.ack().await.unwrap();

    // Away: the delay queue and its exchange are deleted behind the bus's back.
    proxy.stop();
    let delay_queue = format!("courier.delay.192ms.{exchange}");
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete(delay_queue.as_str().into(), Default::default())
        .await
        .unwrap();
    ch.exchange_delete(delay_queue.as_str().into(), Default::default())
        .await
        .unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    proxy.listen().unwrap();

    let sent = Instant::now();
    bus.publish(&exchange, "order.placed", body(), delayed("after"))
        .await
        .expect("the delay queue was declared again on the new connection");
    let d = consumer
        .next(Some(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the consumer is subscribed again");
    assert_eq!(d.message_id.as_deref(), Some("after"));
    assert!(sent.elapsed() >= Duration::from_millis(200));
    assert_eq!(d.routing_key, "order.placed");
    d.ack().await.unwrap();
    assert!(bus.stats().reconnects >= 1);
    consumer.close().await.unwrap();
    bus.close().await.unwrap();
    support::delete_queues(&[&q, &format!("{q}.dlq"), &delay_queue]).await;
}
