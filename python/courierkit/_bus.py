"""``Bus``/``AsyncBus``, ``Consumer``/``AsyncConsumer`` and ``Delivery``.

Consumers are iterators (sync) and async iterators (asyncio) over the core's pull-based
``next()``; no callback ever runs on a Rust thread.
"""

from __future__ import annotations

import json as _json
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Union, overload

from . import _courier
from ._config import Seconds, body_bytes, config_error, known, millis, seconds, text, to_json, whole
from ._errors import CourierError
from ._stats import BusStats
from ._trace import Trace, parent

if TYPE_CHECKING:
    # Only in annotations (postponed by `from __future__ import annotations`), so the
    # package needs no typing_extensions at run time on Python < 3.11.
    from typing_extensions import Self, Unpack

    from ._courier import _ConsumeOptions, _PublishOptions, _QueueOptions, _RequestOptions
    from .config import BusConfig

ExchangeKind = Literal["direct", "fanout", "topic", "headers"]
Body = Union[bytes, bytearray, memoryview, str]


def _bytes(body: Body) -> bytes:
    return body_bytes(body) or b""


def _headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    if headers is None:
        return None
    return {text("headers", k): text(f"headers.{k}", v) for k, v in headers.items()}


# Each method's keyword arguments, typed once for Bus and AsyncBus, and turned into the
# native method's options (core's options struct) by one function. Missing or None is
# core's default (QueueOptions, PublishOptions, ConsumeOptions, RequestOptions).


class _QueueKwargs(TypedDict, total=False):
    quorum: bool | None
    delivery_limit: int | None
    dead_letter: bool | None
    ttl: Seconds | None
    retry_delays: Sequence[Seconds] | None


def _retry_delays(delays: Sequence[Seconds] | None) -> list[int] | None:
    if delays is None:
        return None
    if isinstance(delays, (str, bytes)) or not isinstance(delays, Sequence):
        raise config_error("retry_delays_ms", f"must be a list of durations, got {type(delays).__name__}")
    return [millis(f"retry_delays_ms[{i}]", d) or 0 for i, d in enumerate(delays)]


def _queue_options(kw: _QueueKwargs) -> _QueueOptions:
    known("declare_queue", kw, _QueueKwargs.__optional_keys__)
    return {
        "quorum": kw.get("quorum"),
        "delivery_limit": whole("delivery_limit", kw.get("delivery_limit"), 2**32 - 1),
        "dead_letter": kw.get("dead_letter"),
        "ttl_ms": millis("ttl_ms", kw.get("ttl")),
        "retry_delays_ms": _retry_delays(kw.get("retry_delays")),
    }


class _PublishKwargs(TypedDict, total=False):
    headers: Mapping[str, str] | None
    message_id: str | None
    correlation_id: str | None
    persistent: bool | None
    trace: Trace | None
    deadline: Seconds | None
    delay: Seconds | None
    ttl: Seconds | None


def _publish_options(kw: _PublishKwargs) -> _PublishOptions:
    known("publish", kw, _PublishKwargs.__optional_keys__)
    return {
        "headers": _headers(kw.get("headers")),
        "message_id": kw.get("message_id"),
        "correlation_id": kw.get("correlation_id"),
        "persistent": kw.get("persistent"),
        "trace": parent(kw.get("trace")),
        "deadline_ms": millis("deadline_ms", kw.get("deadline")),
        "delay_ms": millis("delay_ms", kw.get("delay")),
        "ttl_ms": millis("ttl_ms", kw.get("ttl")),
    }


class _ConsumeKwargs(TypedDict, total=False):
    prefetch: int | None
    dedup: bool | None


def _consume_options(kw: _ConsumeKwargs) -> _ConsumeOptions:
    known("consume", kw, _ConsumeKwargs.__optional_keys__)
    return {"prefetch": whole("prefetch", kw.get("prefetch"), 2**16 - 1), "dedup": kw.get("dedup")}


class _RequestKwargs(TypedDict, total=False):
    exchange: str | None
    timeout: Seconds | None
    headers: Mapping[str, str] | None
    trace: Trace | None


