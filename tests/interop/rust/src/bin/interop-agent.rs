//! The Rust interop agent: plays one role (publish, consume or serve) of an interop
//! scenario through courier's Rust API, exactly as `tests/interop/PROTOCOL.md`
//! specifies. Run it through `tests/interop/rust/run.sh`.
//!
//! ```text
//! interop-agent ROLE --bus URL --run ID [options]
//!   publish --count N [--duplicates D]
//!   consume --expect N --duplicates D
//!   serve   --http URL --expect N
//!   every role: [--max-ms MS] (default 120000)
//! ```
//!
//! One JSON object per line on stdout, the last one `{"event": "done", ...}`; logs on
//! stderr. Arguments are parsed by hand, so the crate needs no argument parser.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use courierkit::{
    Bus, BusConfig, Client, ClientConfig, ConsumeOptions, Consumer, Delivery, ExchangeKind,
    PublishOptions, QueueOptions, Request, RequestOptions, TraceContext, Validate,
};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// Orders worked on at once by publish, consume and serve.
const IN_FLIGHT: usize = 16;
/// How long one `next()` waits before the loop checks again whether it may stop.
const POLL: Duration = Duration::from_millis(100);
/// The consumer's RPC timeout, from the protocol.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// The consumer's prefetch, from the protocol.
const PREFETCH: u16 = 50;
const DEFAULT_MAX_MS: u64 = 120_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Copy, Debug)]
enum Role {
    Publish,
    Consume,
    Serve,
}

impl Role {
    fn parse(name: &str) -> Option<Role> {
        match name {
            "publish" => Some(Role::Publish),
            "consume" => Some(Role::Consume),
            "serve" => Some(Role::Serve),
            _ => None,
        }
    }

    /// The options this role requires, besides `--bus` and `--run`.
    fn required(self) -> &'static [&'static str] {
        match self {
            Role::Publish => &["count"],
            Role::Consume => &["expect", "duplicates"],
            Role::Serve => &["http", "expect"],
        }
    }

    /// The options this role accepts without requiring them.
    fn optional(self) -> &'static [&'static str] {
        match self {
            Role::Publish => &["max-ms", "duplicates"],
            Role::Consume | Role::Serve => &["max-ms"],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Publish => "publish",
            Role::Consume => "consume",
            Role::Serve => "serve",
        })
    }
}

/// The command line: a role and its `--name value` options, checked against the role.
struct Args {
    role: Role,
    options: BTreeMap<String, String>,
}

impl Args {
    fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut argv = argv.into_iter();
        let name = argv.next().unwrap_or_default();
        let role = Role::parse(&name).ok_or_else(|| {
            format!("unknown role {name:?}; expected one of publish, consume, serve")
        })?;
        let mut options = BTreeMap::new();
        while let Some(flag) = argv.next() {
            let known = flag.strip_prefix("--").filter(|n| {
                ["bus", "run"].contains(n)
                    || role.required().contains(n)
                    || role.optional().contains(n)
            });
            let Some(option) = known else {
                return Err(format!("{role}: unknown option {flag}"));
            };
            let value = argv
                .next()
                .ok_or_else(|| format!("{role}: {flag} needs a value"))?;
            options.insert(option.to_owned(), value);
        }
        for required in ["bus", "run"].iter().chain(role.required()) {
            if !options.contains_key(*required) {
                return Err(format!("{role}: --{required} is required"));
            }
        }
        let args = Args { role, options };
        // Checked here, so that a malformed number is a usage error before anything starts.
        for numeric in ["count", "duplicates", "expect", "max-ms"] {
            if args.options.contains_key(numeric) {
                args.number(numeric)?;
            }
        }
        if let Role::Publish = role {
            let (count, duplicates) = (args.number("count")?, args.number_or("duplicates", 0));
            if duplicates > count {
                return Err(format!(
                    "publish: --duplicates {duplicates} exceeds --count {count}"
                ));
            }
        }
        Ok(args)
    }

    /// A string option; `parse` made sure the role's required ones are present.
    fn text(&self, name: &str) -> &str {
        self.options.get(name).map_or("", String::as_str)
    }

    fn number(&self, name: &str) -> Result<u64, String> {
        let value = self.text(name);
        value.parse().map_err(|_| {
            format!(
                "{}: --{name} must be a non-negative integer, got {value:?}",
                self.role
            )
        })
    }

    /// A numeric option that may be absent; `parse` made sure a present one is valid.
    fn number_or(&self, name: &str, default: u64) -> u64 {
        self.number(name).unwrap_or(default)
    }
}

/// The run's exchange and queues: the run id keeps runs apart on a shared broker.
struct Names {
    exchange: String,
    orders: String,
    pricing: String,
}

