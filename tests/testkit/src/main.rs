//! `courier-testkit [--upstreams N]`: the testkit as a process, for the bindings' tests.
//!
//! It prints `{"control": url, "upstreams": [url, ...], "dns": "127.0.0.1:port"}` as
//! one line on stdout (`dns` is the UDP DNS server's address), then
//! runs until its stdin reaches EOF or it gets SIGINT/SIGTERM. Tying the lifetime to
//! stdin means a test runner that dies without cleaning up still takes the testkit
//! with it, since the kernel closes the pipe.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::process::ExitCode;

use courier_testkit::Testkit;
use tokio::sync::oneshot;

const USAGE: &str = "usage: courier-testkit [--upstreams N]";
const DEFAULT_UPSTREAMS: usize = 3;

#[tokio::main]
async fn main() -> ExitCode {
    let upstreams = match parse_args(std::env::args().skip(1)) {
        Ok(Some(n)) => n,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("courier-testkit: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let kit = match Testkit::start(upstreams).await {
        Ok(kit) => kit,
        Err(e) => {
            eprintln!("courier-testkit: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let terminated = on_termination();
    let ready = serde_json::json!({
        "control": kit.control_url(),
        "upstreams": kit.urls(),
        "dns": kit.dns_addr().to_string(),
    });
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{ready}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Nobody can learn the URLs, so serving would only leak a process.
        return ExitCode::FAILURE;
    }
    drop(stdout);
    tokio::select! {
        () = stdin_closed() => {}
        () = terminated => {}
    }
    ExitCode::SUCCESS
}

/// `Ok(None)` asks for the usage text.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<usize>, String> {
    let mut upstreams = DEFAULT_UPSTREAMS;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--upstreams" => args
                .next()
                .ok_or_else(|| "--upstreams needs a value".to_owned())?,
            other => match other.strip_prefix("--upstreams=") {
                Some(value) => value.to_owned(),
                None => return Err(format!("unexpected argument {other:?}")),
            },
        };
        upstreams = value
            .parse()
            .map_err(|_| format!("--upstreams wants a count, got {value:?}"))?;
    }
    Ok(Some(upstreams))
}

/// Reads stdin on a plain thread: tokio's stdin would use a blocking-pool thread that
/// the runtime waits for at exit, so a signal could never end the process.
async fn stdin_closed() {
    let (closed, on_close) = oneshot::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut sink = [0u8; 4096];
        loop {
            match stdin.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = closed.send(());
    });
    let _ = on_close.await;
}

/// Registers the handlers at call time, not at first poll: they must be in place before
/// the ready line, or a parent that signals as soon as it has read it kills the process
/// by the default disposition, which reads as a crash.
#[cfg(unix)]
fn on_termination() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = handlers else {
            // Without handlers the default disposition still ends the process.
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }
}

#[cfg(not(unix))]
fn on_termination() -> impl Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<usize>, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]), Ok(Some(3)));
        assert_eq!(parse(&["--upstreams", "5"]), Ok(Some(5)));
        assert_eq!(parse(&["--upstreams=1"]), Ok(Some(1)));
        assert_eq!(parse(&["--help"]), Ok(None));
        assert!(parse(&["--upstreams"]).is_err());
        assert!(parse(&["--upstreams", "x"]).is_err());
        assert!(parse(&["--verbose"]).is_err());
    }
}
