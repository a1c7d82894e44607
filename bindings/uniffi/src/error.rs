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

use courierkit::{Detail, ErrorKind};

/// Every failure courier reports, one variant per core error kind, each carrying core's
/// message (`detail`) and exactly the fields of core's table ([`courierkit::Error::details`]),
/// so Kotlin and Swift see the same fields as Python and Node (a test below compares
/// them for every kind).
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
        /// Core's message.
        detail: String,
        /// What was waited for (`call`, `attempt`, `publish confirm`, `next delivery`).
        operation: String,
        /// The limit that passed, in milliseconds.
        after_ms: u64,
    },
    /// The circuit breaker is open; the call failed fast.
    CircuitOpen {
        /// Core's message.
        detail: String,
        /// The service.
        service: String,
        /// When the breaker lets a probe through.
        retry_after_ms: u64,
    },
    /// A retry was needed and the retry budget denied it.
    BudgetExhausted {
        /// Core's message, including the last failure.
        detail: String,
        /// The service.
        service: String,
        /// Attempts made before the budget refused a retry.
        attempts: u32,
        /// The kind code of the failure that was not retried (Python's `__cause__`,
        /// Node's `cause`; uniffi errors cannot nest).
        last_kind: String,
        /// That failure's message.
        last_detail: String,
    },
    /// The concurrency limit was reached.
    Overloaded {
        /// Core's message.
        detail: String,
        /// The service.
        service: String,
        /// The service's `max_concurrency`.
        limit: u32,
    },
    /// The client-side rate limit had no token in time.
    RateLimited {
        /// Core's message.
        detail: String,
        /// The service.
        service: String,
        /// When a token would have been there.
        retry_after_ms: u64,
    },
    /// Nothing to route the request to.
    NoEndpoint {
        /// Core's message.
        detail: String,
        /// The service.
        service: String,
        /// Why no endpoint qualified.
        reason: String,
    },
    /// A transport failure after retries.
    Connect {
        /// Core's message, credentials redacted.
        detail: String,
        /// What was attempted (`connect`, `request`, `dedup`...).
        operation: String,
        /// The peer, credentials redacted.
        target: String,
        /// What went wrong.
        reason: String,
    },
    /// A TLS handshake or certificate failure.
    Tls {
        /// Core's message.
        detail: String,
        /// What the TLS layer reported.
        reason: String,
    },
    /// A mandatory publish that no queue took.
    Unroutable {
        /// Core's message.
        detail: String,
        /// The message's id.
        message_id: String,
        /// The exchange it was published to.
        exchange: String,
        /// Its routing key.
        routing_key: String,
        /// The broker's reply text.
        reply_text: String,
    },
    /// The broker negatively acknowledged a publish.
    PublishRejected {
        /// Core's message.
        detail: String,
        /// The message's id.
        message_id: String,
        /// The exchange it was published to.
        exchange: String,
    },
    /// The broker refused a channel operation (missing queue, conflicting declaration).
    Broker {
        /// Core's message.
        detail: String,
        /// The AMQP method refused.
        operation: String,
        /// The AMQP reply code (404, 406...).
        reply_code: u64,
        /// The broker's reply text.
        reply_text: String,
    },
    /// A peer sent more than a configured limit allows; reading stopped at the limit.
    LimitExceeded {
        /// Core's message.
        detail: String,
        /// What was too large (`response body`).
        what: String,
        /// The config field of the limit (`limits.max_response_body_bytes`).
        limit: String,
        /// The limit's value in bytes.
        max: u64,
    },
    /// Used after `close()`.
    Closed {
        /// Core's message.
        detail: String,
        /// What was closed.
        what: String,
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
        let f = Fields(err.details());
        match err.kind() {
            ErrorKind::Config => CourierError::Config {
                field: f.text("field"),
                reason: f.text("reason"),
            },
            ErrorKind::Timeout => CourierError::Timeout {
                detail,
                operation: f.text("operation"),
                after_ms: f.count("after_ms"),
            },
            ErrorKind::CircuitOpen => CourierError::CircuitOpen {
                detail,
                service: f.text("service"),
                retry_after_ms: f.count("retry_after_ms"),
            },
            ErrorKind::BudgetExhausted => {
                let last = err.cause();
                CourierError::BudgetExhausted {
                    service: f.text("service"),
                    attempts: f.count32("attempts"),
                    last_kind: last.map(|e| e.kind().code()).unwrap_or_default().to_owned(),
                    last_detail: last.map(ToString::to_string).unwrap_or_default(),
                    detail,
                }
            }
            ErrorKind::Overloaded => CourierError::Overloaded {
                detail,
                service: f.text("service"),
                limit: f.count32("limit"),
            },
            ErrorKind::RateLimited => CourierError::RateLimited {
                detail,
                service: f.text("service"),
                retry_after_ms: f.count("retry_after_ms"),
            },
            ErrorKind::NoEndpoint => CourierError::NoEndpoint {
                detail,
                service: f.text("service"),
                reason: f.text("reason"),
            },
            ErrorKind::Connect => CourierError::Connect {
                detail,
                operation: f.text("operation"),
                target: f.text("target"),
                reason: f.text("reason"),
            },
            ErrorKind::Tls => CourierError::Tls {
                detail,
                reason: f.text("reason"),
            },
            ErrorKind::Unroutable => CourierError::Unroutable {
                detail,
                message_id: f.text("message_id"),
                exchange: f.text("exchange"),
                routing_key: f.text("routing_key"),
                reply_text: f.text("reply_text"),
            },
            ErrorKind::PublishRejected => CourierError::PublishRejected {
                detail,
                message_id: f.text("message_id"),
                exchange: f.text("exchange"),
            },
            ErrorKind::Broker => CourierError::Broker {
                detail,
                operation: f.text("operation"),
                reply_code: f.count("reply_code"),
                reply_text: f.text("reply_text"),
            },
            ErrorKind::LimitExceeded => CourierError::LimitExceeded {
                detail,
                what: f.text("what"),
                limit: f.text("limit"),
                max: f.count("max"),
            },
            ErrorKind::Closed => CourierError::Closed {
                detail,
                what: f.text("what"),
            },
            ErrorKind::Internal => CourierError::Internal { detail },
            // `ErrorKind` is non_exhaustive: a kind added to core without a variant here
            // is a binding bug, reported as one rather than misfiled.
            kind => CourierError::Internal {
                detail: format!("unmapped error kind {:?}: {detail}", kind.code()),
            },
        }
    }
}

