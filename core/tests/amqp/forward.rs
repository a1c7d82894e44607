//! `Delivery::forward` under crashes: a worker process is killed between the next step's
//! confirm and its ack of the current step, again and again, and every order still
//! reaches the last step exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use courierkit::{Bus, ConsumeOptions, ErrorKind, PublishOptions, QueueOptions, Validate};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use super::support::queue_counts;
use super::{amqp_url, delete_queues, unique};

/// Where the worker consumes from and forwards to; unset in a normal run.
const WORKER_FROM: &str = "COURIER_TEST_FORWARD_FROM";
const WORKER_TO: &str = "COURIER_TEST_FORWARD_TO";

/// A worker dies at its third forward, after the confirm and before the ack.
const DIES_AT: u32 = 3;

/// The worker's tracing subscriber: it sees only courier's "next step confirmed; acking
/// this one" event, emitted by `forward` between the two, and aborts the process at the
/// [`DIES_AT`]th, which is the crash the test is about (SIGABRT, no unwinding, nothing
/// flushed).
struct DieAtForward {
    seen: AtomicU32,
}

impl Subscriber for DieAtForward {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "courierkit::forward"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == DIES_AT {
            std::process::abort();
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// 420 orders go through a worker (this test binary run again as a child) that forwards
/// each from the first queue to the second with `forward`; every worker is killed at
/// its third forward, between the confirm and the ack, so its order comes back and is
/// forwarded again by the next worker under the same derived id. The last step (a
/// deduplicating consumer here) must see each order exactly once, skip exactly one copy
/// per kill (about 210), and the first queue must end empty. Bounded: at most 420 workers, each
/// given 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_confirm_and_ack_every_order_reaches_the_last_step_once() {
    const ORDERS: usize = 420;
    const MIN_KILLS: u32 = 200;
    let bus = Bus::connect(
        courierkit::BusConfig::from_value(serde_json::json!({"urls": [amqp_url()]})).unwrap(),
    )
    .await
    .unwrap();
    let (first, last) = (unique("forward-first"), unique("forward-last"));
    for q in [&first, &last] {
        bus.declare_queue(q, &QueueOptions::default())
            .await
            .unwrap();
    }
    for i in 0..ORDERS {
        let options = PublishOptions {
            message_id: Some(format!("order-{i}")),
            ..PublishOptions::default()
        };
        let body = format!("order-{i}").into_bytes().into();
        bus.publish("", &first, body, options).await.unwrap();
    }
    let last_step = bus.consume(&last, ConsumeOptions::default()).await.unwrap();
    let mut arrived = HashMap::<String, u32>::new();
    let mut kills = 0;
    let exe = std::env::current_exe().unwrap();
    for _ in 0..ORDERS {
        if arrived.len() == ORDERS {
            break;
        }
        let mut worker = tokio::process::Command::new(&exe)
            .args([
                "forward::forwarding_worker",
                "--exact",
                "--include-ignored",
                "--nocapture",
            ])
            .env(WORKER_FROM, &first)
            .env(WORKER_TO, &last)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the test binary runs again as a worker");
        // Drain the last step while the worker runs, until it dies or everything arrived.
        let limit = tokio::time::sleep(Duration::from_secs(30));
        tokio::pin!(limit);
        let status = loop {
            tokio::select! {
                status = worker.wait() => break Some(status.unwrap()),
                next = last_step.next(Some(Duration::from_millis(50))) => match next {
                    Ok(Some(d)) => {
                        *arrived.entry(String::from_utf8_lossy(&d.body).into_owned()).or_default() += 1;
                        d.ack().await.unwrap();
                        if arrived.len() == ORDERS {
                            break None;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Timeout => {}
                    other => panic!("the last step failed: {other:?}"),
                },
                () = &mut limit => panic!("a worker ran 30 s"),
            }
        };
        match status {
            Some(status) => {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(
                    status.signal(),
                    Some(6),
                    "a worker dies by SIGABRT only: {status:?}"
                );
                kills += 1;
            }
            None => {
                worker.kill().await.unwrap();
            }
        }
    }
    // Every kill left one copy of an order in flight; it arrives and is skipped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while bus.stats().deduplicated < u64::from(kills) {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", bus.stats());
        match last_step.next(Some(Duration::from_millis(50))).await {
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            other => panic!("only skipped copies may arrive now: {other:?}"),
        }
    }
    // The worker killed once everything had arrived may have been between forwarding an
    // order and acking it: that order went back to the first step, a copy of one that
    // arrived. Whatever is left there must be such a copy.
    let rest = bus
        .consume(
            &first,
            ConsumeOptions {
                dedup: false,
                ..ConsumeOptions::default()
            },
        )
        .await
        .unwrap();
    loop {
        match rest.next(Some(Duration::from_secs(1))).await {
            Ok(Some(d)) => {
                let order = String::from_utf8_lossy(&d.body).into_owned();
                assert!(arrived.contains_key(&order), "{order} was left unforwarded");
                d.ack().await.unwrap();
            }
            Err(e) if e.kind() == ErrorKind::Timeout => break,
            other => panic!("the first step failed: {other:?}"),
        }
    }
    rest.close().await.unwrap();
    let twice: Vec<_> = arrived.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "arrived more than once: {twice:?}");
    assert_eq!(arrived.len(), ORDERS);
    assert!(kills >= MIN_KILLS, "only {kills} kills");
    assert_eq!(
        bus.stats().deduplicated,
        u64::from(kills),
        "one skipped copy per kill"
    );
    assert_eq!(queue_counts(&first).await.0, 0, "the first step is empty");
    println!("{ORDERS} orders, {kills} workers killed between confirm and ack, each order once");
    bus.close().await.unwrap();
    delete_queues(&[
        &first,
        &last,
        &format!("{first}.dlq"),
        &format!("{last}.dlq"),
    ])
    .await;
}

/// The worker of the test above: forwards from one queue to the other (prefetch 1, so
/// what it holds when it dies is the order being forwarded) until it aborts or its
/// parent kills it. Ignored, so a normal run does not count it; only its parent runs it.
#[tokio::test]
#[ignore = "a child process of killed_between_confirm_and_ack_every_order_reaches_the_last_step_once"]
async fn forwarding_worker() {
    let from = std::env::var(WORKER_FROM).expect("run by its parent test");
    let to = std::env::var(WORKER_TO).expect("run by its parent test");
    tracing::subscriber::set_global_default(DieAtForward {
        seen: AtomicU32::new(0),
    })
    .unwrap();
    let bus = Bus::connect(
        courierkit::BusConfig::from_value(serde_json::json!({"urls": [amqp_url()]})).unwrap(),
    )
    .await
    .unwrap();
    let options = ConsumeOptions {
        prefetch: Some(1),
        dedup: false,
    };
    let consumer = bus.consume(&from, options).await.unwrap();
    while let Some(d) = consumer.next(None).await.unwrap() {
        let body = d.body.clone();
        d.forward("", &to, body, PublishOptions::default())
            .await
            .unwrap();
    }
}
