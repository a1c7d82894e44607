//! The Rust parity driver: runs the cases of `tests/interop/cases/*.json` through
//! courier's Rust API and prints one normalised outcome per case
//! (`tests/interop/PROTOCOL.md`, "Parity suite"). Run it through
//! `tests/interop/rust/run.sh parity`.
//!
//! ```text
//! parity-driver CASES.json... --testkit-control URL --testkit-upstreams URL,URL,... --amqp URL
//! ```
//!
//! One JSON object per line on stdout, `{"case": name, "outcome": {...}}`; logs on
//! stderr. The testkit's control API is called through a courier `Client` with absolute
//! URLs, so the driver needs no HTTP dependency of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use courierkit::{
    Bus, BusConfig, Client, ClientConfig, ConsumeOptions, QueueOptions, Request, RequestOptions,
    Validate,
};
use serde_json::{Map, Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bounds every control-API request; the testkit answers in milliseconds.
const CONTROL_DEADLINE: Duration = Duration::from_secs(10);

struct Args {
    files: Vec<String>,
    control: String,
    upstreams: Vec<String>,
    amqp: String,
}

impl Args {
    fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut files = Vec::new();
        let mut options = BTreeMap::new();
        let mut argv = argv.into_iter();
        while let Some(arg) = argv.next() {
            match arg.strip_prefix("--") {
                Some(name @ ("testkit-control" | "testkit-upstreams" | "amqp")) => {
                    let value = argv.next().ok_or_else(|| format!("{arg} needs a value"))?;
                    options.insert(name.to_owned(), value);
                }
                Some(_) => return Err(format!("unknown option {arg}")),
                None => files.push(arg),
            }
        }
        let mut take = |name: &str| {
            options
                .remove(name)
                .ok_or_else(|| format!("--{name} is required"))
        };
        let args = Args {
            control: take("testkit-control")?,
            upstreams: take("testkit-upstreams")?
                .split(',')
                .map(str::to_owned)
                .collect(),
            amqp: take("amqp")?,
            files,
        };
        if args.files.is_empty() {
            return Err("no cases files given".to_owned());
        }
        Ok(args)
    }
}

/// The testkit's control API.
struct Testkit {
    control: String,
    upstreams: Vec<String>,
    client: Client,
}

impl Testkit {
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, BoxError> {
        let mut request = Request::new(method, self.control.as_str(), path);
        request.deadline = Some(CONTROL_DEADLINE);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let resp = self.client.call(request).await?;
        if !(200..300).contains(&resp.status) {
            let text = String::from_utf8_lossy(&resp.body);
            return Err(format!("testkit {method} {path}: {} {text}", resp.status).into());
        }
        if resp.body.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&resp.body)?)
    }

    async fn totals(&self, count: usize) -> Result<Vec<i64>, BoxError> {
        let mut totals = Vec::with_capacity(count);
        for i in 0..count {
            let log = self
                .send("GET", &format!("/upstreams/{i}/requests"), None)
                .await?;
            totals.push(log["total"].as_i64().ok_or("no total in a request log")?);
        }
        Ok(totals)
    }
}

/// The case with every placeholder string (`{upstream:N}`, `{memory}`, `{amqp}`) replaced.
fn substitute(value: &Value, names: &BTreeMap<String, String>) -> Value {
    match value {
        Value::String(s) => Value::String(names.get(s).unwrap_or(s).clone()),
        Value::Array(items) => items.iter().map(|v| substitute(v, names)).collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| (k.clone(), substitute(v, names)))
            .collect::<Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

fn error(e: &courierkit::Error) -> Value {
    match e {
        courierkit::Error::Config { field, .. } => {
            json!({"error": e.kind().code(), "field": field})
        }
        _ => json!({"error": e.kind().code()}),
    }
}

fn text<'a>(value: &'a Value, key: &str) -> Result<&'a str, BoxError> {
    value[key]
        .as_str()
        .ok_or_else(|| format!("{key} must be a string").into())
}

fn number(value: &Value, key: &str) -> Result<u64, BoxError> {
    value[key]
        .as_u64()
        .ok_or_else(|| format!("{key} must be a non-negative integer").into())
}

