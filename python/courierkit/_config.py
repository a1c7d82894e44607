"""Turning the config a caller passes into the JSON the native module validates."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._errors import ConfigError


def to_json(config: Mapping[str, Any]) -> str:
    """Serialises a dict config; validation (with field paths) happens in the core."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"config: expected a dict, got {type(config).__name__}")
    try:
        return json.dumps(config)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config: not representable as JSON: {e}") from e
