"""The stats ``Client.stats()`` and ``Bus.stats()`` return, typed: core's ``ClientStats``
and ``BusStats`` as JSON, the same fields in every language (tests/test_stats.py checks
these against what the core reports)."""

from __future__ import annotations

from typing import Literal, TypedDict


class EndpointStats(TypedDict):
    """One endpoint of a service, as the load balancer sees it."""

    url: str
    version: str | None
    weight: int
    requests: int
    failures: int
    ewma_ms: float
    in_flight: int
    ejected: bool
    times_ejected: int


class ServiceStats(TypedDict):
    """Counters of one service since the client was made."""

    requests: int
    attempts: int
    retries: int
    budget_denied: int
    overloaded: int
    circuit_rejected: int
    hedges: int
    hedges_won: int
    rate_limited: int
    rate_per_sec: float | None
    in_flight: int
    concurrency_limit: int
    breaker_state: Literal["closed", "open", "half_open", "disabled"]
    breaker_opened: int
    breaker_half_opened: int
    breaker_closed: int
    endpoints: list[EndpointStats]


class ClientStats(TypedDict):
    """``Client.stats()``: counters per service name."""

    services: dict[str, ServiceStats]


class BusStats(TypedDict):
    """``Bus.stats()``: counters since the bus connected."""

    published: int
    confirmed: int
    resent: int
    returned: int
    publish_rejected: int
    republished: int
    delivered: int
    acked: int
    nacked: int
    rejected: int
    redelivered: int
    deduplicated: int
    retried: int
    delayed: int
    expired: int
    rpc_in_flight: int
    reconnects: int
