"""courier's exceptions, one class per stable error kind.

Each carries the fields of core's error table (``Error::details``) as attributes, the
same fields every language gets: see the error table in docs/api.md.

They are defined here, not in Rust, so they can subclass the stdlib exceptions callers
already catch (``ValueError``, ``TimeoutError``, ``ConnectionError``). The native module
picks the class from :data:`BY_KIND` by the error's kind code.
"""

from __future__ import annotations

import builtins


class CourierError(Exception):
    """Base class of every courier error. ``kind`` is the language-independent code."""

    kind = "internal"


class ConfigError(CourierError, ValueError):
    """Invalid config or argument; the message starts with the field path.

    ``field`` and ``reason`` hold the two parts.
    """

    kind = "config"
    field: str = ""
    reason: str = ""


class TimeoutError(CourierError, builtins.TimeoutError):  # noqa: A001 - mirrors the stdlib name on purpose
    """A deadline or per-attempt timeout passed."""

    kind = "timeout"
    operation: str = ""
    after_ms: int = 0


class CircuitOpenError(CourierError):
    """The circuit breaker is open; the call failed fast without touching the network.

    ``retry_after_ms`` says when the breaker will let a probe through.
    """

    kind = "circuit_open"
    service: str = ""
    retry_after_ms: int = 0


class BudgetExhaustedError(CourierError):
    """A retry was needed but the retry budget refused it.

    ``last`` (also ``__cause__``) is the failure that was not retried; ``attempts`` how
    many were made.
    """

    kind = "budget_exhausted"
    service: str = ""
    attempts: int = 0
    last: CourierError | None = None


class OverloadedError(CourierError):
    """The concurrency limit was reached; the call failed fast."""

    kind = "overloaded"
    service: str = ""
    limit: int = 0


class RateLimitedError(CourierError):
    """The service's client-side rate limit had no token for the call within its deadline
    (or at once, for a limit with ``wait: false``). ``retry_after_ms`` says when one would
    have been there."""

    kind = "rate_limited"
    service: str = ""
    retry_after_ms: int = 0


class NoEndpointError(CourierError):
    """No endpoint qualifies for the request (for example, none has the version)."""

    kind = "no_endpoint"
    service: str = ""
    reason: str = ""


class ConnectError(CourierError, ConnectionError):
    """A transport failure: refused or reset connection, broken stream."""

    kind = "connect"
    operation: str = ""
    target: str = ""
    reason: str = ""


class TlsError(CourierError):
    """A TLS handshake or certificate failure."""

    kind = "tls"
    reason: str = ""


class UnroutableError(CourierError):
    """A mandatory publish that no queue accepted; the broker returned it."""

    kind = "unroutable"
    message_id: str = ""
    exchange: str = ""
    routing_key: str = ""
    reply_text: str = ""


class PublishRejectedError(CourierError):
    """The broker negatively acknowledged a publish."""

    kind = "publish_rejected"
    message_id: str = ""
    exchange: str = ""


class BrokerError(CourierError):
    """The broker refused an operation (missing queue, mismatched declaration...)."""

    kind = "broker"
    operation: str = ""
    reply_code: int = 0
    reply_text: str = ""


class LimitExceededError(CourierError):
    """A peer sent more than a configured limit allows (a response body over
    ``limits.max_response_body_bytes``); reading stopped at the limit.

    ``limit`` is the config field of the limit and ``max`` its value in bytes.
    """

    kind = "limit_exceeded"
    what: str = ""
    limit: str = ""
    max: int = 0


class ClosedError(CourierError):
    """The object was used after ``close()``."""

    kind = "closed"
    what: str = ""


class InternalError(CourierError):
    """A bug in courier, including a caught panic. Please report it."""

    kind = "internal"


class HTTPStatusError(CourierError):
    """Raised by ``Response.raise_for_status()`` for a 4xx or 5xx status."""

    kind = "http_status"

    def __init__(self, message: str, response: object) -> None:
        super().__init__(message)
        self.response = response


BY_KIND: dict[str, type[CourierError]] = {
    cls.kind: cls
    for cls in (
        ConfigError,
        TimeoutError,
        CircuitOpenError,
        BudgetExhaustedError,
        OverloadedError,
        RateLimitedError,
        NoEndpointError,
        ConnectError,
        TlsError,
        UnroutableError,
        PublishRejectedError,
        BrokerError,
        LimitExceededError,
        ClosedError,
        InternalError,
    )
}
