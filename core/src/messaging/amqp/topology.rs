//! Declaring exchanges, queues and bindings on the broker: once when asked, and again,
//! in order, on every new connection.

use lapin::Channel;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use super::connection::close_bounded;
use super::convert::{self, dead_letter_arguments, delay_arguments, queue_arguments};
use super::link::Live;
use crate::error::Result;
use crate::messaging::queue::dead_letter_queue;
use crate::messaging::transport::Declaration;

/// Applies declarations on a short-lived channel: a refused declaration closes its
/// channel, and that must not take the publisher or a consumer down with it. During
/// replay (`strict` false) a refusal is logged and the rest still applied: one queue
/// someone redeclared differently must not keep the whole bus offline.
pub(crate) async fn apply(live: &Live, declarations: &[Declaration], strict: bool) -> Result<()> {
    let target = &live.target;
    let mut channel = None;
    for declaration in declarations {
        let ch = match channel.take() {
            Some(ch) => ch,
            None => live
                .connection
                .create_channel()
                .await
                .map_err(|e| convert::error("channel.open", target, e))?,
        };
        match declare_on(&ch, declaration, target).await {
            Ok(()) => channel = Some(ch),
            Err(e) if strict => return Err(e),
            Err(e) => {
                tracing::warn!(?declaration, error = %e, "redeclaration refused after reconnect")
            }
        }
    }
    if let Some(ch) = channel {
        close_bounded(ch.close(200, "done".into()), "channel").await;
    }
    Ok(())
}

async fn declare_on(channel: &Channel, declaration: &Declaration, target: &str) -> Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    match declaration {
        Declaration::Exchange { name, kind } => {
            let options = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(
                    name.as_str().into(),
                    (*kind).into(),
                    options,
                    FieldTable::default(),
                )
                .await
                .map_err(|e| convert::error("exchange.declare", target, e))
        }
        Declaration::Queue { name, options } => {
            let args = queue_arguments(name, options);
            if options.dead_letter {
                let dlq = dead_letter_queue(name);
                channel
                    .queue_declare(dlq.as_str().into(), durable, dead_letter_arguments(options))
                    .await
                    .map_err(|e| convert::error("queue.declare", target, e))?;
            }
            channel
                .queue_declare(name.as_str().into(), durable, args)
                .await
                .map(drop)
                .map_err(|e| convert::error("queue.declare", target, e))
        }
        Declaration::Bind {
            queue,
            exchange,
            routing_key,
        } => channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| convert::error("queue.bind", target, e)),
        Declaration::Delay { name, target: to } => {
            let exchange = ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            };
            channel
                .exchange_declare(
                    name.as_str().into(),
                    lapin::ExchangeKind::Fanout,
                    exchange,
                    FieldTable::default(),
                )
                .await
                .map_err(|e| convert::error("exchange.declare", target, e))?;
            channel
                .queue_declare(name.as_str().into(), durable, delay_arguments(to))
                .await
                .map_err(|e| convert::error("queue.declare", target, e))?;
            channel
                .queue_bind(
                    name.as_str().into(),
                    name.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| convert::error("queue.bind", target, e))
        }
    }
}
