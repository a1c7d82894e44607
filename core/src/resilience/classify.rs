//! Which attempt outcomes are retried, and which count against the breaker.
//!
//! Retrying is safe when repeating the request cannot repeat its effect: the method is
//! idempotent (RFC 9110 section 9.2.2), the caller sent an `Idempotency-Key`, or the
//! failure proves the request never reached the server (the connection or TLS
//! handshake failed). A POST whose connection broke after the request was written may
//! have been executed, so it is never retried without a key.

use reqwest::Method;

use super::config::{RetryConfig, RetryOn};
use crate::error::Error;

/// What one attempt produced, as far as retrying cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A response with this status.
    Status(u16),
    /// A failure of this class.
    Failure(RetryOn),
    /// A failure that is never retried (invalid request, a bug).
    Fatal,
}

impl Outcome {
    /// Classifies an attempt's error.
    pub(crate) fn of_error(err: &Error) -> Outcome {
        match err {
            Error::Connect {
                operation: "connect",
                ..
            }
            | Error::Tls { .. } => Outcome::Failure(RetryOn::Connect),
            Error::Connect { .. } => Outcome::Failure(RetryOn::Reset),
            Error::Timeout {
                operation: "attempt",
                ..
            } => Outcome::Failure(RetryOn::Timeout),
            _ => Outcome::Fatal,
        }
    }

    /// Whether the service is to blame: transport failures, timeouts and 5xx count
    /// against the breaker; 4xx (including 429, a deliberate refusal) do not.
    pub(crate) fn is_service_failure(self) -> bool {
        match self {
            Outcome::Status(code) => code >= 500,
            Outcome::Failure(_) => true,
            Outcome::Fatal => false,
        }
    }

    /// Whether `cfg` retries this outcome for a request that is (or is not) safe to repeat.
    pub(crate) fn is_retryable(self, cfg: &RetryConfig, repeatable: bool) -> bool {
        let class = match self {
            Outcome::Status(code) => RetryOn::Status(code),
            Outcome::Failure(class) => class,
            Outcome::Fatal => return false,
        };
        cfg.retry_on.contains(&class) && (repeatable || class == RetryOn::Connect)
    }
}

/// Whether the method may be repeated without repeating an effect.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reset() -> Error {
        Error::Connect {
            operation: "request",
            target: "t".into(),
            reason: "reset".into(),
            source: None,
        }
    }

    #[test]
    fn post_is_retried_only_when_nothing_was_sent() {
        let cfg = RetryConfig::default();
        let refused = Error::Connect {
            operation: "connect",
            target: "t".into(),
            reason: "refused".into(),
            source: None,
        };
        assert!(Outcome::of_error(&refused).is_retryable(&cfg, false));
        assert!(
            !Outcome::of_error(&reset()).is_retryable(&cfg, false),
            "a POST may have run"
        );
        assert!(
            Outcome::of_error(&reset()).is_retryable(&cfg, true),
            "a GET or keyed POST may repeat"
        );
        assert!(!Outcome::Status(503).is_retryable(&cfg, false));
        assert!(Outcome::Status(503).is_retryable(&cfg, true));
        assert!(
            !Outcome::Status(500).is_retryable(&cfg, true),
            "500 is not in the default list"
        );
    }

    #[test]
    fn only_service_failures_count_against_the_breaker() {
        assert!(Outcome::Status(503).is_service_failure());
        assert!(!Outcome::Status(429).is_service_failure());
        assert!(!Outcome::Status(404).is_service_failure());
        assert!(Outcome::of_error(&reset()).is_service_failure());
        assert!(!Outcome::of_error(&Error::config("f", "r")).is_service_failure());
    }
}