fn list<'a>(value: &'a Value, key: &str) -> Result<&'a Vec<Value>, BoxError> {
    value[key]
        .as_array()
        .ok_or_else(|| format!("{key} must be a list").into())
}

fn optional_text(value: &Value, key: &str) -> Option<String> {
    value[key].as_str().map(str::to_owned)
}

async fn run_http(case: &Value, kit: &Testkit) -> Result<Value, BoxError> {
    let behaviors = list(case, "upstreams")?;
    let count = behaviors.len();
    kit.send("POST", "/reset", None).await?;
    for (i, behavior) in behaviors.iter().enumerate() {
        kit.send("PUT", &format!("/upstreams/{i}/behavior"), Some(behavior))
            .await?;
    }
    let client = Client::new(ClientConfig::from_value(case["config"].clone())?)?;
    let urls: Vec<&str> = kit
        .upstreams
        .iter()
        .map(|u| u.trim_end_matches('/'))
        .collect();
    let mut calls = Vec::new();
    for call in list(case, "calls")? {
        if !call["reconfigure"].is_null() {
            let applied = ClientConfig::from_value(call["reconfigure"].clone())
                .and_then(|config| client.reconfigure(config));
            let mut outcome = match applied {
                Ok(()) => json!({"ok": true}),
                Err(e) => error(&e),
            };
            outcome["requests"] = json!(vec![0; count]);
            calls.push(outcome);
            continue;
        }
        let before = kit.totals(count).await?;
        let mut request = Request::new(
            text(call, "method")?,
            text(call, "target")?,
            call["path"].as_str().unwrap_or(""),
        );
        if let Some(headers) = call["headers"].as_object() {
            for (name, value) in headers {
                let value = value.as_str().ok_or("header values must be strings")?;
                request = request.header(name, value);
            }
        }
        if let Some(body) = optional_text(call, "body") {
            request = request.body(body);
        }
        request.deadline = call["deadline_ms"].as_u64().map(Duration::from_millis);
        request.idempotency_key = optional_text(call, "idempotency_key");
        request.idempotent = match &call["idempotent"] {
            Value::Null => false,
            value => value.as_bool().ok_or("idempotent must be a boolean")?,
        };
        request.version = optional_text(call, "version");
        let mut outcome = match client.call(request).await {
            Ok(resp) => {
                let endpoint = resp.endpoint.trim_end_matches('/');
                let upstream = match urls.iter().position(|u| *u == endpoint) {
                    Some(index) => json!(index),
                    None => json!(endpoint),
                };
                json!({"status": resp.status, "attempts": resp.attempts, "upstream": upstream})
            }
            Err(e) => error(&e),
        };
        let after = kit.totals(count).await?;
        outcome["requests"] = after.iter().zip(&before).map(|(a, b)| a - b).collect();
        calls.push(outcome);
    }
    Ok(json!({ "calls": calls }))
}

