//! `make bench`: courier's overhead against the libraries it is built on, measured in
//! the same process against the same loopback server or broker, so the ratio is the
//! number to read (absolute figures depend on the machine).
//!
//! - http: N GET calls at concurrency 1 and 64 against a lean loopback upstream (a fixed
//!   response, no parsing beyond the header end, no logging: the testkit records every
//!   header and would bill its own cost to whichever client sends more headers),
//!   courier's `Client` with its full policy stack (retry, budget, breaker, limit,
//!   deadline header) against a bare `reqwest::Client`.
//! - amqp: N confirmed publishes of 256-byte persistent messages with 256 in flight,
//!   courier's `Bus::publish` against lapin publishing on one confirm channel, twice:
//!   lapin bare, and lapin sending what courier sends on every message (a UUIDv7
//!   message id and a `traceparent` header), which isolates courier's own cost.
//!
//! - rpc: sequential request/reply round trips against one raw-lapin echo server,
//!   courier's `Bus::request` against a raw lapin direct reply-to loop; prints p50/p99.
//!
//! - balance: 4 testkit upstreams, one answering 50 ms slower; 2,000 calls at
//!   concurrency 16 per balancer; prints the slow endpoint's share of the calls and
//!   p50/p95 call latency (a table of courier against itself: the balancers differ).
//!
//! - hedge: 4 testkit upstreams, one answering 10% of its requests 100 ms late (a slow
//!   tail), balanced round robin (p2c_ewma would mostly steer around the slow endpoint,
//!   hiding the tail); 1,000 calls at concurrency 8, unhedged against hedged
//!   (`delay_ms` 10);
//!   prints p50/p99 call latency and the extra requests the hedges cost (a table of
//!   courier against itself).
//!
//! Each figure is the median of [`ROUNDS`] alternating rounds (peer, courier, ...).
//!
//! - http-ops: `http-ops courier|reqwest N [C]` makes N GETs of one client, C at a time
//!   (default 1), and nothing else, for instruction counts under `valgrind --tool=callgrind` (steadier
//!   than wall time on a noisy machine): the difference between two runs' totals over
//!   the difference in N is the instructions per call, upstream included, the same for
//!   both clients (bench/callgrind.sh http).
//!
//! - amqp-ops: `amqp-ops courier|lapin N`, the same for N confirmed publishes with 256
//!   in flight, lapin sending what courier sends (bench/callgrind.sh amqp).
//!
//! - amqp-memory: `amqp-memory [N]`, the peak RSS N confirmed publishes in flight at
//!   once add (default 10,000), courier against lapin sending what courier sends, each
//!   side in a child process of its own (`amqp-memory-child courier|lapin N`).
//!
//! Usage: `courier-bench [http|amqp|rpc|balance|hedge|all] [--json PATH]`, or
//! `courier-bench http-ops courier|reqwest N [C]`, `courier-bench amqp-ops courier|lapin N`,
//! or `courier-bench amqp-memory [N]`.

use std::sync::Arc;
use std::time::Instant;

use courierkit::{
    Bus, BusConfig, Client, ClientConfig, PublishOptions, QueueOptions, Request, RequestOptions,
    TraceContext, Validate,
};
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::task::JoinSet;

const HTTP_CALLS: usize = 10_000;
const AMQP_MESSAGES: usize = 10_000;
const IN_FLIGHT: usize = 256;
/// Peer and courier alternate for this many rounds (odd, so the median is a round's
/// figure): one short run of each is at the mercy of whatever else the two cores do.
const ROUNDS: usize = 5;

