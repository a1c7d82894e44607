"""``Client`` and ``AsyncClient``: keyword arguments, ``json=``, context managers.

Everything that decides behaviour (routing, deadlines, errors) is in the native core;
this module only shapes arguments and results.
"""

from __future__ import annotations

import json as _json
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, Union

from . import _courier
from ._config import Seconds, body_bytes, flag, known, millis, text, to_json
from ._errors import HTTPStatusError
from ._stats import ClientStats
from ._trace import Trace, parent

if TYPE_CHECKING:
    # Only in annotations (postponed by `from __future__ import annotations`), so the
    # package needs no typing_extensions at run time on Python < 3.11.
    from typing_extensions import Self, Unpack

    from ._courier import _Request
    from .config import ClientConfig

Headers = Union[Mapping[str, str], Iterable["tuple[str, str]"]]
Query = Union[Mapping[str, Any], Iterable["tuple[str, Any]"]]
Body = Union[bytes, bytearray, memoryview, str]


class Response:
    """A completed HTTP exchange. A final 4xx/5xx is a Response, not an exception."""

    __slots__ = ("_native",)

    def __init__(self, native: _courier.Response) -> None:
        self._native = native

    @property
    def status(self) -> int:
        return self._native.status

    @property
    def headers(self) -> dict[str, str]:
        """Lowercase names; repeated headers joined with ``", "``."""
        return self._native.headers

    @property
    def body(self) -> bytes:
        return self._native.body

    @property
    def attempts(self) -> int:
        """Attempts made; 1 when the first attempt answered."""
        return self._native.attempts

    @property
    def endpoint(self) -> str:
        """Base URL of the endpoint that answered."""
        return self._native.endpoint

    @property
    def idempotency_key(self) -> str | None:
        """The ``Idempotency-Key`` every attempt sent: the caller's, or the one courier
        made for ``idempotent=True``; None when none was sent."""
        return self._native.idempotency_key

    @property
    def trace(self) -> dict[str, str]:
        """The trace carrier the answered attempt sent (``traceparent``...)."""
        return self._native.trace

    @property
    def trace_context(self) -> _courier.TraceContext:
        """The context the answered attempt sent, as a :class:`courierkit.TraceContext`."""
        return self._native.trace_context

    def text(self) -> str:
        return self._native.text()

    def json(self) -> Any:
        return _json.loads(self._native.body)

    def raise_for_status(self) -> Response:
        """Raises :class:`courierkit.HTTPStatusError` for a 4xx or 5xx status; returns self otherwise."""
        if self.status >= 400:
            raise HTTPStatusError(f"HTTP {self.status} from {self.endpoint}", self)
        return self

    def __repr__(self) -> str:
        return f"<Response {self.status} from {self.endpoint} attempts={self.attempts}>"


def _pairs(field: str, items: Headers | Query | None) -> list[tuple[str, str]] | None:
    if items is None:
        return None
    pairs = items.items() if isinstance(items, Mapping) else items
    numbers = field == "query"
    return [(text(field, k), text(f"{field}.{k}", v, numbers=numbers)) for k, v in pairs]


class _CallKwargs(TypedDict, total=False):
    """The keyword arguments of ``call`` and the method helpers. Missing or None: the
    service's config, or core's default."""

    headers: Headers | None
    body: Body | None
    json: Any
    query: Query | None
    deadline: Seconds | None
    timeout: Seconds | None
    idempotency_key: str | None
    idempotent: bool | None
    version: str | None
    rate_key: str | None
    trace: Trace | None


def _optional_text(field: str, value: object) -> str | None:
    return None if value is None else text(field, value)


