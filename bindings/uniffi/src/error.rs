//! Core errors as one uniffi error enum.
//!
//! Non-flat, so the fields survive the crossing: Kotlin gets `CourierException.Config`
//! with `field` and `reason`, Swift `CourierError.config(field:reason:)`, and callers
//! branch on types, never on message text. Variants other than `Config` carry core's
//! message as `detail`. The field is not called `message` because that name clashes
//! with `Throwable.message` in the generated Kotlin (uniffi issue #1434).
//!
//! The variant is chosen by [`courierkit::ErrorKind`], one variant per kind, in the order of
//! `ErrorKind::ALL`.

use std::fmt;

use courierkit::ErrorKind;

/// Every failure courier reports, one variant per core error kind.
#[derive(Debug, uniffi::Error)]
pub enum CourierError {
    /// Invalid configuration or argument; `field` is the path of the offending value
    /// (`services.orders.endpoints[0].url`, `headers.x-id`).
    Config {
        /// Path of the offending value.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A deadline or per-attempt timeout passed.
    Timeout {
        /// Core's message: what timed out and after how long.
        detail: String,
    },
    /// The circuit breaker is open; the call failed fast.
    CircuitOpen {
        /// Core's message.
        detail: String,
        /// When the breaker lets a probe through.
        retry_after_ms: u64,
    },
    /// A retry was needed and the retry budget denied it.
    BudgetExhausted {
        /// Core's message, including the last failure.
        detail: String,
        /// Attempts made before the budget refused a retry.
        attempts: u32,
    },
    /// The concurrency limit was reached.
    Overloaded {
        /// Core's message.
        detail: String,
        /// The service's `max_concurrency`.
        limit: u32,
    },
    /// Nothing to route the request to.
    NoEndpoint {
        /// Core's message.
        detail: String,
    },
    /// A transport failure after retries.
    Connect {
        /// Core's message, credentials redacted.
        detail: String,
    },
    /// A TLS handshake or certificate failure.
    Tls {
        /// Core's message.
        detail: String,
    },
    /// A mandatory publish that no queue took.
    Unroutable {
        /// Core's message, naming the message id, exchange and routing key.
        detail: String,
    },
    /// The broker negatively acknowledged a publish.
    PublishRejected {
        /// Core's message.
        detail: String,
    },
    /// The broker refused a channel operation (missing queue, conflicting declaration).
    Broker {
        /// Core's message, with the AMQP reply code and text.
        detail: String,
    },
    /// A peer sent more than a configured limit allows; reading stopped at the limit.
    LimitExceeded {
        /// Core's message.
        detail: String,
        /// The config field of the limit (`limits.max_response_body_bytes`).
        limit: String,
        /// The limit's value in bytes.
        max: u64,
    },
    /// Used after `close()`.
    Closed {
        /// Core's message: what was closed.
        detail: String,
    },
    /// A bug in courier, including a caught panic.
    Internal {
        /// Core's message.
        detail: String,
    },
}

impl From<courierkit::Error> for CourierError {
    fn from(err: courierkit::Error) -> Self {
        let detail = err.to_string();
        match err {
            courierkit::Error::Config { field, reason } => CourierError::Config { field, reason },
            courierkit::Error::CircuitOpen { retry_after, .. } => CourierError::CircuitOpen {
                detail,
                retry_after_ms: retry_after.as_millis() as u64,
            },
            courierkit::Error::BudgetExhausted { attempts, .. } => {
                CourierError::BudgetExhausted { detail, attempts }
            }
            courierkit::Error::Overloaded { limit, .. } => {
                CourierError::Overloaded { detail, limit }
            }
            courierkit::Error::LimitExceeded { limit, max, .. } => CourierError::LimitExceeded {
                detail,
                limit: limit.to_owned(),
                max,
            },
            other => match other.kind() {
                ErrorKind::Timeout => CourierError::Timeout { detail },
                ErrorKind::NoEndpoint => CourierError::NoEndpoint { detail },
                ErrorKind::Connect => CourierError::Connect { detail },
                ErrorKind::Tls => CourierError::Tls { detail },
                ErrorKind::Unroutable => CourierError::Unroutable { detail },
                ErrorKind::PublishRejected => CourierError::PublishRejected { detail },
                ErrorKind::Broker => CourierError::Broker { detail },
                ErrorKind::Closed => CourierError::Closed { detail },
                ErrorKind::Internal => CourierError::Internal { detail },
                // `courierkit::Error` is non_exhaustive: a variant added to core without a
                // mapping here is a binding bug, reported as one rather than misfiled.
                kind => CourierError::Internal {
                    detail: format!("unmapped error kind {:?}: {detail}", kind.code()),
                },
            },
        }
    }
}

impl CourierError {
    /// The stable kind code shared by every language (`"circuit_open"`).
    pub fn code(&self) -> &'static str {
        let kind = match self {
            CourierError::Config { .. } => ErrorKind::Config,
            CourierError::Timeout { .. } => ErrorKind::Timeout,
            CourierError::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            CourierError::BudgetExhausted { .. } => ErrorKind::BudgetExhausted,
            CourierError::Overloaded { .. } => ErrorKind::Overloaded,
            CourierError::NoEndpoint { .. } => ErrorKind::NoEndpoint,
            CourierError::Connect { .. } => ErrorKind::Connect,
            CourierError::Tls { .. } => ErrorKind::Tls,
            CourierError::Unroutable { .. } => ErrorKind::Unroutable,
            CourierError::PublishRejected { .. } => ErrorKind::PublishRejected,
            CourierError::Broker { .. } => ErrorKind::Broker,
            CourierError::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            CourierError::Closed { .. } => ErrorKind::Closed,
            CourierError::Internal { .. } => ErrorKind::Internal,
        };
        kind.code()
    }
}

