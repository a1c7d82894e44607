//! Messaging over AMQP 0-9-1 (RabbitMQ, through lapin) or the in-process `memory://`
//! broker, with the same semantics on both.
//!
//! [`Bus::publish`] returns only after the broker's publisher confirm, so a returned
//! [`Receipt`] means the broker has taken responsibility for the message. Consumption
//! is pulled ([`Consumer::next`]) with manual acknowledgement, which is what lets every
//! binding wrap it in its own iterator idiom without callbacks from Rust threads.
//!
//! Layers, lowest first (`tests/architecture.rs` keeps them): the transport-neutral
//! shapes (`message`, `queue`, `config`, `stats`); the [`transport`] boundary; the two
//! transports below it (`amqp`, a connection that heals itself, and `memory`); then
//! `dedup` and `rpc`; the `session` a bus shares with its consumers and deliveries; and
//! on top the public `Bus`, `Consumer` and `Delivery`.

pub(crate) mod amqp;
mod batch;
mod bus;
mod config;
mod consumer;
mod dedup;
mod delay;
mod delivery;
mod memory;
mod message;
mod publish;
mod queue;
mod rpc;
mod session;
mod stats;
mod transport;

pub use batch::Batch;
pub use bus::{Bus, ConsumeOptions, RequestOptions};
pub use config::{BusConfig, DedupConfig, ReconnectConfig};
pub use consumer::Consumer;
pub use delivery::Delivery;
pub use publish::{BatchMessage, PublishOptions, Receipt};
pub use queue::{DEFAULT_DELIVERY_LIMIT, ExchangeKind, QueueOptions};
pub use stats::BusStats;
