//! Conversions between lapin's types and courier's: errors and header tables.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use lapin::tcp::AsyncTcpStream;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use rustls_connector::RustlsConnector;

use super::message::{Incoming, Settle};
use crate::error::Error;

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

/// Maps a lapin error for `operation`, keeping broker refusals apart from transport
/// failures so callers (and later, retry policy) can tell them apart.
pub(crate) fn error(operation: &'static str, target: &str, e: lapin::Error) -> Error {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Error::Broker {
            operation,
            reply_code: amqp.get_id(),
            reply_text: amqp.get_message().to_string(),
        },
        lapin::ErrorKind::InvalidChannelState(..)
        | lapin::ErrorKind::InvalidConnectionState(..) => Error::Connect {
            operation,
            target: target.to_owned(),
            reason: format!("connection or channel is not open ({e})"),
            source: Some(Box::new(e)),
        },
        _ => {
            if let Some(reason) = crate::tls::tls_failure(&e) {
                return Error::Tls {
                    reason,
                    source: Some(Box::new(e)),
                };
            }
            Error::Connect {
                operation,
                target: target.to_owned(),
                reason: e.to_string(),
                source: Some(Box::new(e)),
            }
        }
    }
}

/// Builds an AMQP header table of long strings, the type every AMQP client can read.
pub(crate) fn to_table(headers: &BTreeMap<String, String>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in headers {
        table.insert(
            ShortString::from(k.as_str()),
            AMQPValue::LongString(LongString::from(v.as_str())),
        );
    }
    table
}

/// Reads an AMQP header table as strings. Text and numbers keep their value; byte
/// arrays are read as UTF-8 (lossily), which is how other clients send text in
/// `bytes` fields; nested tables and arrays are rendered as debug text rather than lost.
pub(crate) fn from_table(table: Option<&FieldTable>) -> BTreeMap<String, String> {
    let Some(table) = table else {
        return BTreeMap::new();
    };
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.to_string(), value_text(v)))
        .collect()
}

fn value_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        other => format!("{other:?}"),
    }
}

/// A short-string property as text, or `None` when it is absent or empty.
fn present(value: Option<&ShortString>) -> Option<String> {
    value.map(ToString::to_string).filter(|v| !v.is_empty())
}

/// A lapin delivery in courier's transport-neutral shape. `generation` is the
/// connection it came on; `None` for deliveries consumed without acks (RPC replies).
pub(crate) fn incoming(d: lapin::message::Delivery, generation: Option<u64>) -> Incoming {
    let props = &d.properties;
    Incoming {
        headers: from_table(props.headers().as_ref()),
        delivery_count: delivery_count(props.headers().as_ref()),
        // An empty property from another client is no id at all: kept as an id, every
        // later empty-id message would be deduplicated against the first and dropped.
        message_id: present(props.message_id().as_ref()),
        correlation_id: present(props.correlation_id().as_ref()),
        reply_to: present(props.reply_to().as_ref()),
        exchange: d.exchange.to_string(),
        routing_key: d.routing_key.to_string(),
        redelivered: d.redelivered,
        body: bytes::Bytes::from(d.data),
        settle: match generation {
            Some(generation) => Settle::Amqp {
                acker: d.acker,
                generation,
            },
            None => Settle::Auto,
        },
    }
}

/// The quorum-queue delivery count (`x-delivery-count`), if the broker set one.
pub(crate) fn delivery_count(table: Option<&FieldTable>) -> Option<u32> {
    let v = table?.inner().get("x-delivery-count")?;
    match v {
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_as_strings() {
        let headers = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "x y".to_owned()),
        ]);
        assert_eq!(from_table(Some(&to_table(&headers))), headers);
    }

    #[test]
    fn numbers_and_bytes_read_as_text() {
        let mut t = FieldTable::default();
        t.insert("n".into(), AMQPValue::LongLongInt(7));
        t.insert("b".into(), AMQPValue::ByteArray(b"hi".to_vec().into()));
        t.insert("x-delivery-count".into(), AMQPValue::LongInt(2));
        let m = from_table(Some(&t));
        assert_eq!((m["n"].as_str(), m["b"].as_str()), ("7", "hi"));
        assert_eq!(delivery_count(Some(&t)), Some(2));
    }
}
