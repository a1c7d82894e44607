//! The one public error type.
//!
//! Every failure courier reports is an [`Error`] variant carrying the data a caller
//! branches on (the field that failed validation, how long a timeout ran, the broker's
//! reply code). Each variant maps to exactly one stable [`ErrorKind`], and the bindings
//! map kinds one-to-one to exception classes (Python), `err.code` (Node) and the
//! `CourierException` hierarchy (Kotlin, Swift), so no binding parses messages.
//!
//! `Display` is lowercase, names the field or operation, and never includes secrets:
//! URLs pass through [`crate::redact_url`] before they reach a message.

use std::time::Duration;

/// A boxed source error, kept for `source()` chains.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used across courier.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure courier reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid configuration or argument. `field` is the path of the offending value
    /// (`services.orders.endpoints[0]`, `headers.x-id`, `routing_key`).
    #[error("{field}: {reason}")]
    Config {
        /// Path of the offending value.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The operation did not finish in time.
    #[error("{operation} timed out after {} ms", .after.as_millis())]
    Timeout {
        /// What was being waited for (`call`, `attempt`, `publish confirm`, `next delivery`).
        operation: &'static str,
        /// The limit that passed.
        after: Duration,
    },
    /// The service's circuit breaker is open: the call failed fast without touching
    /// the network.
    #[error("circuit open for {service}; next probe in {} ms", .retry_after.as_millis())]
    CircuitOpen {
        /// The service (or `host:port` for an absolute URL).
        service: String,
        /// When the breaker will let a probe through.
        retry_after: Duration,
    },
    /// A retry was needed but the service's retry budget refused it; `last` is the
    /// failure that would have been retried.
    #[error("retry budget for {service} exhausted after {attempts} attempt(s): {last}")]
    BudgetExhausted {
        /// The service.
        service: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        #[source]
        last: Box<Error>,
    },
    /// The service's concurrency limit was reached; the call failed fast.
    #[error("{service} has {limit} calls in flight (max_concurrency)")]
    Overloaded {
        /// The service.
        service: String,
        /// Its `max_concurrency`.
        limit: u32,
    },
    /// The service's client-side rate limit had no token for the call within its
    /// deadline (or at once, for a limit configured not to wait).
    #[error("{service} is rate limited; next token in {} ms", .retry_after.as_millis())]
    RateLimited {
        /// The service.
        service: String,
        /// When a token would have been there.
        retry_after: Duration,
    },
    /// Nothing to route the request to.
    #[error("no endpoint for {service}: {reason}")]
    NoEndpoint {
        /// The target service.
        service: String,
        /// Why no endpoint qualified.
        reason: String,
    },
    /// A transport failure: refused or reset connection, I/O error, broken stream.
    #[error("{operation} to {target} failed: {reason}")]
    Connect {
        /// What was attempted (`request`, `connect`).
        operation: &'static str,
        /// The peer, with credentials redacted.
        target: String,
        /// What went wrong, without secrets.
        reason: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A TLS handshake or certificate failure.
    #[error("tls: {reason}")]
    Tls {
        /// What the TLS layer reported.
        reason: String,
        /// The underlying error (the rustls error, through the transport's), when there
        /// is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A mandatory publish that no queue took; the broker returned it.
    #[error(
        "message {message_id} to exchange {exchange:?} with routing key {routing_key:?} was unroutable: {reply_text}"
    )]
    Unroutable {
        /// The message's id.
        message_id: String,
        /// The exchange it was published to (`""` is the default exchange).
        exchange: String,
        /// Its routing key.
        routing_key: String,
        /// The broker's reply text (`NO_ROUTE`).
        reply_text: String,
    },
    /// The broker negatively acknowledged a publish.
    #[error("broker rejected message {message_id} to exchange {exchange:?}")]
    PublishRejected {
        /// The message's id.
        message_id: String,
        /// The exchange it was published to.
        exchange: String,
    },
    /// The broker refused an operation on a channel (for example `404 NOT_FOUND` for a
    /// missing queue, `406 PRECONDITION_FAILED` for redeclaring with other arguments).
    /// Kept apart from [`Error::Connect`] because retrying does not help.
    #[error("broker refused {operation}: {reply_code} {reply_text}")]
    Broker {
        /// The AMQP method that was refused.
        operation: &'static str,
        /// The AMQP reply code.
        reply_code: u16,
        /// The broker's reply text.
        reply_text: String,
    },
    /// Something a peer sent is larger than a configured limit (a response body over
    /// `limits.max_response_body_bytes`); reading stopped there, so memory stays bounded.
    #[error("{what} is larger than {limit} ({max} bytes)")]
    LimitExceeded {
        /// What was too large (`response body`).
        what: &'static str,
        /// The config field of the limit (`limits.max_response_body_bytes`).
        limit: &'static str,
        /// The limit's value.
        max: u64,
    },
    /// The object was used after `close()`.
    #[error("{what} is closed")]
    Closed {
        /// What was closed (`client`, `bus`, `consumer`).
        what: &'static str,
    },
    /// A bug in courier, including a panic caught at an FFI boundary.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One field of an error (see [`Error::details`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail<'a> {
    /// Text: a name, a path, a reason.
    Text(&'a str),
    /// A count, a code or a size; durations in milliseconds.
    Count(u64),
}

/// The stable, language-independent code of an [`Error`].
///
/// Bindings turn kinds into exception classes and error codes, so the set and the
/// [`ErrorKind::code`] strings are part of the public API in every language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Invalid configuration or argument.
    Config,
    /// A deadline or timeout passed.
    Timeout,
    /// The circuit breaker is open.
    CircuitOpen,
    /// The retry budget denied a retry.
    BudgetExhausted,
    /// The concurrency limit was reached.
    Overloaded,
    /// The client-side rate limit had no token in time.
    RateLimited,
    /// Nothing to route to.
    NoEndpoint,
    /// A transport failure.
    Connect,
    /// A TLS failure.
    Tls,
    /// A mandatory publish was returned.
    Unroutable,
    /// The broker nacked a publish.
    PublishRejected,
    /// The broker refused a channel operation.
    Broker,
    /// A peer sent more than a configured limit allows.
    LimitExceeded,
    /// Used after close.
    Closed,
    /// A bug.
    Internal,
}