/// Core's details of one error, taken by name.
struct Fields<'a>(Vec<(&'static str, Detail<'a>)>);

impl Fields<'_> {
    fn text(&self, name: &str) -> String {
        match self.0.iter().find(|(n, _)| *n == name) {
            Some((_, Detail::Text(t))) => (*t).to_owned(),
            Some((_, Detail::Count(c))) => c.to_string(),
            None => String::new(),
        }
    }

    /// A count core keeps as a `u32` (attempts, `max_concurrency`), as Kotlin's `UInt`.
    fn count32(&self, name: &str) -> u32 {
        u32::try_from(self.count(name)).unwrap_or(u32::MAX)
    }

    fn count(&self, name: &str) -> u64 {
        match self.0.iter().find(|(n, _)| *n == name) {
            Some((_, Detail::Count(c))) => *c,
            _ => 0,
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
            CourierError::RateLimited { .. } => ErrorKind::RateLimited,
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
            CourierError::Timeout { detail, .. }
            | CourierError::CircuitOpen { detail, .. }
            | CourierError::BudgetExhausted { detail, .. }
            | CourierError::Overloaded { detail, .. }
            | CourierError::RateLimited { detail, .. }
            | CourierError::NoEndpoint { detail, .. }
            | CourierError::Connect { detail, .. }
            | CourierError::Tls { detail, .. }
            | CourierError::Unroutable { detail, .. }
            | CourierError::PublishRejected { detail, .. }
            | CourierError::Broker { detail, .. }
            | CourierError::LimitExceeded { detail, .. }
            | CourierError::Closed { detail, .. }
            | CourierError::Internal { detail } => f.write_str(detail),
        }
    }
}

impl std::error::Error for CourierError {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// One core error of every kind, in `ErrorKind::ALL` order.
    fn one_of_each() -> Vec<courierkit::Error> {
        use courierkit::Error as E;
        let t = |s: &str| s.to_owned();
        vec![
            E::config("a.b", "why"),
            E::Timeout {
                operation: "call",
                after: Duration::from_millis(5),
            },
            E::CircuitOpen {
                service: t("s"),
                retry_after: Duration::from_millis(7),
            },
            E::BudgetExhausted {
                service: t("s"),
                attempts: 2,
                last: Box::new(E::Closed { what: "client" }),
            },
            E::Overloaded {
                service: t("s"),
                limit: 3,
            },
            E::RateLimited {
                service: t("s"),
                retry_after: Duration::from_millis(9),
            },
            E::NoEndpoint {
                service: t("s"),
                reason: t("r"),
            },
            E::Connect {
                operation: "connect",
                target: t("http://h"),
                reason: t("refused"),
                source: None,
            },
            E::Tls {
                reason: t("r"),
                source: None,
            },
            E::Unroutable {
                message_id: t("m"),
                exchange: t("x"),
                routing_key: t("k"),
                reply_text: t("NO_ROUTE"),
            },
            E::PublishRejected {
                message_id: t("m"),
                exchange: t("x"),
            },
            E::Broker {
                operation: "queue.declare",
                reply_code: 406,
                reply_text: t("PRECONDITION_FAILED"),
            },
            E::LimitExceeded {
                what: "response body",
                limit: "limits.max_response_body_bytes",
                max: 9,
            },
            E::Closed { what: "bus" },
            E::Internal(t("bug")),
        ]
    }