async fn step(
    bus: &Bus,
    kit: &Testkit,
    s: &Value,
) -> Result<Result<Value, courierkit::Error>, BoxError> {
    let body = s["body"].as_str().unwrap_or("").to_owned();
    let exchange = s["exchange"].as_str().unwrap_or("");
    let done = match text(s, "op")? {
        // A control-API request (cutting the bus's connection through a proxy); its
        // failure, an answer other than 2xx included, is a driver error.
        "testkit" => {
            let request_body = s.get("body").filter(|b| !b.is_null());
            kit.send(text(s, "method")?, text(s, "path")?, request_body)
                .await?;
            Ok(())
        }
        "declare_queue" => {
            let retry_delays = match s.get("retry_delays_ms").filter(|v| !v.is_null()) {
                None => Vec::new(),
                Some(_) => list(s, "retry_delays_ms")?
                    .iter()
                    .map(|ms| {
                        ms.as_u64()
                            .map(Duration::from_millis)
                            .ok_or("retry_delays_ms must list integers")
                    })
                    .collect::<Result<_, _>>()?,
            };
            let options = QueueOptions {
                retry_delays,
                ..QueueOptions::default()
            };
            bus.declare_queue(text(s, "queue")?, &options).await
        }
        "publish" => {
            let headers = match s.get("headers").filter(|h| !h.is_null()) {
                None => Default::default(),
                Some(h) => serde_json::from_value(h.clone())?,
            };
            let options = courierkit::PublishOptions {
                message_id: optional_text(s, "message_id"),
                delay: s["delay_ms"].as_u64().map(Duration::from_millis),
                ttl: s["ttl_ms"].as_u64().map(Duration::from_millis),
                headers,
                ..courierkit::PublishOptions::default()
            };
            bus.publish(exchange, text(s, "routing_key")?, body.into(), options)
                .await
                .map(drop)
        }
        "publish_many" => {
            let mut messages = Vec::new();
            for m in list(s, "messages")? {
                messages.push(courierkit::BatchMessage {
                    exchange: m["exchange"].as_str().unwrap_or("").to_owned(),
                    routing_key: text(m, "routing_key")?.to_owned(),
                    body: m["body"].as_str().unwrap_or("").to_owned().into(),
                    options: courierkit::PublishOptions {
                        message_id: optional_text(m, "message_id"),
                        ..courierkit::PublishOptions::default()
                    },
                });
            }
            return Ok(bus.publish_many(messages).await.map(|results| {
                let results: Vec<Value> = results
                    .iter()
                    .map(|r| match r {
                        Ok(_) => json!({"ok": true}),
                        Err(e) => error(e),
                    })
                    .collect();
                json!({ "results": results })
            }));
        }
        "request" => {
            let options = RequestOptions {
                exchange: exchange.to_owned(),
                timeout: Duration::from_millis(number(s, "timeout_ms")?),
                ..RequestOptions::default()
            };
            bus.request(text(s, "routing_key")?, body.into(), options)
                .await
                .map(drop)
        }
        "consume" => return consume(bus, s).await,
        "consume_batches" => return consume_batches(bus, s).await,
        "stats" => {
            let stats = serde_json::to_value(bus.stats())?;
            let mut picked = Map::new();
            for field in list(s, "fields")? {
                let field = field.as_str().ok_or("fields must be strings")?;
                picked.insert(field.to_owned(), stats[field].clone());
            }
            return Ok(Ok(picked.into()));
        }
        other => return Err(format!("unknown op {other:?}").into()),
    };
    Ok(done.map(|()| json!({"ok": true})))
}

/// The consumer a `consume` or `consume_batches` step names (`queue`, `dedup`): a step
/// error when courier refuses it, a driver error for a malformed step.
async fn open_consumer(
    bus: &Bus,
    s: &Value,
) -> Result<Result<courierkit::Consumer, courierkit::Error>, BoxError> {
    let options = ConsumeOptions {
        dedup: s["dedup"].as_bool().ok_or("dedup must be a boolean")?,
        ..ConsumeOptions::default()
    };
    Ok(bus.consume(text(s, "queue")?, options).await)
}

/// Takes deliveries until none comes within `wait_ms`, settling each as `settle` says.
async fn consume(bus: &Bus, s: &Value) -> Result<Result<Value, courierkit::Error>, BoxError> {
    let consumer = match open_consumer(bus, s).await? {
        Ok(consumer) => consumer,
        Err(e) => return Ok(Err(e)),
    };
    let wait = Duration::from_millis(number(s, "wait_ms")?);
    let mut ids = Vec::new();
    let outcome = loop {
        let d = match consumer.next(Some(wait)).await {
            Ok(Some(d)) => d,
            Ok(None) => return Err("the consumer closed".into()),
            Err(e) if e.is_timeout() => break Ok(json!({ "message_ids": ids })),
            Err(e) => break Err(e),
        };
        ids.push(d.message_id.clone());
        let settled = match text(s, "settle")? {
            "ack" => d.ack().await,
            "reject" => d.reject().await,
            "nack" => d.nack(true).await,
            // Rust has no scope object: `finish` is what every binding's scope calls.
            "process" => d.finish(true, None).await,
            "process_fail" => d.finish(false, Some(false)).await,
            "forward" => {
                let to = text(s, "forward_to")?;
                let body = d.body.clone();
                d.forward("", to, body, courierkit::PublishOptions::default())
                    .await
                    .map(drop)
            }
            other => return Err(format!("unknown settle {other:?}").into()),
        };
        if let Err(e) = settled {
            break Err(e);
        }
    };
    consumer.close().await?;
    Ok(outcome)
}

