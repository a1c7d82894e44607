//! What the integration test binaries that talk to RabbitMQ share (each includes it with
//! `mod support;`): where the broker is, and removing a test's queues so runs leave
//! nothing behind on a shared broker.

#![allow(
    dead_code,
    reason = "each test binary that includes it uses a different part"
)]

/// `COURIER_AMQP_URL`, else the broker `tests/scripts/ensure-rabbitmq.sh` starts.
pub fn amqp_url() -> String {
    std::env::var("COURIER_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Deletes the named queues over a connection of its own.
pub async fn delete_queues(names: &[&str]) {
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for name in names {
        ch.queue_delete(
            (*name).into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    }
    conn.close(200, "bye".into()).await.unwrap();
}

/// Messages ready in `queue` and its consumers, from a passive declare on a connection
/// of its own.
pub async fn queue_counts(queue: &str) -> (u32, u32) {
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let declared = ch
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    (declared.message_count(), declared.consumer_count())
}

/// The address of a URL's host and port (the scheme's default port when it has none).
pub fn socket_addr(url: &str) -> std::net::SocketAddr {
    let url = url::Url::parse(url).unwrap();
    let host = url.host_str().unwrap().to_owned();
    let port = url.port_or_known_default().unwrap_or(match url.scheme() {
        "amqps" => 5671,
        _ => 5672,
    });
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .unwrap()
        .next()
        .unwrap()
}
