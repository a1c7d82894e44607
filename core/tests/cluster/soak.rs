//! `make soak`: ten minutes (`COURIER_SOAK_SECS`) of mixed load on the three-node cluster
//! and the testkit's HTTP upstreams, with a fault every 2 s and a node restart each
//! minute. It reports what a long run shows and a short test cannot: resident memory
//! over time, leaked RPC entries, lost or duplicated messages. Not part of `make test`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier_testkit::{Action, Behavior, Faults, Proxy, Reset, Testkit};
use courierkit::{
    Bus, BusConfig, Client, ClientConfig, PublishOptions, QueueOptions, Request, RequestOptions,
    Validate,
};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::support::socket_addr;
use super::{cluster, dedup_consumer, delete_queue, from_node, ticks, urls};

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[derive(Default)]
struct Tally {
    http_ok: AtomicU64,
    http_failed: AtomicU64,
    published: AtomicU64,
    publish_failed: AtomicU64,
    rpc_ok: AtomicU64,
    rpc_failed: AtomicU64,
    faults: AtomicU64,
    /// Acks that failed because their connection went down (the broker redelivers).
    ack_failed: AtomicU64,
    restarts: AtomicU64,
}

fn bus_config(urls: Vec<String>) -> BusConfig {
    BusConfig::from_value(serde_json::json!({
        "urls": urls,
        "reconnect": {"base_delay_ms": 100, "max_delay_ms": 2000},
        "publish_deadline_ms": 60_000,
        // About 100 s of publishes: re-sends come within seconds, and a window that is
        // full by minute 2 keeps its bytes out of the comparison of later minutes.
        "dedup": {"store": "memory", "capacity": 20_000},
    }))
    .unwrap()
}

/// The fault for second `2 * step` of the run, on the AMQP proxy or an HTTP upstream;
/// each lifts the previous one.
fn inject(step: u64, proxy: &Proxy, kit: &Testkit) {
    lift(proxy, kit);
    match step % 4 {
        0 => proxy.reset(),
        1 => proxy.set_faults(Faults {
            latency_ms: 50,
            ..Faults::default()
        }),
        2 => kit.set_behavior(
            0,
            Behavior {
                failure_ratio: 0.5,
                seed: step,
                ..Behavior::default()
            },
        ),
        _ => kit.set_behavior(
            1,
            Behavior {
                failure_ratio: 0.5,
                failure: Action {
                    reset: Some(Reset::BeforeHeaders),
                    ..Action::default()
                },
                seed: step,
                ..Behavior::default()
            },
        ),
    }
}

/// Lifts every fault; also clears the upstreams' request logs, which would otherwise
/// grow with the run and blur the memory figures.
fn lift(proxy: &Proxy, kit: &Testkit) {
    proxy.set_faults(Faults::default());
    kit.reset();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "ten minutes: make soak"]
