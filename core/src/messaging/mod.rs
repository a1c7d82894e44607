//! Messaging over AMQP 0-9-1 (RabbitMQ) through lapin.
//!
//! [`Bus::publish`] returns only after the broker's publisher confirm, so a returned
//! [`Receipt`] means the broker has taken responsibility for the message. Consumption
//! is pulled ([`Consumer::next`]) with manual acknowledgement, which is what lets every
//! binding wrap it in its own iterator idiom without callbacks from Rust threads.

mod amqp;
mod bus;
mod consumer;
mod delivery;
mod queue;

pub use bus::{Bus, PublishOptions, Receipt};
pub use consumer::Consumer;
pub use delivery::Delivery;
pub use queue::{DEFAULT_DELIVERY_LIMIT, ExchangeKind, QueueOptions};
