//! The `courier-testkit` binary as the other languages' tests run it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use courier_testkit::{Pki, TlsUpstream};

use crate::client::{PATIENCE, get};

struct Started {
    child: Child,
    control: String,
    upstreams: Vec<String>,
    dns: String,
    tls_dir: PathBuf,
    tls_urls: serde_json::Value,
}

async fn spawn(args: &[&str]) -> Started {
    spawn_with_pki(args, None).await
}

/// `pki_dir` is passed as `COURIER_PKI_DIR`; without it the variable is removed (the
/// test runner may have set it), so the testkit makes a PKI of its own.
async fn spawn_with_pki(args: &[&str], pki_dir: Option<&Path>) -> Started {
    let mut command = Command::new(env!("CARGO_BIN_EXE_courier-testkit"));
    match pki_dir {
        Some(dir) => command.env("COURIER_PKI_DIR", dir),
        None => command.env_remove("COURIER_PKI_DIR"),
    };
    let mut child = command
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
        tls_dir: text(&ready["tls"]["dir"]).into(),
        tls_urls: ready["tls"]["urls"].clone(),
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
    for variant in TlsUpstream::ALL {
        let url = started.tls_urls[variant.name()]
            .as_str()
            .unwrap_or_default();
        assert!(
            url.starts_with("https://127.0.0.1:"),
            "tls.urls.{}: {url:?}",
            variant.name()
        );
    }
    assert!(Pki::load(&started.tls_dir).is_ok(), "tls.dir holds the PKI");
    drop(started.child.stdin.take());
    assert!(exit_status(&mut started.child).await.success());
    assert!(
        !started.tls_dir.exists(),
        "a PKI made for one process goes with it"
    );
}

#[tokio::test]
async fn pki_command_prepares_the_directory_the_server_then_uses() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("pki");
    let pki = || {
        let output = Command::new(env!("CARGO_BIN_EXE_courier-testkit"))
            .args(["pki", "--out"])
            .arg(&dir)
            .output()
            .expect("run courier-testkit pki");
        assert!(output.status.success(), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            dir.to_str().unwrap()
        );
        Pki::load(&dir).expect("a PKI in --out")
    };
    let made = pki();
    assert_eq!(pki(), made, "a second run keeps the PKI");

    let mut started = spawn_with_pki(&["--upstreams=1"], Some(&dir)).await;
    assert_eq!(started.tls_dir, dir);
    drop(started.child.stdin.take());
    assert!(exit_status(&mut started.child).await.success());
    assert_eq!(Pki::load(&dir).expect("still there"), made);
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
