use std::net::{Ipv4Addr, Ipv6Addr};

use courier_testkit::{DnsRecords, SrvRecord, Testkit};

use super::*;
use crate::balance::{Balancer, VersionConfig};

fn config(kit: &Testkit, dns: &str, port: Option<u16>) -> DiscoveryConfig {
    DiscoveryConfig {
        dns: dns.to_owned(),
        port,
        refresh_ms: 60_000,
        resolver: Some(kit.dns_addr().to_string()),
        scheme: "http".to_owned(),
    }
}

async fn resolve(kit: &Testkit, dns: &str, port: Option<u16>) -> Vec<(String, u32)> {
    let cfg = config(kit, dns, port);
    let resolver = build_resolver(&cfg).unwrap();
    let source = Source {
        name: cfg.dns,
        port,
        scheme: cfg.scheme,
    };
    let found = source.resolve(&resolver).await.unwrap();
    found
        .into_iter()
        .map(|f| (f.url.to_string(), f.weight))
        .collect()
}

fn srv(target: &str, port: u16, weight: u16, priority: u16) -> SrvRecord {
    SrvRecord {
        target: target.to_owned(),
        port,
        weight,
        priority,
    }
}

#[test]
fn addresses_become_urls_once_each_with_ipv6_bracketed() {
    let v4 = IpAddr::from(Ipv4Addr::new(10, 0, 0, 1));
    let v6 = IpAddr::from(Ipv6Addr::LOCALHOST);
    let found = found("https", [(v4, 8443, 2), (v6, 8443, 1), (v4, 8443, 7)]);
    let urls: Vec<_> = found.iter().map(|f| (f.url.as_str(), f.weight)).collect();
    assert_eq!(
        urls,
        [("https://10.0.0.1:8443/", 2), ("https://[::1]:8443/", 1)],
        "a repeated address keeps its first weight"
    );
}

#[test]
fn a_refresh_reuses_endpoints_so_their_statistics_survive() {
    let url = |port: u16| Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let kept = Arc::new(Endpoint::new(url(1), "kept".into(), None, 1));
    let reweighted = Arc::new(Endpoint::new(url(2), "reweighted".into(), None, 1));
    let removed = Arc::new(Endpoint::new(url(3), "removed".into(), None, 1));
    assert!(!kept.start().finish(false, None));
    let current = [kept.clone(), reweighted.clone(), removed.clone()];
    let next = merge(
        &current,
        vec![
            Found {
                url: url(1),
                weight: 1,
            },
            Found {
                url: url(2),
                weight: 5,
            },
            Found {
                url: url(4),
                weight: 1,
            },
        ],
    );
    assert_eq!(next.len(), 3);
    assert!(
        Arc::ptr_eq(&next[0], &kept),
        "same URL and weight: the same endpoint"
    );
    assert_eq!(next[0].stats().requests, 1, "its counters carry over");
    assert!(
        !Arc::ptr_eq(&next[1], &reweighted),
        "a new weight starts afresh"
    );
    assert_eq!(next[1].weight, 5);
    assert_eq!(next[2].url, url(4));
    assert_eq!(next[2].display, "http://127.0.0.1:4/");
    assert!(
        next.iter().all(|ep| !Arc::ptr_eq(ep, &removed)),
        "a removed endpoint leaves the list"
    );
}

#[tokio::test]
async fn a_and_aaaa_records_with_the_configured_port() {
    let kit = Testkit::start(0).await.unwrap();
    kit.set_dns(
        "orders.test",
        DnsRecords {
            a: vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)],
            aaaa: vec![Ipv6Addr::LOCALHOST],
            srv: vec![],
        },
    );
    let mut urls = resolve(&kit, "orders.test", Some(8080)).await;
    urls.sort();
    assert_eq!(
        urls,
        [
            ("http://127.0.0.1:8080/".to_owned(), 1),
            ("http://127.0.0.2:8080/".to_owned(), 1),
            ("http://[::1]:8080/".to_owned(), 1),
        ]
    );
}

#[tokio::test]
async fn srv_records_of_the_lowest_priority_give_targets_ports_and_weights() {
    let kit = Testkit::start(0).await.unwrap();
    kit.set_dns(
        "_http._tcp.orders.test",
        DnsRecords {
            srv: vec![
                srv("127.0.0.1", 1001, 5, 0),
                srv("backend.test.", 1002, 0, 0),
                srv("127.0.0.1", 1003, 1, 1),
                srv(".", 1004, 1, 0),
            ],
            ..DnsRecords::default()
        },
    );
    kit.set_dns(
        "backend.test",
        DnsRecords {
            a: vec![Ipv4Addr::new(127, 0, 0, 3)],
            ..DnsRecords::default()
        },
    );
    assert_eq!(
        resolve(&kit, "_http._tcp.orders.test", None).await,
        [
            ("http://127.0.0.1:1001/".to_owned(), 5),
            ("http://127.0.0.3:1002/".to_owned(), 1),
        ],
        "priority 1 is a backup, '.' means no service, weight 0 counts as 1"
    );
}

#[tokio::test]
async fn the_task_fills_the_set_and_a_failed_first_resolution_still_releases_calls() {
    let kit = Testkit::start(0).await.unwrap();
    kit.set_dns(
        "orders.test",
        DnsRecords {
            a: vec![Ipv4Addr::new(127, 0, 0, 1)],
            ..DnsRecords::default()
        },
    );
    let new_set = || {
        Arc::new(EndpointSet::new(
            vec![],
            Balancer::default(),
            None,
            VersionConfig::default(),
        ))
    };
    let found = new_set();
    let _task = Discovery::spawn(
        "orders",
        "services.orders.discovery",
        &config(&kit, "orders.test", Some(9)),
        Arc::clone(&found),
    )
    .unwrap();
    found.ready().await;
    let urls: Vec<_> = found.stats().into_iter().map(|s| s.url).collect();
    assert_eq!(urls, ["http://127.0.0.1:9/"]);

    let missing = new_set();
    let _task = Discovery::spawn(
        "missing",
        "services.missing.discovery",
        &config(&kit, "missing.test", Some(9)),
        Arc::clone(&missing),
    )
    .unwrap();
    missing.ready().await;
    assert!(
        missing.select(None, &[]).is_err(),
        "NXDOMAIN leaves the set empty, and calls fail instead of waiting"
    );
}