impl fmt::Display for CourierError {
    /// Core's message: lowercase, never containing secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CourierError::Config { field, reason } => write!(f, "{field}: {reason}"),
            CourierError::Timeout { detail }
            | CourierError::CircuitOpen { detail, .. }
            | CourierError::BudgetExhausted { detail, .. }
            | CourierError::Overloaded { detail, .. }
            | CourierError::NoEndpoint { detail }
            | CourierError::Connect { detail }
            | CourierError::Tls { detail }
            | CourierError::Unroutable { detail }
            | CourierError::PublishRejected { detail }
            | CourierError::Broker { detail }
            | CourierError::LimitExceeded { detail, .. }
            | CourierError::Closed { detail }
            | CourierError::Internal { detail } => f.write_str(detail),
        }
    }
}

impl std::error::Error for CourierError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_one_to_one() {
        let d = || "d".to_owned();
        let all = [
            CourierError::Config {
                field: d(),
                reason: d(),
            },
            CourierError::Timeout { detail: d() },
            CourierError::CircuitOpen {
                detail: d(),
                retry_after_ms: 1,
            },
            CourierError::BudgetExhausted {
                detail: d(),
                attempts: 1,
            },
            CourierError::Overloaded {
                detail: d(),
                limit: 1,
            },
            CourierError::NoEndpoint { detail: d() },
            CourierError::Connect { detail: d() },
            CourierError::Tls { detail: d() },
            CourierError::Unroutable { detail: d() },
            CourierError::PublishRejected { detail: d() },
            CourierError::Broker { detail: d() },
            CourierError::LimitExceeded {
                detail: d(),
                limit: d(),
                max: 1,
            },
            CourierError::Closed { detail: d() },
            CourierError::Internal { detail: d() },
        ];
        let codes: Vec<&str> = all.iter().map(CourierError::code).collect();
        let core: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(
            codes, core,
            "one variant per core kind, in ErrorKind::ALL order"
        );
    }

    #[test]
    fn conversion_keeps_the_kind() {
        let errors = [
            courierkit::Error::config("a", "b"),
            courierkit::Error::Timeout {
                operation: "call",
                after: std::time::Duration::from_millis(5),
            },
            courierkit::Error::NoEndpoint {
                service: "s".into(),
                reason: "r".into(),
            },
            courierkit::Error::Tls {
                reason: "r".into(),
                source: None,
            },
            courierkit::Error::Broker {
                operation: "queue.declare",
                reply_code: 406,
                reply_text: "t".into(),
            },
            courierkit::Error::LimitExceeded {
                what: "response body",
                limit: "limits.max_response_body_bytes",
                max: 1,
            },
            courierkit::Error::Closed { what: "bus" },
            courierkit::Error::Internal("x".into()),
        ];
        for err in errors {
            let code = err.kind().code();
            assert_eq!(
                CourierError::from(err).code(),
                code,
                "the variant must follow the kind"
            );
        }
    }

    #[test]
    fn config_keeps_its_field_and_reason() {
        let e = CourierError::from(courierkit::Error::config(
            "services.a.endpoints",
            "must not be empty",
        ));
        assert!(
            matches!(&e, CourierError::Config { field, .. } if field == "services.a.endpoints")
        );
        assert_eq!(e.to_string(), "services.a.endpoints: must not be empty");
    }

    #[test]
    fn other_kinds_carry_core_message_as_detail() {
        let err = courierkit::Error::Closed { what: "bus" };
        let message = err.to_string();
        let e = CourierError::from(err);
        assert!(matches!(&e, CourierError::Closed { detail } if *detail == message));
        assert_eq!(e.code(), "closed");
    }
}