def _request(method: str, target: str, path: str | None, options: _CallKwargs) -> _Request:
    """``call``'s arguments as the native ``call`` takes them (core's ``Request``), for
    Client and AsyncClient alike."""
    known("call", options, _CallKwargs.__optional_keys__)
    headers = _pairs("headers", options.get("headers")) or []
    body = options.get("body")
    json = options.get("json")
    if json is not None:
        if body is not None:
            raise TypeError("pass body= or json=, not both")
        body = _json.dumps(json).encode()
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("content-type", "application/json"))
    return {
        "method": method,
        "target": target,
        "path": path,
        "headers": headers,
        "body": body_bytes(body),
        "query": _pairs("query", options.get("query")),
        "deadline_ms": millis("deadline_ms", options.get("deadline")),
        "timeout_ms": millis("timeout_ms", options.get("timeout")),
        "idempotency_key": options.get("idempotency_key"),
        "idempotent": flag("idempotent", options.get("idempotent")),
        "version": options.get("version"),
        "rate_key": _optional_text("rate_key", options.get("rate_key")),
        "trace": parent(options.get("trace")),
    }


class _Base:
    def __init__(
        self, config: ClientConfig | Mapping[str, Any], *, _native: _courier.Client | None = None
    ) -> None:
        self._native = _native if _native is not None else _courier.Client(to_json(config))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Self:
        """Loads a ``.toml`` or JSON config file."""
        return cls({}, _native=_courier.Client.from_file(os.fspath(path)))

    def stats(self) -> ClientStats:
        """Counters per service: ``{"services": {name: {"requests", "attempts", "retries",
        "budget_denied", "overloaded", "circuit_rejected", "hedges", "hedges_won", "rate_limited",
        "rate_per_sec", "in_flight", "concurrency_limit", "breaker_state",
        "breaker_opened", "breaker_half_opened", "breaker_closed", "endpoints": [{"url",
        "version", "weight", "requests", "failures", "ewma_ms", "in_flight", "ejected",
        "times_ejected"}]}}}``."""
        stats: ClientStats = _json.loads(self._native.stats_json())
        return stats

    def reconfigure(self, config: ClientConfig | Mapping[str, Any]) -> None:
        """Replaces the configuration atomically: later calls use ``config``, calls in
        flight finish under the old one, and what did not change (services, endpoints,
        counters) is kept. An invalid ``config`` raises :class:`courierkit.ConfigError`
        and changes nothing. Not a coroutine on :class:`AsyncClient` either: it does no
        I/O."""
        self._native.reconfigure(to_json(config))

    def close(self) -> None:
        """Later calls raise :class:`courierkit.ClosedError`; calls in flight finish."""
        self._native.close()


class Client(_Base):
    """Calls services over HTTP, blocking. Thread-safe; share one per process."""

    def call(
        self, method: str, target: str, path: str | None = None, **options: Unpack[_CallKwargs]
    ) -> Response:
        """Sends one request and returns its Response, a final 4xx/5xx included.

        ``trace`` is the parent (a :class:`courierkit.TraceContext` or a carrier dict);
        without it the current OpenTelemetry span when there is one, else a new trace.
        """
        return Response(self._native.call(_request(method, target, path, options)))

    def get(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return self.call("GET", target, path, **options)

    def head(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return self.call("HEAD", target, path, **options)

    def options(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return self.call("OPTIONS", target, path, **options)

    def delete(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return self.call("DELETE", target, path, **options)

    def post(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return self.call("POST", target, path, **options)

    def put(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return self.call("PUT", target, path, **options)

    def patch(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return self.call("PATCH", target, path, **options)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Base):
    """Calls services over HTTP from asyncio. Cancelling a call cancels the request."""

    async def call(
        self, method: str, target: str, path: str | None = None, **options: Unpack[_CallKwargs]
    ) -> Response:
        return Response(await self._native.call_async(_request(method, target, path, options)))

    async def get(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return await self.call("GET", target, path, **options)

    async def head(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return await self.call("HEAD", target, path, **options)

    async def options(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return await self.call("OPTIONS", target, path, **options)

    async def delete(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return await self.call("DELETE", target, path, **options)

    async def post(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return await self.call("POST", target, path, **options)

    async def put(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return await self.call("PUT", target, path, **options)

    async def patch(self, target: str, path: str | None = None, **options: Unpack[_CallKwargs]) -> Response:
        return await self.call("PATCH", target, path, **options)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