def _request_options(kw: _RequestKwargs) -> _RequestOptions:
    known("request", kw, _RequestKwargs.__optional_keys__)
    return {
        "exchange": kw.get("exchange"),
        "timeout_ms": millis("timeout_ms", kw.get("timeout")),
        "headers": _headers(kw.get("headers")),
        "trace": parent(kw.get("trace")),
    }


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


class _Settles:
    """``ack``, ``nack`` and ``reject``, blocking and asyncio, over a native Delivery or
    Batch (which name them alike): a Batch settles each of its deliveries not settled yet."""

    __slots__ = ()
    _native: _courier.Delivery | _courier.Batch

    def ack(self) -> None:
        self._native.ack()

    def nack(self, requeue: bool | None = None) -> None:
        """Return the message to the queue (``requeue``, the default; on a queue with
        ``retry_delays``, later) or dead-letter it."""
        self._native.nack(requeue)

    def reject(self) -> None:
        """Reject without requeue: the message goes to the dead-letter queue."""
        self._native.reject()

    async def ack_async(self) -> None:
        await self._native.ack_async()

    async def nack_async(self, requeue: bool | None = None) -> None:
        await self._native.nack_async(requeue)

    async def reject_async(self) -> None:
        await self._native.reject_async()


class Delivery(_Settles):
    """A received message. Settle it once: ``ack()``, ``nack(requeue=...)`` or ``reject()``.

    A request (from :meth:`Bus.serve`) is answered with ``reply()``, which does not settle
    it. The reply a :meth:`Bus.request` returns is a Delivery too; settling it is a no-op.
    """

    __slots__ = ("_native",)
    _native: _courier.Delivery

    def __init__(self, native: _courier.Delivery) -> None:
        self._native = native

    @property
    def body(self) -> bytes:
        """Message body."""
        return self._native.body

    @property
    def headers(self) -> dict[str, str]:
        """Application headers as text."""
        return self._native.headers

    @property
    def message_id(self) -> str | None:
        """The message id (courier publishers always set one)."""
        return self._native.message_id

    @property
    def correlation_id(self) -> str | None:
        return self._native.correlation_id

    @property
    def reply_to(self) -> str | None:
        """Where the sender wants a reply (requests only)."""
        return self._native.reply_to

    @property
    def exchange(self) -> str:
        """The exchange it was published to (``""`` is the default exchange)."""
        return self._native.exchange

    @property
    def routing_key(self) -> str:
        return self._native.routing_key

    @property
    def redelivered(self) -> bool:
        """Whether the broker delivered it before."""
        return self._native.redelivered

    @property
    def delivery_count(self) -> int | None:
        """Earlier deliveries (quorum queues)."""
        return self._native.delivery_count

    @property
    def trace(self) -> dict[str, str]:
        """The trace context the message carried: a carrier dict (traceparent, tracestate,
        baggage)."""
        return self._native.trace

    @property
    def trace_context(self) -> _courier.TraceContext:
        """The trace context the message carried, as a :class:`courierkit.TraceContext`."""
        return self._native.trace_context

    @property
    def remaining(self) -> float | None:
        """Seconds left until the message's deadline (its publisher's ``ttl``, a request's
        timeout), 0 once passed; None without one. Pass it on as the ``deadline`` of the
        calls and publishes made for this message."""
        return seconds(self._native.remaining_ms)

    @property
    def is_settled(self) -> bool:
        """Whether it was acked, nacked, rejected or forwarded."""
        return self._native.is_settled

    def reply(self, body: Body, headers: Mapping[str, str] | None = None) -> None:
        """Answers a request on its ``reply_to`` with the same correlation id. Does not
        settle it: ``ack()`` afterwards. Raises :class:`courierkit.ConfigError` when the
        delivery is not a request."""
        self._native.reply(_bytes(body), _headers(headers))

    def forward(
        self, exchange: str, routing_key: str, body: Body, **options: Unpack[_PublishKwargs]
    ) -> Receipt:
        """Hands the message on to the next step of a workflow: publishes ``body`` under a
        message id derived from this delivery's id and the destination (so a redelivered
        copy forwards the same id, which the next step's dedup skips), continuing this
        delivery's trace, and acks this delivery once the broker confirmed the next step.
        Takes :meth:`Bus.publish`'s options except ``message_id``."""
        return Receipt(*self._native.forward(exchange, routing_key, _bytes(body), _publish_options(options)))

    async def reply_async(self, body: Body, headers: Mapping[str, str] | None = None) -> None:
        await self._native.reply_async(_bytes(body), _headers(headers))

    async def forward_async(
        self, exchange: str, routing_key: str, body: Body, **options: Unpack[_PublishKwargs]
    ) -> Receipt:
        return Receipt(
            *await self._native.forward_async(exchange, routing_key, _bytes(body), _publish_options(options))
        )

    def process(self, requeue: bool | None = None) -> _Processing:
        """A scope that settles the delivery when it ends, unless the block settled it
        already (a ``forward``, a ``reject``): acked when the block succeeds; when it
        raises, nacked (``requeue``, by default True: on a queue with
        ``retry_delays``, later) and the exception re-raised.

        ``with d.process(): handle(d)`` blocks; ``async with d.process(): ...`` awaits.
        """
        return _Processing(self._native, requeue)

    def __repr__(self) -> str:
        return f"<Delivery {self.message_id} from {self.exchange!r}/{self.routing_key!r}>"