/// Takes batches of up to `max` until one comes back empty after `wait_ms`, settling
/// each batch with one call as `settle` says.
async fn consume_batches(
    bus: &Bus,
    s: &Value,
) -> Result<Result<Value, courierkit::Error>, BoxError> {
    let consumer = match open_consumer(bus, s).await? {
        Ok(consumer) => consumer,
        Err(e) => return Ok(Err(e)),
    };
    let wait = Duration::from_millis(number(s, "wait_ms")?);
    let max = usize::try_from(number(s, "max")?)?;
    let mut ids = Vec::new();
    let outcome = loop {
        let batch = match consumer.next_batch(max, wait).await {
            Ok(Some(batch)) if batch.is_empty() => break Ok(json!({ "message_ids": ids })),
            Ok(Some(batch)) => batch,
            Ok(None) => return Err("the consumer closed".into()),
            Err(e) => break Err(e),
        };
        ids.extend(batch.deliveries().iter().map(|d| d.message_id.clone()));
        let settled = match text(s, "settle")? {
            "ack" => batch.ack().await,
            "reject" => batch.reject().await,
            "nack" => batch.nack(true).await,
            other => return Err(format!("unknown settle {other:?}").into()),
        };
        if let Err(e) = settled {
            break Err(e);
        }
    };
    consumer.close().await?;
    Ok(outcome)
}

async fn run_bus(case: &Value, kit: &Testkit) -> Result<Value, BoxError> {
    let bus = Bus::connect(BusConfig::from_value(case["config"].clone())?).await?;
    let mut steps = Vec::new();
    for s in list(case, "steps")? {
        steps.push(match step(&bus, kit, s).await? {
            Ok(outcome) => outcome,
            Err(e) => error(&e),
        });
    }
    bus.close().await?;
    Ok(json!({ "steps": steps }))
}

async fn run_config(case: &Value) -> Result<Value, BoxError> {
    let config = case["config"].clone();
    let made = match text(case, "target")? {
        "client" => ClientConfig::from_value(config)
            .and_then(Client::new)
            .map(drop),
        _ => match BusConfig::from_value(config) {
            Ok(config) => match Bus::connect(config).await {
                Ok(bus) => bus.close().await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
    };
    Ok(match made {
        Ok(()) => json!({"ok": true}),
        Err(e) => error(&e),
    })
}

/// What escaped a case rather than ending one of its calls or steps (a control-API
/// failure, a bus that would not connect) is a driver error, as in every driver.
fn outcome_of(result: Result<Value, BoxError>) -> Value {
    match result {
        Ok(outcome) => outcome,
        Err(e) => json!({"driver_error": e.to_string()}),
    }
}

async fn run(args: Args) -> Result<(), BoxError> {
    let kit = Testkit {
        control: args.control,
        upstreams: args.upstreams,
        client: Client::new(ClientConfig::default())?,
    };
    for file in &args.files {
        let cases: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
        for raw in list(&cases, "cases")? {
            let mut names: BTreeMap<String, String> = kit
                .upstreams
                .iter()
                .enumerate()
                .map(|(i, url)| (format!("{{upstream:{i}}}"), url.clone()))
                .collect();
            names.insert(
                "{memory}".into(),
                format!("memory://parity-rust-{}", uuid::Uuid::now_v7()),
            );
            names.insert("{amqp}".into(), args.amqp.clone());
            let case = substitute(raw, &names);
            let result = match text(&case, "kind")? {
                "http" => run_http(&case, &kit).await,
                "bus" => run_bus(&case, &kit).await,
                "config" => run_config(&case).await,
                other => Err(format!("unknown kind {other:?}").into()),
            };
            let line = json!({"case": raw["name"], "outcome": outcome_of(result)});
            println!("{line}");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("parity-driver: {message}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("parity-driver: {e}");
        std::process::exit(1);
    }
}
