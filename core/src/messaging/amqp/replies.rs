//! RabbitMQ direct reply-to: replies come back on the channel the request went out on,
//! with no reply queue to declare, recover or delete.

use std::pin::pin;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use lapin::Channel;
use lapin::options::{BasicConsumeOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use tokio::time::Instant;

use super::convert;
use super::link::Link;
use super::publish::publish_on;
use crate::error::Result;
use crate::messaging::message::{Confirm, Outgoing};
use crate::messaging::transport::{Replies, ReplyLane};

/// Where RabbitMQ's direct reply-to delivers replies.
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// One channel consuming direct reply-to, on which requests are published.
struct Direct {
    link: Arc<Link>,
    channel: Channel,
    generation: u64,
    target: String,
}

/// Opens a channel in confirm mode and consumes direct reply-to on it without acks
/// (RabbitMQ requires it). The replies end when the channel does.
pub(crate) async fn open(link: Arc<Link>, deadline: Instant) -> Result<Replies> {
    let (live, channel) = link.channel(deadline).await?;
    let target = live.target.clone();
    let starting = async {
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| convert::error("confirm.select", &target, e))?;
        channel
            .basic_consume(
                DIRECT_REPLY_TO.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| convert::error("basic.consume", &target, e))
    };
    let stream = link.on(&live, "basic.consume", pin!(starting)).await?;
    let replies = stream
        .take_while(|d| std::future::ready(d.is_ok()))
        .filter_map(|d| std::future::ready(d.ok().map(|d| convert::incoming(d, |_| None))))
        .boxed();
    Ok(Replies {
        lane: Box::new(Direct {
            link,
            channel,
            generation: live.generation,
            target,
        }),
        replies,
    })
}

impl ReplyLane for Direct {
    fn address(&self) -> &str {
        DIRECT_REPLY_TO
    }

    fn generation(&self) -> u64 {
        self.generation
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn is_current(&self) -> bool {
        self.link.generation() == Some(self.generation) && self.channel.status().connected()
    }

    fn publish<'a>(&'a self, message: &'a Outgoing) -> BoxFuture<'a, Result<Confirm>> {
        Box::pin(publish_on(&self.channel, message, &self.target))
    }
}
