"""courier: resilient service-to-service HTTP calls and AMQP messaging.

One Rust core, the same behaviour in Python, Node, Kotlin and Swift.

Every call, publish and request takes ``trace=``, its parent in a distributed trace (a
:class:`TraceContext` or a W3C carrier dict). Without it, courier continues the current
OpenTelemetry span when the ``opentelemetry`` package is installed and a span is active,
and starts a new trace otherwise.
"""

import atexit

from ._bus import (
    AsyncBus,
    AsyncConsumer,
    Batch,
    BatchMessage,
    Bus,
    Consumer,
    Delivery,
    Receipt,
    deadline_from_headers,
)
from ._client import AsyncClient, Client, Response
from ._courier import TraceContext, __version__, _quiesce
from ._errors import (
    BrokerError,
    BudgetExhaustedError,
    CircuitOpenError,
    ClosedError,
    ConfigError,
    ConnectError,
    CourierError,
    HTTPStatusError,
    InternalError,
    LimitExceededError,
    NoEndpointError,
    OverloadedError,
    PublishRejectedError,
    RateLimitedError,
    TimeoutError,
    TlsError,
    UnroutableError,
)
from ._stats import BusStats, ClientStats, EndpointStats, ServiceStats
from ._telemetry import (
    _flush_at_exit,
    _install,
    configure_telemetry,
    flush_telemetry,
    log_level,
    metrics_text,
    set_log_level,
)
from .config import BusConfig, ClientConfig

__all__ = [
    "AsyncBus",
    "AsyncClient",
    "AsyncConsumer",
    "Batch",
    "BatchMessage",
    "BrokerError",
    "BudgetExhaustedError",
    "Bus",
    "BusConfig",
    "BusStats",
    "CircuitOpenError",
    "Client",
    "ClientConfig",
    "ClientStats",
    "ClosedError",
    "ConfigError",
    "ConnectError",
    "Consumer",
    "CourierError",
    "Delivery",
    "EndpointStats",
    "HTTPStatusError",
    "InternalError",
    "LimitExceededError",
    "NoEndpointError",
    "OverloadedError",
    "PublishRejectedError",
    "RateLimitedError",
    "Receipt",
    "Response",
    "ServiceStats",
    "TimeoutError",
    "TlsError",
    "TraceContext",
    "UnroutableError",
    "__version__",
    "configure_telemetry",
    "deadline_from_headers",
    "flush_telemetry",
    "log_level",
    "metrics_text",
    "set_log_level",
]

# Core's threads must not enter Python once the interpreter finalizes: this runs before
# finalization, while the interpreter is whole, and holds exit until they are out.
atexit.register(_quiesce)
# Registered after _quiesce, so it runs before it (atexit is last in, first out): the
# spans and metrics still held are exported while the core's threads may still run.
atexit.register(_flush_at_exit)
_install()
