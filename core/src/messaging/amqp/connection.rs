//! Opening and closing AMQP connections: TLS through courier's own rustls config, and
//! closes that cannot hang.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lapin::tcp::AsyncTcpStream;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use rustls_connector::RustlsConnector;

/// Opens a connection to `url`. `amqps://` goes through courier's rustls config (`tls`)
/// instead of lapin's own, which cannot take a custom verifier or a minimum version:
/// that is what makes HTTP and AMQP trust exactly the same roots.
pub(crate) async fn connect(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    properties: ConnectionProperties,
) -> lapin::Result<Connection> {
    let uri: AMQPUri = url
        .parse()
        .map_err(|e: String| lapin::Error::from(std::io::Error::other(e)))?;
    if uri.scheme == AMQPScheme::AMQP {
        return Connection::connect_uri(uri, properties).await;
    }
    let connector = RustlsConnector::from(tls.clone());
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connector(
        uri,
        runtime,
        async move |uri, runtime| {
            let host = uri.authority.host.as_str();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, uri.authority.port))
                .await?
                .collect();
            let stream = AsyncTcpStream::connect(&runtime, addrs).await?;
            Ok(stream.into_rustls(&connector, host).await?)
        },
        properties,
    )
    .await
}

/// Why a broker might hang up on an `amqps://` connection right after the handshake: TLS
/// 1.3 finishes the client's side before the server has checked the client certificate,
/// so a refusal arrives as a reset rather than as a TLS alert the client could read.
pub(crate) fn tls_refusal_hint(url: &str, e: &lapin::Error) -> Option<&'static str> {
    let tls = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("amqps://"));
    let hung_up = matches!(e.kind(), lapin::ErrorKind::IOError(io) if matches!(
        io.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::BrokenPipe
    ));
    (tls && hung_up).then_some(
        " (the broker hung up after the TLS handshake: it may require a client certificate \
         (tls.client_cert_pem, tls.client_key_pem) or refuse the one sent)",
    )
}

/// How long closing a connection or channel may wait for the broker's close-ok. lapin
/// can leave a close pending forever when the broker already dropped the connection
/// (amqp-rs/lapin#409); after this the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Awaits a lapin close for at most [`CLOSE_TIMEOUT`]; failures are only logged, since
/// the caller is done with `what` either way.
pub(crate) async fn close_bounded(
    closing: impl std::future::Future<Output = lapin::Result<()>>,
    what: &'static str,
) {
    match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "amqp {what} close"),
        Err(_) => tracing::debug!("amqp {what} close: no close-ok within {CLOSE_TIMEOUT:?}"),
    }
}
