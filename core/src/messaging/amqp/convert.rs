//! Conversions between lapin's types and courier's: errors, header tables, message
//! properties, queue arguments and deliveries.

use std::collections::BTreeMap;

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::error::Error;
use crate::messaging::message::{Incoming, Outgoing, Settle};
use crate::messaging::queue::{
    DEFAULT_DELIVERY_LIMIT, ExchangeKind, QueueOptions, dead_letter_queue,
};

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
/// `bytes` fields; nested tables and arrays (RabbitMQ's `x-death`) are rendered as JSON
/// text rather than lost.
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
        nested => value_json(nested, 0).to_string(),
    }
}

/// A field value as JSON, for nested tables and arrays: text stays text, numbers and
/// timestamps (seconds) stay numbers, byte arrays are read as UTF-8 (lossily). Below
/// [`MAX_NESTING`] levels a value is cut, so a hostile header cannot recurse deeply.
fn value_json(v: &AMQPValue, depth: usize) -> serde_json::Value {
    use serde_json::Value;
    if depth > MAX_NESTING {
        return Value::String("(nested too deeply)".to_owned());
    }
    match v {
        AMQPValue::FieldTable(table) => Value::Object(
            table
                .inner()
                .iter()
                .map(|(k, v)| (k.to_string(), value_json(v, depth + 1)))
                .collect(),
        ),
        AMQPValue::FieldArray(items) => Value::Array(
            items
                .as_slice()
                .iter()
                .map(|v| value_json(v, depth + 1))
                .collect(),
        ),
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        AMQPValue::Float(n) => Value::from(*n),
        AMQPValue::Double(n) => Value::from(*n),
        AMQPValue::Void => Value::Null,
        AMQPValue::DecimalValue(d) => Value::String(format!("{}e-{}", d.value, d.scale)),
        text => Value::String(value_text(text)),
    }
}

/// How deep a nested header value is rendered (RabbitMQ's `x-death` nests three levels).
const MAX_NESTING: usize = 8;

/// A short-string property as text, or `None` when it is absent or empty.
fn present(value: Option<&ShortString>) -> Option<String> {
    value.map(ToString::to_string).filter(|v| !v.is_empty())
}

/// A lapin delivery in courier's transport-neutral shape, settled through `settle`
/// (`None` for deliveries consumed without acks: RPC replies).
pub(crate) fn incoming(
    d: lapin::message::Delivery,
    settle: impl FnOnce(lapin::Acker) -> Option<Box<dyn Settle>>,
) -> Incoming {
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
        settle: settle(d.acker),
    }
}

/// The AMQP properties of `message`.
pub(crate) fn properties(message: &Outgoing) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_message_id(message.message_id.as_str().into())
        .with_delivery_mode(if message.persistent { 2 } else { 1 })
        .with_headers(to_table(&message.headers));
    if let Some(cid) = &message.correlation_id {
        props = props.with_correlation_id(cid.as_str().into());
    }
    if let Some(reply_to) = &message.reply_to {
        props = props.with_reply_to(reply_to.as_str().into());
    }
    if let Some(ms) = message.expiration_ms {
        props = props.with_expiration(ms.to_string().as_str().into());
    }
    props
}

/// The `x-` arguments for declaring queue `name` with `options` (checked already).
pub(crate) fn queue_arguments(name: &str, options: &QueueOptions) -> FieldTable {
    let mut args = FieldTable::default();
    if options.quorum {
        args.insert("x-queue-type".into(), long_string("quorum"));
        // Sent even when defaulted: brokers differ in their own default (none on
        // RabbitMQ 3.x, 20 on 4.x), and the in-process broker must match.
        let limit = options.delivery_limit.unwrap_or(DEFAULT_DELIVERY_LIMIT);
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(limit)),
        );
    }
    if options.dead_letter {
        // Through the default exchange: no extra exchange to declare or recover.
        args.insert("x-dead-letter-exchange".into(), long_string(""));
        args.insert(
            "x-dead-letter-routing-key".into(),
            long_string(&dead_letter_queue(name)),
        );
    }
    if let Some(ttl) = options.ttl_ms() {
        // `QueueOptions::check` refused a TTL beyond i64.
        args.insert(
            "x-message-ttl".into(),
            AMQPValue::LongLongInt(i64::try_from(ttl).unwrap_or(i64::MAX)),
        );
    }
    args
}

/// The arguments of a queue's dead-letter queue: the same queue type, nothing else.
pub(crate) fn dead_letter_arguments(options: &QueueOptions) -> FieldTable {
    let mut args = FieldTable::default();
    if options.quorum {
        args.insert("x-queue-type".into(), long_string("quorum"));
    }
    args
}

/// A delay queue's arguments: a classic queue (per-message TTL and dead-lettering on
/// expiry work alike on every RabbitMQ version courier supports; the hop out of it is
/// RabbitMQ's at-most-once dead-lettering, see docs/messaging.md) that dead-letters to
/// `target` without a routing key, so each message keeps its own.
pub(crate) fn delay_arguments(target: &str) -> FieldTable {
    let mut args = FieldTable::default();
    // Explicit: a vhost may default to another queue type.
    args.insert("x-queue-type".into(), long_string("classic"));
    args.insert("x-dead-letter-exchange".into(), long_string(target));
    args
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

impl From<ExchangeKind> for lapin::ExchangeKind {
    fn from(k: ExchangeKind) -> Self {
        match k {
            ExchangeKind::Direct => lapin::ExchangeKind::Direct,
            ExchangeKind::Fanout => lapin::ExchangeKind::Fanout,
            ExchangeKind::Topic => lapin::ExchangeKind::Topic,
            ExchangeKind::Headers => lapin::ExchangeKind::Headers,
        }
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

    /// RabbitMQ's `x-death`: an array of tables, read as JSON a consumer can parse.
    #[test]
    fn nested_tables_and_arrays_read_as_json() {
        let mut death = FieldTable::default();
        death.insert("count".into(), AMQPValue::LongLongInt(1));
        death.insert("reason".into(), AMQPValue::LongString("expired".into()));
        death.insert("time".into(), AMQPValue::Timestamp(1_796_287_997));
        death.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(vec![AMQPValue::LongString("orders".into())].into()),
        );
        let mut t = FieldTable::default();
        t.insert(
            "x-death".into(),
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
        );
        let text = &from_table(Some(&t))["x-death"];
        let parsed: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!([{"count": 1, "reason": "expired", "time": 1_796_287_997_u64, "routing-keys": ["orders"]}])
        );
    }

    #[test]
    fn default_queue_is_quorum_with_dead_letter_queue() {
        let args = queue_arguments("orders", &QueueOptions::default());
        let inner = args.inner();
        assert!(
            matches!(inner.get("x-queue-type"), Some(AMQPValue::LongString(s)) if s.as_bytes() == b"quorum")
        );
        assert!(
            matches!(inner.get("x-dead-letter-routing-key"), Some(AMQPValue::LongString(s)) if s.as_bytes() == b"orders.dlq")
        );
    }

    #[test]
    fn a_classic_queue_has_no_delivery_limit() {
        let classic = QueueOptions {
            quorum: false,
            ..QueueOptions::default()
        };
        let args = queue_arguments("q", &classic);
        assert!(args.inner().get("x-delivery-limit").is_none());
        assert!(dead_letter_arguments(&classic).inner().is_empty());
    }
}
