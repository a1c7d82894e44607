//! `courier-testkit [--upstreams N]`: the testkit as a process, for the bindings' tests.
//!
//! It prints one line of JSON on stdout:
//!
//! ```text
//! {"control": url, "upstreams": [url, ...], "dns": "127.0.0.1:port", "otlp": url,
//!  "tls": {"dir": path, "urls": {"mtls": url, "tls12": url, "expired": url,
//!          "wrong_san": url, "other_ca": url, "no_client_auth": url}}}
//! ```
//!
//! (`dns` is the UDP DNS server's address; `otlp` an OTLP/HTTP receiver's base URL,
//! from which `GET /spans` and `GET /metrics` read back what was exported; `tls.dir` holds the PKI's PEM files, taken
//! from `$COURIER_PKI_DIR` when set, so every process and the RabbitMQ broker share
//! one CA, else made for this process and deleted when it exits), then runs until its
//! stdin reaches EOF or it gets SIGINT/SIGTERM. Tying the lifetime to stdin means a
//! test runner that dies without cleaning up still takes the testkit with it, since
//! the kernel closes the pipe.
//!
//! `courier-testkit pki --out DIR` only makes sure DIR holds a PKI and prints DIR, for
//! setup scripts that configure other servers with the same certificates.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use courier_testkit::{OtlpReceiver, Pki, Testkit, TlsUpstream};
use tokio::sync::oneshot;

const USAGE: &str = "usage: courier-testkit [--upstreams N]
       courier-testkit pki --out DIR

With no command, serves upstreams until stdin closes; HTTPS ones use the PKI in
$COURIER_PKI_DIR (made there if missing) or else a temporary one.
`pki` writes the test PKI into DIR unless it is already there, then prints DIR.";
const DEFAULT_UPSTREAMS: usize = 3;

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help,
    Serve { upstreams: usize },
    Pki { out: PathBuf },
}

#[tokio::main]
async fn main() -> ExitCode {
    let upstreams = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Serve { upstreams }) => upstreams,
        Ok(Command::Pki { out }) => return write_pki(&out),
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("courier-testkit: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Held until exit: dropping it deletes a temporary PKI directory.
    let (pki, pki_dir) = match pki() {
        Ok(pki) => pki,
        Err(e) => {
            eprintln!("courier-testkit: cannot set up the PKI: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kit = match Testkit::start_with_tls(upstreams, &pki).await {
        Ok(kit) => kit,
        Err(e) => {
            eprintln!("courier-testkit: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One OTLP receiver for the exporters under test (courier's and the host SDK's).
    let otlp = match OtlpReceiver::start().await {
        Ok(otlp) => otlp,
        Err(e) => {
            eprintln!("courier-testkit: cannot listen for OTLP: {e}");
            return ExitCode::FAILURE;
        }
    };
    let terminated = on_termination();
    let tls_urls: serde_json::Map<String, serde_json::Value> = TlsUpstream::ALL
        .iter()
        .map(|variant| (variant.name().to_owned(), kit.tls_url(*variant).into()))
        .collect();
    let ready = serde_json::json!({
        "control": kit.control_url(),
        "upstreams": kit.urls(),
        "dns": kit.dns_addr().to_string(),
        "otlp": otlp.url(),
        "tls": {
            "dir": pki_dir.path().to_string_lossy(),
            "urls": tls_urls,
        },
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

fn parse_args(args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut args = args.peekable();
    if args.peek().is_some_and(|arg| arg == "pki") {
        args.next();
        return parse_pki_args(args);
    }
    let mut upstreams = DEFAULT_UPSTREAMS;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
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
    Ok(Command::Serve { upstreams })
}

fn parse_pki_args(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut out = None;
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--out" => args
                .next()
                .ok_or_else(|| "--out needs a value".to_owned())?,
            other => match other.strip_prefix("--out=") {
                Some(value) => value.to_owned(),
                None => return Err(format!("unexpected argument {other:?}")),
            },
        };
        out = Some(PathBuf::from(value));
    }
    let out = out.ok_or_else(|| "pki needs --out DIR".to_owned())?;
    Ok(Command::Pki { out })
}

fn write_pki(out: &Path) -> ExitCode {
    match Pki::load_or_generate(out) {
        Ok(_) => {
            println!("{}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "courier-testkit: cannot write the PKI to {}: {e}",
                out.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Where the PKI for the HTTPS upstreams lives.
enum PkiDir {
    /// `$COURIER_PKI_DIR`: shared, so it outlives this process.
    Shared(PathBuf),
    /// This process's own, deleted on drop.
    Temporary(tempfile::TempDir),
}

impl PkiDir {
    fn path(&self) -> &Path {
        match self {
            PkiDir::Shared(path) => path,
            PkiDir::Temporary(dir) => dir.path(),
        }
    }
}

fn pki() -> std::io::Result<(Pki, PkiDir)> {
    match std::env::var_os("COURIER_PKI_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            Ok((Pki::load_or_generate(&dir)?, PkiDir::Shared(dir)))
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("courier-testkit-pki-")
                .tempdir()?;
            let pki = Pki::generate();
            pki.write(dir.path())?;
            Ok((pki, PkiDir::Temporary(dir)))
        }
    }
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

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    fn serve(upstreams: usize) -> Result<Command, String> {
        Ok(Command::Serve { upstreams })
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]), serve(3));
        assert_eq!(parse(&["--upstreams", "5"]), serve(5));
        assert_eq!(parse(&["--upstreams=1"]), serve(1));
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert!(parse(&["--upstreams"]).is_err());
        assert!(parse(&["--upstreams", "x"]).is_err());
        assert!(parse(&["--verbose"]).is_err());
    }

    #[test]
    fn pki_arguments() {
        let pki = |out: &str| Ok(Command::Pki { out: out.into() });
        assert_eq!(parse(&["pki", "--out", "/tmp/p"]), pki("/tmp/p"));
        assert_eq!(parse(&["pki", "--out=rel"]), pki("rel"));
        assert_eq!(parse(&["pki", "--help"]), Ok(Command::Help));
        assert!(parse(&["pki"]).is_err());
        assert!(parse(&["pki", "--out"]).is_err());
        assert!(parse(&["pki", "--upstreams", "2"]).is_err());
        // Only as the first argument is it a command.
        assert!(parse(&["--upstreams", "1", "pki"]).is_err());
    }
}
