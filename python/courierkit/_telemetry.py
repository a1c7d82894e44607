"""Telemetry from the host's side: core log records into :mod:`logging`, the telemetry
settings, flush and the Prometheus text.

Core's records go to the logger ``courier.<module>`` (``courier.http.call``,
``courier.messaging.amqp.link``...), their fields under ``record.courier``. Which
records the core produces at all is its level: ``COURIER_LOG`` when set, else the level
of the ``courier`` logger when courierkit is imported (``WARNING`` by default), else
what :func:`set_log_level` sets; records below it cost nothing. They are handed over on
courier's own log thread, one at a time, so no core thread waits for the GIL.

Spans and metrics are exported over OTLP/HTTP when the standard OpenTelemetry variables
say so (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``,
``OTEL_SDK_DISABLED``...), or as :func:`configure_telemetry` says; they are flushed when
a bus closes and at exit.
"""

from __future__ import annotations

import logging
import os
from typing import Union

from . import _courier
from ._config import Seconds, config_error, millis

_LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    # Below DEBUG, as courier's most detailed records are.
    "trace": 5,
}
_NAMES = [(number, name) for name, number in sorted(_LEVELS.items(), key=lambda kv: -kv[1])]
_loggers: dict[str, logging.Logger] = {}


def _handle(level: str, target: str, message: str, fields: dict[str, str]) -> None:
    """Called by the core's log thread with one record."""
    logger = _loggers.get(target)
    if logger is None:
        name = "courier." + target.replace("::", ".") if target else "courier"
        logger = _loggers.setdefault(target, logging.getLogger(name))
    number = _LEVELS.get(level, logging.WARNING)
    if logger.isEnabledFor(number):
        logger.log(number, "%s", message, extra={"courier": fields})


Level = Union[str, int]
"""A level: ``"error"``, ``"warn"``, ``"info"``, ``"debug"``, ``"trace"``, ``"off"``, or a
:mod:`logging` level number."""


def _name(level: Level) -> str:
    if isinstance(level, bool) or not isinstance(level, (str, int)):
        kind = type(level).__name__
        raise config_error("level", f"must be a level name or a logging level number, not {kind}")
    if isinstance(level, str):
        return level
    for number, name in _NAMES:
        if level >= number:
            return name
    return "trace"


def set_log_level(level: Level) -> None:
    """Sets the level core records are produced at, for the whole process."""
    _courier.set_log_level(_name(level))


def log_level() -> str:
    """The level core records are produced at (``"warn"``...)."""
    return _courier.log_level()


def configure_telemetry(
    *,
    traces_endpoint: str | None = None,
    metrics_endpoint: str | None = None,
    service_name: str | None = None,
    sampler: str | None = None,
    sampler_arg: str | None = None,
    metrics: bool = True,
    metrics_interval: Seconds | None = None,
) -> None:
    """Replaces the telemetry settings the environment gave: the full OTLP/HTTP URLs
    (``http://collector:4318/v1/traces``, ``.../v1/metrics``; ``None`` exports nothing),
    the ``service.name``, the sampler (``OTEL_TRACES_SAMPLER`` names), whether metrics
    are recorded, and how often they are exported (seconds or a timedelta)."""
    if not isinstance(metrics, bool):
        raise config_error("metrics", "must be True or False")
    _courier.configure_telemetry(
        {
            "traces_endpoint": traces_endpoint,
            "metrics_endpoint": metrics_endpoint,
            "service_name": service_name,
            "sampler": sampler,
            "sampler_arg": sampler_arg,
            "metrics": metrics,
            "metrics_interval_ms": millis("metrics_interval_ms", metrics_interval),
        }
    )


def flush_telemetry() -> None:
    """Exports the spans and metrics recorded so far, waiting for the collector."""
    _courier.flush_telemetry()


def metrics_text() -> str:
    """courier's metrics in the Prometheus text format, for an application's own
    ``/metrics``; empty when metrics are off."""
    return _courier.metrics_text()


def _flush_at_exit() -> None:
    try:
        _courier.flush_telemetry()
    except Exception as e:  # noqa: BLE001 - exit must go on; the failure is logged
        logging.getLogger("courier").warning("telemetry export at exit failed: %s", e)


def _install() -> None:
    if not os.environ.get("COURIER_LOG", "").strip():
        _courier.set_log_level(_name(logging.getLogger("courier").getEffectiveLevel()))
    problem = _courier._install_telemetry(_handle)
    if problem is not None:
        logging.getLogger("courier").warning("telemetry settings ignored: %s", problem)