    /// The fields of a converted error, as core's table names them.
    fn fields(e: &CourierError) -> Vec<(&'static str, String)> {
        let n = |v: &u64| v.to_string();
        match e {
            CourierError::Config { field, reason } => {
                vec![("field", field.clone()), ("reason", reason.clone())]
            }
            CourierError::Timeout {
                operation,
                after_ms,
                ..
            } => vec![("operation", operation.clone()), ("after_ms", n(after_ms))],
            CourierError::CircuitOpen {
                service,
                retry_after_ms,
                ..
            } => vec![
                ("service", service.clone()),
                ("retry_after_ms", n(retry_after_ms)),
            ],
            CourierError::BudgetExhausted {
                service, attempts, ..
            } => vec![
                ("service", service.clone()),
                ("attempts", attempts.to_string()),
            ],
            CourierError::Overloaded { service, limit, .. } => {
                vec![("service", service.clone()), ("limit", limit.to_string())]
            }
            CourierError::RateLimited {
                service,
                retry_after_ms,
                ..
            } => vec![
                ("service", service.clone()),
                ("retry_after_ms", n(retry_after_ms)),
            ],
            CourierError::NoEndpoint {
                service, reason, ..
            } => vec![("service", service.clone()), ("reason", reason.clone())],
            CourierError::Connect {
                operation,
                target,
                reason,
                ..
            } => vec![
                ("operation", operation.clone()),
                ("target", target.clone()),
                ("reason", reason.clone()),
            ],
            CourierError::Tls { reason, .. } => vec![("reason", reason.clone())],
            CourierError::Unroutable {
                message_id,
                exchange,
                routing_key,
                reply_text,
                ..
            } => vec![
                ("message_id", message_id.clone()),
                ("exchange", exchange.clone()),
                ("routing_key", routing_key.clone()),
                ("reply_text", reply_text.clone()),
            ],
            CourierError::PublishRejected {
                message_id,
                exchange,
                ..
            } => vec![
                ("message_id", message_id.clone()),
                ("exchange", exchange.clone()),
            ],
            CourierError::Broker {
                operation,
                reply_code,
                reply_text,
                ..
            } => vec![
                ("operation", operation.clone()),
                ("reply_code", n(reply_code)),
                ("reply_text", reply_text.clone()),
            ],
            CourierError::LimitExceeded {
                what, limit, max, ..
            } => vec![
                ("what", what.clone()),
                ("limit", limit.clone()),
                ("max", n(max)),
            ],
            CourierError::Closed { what, .. } => vec![("what", what.clone())],
            CourierError::Internal { .. } => Vec::new(),
        }
    }

    #[test]
    fn every_kind_carries_cores_fields_and_message() {
        let errors = one_of_each();
        let kinds: Vec<_> = errors.iter().map(courierkit::Error::kind).collect();
        assert_eq!(kinds, ErrorKind::ALL, "one sample per kind, in order");
        for err in errors {
            let want: Vec<(&str, String)> = err
                .details()
                .into_iter()
                .map(|(name, d)| match d {
                    Detail::Text(t) => (name, t.to_owned()),
                    Detail::Count(c) => (name, c.to_string()),
                })
                .collect();
            let message = err.to_string();
            let kind = err.kind();
            let converted = CourierError::from(err);
            assert_eq!(converted.code(), kind.code());
            assert_eq!(fields(&converted), want, "{}", kind.code());
            assert_eq!(converted.to_string(), message);
        }
    }

    /// Kotlin's `CourierException.<Variant>` and Swift's `CourierError.<Variant>` are named
    /// after core's code by the rule every binding follows: `budget_exhausted` →
    /// `BudgetExhausted` (Python `BudgetExhaustedError`, Node `COURIER_BUDGET_EXHAUSTED`).
    #[test]
    fn every_variant_is_named_after_its_kind_code() {
        for err in one_of_each() {
            let code = err.kind().code();
            let want: String = code
                .split('_')
                .map(|part| {
                    let mut chars = part.chars();
                    chars.next().map_or_else(String::new, |first| {
                        first.to_ascii_uppercase().to_string() + chars.as_str()
                    })
                })
                .collect();
            let debug = format!("{:?}", CourierError::from(err));
            let variant = debug.split([' ', '{', '(']).next().unwrap_or_default();
            assert_eq!(variant, want, "{code}");
        }
    }

    #[test]
    fn a_budget_carries_its_last_failure() {
        let budget = one_of_each().swap_remove(3);
        match CourierError::from(budget) {
            CourierError::BudgetExhausted {
                last_kind,
                last_detail,
                ..
            } => assert_eq!(
                (last_kind.as_str(), last_detail.as_str()),
                ("closed", "client is closed")
            ),
            other => panic!("{other:?}"),
        }
    }
}
