"""``Bus``/``AsyncBus``, ``Consumer``/``AsyncConsumer`` and ``Delivery``.

Consumers are iterators (sync) and async iterators (asyncio) over the core's pull-based
``next()``; no callback ever runs on a Rust thread.
"""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Union

from . import _courier
from ._config import body_bytes, text, to_json, whole
from ._trace import Trace, parent

if TYPE_CHECKING:
    # Only in annotations (postponed by `from __future__ import annotations`), so the
    # package needs no typing_extensions at run time on Python < 3.11.
    from typing_extensions import Self

ExchangeKind = Literal["direct", "fanout", "topic", "headers"]
Body = Union[bytes, bytearray, memoryview, str]


def _bytes(body: Body) -> bytes:
    return body_bytes(body) or b""


def _headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    if headers is None:
        return None
    return {text("headers", k): text(f"headers.{k}", v) for k, v in headers.items()}


class Receipt:
    """Proof that the broker confirmed a publish. ``trace_context`` is the context the
    message carries (a child of the caller's, or a new trace); ``trace`` the same as a
    carrier dict."""

    __slots__ = ("message_id", "trace_context")

    def __init__(self, message_id: str, trace_context: _courier.TraceContext) -> None:
        self.message_id = message_id
        self.trace_context = trace_context

    @property
    def trace(self) -> dict[str, str]:
        """The context the message carries, as a carrier dict."""
        return self.trace_context.to_carrier()

    def __repr__(self) -> str:
        return f"<Receipt {self.message_id}>"


class Delivery:
    """A received message. Settle it once: ``ack()``, ``nack(requeue=...)`` or ``reject()``.

    A request (from :meth:`Bus.serve`) is answered with ``reply()``, which does not settle
    it. The reply a :meth:`Bus.request` returns is a Delivery too; settling it is a no-op.
    """

    __slots__ = ("_native",)

    def __init__(self, native: _courier.Delivery) -> None:
        self._native = native

    body = property(lambda self: self._native.body, doc="Message body (bytes).")
    headers = property(lambda self: self._native.headers, doc="Application headers as text.")
    message_id = property(lambda self: self._native.message_id)
    correlation_id = property(lambda self: self._native.correlation_id)
    reply_to = property(
        lambda self: self._native.reply_to, doc="Where the sender wants a reply (requests only)."
    )
    exchange = property(lambda self: self._native.exchange)
    routing_key = property(lambda self: self._native.routing_key)
    redelivered = property(lambda self: self._native.redelivered)
    delivery_count = property(
        lambda self: self._native.delivery_count, doc="Earlier deliveries (quorum queues)."
    )
    trace = property(
        lambda self: self._native.trace,
        doc="The trace context the message carried: a carrier dict (traceparent, tracestate, baggage).",
    )
    trace_context = property(
        lambda self: self._native.trace_context,
        doc="The trace context the message carried, as a :class:`courierkit.TraceContext`.",
    )

    def ack(self) -> None:
        self._native.ack(False)

    def nack(self, requeue: bool | None = None) -> None:
        """Return the message to the queue (``requeue``, the default) or dead-letter it."""
        self._native.nack(requeue, False)

    def reject(self) -> None:
        """Reject without requeue: the message goes to the dead-letter queue."""
        self._native.reject(False)

    def reply(self, body: Body, headers: Mapping[str, str] | None = None) -> None:
        """Answers a request on its ``reply_to`` with the same correlation id. Does not
        settle it: ``ack()`` afterwards. Raises :class:`courierkit.ConfigError` when the
        delivery is not a request."""
        self._native.reply(_bytes(body), _headers(headers), False)

    async def ack_async(self) -> None:
        await self._native.ack(True)

    async def nack_async(self, requeue: bool | None = None) -> None:
        await self._native.nack(requeue, True)

    async def reject_async(self) -> None:
        await self._native.reject(True)

    async def reply_async(self, body: Body, headers: Mapping[str, str] | None = None) -> None:
        await self._native.reply(_bytes(body), _headers(headers), True)

    def __repr__(self) -> str:
        return f"<Delivery {self.message_id} from {self.exchange!r}/{self.routing_key!r}>"


