//! Queue and exchange declaration options.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::limits::{MAX_RETRY_DELAYS, check_duration, millis};

/// Returns of one message to a quorum queue before it is dead-lettered instead
/// (RabbitMQ's rule: returned more times than the limit), so a poison message costs six
/// deliveries, not an endless redelivery loop.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 5;

/// How to declare a queue. The default is what a service's work queue wants: durable,
/// quorum (replicated, with poison-message counting), a delivery limit of 5, and a
/// `<name>.dlq` dead-letter queue so a poison message is parked, not lost or looped.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueOptions {
    /// Quorum queue (`x-queue-type: quorum`); classic when false.
    pub quorum: bool,
    /// Deliveries before a message is dead-lettered (quorum queues only). `None` means
    /// [`DEFAULT_DELIVERY_LIMIT`] on a quorum queue and no limit on a classic one, so
    /// asking for a classic queue does not also require clearing the limit.
    pub delivery_limit: Option<u32>,
    /// Create `<name>.dlq` and route rejected or expired messages to it.
    pub dead_letter: bool,
    /// Message time-to-live in the queue (`x-message-ttl`, whole milliseconds); zero
    /// expires what no consumer takes at once.
    pub ttl: Option<Duration>,
    /// Delayed redelivery: a delivery nacked with `requeue` comes back after the first
    /// delay, nacked again after the second, and so on; after the last it goes to the
    /// dead-letter queue. Empty (the default): a nacked message is requeued at once, as
    /// in plain AMQP. Kept by the bus that declares the queue, so the consuming process
    /// declares it too (as it should, to recover it after a reconnect).
    /// Each delay is whole milliseconds, at least 1 (its delay queue is named by it).
    pub retry_delays: Vec<Duration>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            quorum: true,
            delivery_limit: None,
            dead_letter: true,
            ttl: None,
            retry_delays: Vec::new(),
        }
    }
}

impl QueueOptions {
    /// Refuses what no broker could declare: a delivery limit on a classic queue, or a
    /// TTL beyond AMQP's signed 64-bit `x-message-ttl`. Both transports check the same.
    ///
    /// # Errors
    /// [`Error::Config`] naming `delivery_limit`, `ttl_ms` or `retry_delays_ms` (the
    /// schema's names, as in every language).
    pub(crate) fn check(&self) -> Result<()> {
        if self.retry_delays.len() > MAX_RETRY_DELAYS {
            return Err(Error::config(
                "retry_delays_ms",
                format!(
                    "at most {MAX_RETRY_DELAYS} delays, got {}",
                    self.retry_delays.len()
                ),
            ));
        }
        for (i, &delay) in self.retry_delays.iter().enumerate() {
            check_duration(format!("retry_delays_ms[{i}]"), delay, false)?;
        }
        if !self.retry_delays.is_empty() && !self.dead_letter {
            return Err(Error::config(
                "retry_delays_ms",
                "needs dead_letter=true: a message past its last delay is parked in the dead-letter queue, not dropped",
            ));
        }
        if !self.quorum && self.delivery_limit.is_some() {
            return Err(Error::config(
                "delivery_limit",
                "needs a quorum queue (quorum=true)",
            ));
        }
        if self
            .ttl
            .is_some_and(|ttl| i64::try_from(millis(ttl)).is_err())
        {
            return Err(Error::config("ttl_ms", "too large"));
        }
        Ok(())
    }

    /// The queue's message TTL in whole milliseconds, as the broker takes it.
    pub(crate) fn ttl_ms(&self) -> Option<u64> {
        self.ttl.map(millis)
    }

    /// The retry delays in whole milliseconds, which name their delay queues.
    pub(crate) fn retry_delays_ms(&self) -> Vec<u64> {
        self.retry_delays.iter().copied().map(millis).collect()
    }
}

/// The dead-letter queue's name for `queue`.
pub(crate) fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dlq")
}

/// Checks a queue, exchange or routing-key name: AMQP short strings are at most 255 bytes.
pub(crate) fn check_name(field: &'static str, name: &str) -> Result<()> {
    if name.len() > 255 {
        return Err(Error::config(
            field,
            format!("must be at most 255 bytes, got {}", name.len()),
        ));
    }
    Ok(())
}

/// Exchange types. The default, `topic`, routes by pattern and by exact key alike, which
/// is what a service's events need; every binding falls back to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExchangeKind {
    /// Routes by exact routing key.
    Direct,
    /// Routes to every bound queue.
    Fanout,
    /// Routes by routing-key pattern (`order.*`).
    #[default]
    Topic,
    /// Routes by header values.
    Headers,
}

impl std::str::FromStr for ExchangeKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "direct" => Ok(ExchangeKind::Direct),
            "fanout" => Ok(ExchangeKind::Fanout),
            "topic" => Ok(ExchangeKind::Topic),
            "headers" => Ok(ExchangeKind::Headers),
            other => Err(Error::config(
                "kind",
                format!("must be direct, fanout, topic or headers, got {other:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_limit_on_classic_queue_is_rejected() {
        let opts = QueueOptions {
            quorum: false,
            delivery_limit: Some(3),
            ..QueueOptions::default()
        };
        let classic = QueueOptions {
            quorum: false,
            ..QueueOptions::default()
        };
        assert!(classic.check().is_ok());
        assert_eq!(
            opts.check().unwrap_err().to_string(),
            "delivery_limit: needs a quorum queue (quorum=true)"
        );
        let forever = QueueOptions {
            ttl: Some(Duration::MAX),
            ..QueueOptions::default()
        };
        assert_eq!(
            forever.check().unwrap_err().to_string(),
            "ttl_ms: too large"
        );
    }

    #[test]
    fn retry_delays_are_checked() {
        let retry = |delays: Vec<u64>, dead_letter: bool| QueueOptions {
            retry_delays: delays.into_iter().map(Duration::from_millis).collect(),
            dead_letter,
            ..QueueOptions::default()
        };
        assert!(retry(vec![1000, 5000, 30_000], true).check().is_ok());
        assert_eq!(
            retry(vec![1000, 0], true).check().unwrap_err().to_string(),
            "retry_delays_ms[1]: must be 1..=2592000000 ms (30 days), got 0"
        );
        assert_eq!(
            retry(vec![1; 17], true).check().unwrap_err().to_string(),
            "retry_delays_ms: at most 16 delays, got 17"
        );
        assert!(
            retry(vec![1000], false)
                .check()
                .unwrap_err()
                .to_string()
                .starts_with("retry_delays_ms: needs dead_letter=true")
        );
    }
}
