"""The ``trace=`` argument, and the host's OpenTelemetry context as its default.

Without ``trace=``, a call, publish or request continues the OpenTelemetry span that is
current where it is made, when the ``opentelemetry`` package is installed and that span
is valid; otherwise the core starts a new trace. OpenTelemetry keeps its context in
``contextvars``, so each thread and each asyncio task sees its own span: the carrier is
taken in the caller's context, before the call is handed to the core.

``opentelemetry`` is imported on first use, once; without it this costs one failed
import per process and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Optional, Union

from ._courier import TraceContext

Trace = Union[TraceContext, Mapping[str, str]]
"""A parent for a call: a :class:`TraceContext` or a carrier (``traceparent``,
``tracestate``, ``baggage``)."""

_Current = Callable[[], Optional["dict[str, str]"]]
_loaded = False
_current: _Current | None = None


def _load() -> _Current | None:
    try:
        from opentelemetry import propagate
        from opentelemetry import trace as otel_trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        return None
    w3c = TraceContextTextMapPropagator()

    def current() -> dict[str, str] | None:
        if not otel_trace.get_current_span().get_span_context().is_valid:
            return None
        carrier: dict[str, str] = {}
        # The application's propagators first (they add baggage, vendors' headers); the
        # W3C one when none of them writes a traceparent, the only parent courier reads.
        propagate.inject(carrier)
        if "traceparent" not in carrier:
            w3c.inject(carrier)
        return carrier

    return current


def host_carrier() -> dict[str, str] | None:
    """The current OpenTelemetry span as a W3C carrier; None without OpenTelemetry or
    outside a valid span."""
    global _loaded, _current
    if not _loaded:
        # Racing threads may both import; they store the same thing.
        _current, _loaded = _load(), True
    return None if _current is None else _current()


def parent(trace: Trace | None) -> TraceContext | dict[str, str] | None:
    """What to pass the native layer as ``trace``: the caller's, else the host's."""
    if trace is None:
        return host_carrier()
    if isinstance(trace, TraceContext):
        return trace
    return dict(trace)
