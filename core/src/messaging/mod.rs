//! Messaging over AMQP 0-9-1 (RabbitMQ, through lapin) or the in-process `memory://`
//! broker, with the same semantics on both.
//!
//! [`Bus::publish`] returns only after the broker's publisher confirm, so a returned
//! [`Receipt`] means the broker has taken responsibility for the message. Consumption
//! is pulled ([`Consumer::next`]) with manual acknowledgement, which is what lets every
//! binding wrap it in its own iterator idiom without callbacks from Rust threads. The
//! connection heals itself ([`link`]); consumers deduplicate by message id ([`dedup`]).

pub(crate) mod amqp;
mod bus;
mod config;
mod consumer;
mod dedup;
mod delivery;
mod link;
mod memory;
mod message;
mod queue;
mod rpc;
mod stats;

pub use bus::{Bus, ConsumeOptions, PublishOptions, Receipt, RequestOptions};
pub use config::{BusConfig, DedupConfig, ReconnectConfig};
pub use consumer::Consumer;
pub use delivery::Delivery;
pub use queue::{DEFAULT_DELIVERY_LIMIT, ExchangeKind, QueueOptions};
pub use stats::BusStats;