class _Processing:
    """What :meth:`Delivery.process` returns: a sync and an async context manager. The
    outcome (ack, or nack with core's default requeue) is core's ``Delivery::finish``."""

    __slots__ = ("_native", "_requeue")

    def __init__(self, native: _courier.Delivery, requeue: bool | None) -> None:
        self._native = native
        self._requeue = requeue

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> Literal[False]:
        self._native.finish(exc_type is None, self._requeue)
        return False

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> Literal[False]:
        await self._native.finish_async(exc_type is None, self._requeue)
        return False


class BatchMessage:
    """One message of :meth:`Bus.publish_many`: where it goes, its body, and
    :meth:`Bus.publish`'s keyword options."""

    __slots__ = ("_native",)

    def __init__(
        self, exchange: str, routing_key: str, body: Body, **options: Unpack[_PublishKwargs]
    ) -> None:
        self._native = (exchange, routing_key, _bytes(body), _publish_options(options))

    def __repr__(self) -> str:
        return f"<BatchMessage to {self._native[0]!r}/{self._native[1]!r}>"


def _outcomes(results: list[tuple[str, _courier.TraceContext] | Exception]) -> list[Receipt | CourierError]:
    out: list[Receipt | CourierError] = []
    for result in results:
        if isinstance(result, CourierError):
            out.append(result)
        elif isinstance(result, tuple):
            out.append(Receipt(*result))
        else:  # pragma: no cover - the native layer returns only these
            raise result
    return out


class Batch(_Settles, Sequence[Delivery]):
    """Deliveries from :meth:`Consumer.next_batch`, in delivery order. Settle any of them
    on their own; ``ack()``, ``nack()`` and ``reject()`` then settle all the others with
    one call (each raises the first failure, having settled the rest)."""

    __slots__ = ("_deliveries", "_native")
    _native: _courier.Batch

    def __init__(self, native: _courier.Batch) -> None:
        self._native = native
        self._deliveries = [Delivery(d) for d in native.deliveries]

    def __len__(self) -> int:
        return len(self._deliveries)

    @overload
    def __getitem__(self, index: int) -> Delivery: ...
    @overload
    def __getitem__(self, index: slice) -> list[Delivery]: ...
    def __getitem__(self, index: int | slice) -> Delivery | list[Delivery]:
        return self._deliveries[index]

    def __repr__(self) -> str:
        return f"<Batch of {len(self)}>"


