"""Turning what a caller passes (config, bodies, headers, numbers) into what the native
module takes, refusing what would otherwise be converted silently or raise a bare
``TypeError``/``OverflowError``: ``body=5`` is not five zero bytes, and a header value
``None`` is not the text "None". Range rules (a deadline of 0, 30 days at most) are the
core's, the same in every language."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Union

from ._errors import ConfigError


def to_json(config: Mapping[str, Any]) -> str:
    """Serialises a dict config; validation (with field paths) happens in the core."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"config: expected a dict, got {type(config).__name__}")
    try:
        return json.dumps(config)
    except (TypeError, ValueError) as e:
        raise config_error("config", f"not representable as JSON: {e}") from e
    except RecursionError as e:
        raise config_error("config", "nested too deeply") from e


def config_error(field: str, reason: str) -> ConfigError:
    """A :class:`ConfigError` shaped like the core's: ``field: reason``."""
    error = ConfigError(f"{field}: {reason}")
    error.field = field
    error.reason = reason
    return error


def body_bytes(body: object) -> bytes | None:
    """``bytes``, ``bytearray``, ``memoryview`` or ``str`` (UTF-8); None for no body."""
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise config_error("body", f"must be bytes, bytearray, memoryview or str, got {type(body).__name__}")


def text(field: str, value: object, *, numbers: bool = False) -> str:
    """A header or query value as text: a ``str`` (or, with ``numbers``, an int or float)."""
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    allowed = "a str, int or float" if numbers else "a str"
    raise config_error(field, f"must be {allowed}, got {type(value).__name__}")


def known(function: str, kwargs: Mapping[str, object], allowed: frozenset[str]) -> None:
    """Refuses a keyword argument ``function`` does not take, as Python does for a
    signature: the methods take theirs as ``**options`` (typed by a ``TypedDict``)."""
    for key in kwargs:
        if key not in allowed:
            raise TypeError(f"{function}() got an unexpected keyword argument {key!r}")


def flag(field: str, value: object) -> bool | None:
    """An optional bool argument; anything else (``"yes"``, ``1``) is refused rather
    than judged truthy."""
    if value is None or isinstance(value, bool):
        return value
    raise config_error(field, f"must be a bool, got {type(value).__name__}")


Seconds = Union[float, timedelta]
"""A duration argument: seconds as an ``int`` or ``float`` (``2.5``), or a ``timedelta``."""


def millis(field: str, value: object) -> int | None:
    """An optional duration argument (:data:`Seconds`) as the whole milliseconds the
    native module takes, a finer part dropped. ``field`` is the schema's name
    (``deadline_ms``), which core's own range check names too, so an error names the
    same field in every language. Not a bool, NaN, an infinity or below zero."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise config_error(field, f"must not be negative, got {value}")
        return whole(field, value // timedelta(milliseconds=1))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise config_error(field, f"must be seconds (a number or a timedelta), got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise config_error(field, f"must be finite seconds, not negative, got {value}")
    # Through whole microseconds first, so that 0.57 s is 570 ms, not 569 (0.57 * 1000
    # is 569.99999999999989 in binary floating point).
    return whole(field, round(value * 1_000_000) // 1_000)


def seconds(ms: int | None) -> float | None:
    """Whole milliseconds from the native module as seconds."""
    return None if ms is None else ms / 1_000


def whole(field: str, value: object, maximum: int = 2**64 - 1) -> int | None:
    """An optional count or duration argument: an int in ``0..=maximum`` (the width the
    native module takes; the core then applies its own range and names the field), never
    a bool or a float."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise config_error(field, f"must be an int, got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise config_error(field, f"must be in 0..={maximum}, got {value}")
    return value