struct Row {
    scenario: String,
    peer: &'static str,
    peer_per_sec: f64,
    courier_per_sec: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The bare reqwest peer needs a process-default provider; courier passes its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    #[cfg(feature = "telemetry")]
    courierkit::telemetry::install()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let json_path = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1));
    if which == "amqp-ops" {
        let who = args.get(1).map(String::as_str).unwrap_or("courier");
        let messages = args.get(2).map_or(Ok(1_000), |n| n.parse())?;
        return amqp_ops(who, messages, IN_FLIGHT).await.map(drop);
    }
    if which == "amqp-memory" {
        let messages = args.get(1).map_or(Ok(AMQP_MESSAGES), |n| n.parse())?;
        return amqp_memory(messages);
    }
    if which == "amqp-memory-child" {
        let who = args.get(1).map(String::as_str).unwrap_or("courier");
        let messages = args.get(2).map_or(Ok(AMQP_MESSAGES), |n| n.parse())?;
        let added = amqp_ops(who, messages, messages).await?;
        println!("{added}");
        return Ok(());
    }
    if which == "http-ops" {
        let who = args.get(1).map(String::as_str).unwrap_or("courier");
        let calls = args.get(2).map_or(Ok(1_000), |n| n.parse())?;
        let concurrency = args.get(3).map_or(Ok(1), |n| n.parse())?;
        return http_ops(who, calls, concurrency).await;
    }
    let mut rows = Vec::new();
    if matches!(which, "http" | "all") {
        for concurrency in [1, 64] {
            rows.push(http(concurrency).await?);
        }
    }
    if matches!(which, "amqp" | "all") {
        rows.extend(amqp().await?);
    }
    if matches!(which, "rpc" | "all") {
        // On a worker, as a service's request (or a binding's) runs: from `block_on` on
        // the main thread, courier's reply takes one more cross-thread wake-up than
        // lapin's (its dispatcher task, then the waiting thread), which no caller on the
        // runtime pays.
        tokio::spawn(async { rpc().await.map_err(|e| e.to_string()) }).await??;
    }
    if matches!(which, "balance" | "all") {
        balance().await?;
    }
    if matches!(which, "hedge" | "all") {
        hedge().await?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    println!(
        "{:<48} {:>14} {:>14} {:>8}  peer",
        "scenario", "peer/s", "courier/s", "ratio"
    );
    for r in &rows {
        println!(
            "{:<48} {:>14.0} {:>14.0} {:>8.2}  {}",
            r.scenario,
            r.peer_per_sec,
            r.courier_per_sec,
            r.courier_per_sec / r.peer_per_sec,
            r.peer
        );
    }
    if let Some(path) = json_path {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"scenario": r.scenario, "peer": r.peer, "peer_per_sec": r.peer_per_sec,
                    "courier_per_sec": r.courier_per_sec, "ratio": r.courier_per_sec / r.peer_per_sec})
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}

/// Alternates `peer` and `ours` for [`ROUNDS`] rounds; returns both median rates.
async fn compare<P, PF, O, OF>(
    total: usize,
    concurrency: usize,
    peer: P,
    ours: O,
) -> Result<(f64, f64), String>
where
    P: Fn() -> PF + Clone + Send + Sync + 'static,
    PF: std::future::Future<Output = Result<(), String>> + Send,
    O: Fn() -> OF + Clone + Send + Sync + 'static,
    OF: std::future::Future<Output = Result<(), String>> + Send,
{
    let (mut p, mut o) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate who goes first so neither always runs on a warmer machine.
        if round % 2 == 0 {
            p.push(rate(total, concurrency, peer.clone()).await?);
            o.push(rate(total, concurrency, ours.clone()).await?);
        } else {
            o.push(rate(total, concurrency, ours.clone()).await?);
            p.push(rate(total, concurrency, peer.clone()).await?);
        }
    }
    Ok((median(p), median(o)))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Runs `total` operations with `concurrency` workers pulling from a shared counter;