class Consumer:
    """Deliveries from one queue: ``for d in consumer`` or ``consumer.next(timeout_ms=...)``."""

    def __init__(self, native: _courier.Consumer) -> None:
        self._native = native

    def next(self, timeout_ms: int | None = None) -> Delivery | None:
        """The next delivery; None once closed. Raises :class:`courierkit.TimeoutError` on timeout."""
        native = self._native.next(whole("timeout_ms", timeout_ms), False)
        return None if native is None else Delivery(native)

    def close(self) -> None:
        """Stop consuming; unacknowledged deliveries return to the queue."""
        self._native.close(False)

    def __iter__(self) -> Iterator[Delivery]:
        while (d := self.next()) is not None:
            yield d

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncConsumer:
    """Deliveries from one queue: ``async for d in consumer``."""

    def __init__(self, native: _courier.Consumer) -> None:
        self._native = native

    async def next(self, timeout_ms: int | None = None) -> Delivery | None:
        native = await self._native.next(whole("timeout_ms", timeout_ms), True)
        return None if native is None else Delivery(native)

    async def close(self) -> None:
        await self._native.close(True)

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        d = await self.next()
        if d is None:
            raise StopAsyncIteration
        return d

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Bus:
    """A connection to RabbitMQ (or the in-process ``memory://`` broker), blocking API. Thread-safe."""

    def __init__(self, native: _courier.Bus) -> None:
        self._native = native

    @classmethod
    def connect(cls, config: Mapping[str, Any]) -> Bus:
        return cls(_courier.Bus.connect(to_json(config), False))

    def declare_queue(
        self,
        name: str,
        *,
        quorum: bool = True,
        delivery_limit: int | None = None,
        dead_letter: bool = True,
        ttl_ms: int | None = None,
    ) -> None:
        self._native.declare_queue(
            name,
            quorum,
            whole("delivery_limit", delivery_limit, 2**32 - 1),
            dead_letter,
            whole("ttl_ms", ttl_ms),
            False,
        )

    def declare_exchange(self, name: str, kind: ExchangeKind | None = None) -> None:
        """Declares an exchange; ``kind`` defaults to ``"topic"``."""
        self._native.declare_exchange(name, kind, False)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self._native.bind(queue, exchange, routing_key, False)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: Body,
        *,
        headers: Mapping[str, str] | None = None,
        message_id: str | None = None,
        correlation_id: str | None = None,
        persistent: bool = True,
        trace: Trace | None = None,
        deadline_ms: int | None = None,
    ) -> Receipt:
        """Publishes and returns once the broker confirms.

        ``trace`` is the parent, a :class:`courierkit.TraceContext` or a carrier dict
        (``traceparent``, ...); without it, the current OpenTelemetry span when there is
        one. The message carries a child of the parent, or starts a new trace.
        ``deadline_ms`` bounds the whole publish, reconnects included (default: the
        config's ``publish_deadline_ms``).
        """
        mid, context = self._native.publish(
            exchange,
            routing_key,
            _bytes(body),
            _headers(headers),
            message_id,
            correlation_id,
            persistent,
            parent(trace),
            whole("deadline_ms", deadline_ms),
            False,
        )
        return Receipt(mid, context)

    def consume(self, queue: str, *, prefetch: int | None = None, dedup: bool | None = None) -> Consumer:
        """Consumes ``queue`` with manual acks. With ``dedup`` (on unless False), a message id already
        acked within the dedup window is acked and skipped, never returned."""
        return Consumer(self._native.consume(queue, whole("prefetch", prefetch, 2**16 - 1), dedup, False))

    def serve(self, queue: str) -> Consumer:
        """A consumer of RPC requests on ``queue``: answer each with ``d.reply(...)``.
        Requests are not deduplicated."""
        return Consumer(self._native.serve(queue, False))

    def request(
        self,
        routing_key: str,
        body: Body,
        *,
        exchange: str = "",
        timeout_ms: int | None = None,
        headers: Mapping[str, str] | None = None,
        trace: Trace | None = None,
    ) -> Delivery:
        """Sends a request and returns the reply. Raises :class:`courierkit.TimeoutError` when
        no reply comes within ``timeout_ms`` (default 5000), :class:`courierkit.UnroutableError` when no
        queue takes the request. ``trace`` as for :meth:`publish`."""
        native = self._native.request(
            routing_key,
            _bytes(body),
            exchange,
            whole("timeout_ms", timeout_ms),
            _headers(headers),
            parent(trace),
            False,
        )
        return Delivery(native)

    def stats(self) -> dict[str, int]:
        """Counters since the bus connected: ``published``, ``confirmed``, ``resent``,
        ``returned``, ``publish_rejected``, ``delivered``, ``acked``, ``nacked``,
        ``rejected``, ``redelivered``, ``deduplicated``, ``rpc_in_flight``, ``reconnects``."""
        stats: dict[str, int] = _json.loads(self._native.stats_json())
        return stats

    def close(self) -> None:
        self._native.close(False)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncBus:
    """A connection to RabbitMQ (or the in-process ``memory://`` broker) for asyncio."""

    def __init__(self, native: _courier.Bus) -> None:
        self._native = native

    @classmethod
    async def connect(cls, config: Mapping[str, Any]) -> AsyncBus:
        return cls(await _courier.Bus.connect(to_json(config), True))

    async def declare_queue(
        self,
        name: str,
        *,
        quorum: bool = True,
        delivery_limit: int | None = None,
        dead_letter: bool = True,
        ttl_ms: int | None = None,
    ) -> None:
        await self._native.declare_queue(
            name,
            quorum,
            whole("delivery_limit", delivery_limit, 2**32 - 1),
            dead_letter,
            whole("ttl_ms", ttl_ms),
            True,
        )

    async def declare_exchange(self, name: str, kind: ExchangeKind | None = None) -> None:
        await self._native.declare_exchange(name, kind, True)

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        await self._native.bind(queue, exchange, routing_key, True)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: Body,
        *,
        headers: Mapping[str, str] | None = None,
        message_id: str | None = None,
        correlation_id: str | None = None,
        persistent: bool = True,
        trace: Trace | None = None,
        deadline_ms: int | None = None,
    ) -> Receipt:
        mid, context = await self._native.publish(
            exchange,
            routing_key,
            _bytes(body),
            _headers(headers),
            message_id,
            correlation_id,
            persistent,
            parent(trace),
            whole("deadline_ms", deadline_ms),
            True,
        )
        return Receipt(mid, context)

    async def consume(
        self, queue: str, *, prefetch: int | None = None, dedup: bool | None = None
    ) -> AsyncConsumer:
        return AsyncConsumer(
            await self._native.consume(queue, whole("prefetch", prefetch, 2**16 - 1), dedup, True)
        )

    async def serve(self, queue: str) -> AsyncConsumer:
        return AsyncConsumer(await self._native.serve(queue, True))

    async def request(
        self,
        routing_key: str,
        body: Body,
        *,
        exchange: str = "",
        timeout_ms: int | None = None,
        headers: Mapping[str, str] | None = None,
        trace: Trace | None = None,
    ) -> Delivery:
        native = await self._native.request(
            routing_key,
            _bytes(body),
            exchange,
            whole("timeout_ms", timeout_ms),
            _headers(headers),
            parent(trace),
            True,
        )
        return Delivery(native)

    def stats(self) -> dict[str, int]:
        """Counters since the bus connected, as :meth:`Bus.stats`."""
        stats: dict[str, int] = _json.loads(self._native.stats_json())
        return stats

    async def close(self) -> None:
        await self._native.close(True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