impl Names {
    fn of(run: &str) -> Names {
        Names {
            exchange: format!("interop.{run}.orders"),
            orders: format!("interop.{run}.orders"),
            pricing: format!("interop.{run}.pricing"),
        }
    }
}

#[tokio::main]
async fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("interop-agent: {message}");
            std::process::exit(2);
        }
    };
    let role = args.role;
    let max_ms = args.number_or("max-ms", DEFAULT_MAX_MS);
    // The one bound on every wait: whatever hangs, the agent is gone after --max-ms.
    let code = match tokio::time::timeout(Duration::from_millis(max_ms), run(&args)).await {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("interop-agent: {role}: {e}");
            1
        }
        Err(_) => {
            eprintln!("interop-agent: {role}: gave up after --max-ms {max_ms} ms");
            1
        }
    };
    // Not returning through the runtimes' shutdown, which could wait on work in flight.
    std::process::exit(code);
}

async fn run(args: &Args) -> Result<(), BoxError> {
    let names = Names::of(args.text("run"));
    let bus = Bus::connect(BusConfig::from_value(
        json!({ "urls": [args.text("bus")] }),
    )?)
    .await?;
    match args.role {
        Role::Publish => publish(args, &bus, &names).await?,
        Role::Consume => consume(args, &bus, &names).await?,
        Role::Serve => serve(args, &bus, &names).await?,
    }
    bus.close().await?;
    Ok(())
}

/// Declares the orders exchange, queue and binding; idempotent, so every role may do it.
async fn declare_orders(bus: &Bus, names: &Names) -> courierkit::Result<()> {
    bus.declare_exchange(&names.exchange, ExchangeKind::Topic)
        .await?;
    bus.declare_queue(&names.orders, &QueueOptions::default())
        .await?;
    bus.bind(&names.orders, &names.exchange, "order.placed")
        .await
}

async fn publish(args: &Args, bus: &Bus, names: &Names) -> Result<(), BoxError> {
    let count = usize::try_from(args.number("count")?)?;
    let duplicates = usize::try_from(args.number_or("duplicates", 0))?;
    declare_orders(bus, names).await?;
    let roots: &[TraceContext] = &(0..count)
        .map(|_| TraceContext::new_root())
        .collect::<Vec<_>>();
    let send = &|i: usize| {
        let options = PublishOptions {
            message_id: Some(format!("order-{i}")),
            trace: Some(roots[i].clone()),
            ..PublishOptions::default()
        };
        let body = json!({ "order": i }).to_string();
        bus.publish(&names.exchange, "order.placed", body.into(), options)
    };
    stream::iter(0..count)
        .map(Ok::<_, courierkit::Error>)
        .try_for_each_concurrent(IN_FLIGHT, |i| async move {
            let receipt = send(i).await?;
            let line = json!({
                "event": "published", "order": i, "message_id": receipt.message_id,
                "trace_id": roots[i].trace_id(),
            });
            println!("{line}");
            Ok(())
        })
        .await?;
    // Only after every first copy is confirmed, so each duplicate queues behind its original.
    stream::iter(0..duplicates)
        .map(Ok::<_, courierkit::Error>)
        .try_for_each_concurrent(IN_FLIGHT, |i| async move { send(i).await.map(drop) })
        .await?;
    println!(
        "{}",
        json!({"event": "done", "published": count + duplicates})
    );
    Ok(())
}

async fn consume(args: &Args, bus: &Bus, names: &Names) -> Result<(), BoxError> {
    declare_orders(bus, names).await?;
    // Declared here too, so requests sent before the server is up are queued, not unroutable.
    bus.declare_queue(&names.pricing, &QueueOptions::default())
        .await?;
    let options = ConsumeOptions {
        prefetch: Some(PREFETCH),
        ..ConsumeOptions::default()
    };
    let consumer = bus.consume(&names.orders, options).await?;
    let worker = Worker::Consume {
        bus: bus.clone(),
        pricing: names.pricing.clone(),
        duplicates: args.number("duplicates")?,
    };
    let processed = drain(&consumer, worker, args).await?;
    println!("{}", json!({"event": "done", "processed": processed}));
    consumer.close().await?;
    Ok(())
}

async fn serve(args: &Args, bus: &Bus, names: &Names) -> Result<(), BoxError> {
    let config = ClientConfig::from_value(json!({
        "services": { "upstream": { "endpoints": [args.text("http")] } }
    }))?;
    let client = Client::new(config)?;
    bus.declare_queue(&names.pricing, &QueueOptions::default())
        .await?;
    let server = bus.serve(&names.pricing).await?;
    let served = drain(&server, Worker::Serve { client }, args).await?;
    println!("{}", json!({"event": "done", "served": served}));
    server.close().await?;
    Ok(())
}