/// returns operations per second.
async fn rate<F, Fut>(total: usize, concurrency: usize, op: F) -> Result<f64, String>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        workers.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                op().await?;
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn http(concurrency: usize) -> Result<Row, Box<dyn std::error::Error>> {
    let url = lean_upstream().await?;
    let config =
        ClientConfig::from_value(serde_json::json!({"services": {"svc": {"endpoints": [url]}}}))?;
    let client = Client::new(config)?;
    let raw = reqwest::Client::builder().build()?;
    let target = format!("{url}/bench");
    // Warm both connection pools so neither pays for connects inside the timing.
    for _ in 0..concurrency.max(8) {
        raw.get(&target).send().await?.bytes().await?;
        client.call(Request::new("GET", "svc", "/bench")).await?;
    }
    let peer = reqwest_getter(raw, target);
    let ours = courier_getter(client);
    let (peer, ours) = compare(HTTP_CALLS, concurrency, peer, ours).await?;
    Ok(Row {
        scenario: format!("http GET, concurrency {concurrency}"),
        peer: "reqwest 0.13",
        peer_per_sec: peer,
        courier_per_sec: ours,
    })
}

/// One GET of `target` (and its body) with a bare reqwest client.
fn reqwest_getter(
    raw: reqwest::Client,
    target: String,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move || {
        let (raw, target) = (raw.clone(), target.clone());
        Box::pin(async move {
            let resp = raw.get(&target).send().await.map_err(|e| e.to_string())?;
            resp.bytes().await.map(drop).map_err(|e| e.to_string())
        })
    }
}

/// One GET of `/bench` from service `svc` through courier's `Client`.
fn courier_getter(
    client: Client,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move || {
        let client = client.clone();
        Box::pin(async move {
            client
                .call(Request::new("GET", "svc", "/bench"))
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// `calls` GETs from courier's `Client` or a bare reqwest client, `concurrency` at a
/// time, after the same warm-up; see `http-ops` in the module docs.
async fn http_ops(
    who: &str,
    calls: usize,
    concurrency: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let url = lean_upstream().await?;
    let target = format!("{url}/bench");
    match who {
        "courier" => {
            let config = ClientConfig::from_value(
                serde_json::json!({"services": {"svc": {"endpoints": [url]}}}),
            )?;
            let get = courier_getter(Client::new(config)?);
            rate(calls + 8, concurrency, get).await?;
        }
        "reqwest" => {
            let get = reqwest_getter(reqwest::Client::builder().build()?, target);
            rate(calls + 8, concurrency, get).await?;
        }
        other => return Err(format!("http-ops: courier or reqwest, not {other}").into()),
    }
    Ok(())
}

/// Answers every request on a keep-alive connection with a fixed 200, and returns its
/// base URL. Requests are GETs without bodies, so the end of the headers ends a request.
async fn lean_upstream() -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                let mut filled = 0;
                loop {
                    let Ok(n) = socket.read(&mut buf[filled..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    filled += n;
                    while let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.copy_within(end + 4..filled, 0);
                        filled -= end + 4;
                        if socket.write_all(RESPONSE).await.is_err() {
                            return;
                        }
                    }
                    if filled == buf.len() {
                        return; // a header block larger than any client here sends
                    }
                }
            });
        }
    });
    Ok(url)
}

