//! The TCP fault proxy against a loopback echo server: bytes pass intact through latency
//! and a bandwidth cap, a blackhole forwards nothing and closes nothing, and a reset
//! reaches the client as ECONNRESET.

use std::io::ErrorKind;
use std::time::Duration;

use courier_testkit::{Faults, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Echoes every connection until it closes.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
    stream.write_all(payload).await.unwrap();
    let mut back = vec![0u8; payload.len()];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
        .await
        .expect("echoed within 10 s")
        .unwrap();
    back
}

#[tokio::test]
async fn latency_and_bandwidth_keep_the_bytes_intact() {
    let proxy = Proxy::start(echo_server().await).await.unwrap();
    proxy.set_faults(Faults {
        latency_ms: 20,
        bandwidth_bytes_per_sec: 64 * 1024,
        blackhole: false,
    });
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    let payload: Vec<u8> = (0..16 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&mut stream, &payload).await, payload);
}

#[tokio::test]
async fn a_blackhole_forwards_nothing_and_closes_nothing_until_lifted() {
    let proxy = Proxy::start(echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"before").await, b"before");
    proxy.set_faults(Faults {
        blackhole: true,
        ..Faults::default()
    });
    stream.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 16];
    // Neither data nor EOF: the read is still pending when we stop waiting.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf))
            .await
            .is_err()
    );
    proxy.set_faults(Faults::default());
    assert_eq!(round_trip(&mut stream, b"after").await, b"after");
}

#[tokio::test]
async fn a_reset_reaches_the_client_as_connection_reset() {
    let proxy = Proxy::start(echo_server().await).await.unwrap();
    let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"ping").await, b"ping");
    proxy.reset();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("the reset arrives");
    assert_eq!(read.unwrap_err().kind(), ErrorKind::ConnectionReset);
    // New connections are forwarded.
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(round_trip(&mut again, b"pong").await, b"pong");
}
