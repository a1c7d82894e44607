//! The adaptive concurrency limit against a testkit upstream whose latency steps up and
//! back down: the limit (read from the stats) falls and recovers. Compared with itself,
//! not with a time: how far it moves depends on the machine, the direction does not.

use courier_testkit::{Action, Testkit};
use courierkit::{Client, ErrorKind};
use tokio::task::JoinSet;

use super::support;

const WORKERS: usize = 32;

/// `WORKERS` callers until each has `successes` answered calls, counting the calls the
/// limit refused (a refused caller pauses 1 ms, and gives up after 5,000 refusals).
async fn load(c: &Client, successes: usize) -> (usize, usize) {
    let mut workers = JoinSet::new();
    for _ in 0..WORKERS {
        let c = c.clone();
        workers.spawn(async move {
            let (mut ok, mut refused) = (0, 0);
            while ok < successes && refused < 5_000 {
                match c.get("adaptive", "/x").await {
                    Ok(_) => ok += 1,
                    Err(e) if e.kind() == ErrorKind::Overloaded => {
                        refused += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, refused)
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(done) = workers.join_next().await {
        let (o, r) = done.unwrap();
        ok += o;
        refused += r;
    }
    (ok, refused)
}

fn limit(c: &Client) -> u64 {
    c.stats().services["adaptive"].concurrency_limit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_falls_under_a_latency_step_and_recovers() {
    let kit = Testkit::start(1).await.unwrap();
    let c = support::client_for(
        "adaptive",
        &kit.urls(),
        serde_json::json!({
            "adaptive_concurrency": {"min_limit": 1, "max_limit": 200, "initial_limit": 8},
        }),
    );
    assert_eq!(limit(&c), 8, "the initial limit");
    let (ok, _) = load(&c, 40).await;
    assert_eq!(ok, WORKERS * 40);
    let fast = limit(&c);

    let slow = Action {
        latency_ms: 100,
        ..Action::default()
    };
    support::behave(&kit, 0, Vec::new(), slow);
    let (ok, refused) = load(&c, 5).await;
    assert_eq!(ok, WORKERS * 5);
    let stepped = limit(&c);
    assert!(stepped < fast, "latency x100: {fast} -> {stepped}");
    assert!(refused > 0, "callers past the lowered limit were refused");

    support::behave(&kit, 0, Vec::new(), Action::default());
    load(&c, 40).await;
    let recovered = limit(&c);
    eprintln!("limit: 8 -> {fast} fast -> {stepped} at +100 ms ({refused} refused) -> {recovered}");
    assert!(
        recovered > stepped,
        "latency back: {stepped} -> {recovered}"
    );

    let stats = &c.stats().services["adaptive"];
    assert_eq!(stats.in_flight, 0);
    assert_eq!(
        stats.requests as usize,
        kit.requests(0).total() as usize,
        "{stats:?}"
    );
}
