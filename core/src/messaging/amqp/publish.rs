//! Writing one message on a confirm-mode channel and reading the broker's answer.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Confirmation, Connection};

use super::convert::{self, properties};
use crate::error::{Error, Result};
use crate::messaging::message::{Confirm, Outgoing};

/// Writes `message` on a confirm channel and waits for the broker's answer.
pub(crate) async fn publish_on(
    channel: &Channel,
    message: &Outgoing,
    target: &str,
) -> Result<Confirm> {
    // lapin's write future (1,064 bytes: the properties by value) is boxed, so it is
    // freed once the message is written: inline, it would size this future, hence every
    // publish waiting for its confirm, at 1,120 bytes rather than 184.
    let written = Box::pin(channel.basic_publish(
        message.exchange.as_str().into(),
        message.routing_key.as_str().into(),
        BasicPublishOptions {
            mandatory: message.mandatory,
            ..BasicPublishOptions::default()
        },
        &message.body,
        properties(message),
    ))
    .await
    .map_err(|e| convert::error("basic.publish", target, e))?;
    let confirm = written
        .await
        .map_err(|e| convert::error("basic.publish", target, e))?;
    Ok(match confirm {
        Confirmation::Ack(None) => Confirm::Ack,
        Confirmation::Ack(Some(returned)) => Confirm::Returned(returned.reply_text.to_string()),
        Confirmation::Nack(_) => Confirm::Nack,
        Confirmation::NotRequested => {
            return Err(Error::Internal(
                "publisher confirms were not enabled".to_owned(),
            ));
        }
    })
}

pub(crate) async fn confirm_channel(connection: &Connection, target: &str) -> Result<Channel> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| convert::error("channel.open", target, e))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(|e| convert::error("confirm.select", target, e))?;
    Ok(channel)
}
