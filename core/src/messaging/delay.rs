//! Delayed delivery without a broker plugin, for scheduled publishes and delayed
//! retries alike.
//!
//! RabbitMQ's delayed-message plugin is archived and quorum queues gained delayed
//! retry only in 4.3, so courier builds the delay from what every RabbitMQ has: a
//! message waits in a *delay queue* with a per-message TTL (`expiration`), and the
//! queue dead-letters it on expiry to the exchange it was meant for, keeping its
//! routing key, id, headers and trace context. Each delay queue sits behind a fanout
//! exchange of the same name, so the message reaches it carrying its own routing key.
//!
//! A queue expires messages only at its head, so one queue for all delays would hold a
//! 1 s message behind a 60 s one. Delays are therefore bucketed, 16 buckets per
//! doubling (a bucket spans at most 1/16 of its lower bound), one delay queue per
//! target exchange and bucket: a message is delivered no earlier than its delay, and
//! at most 1/16 of it later when longer delays of its bucket were queued before it.
//!
//! The in-process broker declares the same topology and expires and dead-letters the
//! same way, so `memory://` delays behave as RabbitMQ's do.

use std::time::Duration;

use tokio::time::Instant;

use super::message::Outgoing;
use super::session::{SETUP_DEADLINE, Session};
use super::transport::Declaration;
use crate::error::{Error, Result};
use crate::limits::{MAX_DELAY_QUEUES, MAX_SHORT_STRING};

/// Names every delay queue and exchange starts with.
const PREFIX: &str = "courier.delay.";

/// Whether `queue` is one of courier's delay queues: a message dead-lettered out of one
/// is on its way back, not parked.
pub(crate) fn is_delay_queue(queue: &str) -> bool {
    queue.starts_with(PREFIX)
}

/// The longest exchange name a delayed publish can target: the delay queue's name
/// (`courier.delay.<bucket>ms.<exchange>`, bucket up to 10 digits) must stay an AMQP
/// short string.
const MAX_TARGET: usize = MAX_SHORT_STRING - PREFIX.len() - 10 - ".ms".len();

/// The lower bound, in milliseconds, of the bucket a delay of `ms` falls in: below
/// 32 ms every delay is its own bucket; above, the delay's five most significant bits.
fn bucket_floor(ms: u64) -> u64 {
    if ms < 32 {
        return ms;
    }
    let shift = 63 - ms.leading_zeros() - 4;
    (ms >> shift) << shift
}

/// The delay queue (and exchange) holding messages for `exchange` delayed `ms`.
fn queue_name(exchange: &str, ms: u64) -> String {
    let floor = bucket_floor(ms);
    if exchange.is_empty() {
        format!("{PREFIX}{floor}ms")
    } else {
        format!("{PREFIX}{floor}ms.{exchange}")
    }
}

/// Declares the delay queue for `exchange` and a delay of `ms` unless this bus has
/// (the transport then replays it after every reconnect), and returns its name. First
/// declarations go one at a time, so the bound of [`MAX_DELAY_QUEUES`] is exact.
///
/// # Errors
/// [`Error::Config`] on `delay` past the bound; the broker's refusal of the declaration.
pub(crate) async fn declare(
    session: &Session,
    exchange: &str,
    ms: u64,
    deadline: Instant,
) -> Result<String> {
    let name = queue_name(exchange, ms);
    if session.delay_queues().contains(&name) {
        return Ok(name);
    }
    let _declaring = session.delay_declaring.lock().await;
    let declared = session.delay_queues().len();
    if session.delay_queues().contains(&name) {
        return Ok(name);
    }
    if declared >= MAX_DELAY_QUEUES {
        return Err(Error::config(
            "delay",
            format!(
                "this bus has declared {MAX_DELAY_QUEUES} delay queues (one per target exchange and delay bucket); delay to fewer exchanges"
            ),
        ));
    }
    let declaration = Declaration::Delay {
        name: name.clone(),
        target: exchange.to_owned(),
    };
    let setup = Instant::now() + SETUP_DEADLINE;
    session
        .transport
        .declare(declaration, setup.min(deadline))
        .await?;
    session.delay_queues().insert(name.clone());
    Ok(name)
}

/// Checks a delayed publish to `exchange` can be made, before anything is sent.
///
/// # Errors
/// [`Error::Config`] naming `delay_ms` or `exchange`.
pub(crate) fn check(exchange: &str, delay: Duration) -> Result<()> {
    crate::limits::check_duration("delay_ms", delay, false)?;
    if exchange.len() > MAX_TARGET {
        return Err(Error::config(
            "exchange",
            format!(
                "must be at most {MAX_TARGET} bytes for a delayed publish (its delay queue's name holds it), got {}",
                exchange.len()
            ),
        ));
    }
    Ok(())
}

/// Sends `message` to the delay queue for its exchange and `delay` (declaring it first
/// if this bus has not), where it waits until it is routed on; returns when the broker
/// confirms the message is in the delay queue. `delay` has been [`check`]ed.
pub(crate) async fn send(
    session: &Session,
    message: &mut Outgoing,
    delay: Duration,
    deadline: Instant,
) -> Result<()> {
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let name = declare(session, &message.exchange, ms, deadline).await?;
    message.exchange = name;
    message.expiration_ms = Some(ms);
    session.send(message, deadline, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_span_at_most_a_sixteenth_of_their_floor() {
        assert_eq!(bucket_floor(1), 1);
        assert_eq!(bucket_floor(31), 31);
        assert_eq!(bucket_floor(1000), 992);
        assert_eq!(bucket_floor(1023), 992);
        assert_eq!(bucket_floor(1024), 1024);
        assert_eq!(bucket_floor(5000), 4864);
        for ms in [32_u64, 33, 999, 1000, 65_537, 2_592_000_000] {
            let floor = bucket_floor(ms);
            assert!(floor <= ms && ms - floor <= floor / 16, "{ms} -> {floor}");
        }
        assert_eq!(queue_name("", 1000), "courier.delay.992ms");
        assert_eq!(queue_name("orders", 1000), "courier.delay.992ms.orders");
    }

    #[test]
    fn the_longest_target_still_names_a_short_string() {
        let exchange = "e".repeat(MAX_TARGET);
        assert!(check(&exchange, Duration::from_secs(1)).is_ok());
        assert_eq!(
            queue_name(&exchange, crate::limits::MAX_DURATION_MS).len(),
            MAX_SHORT_STRING
        );
        let msg = check(&"e".repeat(MAX_TARGET + 1), Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("exchange: must be at most 228 bytes"),
            "{msg}"
        );
        assert_eq!(
            check("", Duration::ZERO).unwrap_err().to_string(),
            "delay_ms: must be 1..=2592000000 ms (30 days), got 0"
        );
    }
}