/// What consume and serve do with one delivery before acking it.
enum Worker {
    Consume {
        bus: Bus,
        pricing: String,
        /// How many copies the publisher sends again, for dedup to skip.
        duplicates: u64,
    },
    Serve {
        client: Client,
    },
}

impl Worker {
    /// Whether nothing is left to arrive once every order is done. Dedup skips the
    /// publisher's duplicates inside `next()`: a consumer that stopped before every one
    /// was skipped would leave a late copy unseen. Duplicates never reach the server
    /// (the consumer skips them), so nothing follows its last order.
    fn caught_up(&self) -> bool {
        match self {
            Worker::Consume {
                bus, duplicates, ..
            } => bus.stats().deduplicated >= *duplicates,
            Worker::Serve { .. } => true,
        }
    }

    /// Handles `d` and returns its order and the line to print once it is acked.
    async fn handle(&self, d: &Delivery) -> Result<(u64, Value), BoxError> {
        let order = serde_json::from_slice::<Value>(&d.body)?["order"]
            .as_u64()
            .ok_or("the body has no numeric \"order\"")?;
        match self {
            Worker::Consume { bus, pricing, .. } => {
                let options = RequestOptions {
                    timeout: RPC_TIMEOUT,
                    trace: Some(d.trace.clone()),
                    ..RequestOptions::default()
                };
                let body = json!({ "order": order }).to_string();
                let reply = bus.request(pricing, body.into(), options).await?;
                let price = serde_json::from_slice::<Value>(&reply.body)?["price"].clone();
                let line = json!({
                    "event": "processed", "order": order, "message_id": d.message_id,
                    "trace_id": d.trace.trace_id(), "price": price,
                    "reply_trace_id": reply.trace.trace_id(),
                });
                Ok((order, line))
            }
            Worker::Serve { client } => {
                let mut request = Request::new("GET", "upstream", format!("/price/{order}"));
                request.trace = Some(d.trace.clone());
                let resp = client.call(request).await?;
                let body = json!({ "order": order, "price": order * 10 + 1 }).to_string();
                d.reply(body.into(), BTreeMap::new()).await?;
                let line = json!({
                    "event": "served", "order": order, "trace_id": d.trace.trace_id(),
                    "http_status": resp.status, "http_attempts": resp.attempts,
                });
                Ok((order, line))
            }
        }
    }

    /// Handles and acks `d`, then prints its line; on any failure returns it to the
    /// queue, so a transient one (a lost connection, a slow reply) is retried and the
    /// order is reported only once it succeeds.
    async fn process(&self, d: Delivery) -> Option<u64> {
        let outcome = async {
            let (order, line) = self.handle(&d).await?;
            d.ack().await?;
            Ok::<_, BoxError>((order, line))
        }
        .await;
        match outcome {
            Ok((order, line)) => {
                println!("{line}");
                Some(order)
            }
            Err(e) => {
                let id = d.message_id.as_deref().unwrap_or("-");
                eprintln!("interop-agent: message {id}: {e}; returning it to the queue");
                if let Err(e) = d.nack(true).await {
                    eprintln!("interop-agent: nack {id}: {e}");
                }
                None
            }
        }
    }
}

/// Hands deliveries to `worker`, at most [`IN_FLIGHT`] at once, until `--expect`
/// distinct orders are done, nothing is in flight, and the worker is caught up
/// ([`Worker::caught_up`]). Returns how many deliveries were done (printed).
async fn drain(consumer: &Consumer, worker: Worker, args: &Args) -> Result<usize, BoxError> {
    let expect = usize::try_from(args.number("expect")?)?;
    let worker = Arc::new(worker);
    let mut tasks = JoinSet::new();
    let mut orders = HashSet::new();
    let mut done = 0;
    loop {
        let finished = if tasks.len() >= IN_FLIGHT {
            tasks.join_next().await
        } else {
            tasks.try_join_next()
        };
        if let Some(finished) = finished {
            if let Some(order) = finished? {
                orders.insert(order);
                done += 1;
            }
            continue;
        }
        if orders.len() >= expect && tasks.is_empty() && worker.caught_up() {
            return Ok(done);
        }
        let delivery = match consumer.next(Some(POLL)).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) => return Err("the consumer ended before the run did".into()),
            Err(e) if e.is_timeout() => continue,
            Err(e) => return Err(e.into()),
        };
        let worker = worker.clone();
        tasks.spawn(async move { worker.process(delivery).await });
    }
}