class Consumer:
    """Deliveries from one queue: ``for d in consumer`` or ``consumer.next(timeout=...)``."""

    def __init__(self, native: _courier.Consumer) -> None:
        self._native = native

    def next(self, timeout: Seconds | None = None) -> Delivery | None:
        """The next delivery; None once closed. Raises :class:`courierkit.TimeoutError`
        when ``timeout`` (seconds or a timedelta) passes first."""
        native = self._native.next(millis("timeout_ms", timeout))
        return None if native is None else Delivery(native)

    def next_batch(self, max: int, timeout: Seconds) -> Batch | None:  # noqa: A002 - the core's name
        """Up to ``max`` deliveries (1..=prefetch): returns once ``max`` came or ``timeout``
        passed, with fewer or none (an empty batch); None once closed."""
        native = self._native.next_batch(_max(max), _timeout(timeout))
        return None if native is None else Batch(native)

    def close(self) -> None:
        """Stop consuming; unacknowledged deliveries return to the queue."""
        self._native.close()

    def __iter__(self) -> Iterator[Delivery]:
        """Deliveries until the consumer is closed. Leaving the loop early (``break``, an
        exception) closes the consumer: unsettled deliveries return to the queue, so
        settle each inside the loop."""
        try:
            while (d := self.next()) is not None:
                yield d
        finally:
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncConsumer:
    """Deliveries from one queue: ``async for d in consumer``."""

    def __init__(self, native: _courier.Consumer) -> None:
        self._native = native

    async def next(self, timeout: Seconds | None = None) -> Delivery | None:
        native = await self._native.next_async(millis("timeout_ms", timeout))
        return None if native is None else Delivery(native)

    async def next_batch(self, max: int, timeout: Seconds) -> Batch | None:  # noqa: A002 - the core's name
        native = await self._native.next_batch_async(_max(max), _timeout(timeout))
        return None if native is None else Batch(native)

    async def close(self) -> None:
        await self._native.close_async()

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        """Deliveries until the consumer is closed. Leaving the loop early closes the
        consumer once asyncio finalizes the loop's generator (at once with ``async with``
        around the loop)."""
        try:
            while (d := await self.next()) is not None:
                yield d
        finally:
            await self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _max(value: int) -> int:
    return whole("max", value, 2**32 - 1) or 0


def _timeout(value: Seconds) -> int:
    ms = millis("timeout_ms", value)
    if ms is None:
        raise config_error("timeout_ms", "is required")
    return ms


def _messages(messages: Iterable[BatchMessage]) -> list[tuple[str, str, bytes, _PublishOptions]]:
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, BatchMessage):
            raise config_error(f"messages[{i}]", f"must be a BatchMessage, got {type(m).__name__}")
        out.append(m._native)
    return out


def deadline_from_headers(headers: Mapping[str, str]) -> float | None:
    """The caller's remaining budget in seconds from an incoming HTTP request's headers
    (``x-courier-deadline-ms``, which courier clients send; any case), for a server to
    pass on as the ``deadline`` of its own calls and publishes; None when the caller sent
    none. Raises :class:`courierkit.ConfigError` naming the header when its value is not
    whole milliseconds (answer 400)."""
    return seconds(_courier.deadline_from_headers({str(k): str(v) for k, v in headers.items()}))


class _BusBase:
    def __init__(self, native: _courier.Bus) -> None:
        self._native = native

    def stats(self) -> BusStats:
        """Counters since the bus connected: ``published``, ``confirmed``, ``resent``,
        ``returned``, ``publish_rejected``, ``republished``, ``delivered``, ``acked``,
        ``nacked``, ``rejected``, ``redelivered``, ``deduplicated``, ``retried``, ``delayed``,
        ``expired``, ``rpc_in_flight``, ``reconnects``."""
        stats: BusStats = _json.loads(self._native.stats_json())
        return stats