impl ErrorKind {
    /// Every kind, for bindings that build their class table from core.
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Config,
        ErrorKind::Timeout,
        ErrorKind::CircuitOpen,
        ErrorKind::BudgetExhausted,
        ErrorKind::Overloaded,
        ErrorKind::RateLimited,
        ErrorKind::NoEndpoint,
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Unroutable,
        ErrorKind::PublishRejected,
        ErrorKind::Broker,
        ErrorKind::LimitExceeded,
        ErrorKind::Closed,
        ErrorKind::Internal,
    ];

    /// The snake_case code shared by every language (`circuit_open`).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Timeout => "timeout",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::BudgetExhausted => "budget_exhausted",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::NoEndpoint => "no_endpoint",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Unroutable => "unroutable",
            ErrorKind::PublishRejected => "publish_rejected",
            ErrorKind::Broker => "broker",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::Closed => "closed",
            ErrorKind::Internal => "internal",
        }
    }
}

impl Error {
    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Config { .. } => ErrorKind::Config,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            Error::BudgetExhausted { .. } => ErrorKind::BudgetExhausted,
            Error::Overloaded { .. } => ErrorKind::Overloaded,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::NoEndpoint { .. } => ErrorKind::NoEndpoint,
            Error::Connect { .. } => ErrorKind::Connect,
            Error::Tls { .. } => ErrorKind::Tls,
            Error::Unroutable { .. } => ErrorKind::Unroutable,
            Error::PublishRejected { .. } => ErrorKind::PublishRejected,
            Error::Broker { .. } => ErrorKind::Broker,
            Error::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            Error::Closed { .. } => ErrorKind::Closed,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Shorthand for a [`Error::Config`] about `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The error's fields, by snake_case name: the one table every binding reads, so
    /// each kind carries the same fields in every language (Python attributes, Node
    /// properties in camelCase, Kotlin and Swift variant fields). Durations are in
    /// milliseconds (`after_ms`, `retry_after_ms`). A budget's last failure is not a
    /// field but the error's [`Error::cause`].
    pub fn details(&self) -> Vec<(&'static str, Detail<'_>)> {
        use Detail::{Count, Text};
        let ms = |d: &Duration| Count(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        match self {
            Error::Config { field, reason } => {
                vec![("field", Text(field)), ("reason", Text(reason))]
            }
            Error::Timeout { operation, after } => {
                vec![("operation", Text(operation)), ("after_ms", ms(after))]
            }
            Error::CircuitOpen {
                service,
                retry_after,
            } => vec![
                ("service", Text(service)),
                ("retry_after_ms", ms(retry_after)),
            ],
            Error::BudgetExhausted {
                service, attempts, ..
            } => vec![
                ("service", Text(service)),
                ("attempts", Count((*attempts).into())),
            ],
            Error::Overloaded { service, limit } => {
                vec![
                    ("service", Text(service)),
                    ("limit", Count((*limit).into())),
                ]
            }
            Error::RateLimited {
                service,
                retry_after,
            } => vec![
                ("service", Text(service)),
                ("retry_after_ms", ms(retry_after)),
            ],
            Error::NoEndpoint { service, reason } => {
                vec![("service", Text(service)), ("reason", Text(reason))]
            }
            Error::Connect {
                operation,
                target,
                reason,
                ..
            } => vec![
                ("operation", Text(operation)),
                ("target", Text(target)),
                ("reason", Text(reason)),
            ],
            Error::Tls { reason, .. } => vec![("reason", Text(reason))],
            Error::Unroutable {
                message_id,
                exchange,
                routing_key,
                reply_text,
            } => vec![
                ("message_id", Text(message_id)),
                ("exchange", Text(exchange)),
                ("routing_key", Text(routing_key)),
                ("reply_text", Text(reply_text)),
            ],
            Error::PublishRejected {
                message_id,
                exchange,
            } => vec![
                ("message_id", Text(message_id)),
                ("exchange", Text(exchange)),
            ],
            Error::Broker {
                operation,
                reply_code,
                reply_text,
            } => vec![
                ("operation", Text(operation)),
                ("reply_code", Count((*reply_code).into())),
                ("reply_text", Text(reply_text)),
            ],
            Error::LimitExceeded { what, limit, max } => vec![
                ("what", Text(what)),
                ("limit", Text(limit)),
                ("max", Count(*max)),
            ],
            Error::Closed { what } => vec![("what", Text(what))],
            Error::Internal(_) => Vec::new(),
        }
    }

    /// The failure behind this one that bindings expose as the standard cause
    /// (`__cause__`, `Error.cause`, `Throwable.cause`): a budget's last failure.
    pub fn cause(&self) -> Option<&Error> {
        match self {
            Error::BudgetExhausted { last, .. } => Some(last),
            _ => None,
        }
    }

    /// Whether this is a timeout (hyper's `is_timeout` idiom).
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let codes: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.code()).collect();
        assert_eq!(
            codes.len(),
            ErrorKind::ALL.len(),
            "every kind needs its own code"
        );
        assert!(
            codes
                .iter()
                .all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        );
    }

    #[test]
    fn every_kind_has_its_fields_in_the_table() {
        let limit = Error::LimitExceeded {
            what: "response body",
            limit: "limits.max_response_body_bytes",
            max: 10,
        };
        assert_eq!(
            limit.details(),
            [
                ("what", Detail::Text("response body")),
                ("limit", Detail::Text("limits.max_response_body_bytes")),
                ("max", Detail::Count(10)),
            ]
        );
        let budget = Error::BudgetExhausted {
            service: "s".into(),
            attempts: 2,
            last: Box::new(Error::Closed { what: "client" }),
        };
        assert_eq!(budget.cause().map(Error::kind), Some(ErrorKind::Closed));
        let broker = Error::Broker {
            operation: "queue.declare",
            reply_code: 406,
            reply_text: "PRECONDITION_FAILED".into(),
        };
        assert!(
            broker
                .details()
                .contains(&("reply_code", Detail::Count(406)))
        );
    }

    #[test]
    fn config_error_names_the_field_first() {
        let e = Error::config("services.a.endpoints", "must not be empty");
        assert_eq!(e.to_string(), "services.a.endpoints: must not be empty");
        assert_eq!(e.kind().code(), "config");
    }
}
