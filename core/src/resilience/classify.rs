//! Which attempt outcomes are retried, and which count against the breaker.
//!
//! Retrying is safe when repeating the request cannot repeat its effect: the method is
//! idempotent (RFC 9110 section 9.2.2), the caller sent an `Idempotency-Key`, or the
//! failure proves the request never reached the server (the connection or TLS
//! handshake failed). A POST whose connection broke after the request was written may
//! have been executed, so it is never retried without a key.

use reqwest::Method;

use super::config::{RetryConfig, RetryOn};

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
    /// Whether the service is to blame: transport failures, timeouts and 5xx count
    /// against the breaker; 4xx (including 429, a deliberate refusal) do not.
    pub(crate) fn is_service_failure(self) -> bool {
        match self {
            Outcome::Status(code) => code >= 500,
            Outcome::Failure(_) => true,
            Outcome::Fatal => false,
        }
    }

    /// Whether the endpoint did badly, for balancing (its latency sample) and outlier
    /// ejection: a service failure, a 429, or any failure of the attempt, fatal ones
    /// included. Unlike the breaker, which takes a 429 as the service's deliberate
    /// answer, the balancer sends the next call elsewhere: the endpoint is shedding load.
    /// And an attempt that ran out the call's deadline, or sent more than a limit allows,
    /// is not retried but still says the endpoint hung or misbehaved: counted as a
    /// success it would reset the failure streak, and a hung endpoint would never be
    /// ejected.
    pub(crate) fn is_endpoint_failure(self) -> bool {
        match self {
            Outcome::Status(code) => code >= 500 || code == 429,
            Outcome::Failure(_) | Outcome::Fatal => true,
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

    const REFUSED: Outcome = Outcome::Failure(RetryOn::Connect);
    const RESET: Outcome = Outcome::Failure(RetryOn::Reset);

    #[test]
    fn post_is_retried_only_when_nothing_was_sent() {
        let cfg = RetryConfig::default();
        assert!(REFUSED.is_retryable(&cfg, false));
        assert!(!RESET.is_retryable(&cfg, false), "a POST may have run");
        assert!(
            RESET.is_retryable(&cfg, true),
            "a GET or keyed POST may repeat"
        );
        assert!(!Outcome::Status(503).is_retryable(&cfg, false));
        assert!(Outcome::Status(503).is_retryable(&cfg, true));
        assert!(
            !Outcome::Status(500).is_retryable(&cfg, true),
            "500 is not in the default list"
        );
        assert!(!Outcome::Fatal.is_retryable(&cfg, true));
    }

    #[test]
    fn the_breaker_and_the_balancer_judge_one_outcome_by_their_own_rule() {
        for (outcome, service, endpoint) in [
            (Outcome::Status(200), false, false),
            (Outcome::Status(404), false, false),
            (Outcome::Status(429), false, true),
            (Outcome::Status(503), true, true),
            (RESET, true, true),
            (REFUSED, true, true),
            (Outcome::Failure(RetryOn::Timeout), true, true),
            (Outcome::Fatal, false, true),
        ] {
            assert_eq!(outcome.is_service_failure(), service, "{outcome:?} breaker");
            assert_eq!(
                outcome.is_endpoint_failure(),
                endpoint,
                "{outcome:?} balancer"
            );
        }
    }
}