class Bus(_BusBase):
    """A connection to RabbitMQ (or the in-process ``memory://`` broker), blocking API. Thread-safe."""

    @classmethod
    def connect(cls, config: BusConfig | Mapping[str, Any]) -> Bus:
        return cls(_courier.Bus.connect(to_json(config)))

    def declare_queue(self, name: str, **options: Unpack[_QueueKwargs]) -> None:
        """Declares ``name``; by default (core's) a quorum queue with a delivery limit of 5
        and a ``<name>.dlq`` dead-letter queue. With ``retry_delays=[1, 5]`` (seconds) a
        ``nack(requeue=True)`` brings the message back after each delay in turn, then
        dead-letters it (docs/messaging.md)."""
        self._native.declare_queue(name, _queue_options(options))

    def declare_exchange(self, name: str, kind: ExchangeKind | None = None) -> None:
        """Declares an exchange; ``kind`` defaults to ``"topic"``."""
        self._native.declare_exchange(name, kind)

    def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self._native.bind(queue, exchange, routing_key)

    def publish(
        self, exchange: str, routing_key: str, body: Body, **options: Unpack[_PublishKwargs]
    ) -> Receipt:
        """Publishes and returns once the broker confirms.

        ``trace`` is the parent, a :class:`courierkit.TraceContext` or a carrier dict
        (``traceparent``, ...); without it, the current OpenTelemetry span when there is
        one. The message carries a child of the parent, or starts a new trace.
        Durations are seconds or a ``timedelta``. ``deadline`` bounds the whole publish,
        reconnects included (default: the config's ``publish_deadline_ms``).
        ``persistent`` unless False. ``delay`` delivers no earlier than that (through a
        delay queue; docs/messaging.md). ``ttl``: how long the message stays worth
        processing; a consumer dead-letters it unprocessed after that
        (``Delivery.remaining`` is what is left).
        """
        return Receipt(*self._native.publish(exchange, routing_key, _bytes(body), _publish_options(options)))

    def publish_many(self, messages: Iterable[BatchMessage]) -> list[Receipt | CourierError]:
        """Publishes up to 1,000 messages at once and waits for all their confirms together
        (one round trip, not one per message). Each message's outcome is at its index: a
        :class:`Receipt`, or the exception :meth:`publish` would raise, as a value (like
        ``asyncio.gather(..., return_exceptions=True)``)."""
        return _outcomes(self._native.publish_many(_messages(messages)))

    def consume(self, queue: str, **options: Unpack[_ConsumeKwargs]) -> Consumer:
        """Consumes ``queue`` with manual acks. With ``dedup`` (on unless False), a message id already
        acked within the dedup window is acked and skipped, never returned."""
        return Consumer(self._native.consume(queue, _consume_options(options)))

    def serve(self, queue: str) -> Consumer:
        """A consumer of RPC requests on ``queue``: answer each with ``d.reply(...)``.
        Requests are not deduplicated."""
        return Consumer(self._native.serve(queue))

    def request(self, routing_key: str, body: Body, **options: Unpack[_RequestKwargs]) -> Delivery:
        """Sends a request and returns the reply. Raises :class:`courierkit.TimeoutError`
        when no reply comes within ``timeout`` (seconds or a timedelta; default 5),
        :class:`courierkit.UnroutableError` when no queue takes the request. ``exchange``
        defaults to the default exchange (routing by queue name). ``trace`` as for
        :meth:`publish`."""
        return Delivery(self._native.request(routing_key, _bytes(body), _request_options(options)))

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncBus(_BusBase):
    """A connection to RabbitMQ (or the in-process ``memory://`` broker) for asyncio."""

    @classmethod
    async def connect(cls, config: BusConfig | Mapping[str, Any]) -> AsyncBus:
        return cls(await _courier.Bus.connect_async(to_json(config)))

    async def declare_queue(self, name: str, **options: Unpack[_QueueKwargs]) -> None:
        await self._native.declare_queue_async(name, _queue_options(options))

    async def declare_exchange(self, name: str, kind: ExchangeKind | None = None) -> None:
        await self._native.declare_exchange_async(name, kind)

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        await self._native.bind_async(queue, exchange, routing_key)

    async def publish(
        self, exchange: str, routing_key: str, body: Body, **options: Unpack[_PublishKwargs]
    ) -> Receipt:
        return Receipt(
            *await self._native.publish_async(exchange, routing_key, _bytes(body), _publish_options(options))
        )

    async def publish_many(self, messages: Iterable[BatchMessage]) -> list[Receipt | CourierError]:
        return _outcomes(await self._native.publish_many_async(_messages(messages)))

    async def consume(self, queue: str, **options: Unpack[_ConsumeKwargs]) -> AsyncConsumer:
        return AsyncConsumer(await self._native.consume_async(queue, _consume_options(options)))

    async def serve(self, queue: str) -> AsyncConsumer:
        return AsyncConsumer(await self._native.serve_async(queue))

    async def request(self, routing_key: str, body: Body, **options: Unpack[_RequestKwargs]) -> Delivery:
        return Delivery(
            await self._native.request_async(routing_key, _bytes(body), _request_options(options))
        )

    async def close(self) -> None:
        await self._native.close_async()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
