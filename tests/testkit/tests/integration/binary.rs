//! The `courier-testkit` binary as the other languages' tests run it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::client::{PATIENCE, get};

struct Started {
    child: Child,
    control: String,
    upstreams: Vec<String>,
    dns: String,
}

async fn spawn(args: &[&str]) -> Started {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier-testkit"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn courier-testkit");
    let stdout = child.stdout.take().expect("piped stdout");
    let read = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the ready line within the time limit")
        .expect("reader task")
        .expect("read stdout");
    let ready: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    let text = |v: &serde_json::Value| v.as_str().expect("a URL string").to_owned();
    Started {
        control: text(&ready["control"]),
        dns: text(&ready["dns"]),
        upstreams: ready["upstreams"]
            .as_array()
            .expect("upstreams array")
            .iter()
            .map(text)
            .collect(),
        child,
    }
}

/// Polls instead of blocking in `wait` so a testkit that never exits fails the test.
async fn exit_status(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("courier-testkit still running {PATIENCE:?} after being told to stop");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn exits_when_stdin_closes() {
    let mut started = spawn(&["--upstreams", "2"]).await;
    assert_eq!(started.upstreams.len(), 2);
    assert_eq!(
        get(&started.upstreams[1], "/hello").await.json()["upstream"],
        1
    );
    let log = get(&started.control, "/upstreams/1/requests").await.json();
    assert_eq!(log["by_path"]["/hello"], 1);

    drop(started.child.stdin.take());
    assert!(exit_status(&mut started.child).await.success());
}

#[tokio::test]
async fn defaults_to_three_upstreams() {
    let mut started = spawn(&[]).await;
    assert_eq!(started.upstreams.len(), 3);
    assert!(
        started.dns.starts_with("127.0.0.1:"),
        "the ready line names the DNS server: {}",
        started.dns
    );
    drop(started.child.stdin.take());
    assert!(exit_status(&mut started.child).await.success());
}

#[cfg(unix)]
#[tokio::test]
async fn exits_on_sigterm_with_stdin_still_open() {
    let mut started = spawn(&["--upstreams=1"]).await;
    let sent = Command::new("kill")
        .args(["-TERM", &started.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success());
    assert!(exit_status(&mut started.child).await.success());
}
