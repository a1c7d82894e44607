//! DNS discovery against the testkit's DNS server: the answer changes, traffic follows
//! after a refresh. Counts requests at the upstreams; the only wait is a bounded poll
//! for the refresh to land.

use std::time::Duration;

use courier_testkit::{DnsRecords, SrvRecord, Testkit};
use courierkit::{Client, ClientConfig, EndpointStats, Request, Validate};

const NAME: &str = "_http._tcp.orders.test";

/// Every upstream listens on 127.0.0.1, so SRV records tell them apart by port.
fn answer(kit: &Testkit, upstreams: &[usize]) -> DnsRecords {
    let urls = kit.urls();
    let srv = upstreams
        .iter()
        .map(|&i| SrvRecord {
            target: "127.0.0.1".to_owned(),
            port: urls[i].rsplit(':').next().unwrap().parse().unwrap(),
            weight: 1,
            priority: 0,
        })
        .collect();
    DnsRecords {
        srv,
        ..DnsRecords::default()
    }
}

/// Round robin, so every discovered endpoint is sure to get a share of the calls.
fn discovering_client(kit: &Testkit) -> Client {
    let config = ClientConfig::from_value(serde_json::json!({ "services": { "orders": {
        "discovery": { "dns": NAME, "resolver": kit.dns_addr().to_string(), "refresh_ms": 200 },
        "balancer": "round_robin",
    } } }))
    .unwrap();
    Client::new(config).unwrap()
}

async fn call_many(client: &Client, calls: usize) {
    for _ in 0..calls {
        let resp = client
            .call(Request::new("GET", "orders", "/"))
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
    }
}

fn endpoints(client: &Client) -> Vec<EndpointStats> {
    client.stats().services["orders"].endpoints.clone()
}

fn stats_of<'a>(endpoints: &'a [EndpointStats], url: &str) -> Option<&'a EndpointStats> {
    endpoints
        .iter()
        .find(|ep| ep.url.trim_end_matches('/') == url)
}

/// Polls `stats()` until `url` is among the endpoints, for at most 5 s.
async fn wait_for_endpoint(client: &Client, url: &str) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(5);
    while stats_of(&endpoints(client), url).is_none() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "{url} not discovered within 5 s: {:?}",
            endpoints(client)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves 200 calls from upstreams 0 and 1, then moves the answer to 1 and 2 and
/// waits for the refresh.
async fn discover_then_move(kit: &Testkit, client: &Client) {
    call_many(client, 200).await;
    let urls = kit.urls();
    assert!(
        kit.requests(0).total() > 0 && kit.requests(1).total() > 0,
        "both discovered upstreams get traffic"
    );
    assert_eq!(
        kit.requests(0).total() + kit.requests(1).total(),
        200,
        "every call went to a discovered upstream"
    );
    assert_eq!(kit.requests(2).total(), 0, "upstream 2 is not in DNS yet");
    kit.set_dns(NAME, answer(kit, &[1, 2]));
    wait_for_endpoint(client, &urls[2]).await;
}

#[tokio::test]
async fn traffic_follows_the_dns_answer() {
    let kit = Testkit::start(3).await.unwrap();
    kit.set_dns(NAME, answer(&kit, &[0, 1]));
    // The first call waits for the first resolution instead of failing NoEndpoint.
    let client = discovering_client(&kit);
    discover_then_move(&kit, &client).await;
    let urls = kit.urls();
    assert!(
        stats_of(&endpoints(&client), &urls[0]).is_none(),
        "the refresh removed upstream 0"
    );

    kit.reset();
    call_many(&client, 200).await;
    assert_eq!(
        kit.requests(0).total(),
        0,
        "a removed endpoint gets no new calls"
    );
    assert!(kit.requests(2).total() > 0, "a new endpoint gets traffic");
    assert_eq!(kit.requests(1).total() + kit.requests(2).total(), 200);
}

#[tokio::test]
async fn endpoint_statistics_survive_a_refresh() {
    let kit = Testkit::start(3).await.unwrap();
    kit.set_dns(NAME, answer(&kit, &[0, 1]));
    let client = discovering_client(&kit);
    let urls = kit.urls();
    discover_then_move(&kit, &client).await;
    let served = kit.requests(1).total();
    let after = endpoints(&client);
    let kept = stats_of(&after, &urls[1]).expect("upstream 1 is still discovered");
    assert_eq!(
        kept.requests, served,
        "upstream 1 keeps its request count across the refresh"
    );
    assert_eq!(stats_of(&after, &urls[2]).unwrap().requests, 0);

    call_many(&client, 10).await;
    let counted = stats_of(&endpoints(&client), &urls[1]).unwrap().requests;
    assert_eq!(
        counted,
        kit.requests(1).total(),
        "the kept endpoint goes on counting"
    );
}
