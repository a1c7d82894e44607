//! `make soak`: ten minutes (`COURIER_SOAK_SECS`) of mixed load on the three-node cluster
//! and the testkit's HTTP upstreams, with a fault every 2 s and a node restart each
//! minute. It reports what a long run shows and a short test cannot: resident memory
//! over time, leaked RPC entries, lost or duplicated messages. Not part of `make test`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier_testkit::{Action, Behavior, Faults, Proxy, Reset, Testkit};
use courierkit::{
    Bus, BusConfig, Client, ClientConfig, ConsumeOptions, PublishOptions, QueueOptions, Request,
    RequestOptions, Validate,
};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::support::socket_addr;
use super::{cluster, delete_queue, from_node, ticks, urls};

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
    restarts: AtomicU64,
}

fn bus_config(urls: Vec<String>) -> BusConfig {
    BusConfig::from_value(serde_json::json!({
        "urls": urls,
        "reconnect": {"base_delay_ms": 100, "max_delay_ms": 2000},
        "publish_deadline_ms": 60_000,
        "dedup": {"store": "memory", "capacity": 1_000_000},
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

fn lift(proxy: &Proxy, kit: &Testkit) {
    proxy.set_faults(Faults::default());
    for upstream in 0..2 {
        kit.set_behavior(upstream, Behavior::default());
    }
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
    let processed = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
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
    let consumer = back
        .consume(
            &q,
            ConsumeOptions {
                prefetch: Some(100),
                dedup: true,
            },
        )
        .await
        .unwrap();
    receivers.push(tokio::spawn({
        let (processed, drained) = (Arc::clone(&processed), Arc::clone(&drained));
        async move {
            while !drained.load(Ordering::SeqCst) {
                let Ok(Some(d)) = consumer.next(Some(Duration::from_secs(1))).await else {
                    continue;
                };
                *processed
                    .lock()
                    .unwrap()
                    .entry(d.message_id.clone().unwrap())
                    .or_default() += 1;
                // A failed ack (its connection gone) is redelivered and skipped by dedup.
                let _ = d.ack().await;
            }
            consumer.close().await.unwrap();
        }
    }));
    // RPC: a server on the back bus, a request every 50 ms from the front one.
    let server = back.serve(&rpc).await.unwrap();
    receivers.push(tokio::spawn({
        let drained = Arc::clone(&drained);
        async move {
            while !drained.load(Ordering::SeqCst) {
                let Ok(Some(d)) = server.next(Some(Duration::from_secs(1))).await else {
                    continue;
                };
                let _ = d.reply(d.body.clone(), Default::default()).await;
                let _ = d.ack().await;
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

    // Faults every 2 s; a node stopped and started each minute (1, 2, 3, 1, ...).
    let started = Instant::now();
    let mut rss_minute_1 = None;
    let mut step = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        step += 1;
        inject(step, &proxy, &kit);
        tally.faults.fetch_add(1, Ordering::Relaxed);
        if step % 30 == 0 {
            let node = ((step / 30 - 1) % 3 + 1).to_string();
            tokio::task::spawn_blocking(move || {
                cluster(&["stop-node", &node]);
                cluster(&["start", &node]);
            })
            .await
            .unwrap();
            tally.restarts.fetch_add(1, Ordering::Relaxed);
        }
        if rss_minute_1.is_none() && started.elapsed() >= Duration::from_secs(60) {
            rss_minute_1 = Some(rss_kib());
        }
        if step % 15 == 0 {
            eprintln!(
                "soak: {:?} rss {} KiB; published {}, processed {}",
                started.elapsed(),
                rss_kib(),
                tally.published.load(Ordering::Relaxed),
                processed.lock().unwrap().len()
            );
        }
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
    while Instant::now() < limit && processed.lock().unwrap().len() < confirmed_ids.len() {
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
        .filter(|i| !processed.contains_key(&format!("s-{i}")))
        .collect();
    let twice = processed.values().filter(|n| **n > 1).count();
    let (front_stats, back_stats) = (publisher.stats(), back.stats());
    let t = &tally;
    println!(
        "soak: {ran:?}, {} faults, {} node restarts; http {} ok / {} failed; {} published, \
         {} publish failures, {} processed, {} lost, {twice} twice; rpc {} ok / {} failed, \
         rpc_in_flight {}; rss minute 1 {} KiB, end {rss_end} KiB; front {front_stats:?}; \
         back {back_stats:?}",
        t.faults.load(Ordering::Relaxed),
        t.restarts.load(Ordering::Relaxed),
        t.http_ok.load(Ordering::Relaxed),
        t.http_failed.load(Ordering::Relaxed),
        confirmed_ids.len(),
        t.publish_failed.load(Ordering::Relaxed),
        processed.len(),
        lost.len(),
        t.rpc_ok.load(Ordering::Relaxed),
        t.rpc_failed.load(Ordering::Relaxed),
        front_stats.rpc_in_flight,
        rss_minute_1.unwrap_or(0),
    );
    assert!(lost.is_empty(), "lost: {:?}", &lost[..lost.len().min(10)]);
    assert_eq!(twice, 0, "none processed twice");
    assert_eq!(front_stats.rpc_in_flight, 0, "no RPC entry leaked");
    assert_eq!(t.publish_failed.load(Ordering::Relaxed), 0);
    publisher.close().await.unwrap();
    back.close().await.unwrap();
    delete_queue(&urls[1], &q).await;
    delete_queue(&urls[1], &rpc).await;
}