/// The slow-endpoint scenario for every balancer, printed as its own table.
async fn balance() -> Result<(), Box<dyn std::error::Error>> {
    const CALLS: usize = 2_000;
    const CONCURRENCY: usize = 16;
    println!(
        "{:<16} {:>12} {:>9} {:>9}",
        "balancer", "slow share", "p50 ms", "p95 ms"
    );
    for balancer in ["p2c_ewma", "least_request", "round_robin", "random"] {
        let kit = courier_testkit::Testkit::start(4).await?;
        kit.set_behavior(
            3,
            courier_testkit::Behavior {
                default: courier_testkit::Action {
                    latency_ms: 50,
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        let config = ClientConfig::from_value(serde_json::json!({
            "services": { "svc": { "endpoints": kit.urls(), "balancer": balancer } }
        }))?;
        let client = Client::new(config)?;
        let mut latencies = calls(&client, "svc", CALLS, CONCURRENCY).await?;
        latencies.sort_by(f64::total_cmp);
        let slow = kit.requests(3).total() as f64 / CALLS as f64;
        println!(
            "{:<16} {:>11.1}% {:>9.2} {:>9.2}",
            balancer,
            slow * 100.0,
            latencies[latencies.len() / 2],
            latencies[latencies.len() * 95 / 100]
        );
    }
    Ok(())
}

/// A slow tail with and without hedging, alternating rounds; each figure is the median
/// over the rounds of that round's percentile.
async fn hedge() -> Result<(), Box<dyn std::error::Error>> {
    const CALLS: usize = 1_000;
    const CONCURRENCY: usize = 8;
    let kit = courier_testkit::Testkit::start(4).await?;
    let mut figures: [Vec<[f64; 3]>; 2] = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        for (i, hedge) in [serde_json::Value::Null, serde_json::json!({"delay_ms": 10})]
            .into_iter()
            .enumerate()
        {
            kit.reset();
            kit.set_behavior(
                3,
                courier_testkit::Behavior {
                    failure_ratio: 0.1,
                    failure: courier_testkit::Action {
                        latency_ms: 100,
                        ..Default::default()
                    },
                    seed: round as u64,
                    ..Default::default()
                },
            );
            // A service name per round: the retry budget is per process and per name.
            let name = format!("hedge-{round}-{i}");
            let client = Client::new(ClientConfig::from_value(serde_json::json!({
                "services": { &name: { "endpoints": kit.urls(), "balancer": "round_robin", "hedge": hedge } }
            }))?)?;
            let mut latencies = calls(&client, &name, CALLS, CONCURRENCY).await?;
            latencies.sort_by(f64::total_cmp);
            let sent: u64 = (0..4).map(|u| kit.requests(u).total()).sum();
            figures[i].push([
                latencies[CALLS / 2],
                latencies[CALLS * 99 / 100],
                (sent as f64 / CALLS as f64 - 1.0) * 100.0,
            ]);
        }
    }
    let median = |rounds: &[[f64; 3]], k: usize| {
        let mut v: Vec<f64> = rounds.iter().map(|r| r[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "{:<26} {:>9} {:>9} {:>16}",
        "1 of 4 endpoints 10% slow", "p50 ms", "p99 ms", "extra requests"
    );
    for (label, rounds) in ["unhedged", "hedged, delay 10 ms"].iter().zip(&figures) {
        println!(
            "{:<26} {:>9.2} {:>9.2} {:>15.1}%",
            label,
            median(rounds, 0),
            median(rounds, 1),
            median(rounds, 2)
        );
    }
    Ok(())
}

/// `calls` GETs of `/` to `service` from `concurrency` workers; each call's latency in ms.
async fn calls(
    client: &Client,
    service: &str,
    calls: usize,
    concurrency: usize,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let mut workers = JoinSet::new();
    for worker in 0..concurrency {
        let client = client.clone();
        let service = service.to_owned();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            for _ in (worker..calls).step_by(concurrency) {
                let start = Instant::now();
                client
                    .call(Request::new("GET", service.as_str(), "/"))
                    .await
                    .map_err(|e| e.to_string())?;
                latencies.push(start.elapsed().as_secs_f64() * 1e3);
            }
            Ok::<_, String>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(calls);
    while let Some(done) = workers.join_next().await {
        latencies.extend(done??);
    }
    Ok(latencies)
}

/// Publishes against lapin twice: bare (what a minimal lapin publisher sends) and with
/// the properties courier sends on every message (a UUIDv7 message id and a
/// `traceparent` header), so the second ratio is courier's own cost and the first adds
/// what the broker spends on those properties.
async fn amqp() -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    for same_properties in [false, true] {
        rows.push(amqp_publish(same_properties).await?);
    }
    Ok(rows)
}

async fn amqp_publish(same_properties: bool) -> Result<Row, Box<dyn std::error::Error>> {
    let url = amqp_url();
    let queue = "courier-bench.publish";
    let body = vec![b'x'; 256];
    let bus = Bus::connect(BusConfig::from_value(
        serde_json::json!({"urls": [url], "max_unconfirmed": IN_FLIGHT}),
    )?)
    .await?;
    bus.declare_queue(
        queue,
        &QueueOptions {
            dead_letter: false,
            ..QueueOptions::default()
        },
    )
    .await?;

    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let admin = conn.create_channel().await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let peer = lapin_publisher(channel, queue, body.clone(), same_properties);
    let ours = courier_publisher(bus.clone(), queue, body);
    let (peer, ours) = compare(AMQP_MESSAGES, IN_FLIGHT, peer, ours).await?;
    admin
        .queue_purge(queue.into(), QueuePurgeOptions::default())
        .await?;
    admin
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    conn.close(200, "bench done".into()).await?;
    bus.close().await?;
    Ok(Row {
        scenario: if same_properties {
            format!("amqp publish+confirm, {IN_FLIGHT} in flight, id+traceparent")
        } else {
            format!("amqp publish+confirm, {IN_FLIGHT} in flight")
        },
        peer: "lapin 4.12",
        peer_per_sec: peer,
        courier_per_sec: ours,
    })
}

/// One confirmed publish of `body` to `queue` on a lapin confirm channel, with
/// [`peer_properties`].
fn lapin_publisher(
    channel: lapin::Channel,
    queue: &'static str,
    body: Vec<u8>,
    same_properties: bool,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move || {
        let (channel, body) = (channel.clone(), body.clone());
        Box::pin(async move {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &body,
                    peer_properties(same_properties),
                )
                .await
                .map_err(|e| e.to_string())?;
            confirm.await.map(drop).map_err(|e| e.to_string())
        })
    }
}

/// One confirmed publish of `body` to `queue` through courier's `Bus`.
fn courier_publisher(
    bus: Bus,
    queue: &'static str,
    body: Vec<u8>,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move || {
        let (bus, body) = (bus.clone(), body.clone());
        Box::pin(async move {
            bus.publish("", queue, body.into(), PublishOptions::default())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
}

/// `messages` confirmed publishes with [`IN_FLIGHT`] in flight from courier or from
/// lapin sending what courier sends (id and traceparent), and nothing else, for
/// instruction counts like `http-ops` (bench/callgrind.sh amqp).
async fn amqp_ops(
    who: &str,
    messages: usize,
    in_flight: usize,
) -> Result<u64, Box<dyn std::error::Error>> {
    let url = amqp_url();
    let queue = "courier-bench.ops";
    let body = vec![b'x'; 256];
    let before;
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let admin = conn.create_channel().await?;
    admin
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    match who {
        "courier" => {
            let bus = Bus::connect(BusConfig::from_value(
                serde_json::json!({"urls": [url], "max_unconfirmed": in_flight}),
            )?)
            .await?;
            before = rss_kib("VmRSS:")?;
            rate(
                messages,
                in_flight,
                courier_publisher(bus.clone(), queue, body),
            )
            .await?;
            bus.close().await?;
        }
        "lapin" => {
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            before = rss_kib("VmRSS:")?;
            rate(
                messages,
                in_flight,
                lapin_publisher(channel, queue, body, true),
            )
            .await?;
        }
        other => return Err(format!("amqp-ops: courier or lapin, not {other}").into()),
    }
    let added = rss_kib("VmHWM:")?.saturating_sub(before);
    admin
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    conn.close(200, "bench done".into()).await?;
    Ok(added)
}

/// This process's resident set (`VmRSS:`) or its peak so far (`VmHWM:`), in KiB.
fn rss_kib(field: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| format!("no {field} in /proc/self/status"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("no value in {line:?}"))?;
    Ok(kib.parse()?)
}

/// The peak RSS that `messages` confirmed publishes, all in flight at once (each its
/// own task, as a binding's are), add to a process: courier's `Bus` against lapin
/// sending what courier sends, each in a process of its own (the peak is per process),
/// alternating, median of [`ROUNDS`].
fn amqp_memory(messages: usize) -> Result<(), Box<dyn std::error::Error>> {
    let me = std::env::current_exe()?;
    let mut added: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..ROUNDS {
        for (i, who) in ["lapin", "courier"].into_iter().enumerate() {
            let out = std::process::Command::new(&me)
                .args(["amqp-memory-child", who, &messages.to_string()])
                .stderr(std::process::Stdio::inherit())
                .output()?;
            if !out.status.success() {
                return Err(format!("amqp-memory {who}: {}", out.status).into());
            }
            let text = String::from_utf8(out.stdout)?;
            added[i].push(text.trim().parse::<f64>()?);
        }
    }
    let [lapin, courier] = added.map(median);
    let per = |kib: f64| kib * 1024.0 / messages as f64;
    println!(
        "peak RSS added by {messages} confirmed publishes in flight at once (median of {ROUNDS}):"
    );
    println!(
        "  lapin, courier's properties: {lapin:>8.0} KiB  {:>6.0} B per publish",
        per(lapin)
    );
    println!(
        "  courier:                     {courier:>8.0} KiB  {:>6.0} B per publish",
        per(courier)
    );
    println!("  courier / lapin: {:.2}", courier / lapin);
    Ok(())
}

/// The bare peer's properties, or those plus what courier adds to every message.
fn peer_properties(same_properties: bool) -> BasicProperties {
    let properties = BasicProperties::default().with_delivery_mode(2);
    if !same_properties {
        return properties;
    }
    properties
        .with_message_id(uuid::Uuid::now_v7().to_string().into())
        .with_headers(traceparent_header())
}

/// A header table with a new root `traceparent`, as courier puts on every message.
fn traceparent_header() -> FieldTable {
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        lapin::types::AMQPValue::LongString(TraceContext::new_root().traceparent().into()),
    );
    headers
}

/// Consumes `queue` without acks (direct reply-to requires it; the echo server needs
/// none).
async fn consume_no_ack(
    channel: &lapin::Channel,
    queue: &str,
    tag: &str,
) -> lapin::Result<lapin::Consumer> {
    channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

/// Round-trip times (ms) of raw lapin requests over direct reply-to, one at a time.
/// `like_courier` sends what `Bus::request` sends: on a confirm-mode channel, mandatory,
/// with UUIDv7 message and correlation ids, `traceparent` and deadline headers and an
/// expiration, waiting for the confirm and the reply together; so courier's figure against
/// it is courier's client side alone, and the bare peer's adds what those cost the broker.
async fn lapin_requests(
    conn: &Connection,
    queue: &'static str,
    body: &[u8],
    like_courier: bool,
) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let client = conn.create_channel().await?;
    if like_courier {
        client
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
    }
    let mut replies = consume_no_ack(&client, "amq.rabbitmq.reply-to", "").await?;
    let mut times = Vec::with_capacity(RPC_CALLS);
    for i in 0..RPC_CALLS + RPC_CALLS / 10 {
        let start = Instant::now();
        let cid = if like_courier {
            uuid::Uuid::now_v7().to_string()
        } else {
            format!("c-{i}")
        };
        let mut props = BasicProperties::default()
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_correlation_id(cid.as_str().into());
        if like_courier {
            let mut headers = traceparent_header();
            let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(30);
            let deadline_ms = deadline.duration_since(std::time::UNIX_EPOCH)?.as_millis();
            headers.insert(
                "x-courier-deadline".into(),
                lapin::types::AMQPValue::LongString(deadline_ms.to_string().into()),
            );
            props = props
                .with_message_id(uuid::Uuid::now_v7().to_string().into())
                .with_headers(headers)
                .with_expiration("30000".into());
        }
        let confirm = client
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: like_courier,
                    ..Default::default()
                },
                body,
                props,
            )
            .await?;
        let reply = if like_courier {
            // As courier waits: for the reply and, at the same time, for the confirm, so
            // that a request the broker refuses or cannot route fails at once rather than
            // at its timeout.
            let mut confirm = std::pin::pin!(confirm);
            let mut confirmed = false;
            loop {
                tokio::select! {
                    c = &mut confirm, if !confirmed => {
                        c?;
                        confirmed = true;
                    }
                    r = replies.next() => break r,
                }
            }
        } else {
            replies.next().await
        };
        let reply = reply.ok_or("reply stream ended")??;
        assert_eq!(
            reply
                .properties
                .correlation_id()
                .as_ref()
                .map(|c| c.as_str()),
            Some(cid.as_str())
        );
        if i >= RPC_CALLS / 10 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    client.close(200, "bench done".into()).await?;
    Ok(times)
}

/// Round trips per client in [`rpc`], after a warm-up of a tenth as many.
const RPC_CALLS: usize = 2_000;

fn amqp_url() -> String {
    std::env::var("COURIER_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Request/reply latency: both clients call the same raw-lapin echo server, one call at
/// a time, so the difference is the client side (courier: confirm-mode request channel,
/// correlation map, trace headers).
async fn rpc() -> Result<(), Box<dyn std::error::Error>> {
    let url = amqp_url();
    let queue = "courier-bench.rpc";
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let server = conn.create_channel().await?;
    server
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut requests = consume_no_ack(&server, queue, "bench-server").await?;
    let replier = server.clone();
    let echo = tokio::spawn(async move {
        while let Some(Ok(d)) = requests.next().await {
            let (Some(reply_to), Some(cid)) = (
                d.properties.reply_to().clone(),
                d.properties.correlation_id().clone(),
            ) else {
                continue;
            };
            let props = BasicProperties::default().with_correlation_id(cid);
            let sent = replier
                .basic_publish(
                    "".into(),
                    reply_to,
                    BasicPublishOptions::default(),
                    &d.data,
                    props,
                )
                .await;
            if sent.is_err() {
                break;
            }
        }
    });

    let body = vec![b'x'; 256];
    // The clients connect on their own, as courier's Bus does: a client sharing the
    // server's connection (and lapin's I/O thread for it) skips a thread hand-off each way.
    let peer_conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let peer = lapin_requests(&peer_conn, queue, &body, false).await?;
    let peer_like_courier = lapin_requests(&peer_conn, queue, &body, true).await?;
    peer_conn.close(200, "bench done".into()).await?;

    let bus = Bus::connect(BusConfig::from_value(serde_json::json!({"urls": [url]}))?).await?;
    let mut ours = Vec::with_capacity(RPC_CALLS);
    for i in 0..RPC_CALLS + RPC_CALLS / 10 {
        let start = Instant::now();
        bus.request(queue, body.clone().into(), RequestOptions::default())
            .await?;
        if i >= RPC_CALLS / 10 {
            ours.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    bus.close().await?;
    echo.abort();
    server
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    conn.close(200, "bench done".into()).await?;

    println!(
        "{:<34} {:>9} {:>9}  client",
        "rpc round trip, 256 B, sequential", "p50 ms", "p99 ms"
    );
    for (name, mut xs) in [
        ("lapin 4.12 direct reply-to", peer),
        ("lapin, as courier sends a request", peer_like_courier),
        ("courier Bus::request", ours),
    ] {
        xs.sort_by(f64::total_cmp);
        println!(
            "{:<34} {:>9.3} {:>9.3}  {}",
            "",
            xs[xs.len() / 2],
            xs[xs.len() * 99 / 100],
            name
        );
    }
    Ok(())
}
