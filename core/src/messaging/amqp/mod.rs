//! The AMQP 0-9-1 transport (RabbitMQ, through lapin). Every use of lapin in courier is
//! in this module.
//!
//! - `link`: the connection that heals itself (reconnect, topology replay, re-send of
//!   unconfirmed publishes), one *generation* per connection;
//! - `connection`: opening connections (TLS through courier's rustls config) and closes
//!   that cannot hang;
//! - `publish`, `topology`, `subscription`, `replies`: the transport's operations;
//! - `convert`: lapin's types to courier's and back.

mod connection;
pub(crate) mod convert;
mod link;
mod publish;
mod replies;
mod subscription;
mod topology;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use self::link::Link;
use self::subscription::Consuming;
use super::config::ReconnectConfig;
use super::message::{Confirm, Outgoing};
use super::stats::Counters;
use super::transport::{Declaration, Replies, Subscription, Transport};
use crate::error::Result;

/// A RabbitMQ connection behind the [`Transport`] boundary.
pub(crate) struct Amqp {
    link: Arc<Link>,
}

impl Amqp {
    /// Connects to the first broker in `urls` that accepts the connection; afterwards the
    /// connection reconnects by itself, rotating through `urls`.
    pub(crate) async fn connect(
        urls: Vec<String>,
        reconnect: &ReconnectConfig,
        tls: Arc<rustls::ClientConfig>,
        counters: Arc<Counters>,
    ) -> Result<Amqp> {
        let link = Link::connect(urls, reconnect, tls, counters).await?;
        Ok(Amqp { link })
    }
}

impl Transport for Amqp {
    fn declare(&self, declaration: Declaration, deadline: Instant) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.link.declare(declaration, deadline))
    }

    fn publish<'a>(
        &'a self,
        message: &'a Outgoing,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Confirm>> {
        Box::pin(self.link.publish(message, deadline))
    }

    fn subscribe<'a>(
        &'a self,
        queue: &'a str,
        prefetch: u16,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<Box<dyn Subscription>>> {
        Box::pin(async move {
            let consuming = Consuming::start(self.link.clone(), queue, prefetch, deadline).await?;
            Ok(Box::new(consuming) as Box<dyn Subscription>)
        })
    }

    fn reply_lane(&self, deadline: Instant) -> BoxFuture<'_, Result<Replies>> {
        Box::pin(replies::open(self.link.clone(), deadline))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.link.close())
    }
}
