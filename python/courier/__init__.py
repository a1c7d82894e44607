"""courier: resilient service-to-service HTTP calls and AMQP messaging.

One Rust core, the same behaviour in Python, Node, Kotlin and Swift.
"""

from ._bus import AsyncBus, AsyncConsumer, Bus, Consumer, Delivery, Receipt
from ._client import AsyncClient, Client, Response
from ._courier import __version__
from ._errors import (
    BrokerError,
    CircuitOpenError,
    ClosedError,
    ConfigError,
    ConnectError,
    CourierError,
    HTTPStatusError,
    InternalError,
    NoEndpointError,
    OverloadedError,
    PublishRejectedError,
    RetryBudgetExhausted,
    TimeoutError,
    TlsError,
    UnroutableError,
)

__all__ = [
    "AsyncBus",
    "AsyncClient",
    "AsyncConsumer",
    "BrokerError",
    "Bus",
    "CircuitOpenError",
    "Client",
    "ClosedError",
    "ConfigError",
    "ConnectError",
    "Consumer",
    "CourierError",
    "Delivery",
    "HTTPStatusError",
    "InternalError",
    "NoEndpointError",
    "OverloadedError",
    "PublishRejectedError",
    "Receipt",
    "Response",
    "RetryBudgetExhausted",
    "TimeoutError",
    "TlsError",
    "UnroutableError",
    "__version__",
]