async fn soak() {
    let secs: u64 = std::env::var("COURIER_SOAK_SECS")
        .ok()
        .map_or(600, |s| s.parse().expect("COURIER_SOAK_SECS: seconds"));
    let urls = urls();
    let kit = Testkit::start(2).await.unwrap();
    let client = Client::new(
        ClientConfig::from_value(serde_json::json!({
            "services": {"upstream": {"endpoints": kit.urls()}}
        }))
        .unwrap(),
    )
    .unwrap();
    let proxy = Proxy::start(socket_addr(&urls[0])).await.unwrap();
    // The publisher and requester reach node 1 through the proxy (heartbeat 2 s, so a
    // blackholed or slow link is noticed); the consumer and RPC server start on node 2.
    let front = bus_config(vec![
        format!("{}?heartbeat=2", proxy.url(&urls[0])),
        urls[1].clone(),
        urls[2].clone(),
    ]);
    let publisher = Bus::connect(front).await.unwrap();
    let back = Bus::connect(bus_config(from_node(&urls, 2))).await.unwrap();
    let id = uuid::Uuid::new_v4();
    let q = format!("courier-test.soak.{id}");
    let rpc = format!("courier-test.soak.rpc.{id}");
    publisher
        .declare_queue(&q, &QueueOptions::default())
        .await
        .unwrap();
    back.declare_queue(&rpc, &QueueOptions::default())
        .await
        .unwrap();

    let tally = Arc::new(Tally::default());
    // `stop` ends the load (HTTP, publishes, requests); `drained` the consumer and server.
    let stop = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicBool::new(false));
    let confirmed = Arc::new(Mutex::new(Vec::<u64>::new()));
    // Times each message `s-{i}` was processed, at index i: one byte a message, so the
    // soak's own bookkeeping stays small beside what it measures.
    let processed = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut tasks = Vec::new();
    let mut receivers = Vec::new();

    // HTTP: 4 callers, each a GET every 10 ms.
    for _ in 0..4 {
        let (client, tally, stop) = (client.clone(), Arc::clone(&tally), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match client.call(Request::new("GET", "upstream", "/soak")).await {
                    Ok(r) if r.status == 200 => tally.http_ok.fetch_add(1, Ordering::Relaxed),
                    _ => tally.http_failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    // Publishes: about 200 a second, 16 in flight.
    tasks.push(tokio::spawn({
        let (publisher, q, tally, stop, confirmed) = (
            publisher.clone(),
            q.clone(),
            Arc::clone(&tally),
            Arc::clone(&stop),
            Arc::clone(&confirmed),
        );
        async move {
            ticks(Duration::from_millis(5))
                .zip(futures_util::stream::iter(0u64..))
                .map(|(_, i)| i)
                .take_while(|_| std::future::ready(!stop.load(Ordering::SeqCst)))
                .for_each_concurrent(16, |i| {
                    let (publisher, q, tally, confirmed) = (&publisher, &q, &tally, &confirmed);
                    async move {
                        let options = PublishOptions {
                            message_id: Some(format!("s-{i}")),
                            persistent: true,
                            ..PublishOptions::default()
                        };
                        let body = bytes::Bytes::from(vec![b'x'; 512]);
                        match publisher.publish("", q, body, options).await {
                            Ok(_) => {
                                tally.published.fetch_add(1, Ordering::Relaxed);
                                confirmed.lock().unwrap().push(i);
                            }
                            Err(e) => {
                                tally.publish_failed.fetch_add(1, Ordering::Relaxed);
                                eprintln!("soak: publish s-{i} failed: {e}");
                            }
                        }
                    }
                })
                .await;
        }
    }));
    // The consumer, with dedup.
    let consumer = dedup_consumer(&back, &q).await;
    receivers.push(tokio::spawn({
        let (processed, drained, tally) = (
            Arc::clone(&processed),
            Arc::clone(&drained),
            Arc::clone(&tally),
        );
        async move {
            while !drained.load(Ordering::SeqCst) {
                let Ok(Some(d)) = consumer.next(Some(Duration::from_secs(1))).await else {
                    continue;
                };
                let i: usize = d.message_id.as_deref().unwrap()[2..].parse().unwrap();
                {
                    let mut processed = processed.lock().unwrap();
                    if processed.len() <= i {
                        processed.resize(i + 1, 0);
                    }
                    processed[i] = processed[i].saturating_add(1);
                }
                // A failed ack (its connection gone) is redelivered and skipped by dedup.
                if d.ack().await.is_err() {
                    tally.ack_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            consumer.close().await.unwrap();
        }
    }));
    // RPC: a server on the back bus, a request every 50 ms from the front one.
    let server = back.serve(&rpc).await.unwrap();
    receivers.push(tokio::spawn({
        let (drained, tally) = (Arc::clone(&drained), Arc::clone(&tally));
        async move {
            while !drained.load(Ordering::SeqCst) {
                let Ok(Some(d)) = server.next(Some(Duration::from_secs(1))).await else {
                    continue;
                };
                let _ = d.reply(d.body.clone(), Default::default()).await;
                if d.ack().await.is_err() {
                    tally.ack_failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            server.close().await.unwrap();
        }
    }));
    tasks.push(tokio::spawn({
        let (publisher, rpc, tally, stop) = (
            publisher.clone(),
            rpc.clone(),
            Arc::clone(&tally),
            Arc::clone(&stop),
        );
        async move {
            while !stop.load(Ordering::SeqCst) {
                let options = RequestOptions {
                    timeout: Duration::from_secs(2),
                    ..RequestOptions::default()
                };
                match publisher
                    .request(&rpc, bytes::Bytes::from_static(b"ping"), options)
                    .await
                {
                    Ok(_) => tally.rpc_ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => tally.rpc_failed.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }));

    // Faults every 2 s; a node stopped and started each minute (1, 2, 3, 1, ...), beside
    // the faults (a restart takes 20-40 s).
    let started = Instant::now();
    let mut rss = Vec::new();
    let mut step = 0u64;
    let mut restart: Option<tokio::task::JoinHandle<()>> = None;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        step += 1;
        inject(step, &proxy, &kit);
        tally.faults.fetch_add(1, Ordering::Relaxed);
        if step % 30 == 0 {
            if let Some(previous) = restart.take() {
                previous.await.unwrap();
            }
            let node = ((step / 30 - 1) % 3 + 1).to_string();
            let tally = Arc::clone(&tally);
            restart = Some(tokio::task::spawn_blocking(move || {
                cluster(&["stop-node", &node]);
                cluster(&["start", &node]);
                tally.restarts.fetch_add(1, Ordering::Relaxed);
            }));
        }
        let minute = started.elapsed().as_secs() / 60;
        if minute as usize > rss.len() {
            rss.push(rss_kib());
            eprintln!(
                "soak: minute {minute} rss {} KiB; published {}, processed {}",
                rss_kib(),
                tally.published.load(Ordering::Relaxed),
                processed.lock().unwrap().iter().filter(|n| **n > 0).count()
            );
        }
    }
    if let Some(restart) = restart {
        restart.await.unwrap();
    }
    let rss_end = rss_kib();
    lift(&proxy, &kit);
    let ran = started.elapsed();

    // Stop the load, then let the consumer process every confirmed message.
    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(
        Duration::from_secs(120),
        futures_util::future::join_all(tasks),
    )
    .await
    .expect("the load stops within 120 s");
    let confirmed_ids = confirmed.lock().unwrap().clone();
    let limit = Instant::now() + Duration::from_secs(120);
    let done = |processed: &[u8]| {
        confirmed_ids
            .iter()
            .all(|&i| processed.get(i as usize).is_some_and(|n| *n > 0))
    };
    while Instant::now() < limit && !done(&processed.lock().unwrap()) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Late copies would show now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drained.store(true, Ordering::SeqCst);
    for receiver in receivers {
        receiver.await.unwrap();
    }
    let processed = processed.lock().unwrap().clone();
    let lost: Vec<_> = confirmed_ids
        .iter()
        .filter(|&&i| processed.get(i as usize).is_none_or(|n| *n == 0))
        .collect();
    let twice = processed.iter().filter(|n| **n > 1).count();
    let (front_stats, back_stats) = (publisher.stats(), back.stats());
    let t = &tally;
    println!(
        "soak: {ran:?}, {} faults, {} node restarts; http {} ok / {} failed; {} published, \
         {} publish failures, {} processed, {} lost, {twice} twice; rpc {} ok / {} failed, \
         rpc_in_flight {}; rss by minute {rss:?} KiB, end {rss_end} KiB; front {front_stats:?}; \
         back {back_stats:?}",
        t.faults.load(Ordering::Relaxed),
        t.restarts.load(Ordering::Relaxed),
        t.http_ok.load(Ordering::Relaxed),
        t.http_failed.load(Ordering::Relaxed),
        confirmed_ids.len(),
        t.publish_failed.load(Ordering::Relaxed),
        processed.iter().filter(|n| **n > 0).count(),
        lost.len(),
        t.rpc_ok.load(Ordering::Relaxed),
        t.rpc_failed.load(Ordering::Relaxed),
        front_stats.rpc_in_flight,
    );
    assert!(lost.is_empty(), "lost: {:?}", &lost[..lost.len().min(10)]);
    assert_eq!(twice, 0, "none processed twice");
    assert_eq!(front_stats.rpc_in_flight, 0, "no RPC entry leaked");
    // Every publish and answered request was confirmed; only a failed request may not be.
    assert!(
        front_stats.published - front_stats.confirmed <= t.rpc_failed.load(Ordering::Relaxed),
        "{front_stats:?}"
    );
    assert_eq!(
        back_stats.delivered,
        back_stats.acked + t.ack_failed.load(Ordering::Relaxed)
    );
    assert_eq!(t.publish_failed.load(Ordering::Relaxed), 0);
    publisher.close().await.unwrap();
    back.close().await.unwrap();
    delete_queue(&urls[1], &q).await;
    delete_queue(&urls[1], &rpc).await;
}
