//! `make demo`: one resilient HTTP call and one confirmed message, printed step by step.
//!
//! The HTTP upstream is courier's testkit running in this process on 127.0.0.1; the
//! broker is courier's in-process `memory://` broker, or the RabbitMQ that
//! `COURIER_AMQP_URL` names (`make demo COURIER_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f`).
//! Nothing to install, no root: the embedded broker has the same semantics (confirms,
//! manual ack, dedup, dead-lettering, request/reply).

use std::time::Duration;

use courier_testkit::{Action, Behavior, Testkit};
use courierkit::{
    Bus, BusConfig, Client, ClientConfig, ConsumeOptions, PublishOptions, QueueOptions, Request,
    RequestOptions, Validate,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kit = Testkit::start(1).await?;
    let upstream = &kit.urls()[0];
    println!("== HTTP: service \"inventory\" at {upstream} (testkit upstream on loopback)");

    let config = ClientConfig::from_value(serde_json::json!({
        "services": { "inventory": { "endpoints": [upstream], "deadline_ms": 2000 } }
    }))?;
    let client = Client::new(config)?;
    let resp = client
        .call(Request::new("GET", "inventory", "/v1/items/42"))
        .await?;
    println!(
        "GET inventory /v1/items/42 -> {} from {} in {} attempt(s)",
        resp.status, resp.endpoint, resp.attempts
    );
    println!("   body: {}", resp.text());

    kit.set_behavior(
        0,
        Behavior {
            default: Action {
                latency_ms: 3_000,
                ..Action::default()
            },
            ..Behavior::default()
        },
    );
    let mut slow = Request::new("GET", "inventory", "/v1/slow");
    slow.deadline = Some(Duration::from_millis(300));
    match client.call(slow).await {
        Err(e) => println!(
            "GET inventory /v1/slow with a 300 ms deadline -> {} error: {e}",
            e.kind().code()
        ),
        Ok(r) => println!(
            "GET inventory /v1/slow -> unexpectedly answered {}",
            r.status
        ),
    }

    let url = std::env::var("COURIER_AMQP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "memory://demo".into());
    println!("\n== messaging: broker {}", courierkit::redact_url(&url));
    let bus = Bus::connect(BusConfig::from_value(serde_json::json!({ "urls": [url] }))?).await?;
    let queue = "courier-demo.work";
    bus.declare_queue(queue, &QueueOptions::default()).await?;
    println!("declared quorum queue {queue} (with dead-letter queue {queue}.dlq)");
    let receipt = bus
        .publish(
            "",
            queue,
            br#"{"order": 42}"#.to_vec().into(),
            PublishOptions::default(),
        )
        .await?;
    println!("published {} -> broker confirmed", receipt.message_id);
    // The same message again (a publisher retry): the consumer's dedup skips it.
    let again = PublishOptions {
        message_id: Some(receipt.message_id.clone()),
        ..PublishOptions::default()
    };
    bus.publish("", queue, br#"{"order": 42}"#.to_vec().into(), again)
        .await?;
    println!("published {} again -> broker confirmed", receipt.message_id);
    let consumer = bus.consume(queue, ConsumeOptions::default()).await?;
    loop {
        let Some(d) = consumer.next(Some(Duration::from_secs(5))).await? else {
            break;
        };
        let mine = d.message_id.as_deref() == Some(receipt.message_id.as_str());
        d.ack().await?;
        if mine {
            println!(
                "consumed {} body={} redelivered={} -> acked",
                receipt.message_id,
                String::from_utf8_lossy(&d.body),
                d.redelivered
            );
            break;
        }
    }
    if let Err(e) = consumer.next(Some(Duration::from_millis(500))).await {
        println!("no second delivery ({e}): the duplicate was skipped");
    }
    println!("bus stats: deduplicated={}", bus.stats().deduplicated);
    consumer.close().await?;

    let pricing = "courier-demo.pricing";
    let classic = QueueOptions {
        quorum: false,
        dead_letter: false,
        ..QueueOptions::default()
    };
    bus.declare_queue(pricing, &classic).await?;
    let server = bus.serve(pricing).await?;
    let serving = tokio::spawn(async move {
        if let Ok(Some(request)) = server.next(Some(Duration::from_secs(5))).await {
            let quote = format!("quote for {}", String::from_utf8_lossy(&request.body));
            let _ = request
                .reply(quote.into_bytes().into(), Default::default())
                .await;
            let _ = request.ack().await;
        }
    });
    let reply = bus
        .request(
            pricing,
            b"order 42".to_vec().into(),
            RequestOptions::default(),
        )
        .await?;
    println!(
        "request {pricing} -> reply {:?} (correlation id {})",
        String::from_utf8_lossy(&reply.body),
        reply.correlation_id.as_deref().unwrap_or("-")
    );
    serving.await?;
    bus.close().await?;
    println!("\ndone: one real HTTP call, one confirmed message (its duplicate skipped), one RPC");
    Ok(())
}
