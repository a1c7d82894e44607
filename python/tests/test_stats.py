"""The typed stats (``courierkit.BusStats``, ``ClientStats``, ``ServiceStats``,
``EndpointStats``) name exactly the fields the core reports, with the types it reports."""

from __future__ import annotations

import uuid
from typing import Any, get_type_hints

import courierkit


def check(typed: type, got: dict[str, Any]) -> None:
    hints = get_type_hints(typed)
    assert set(hints) == set(got), f"{typed.__name__}: {set(hints) ^ set(got)}"


def test_bus_stats_match_the_typed_dict():
    with courierkit.Bus.connect({"urls": [f"memory://courier-py-{uuid.uuid4().hex}"]}) as bus:
        stats: courierkit.BusStats = bus.stats()
        check(courierkit.BusStats, dict(stats))
        assert all(isinstance(v, int) for v in stats.values())


def test_client_stats_match_the_typed_dicts():
    config = {
        "services": {
            "a": {"endpoints": ["http://127.0.0.1:9", {"url": "http://127.0.0.1:10", "version": "v2"}]}
        }
    }
    with courierkit.Client(config) as client:
        stats: courierkit.ClientStats = client.stats()
    check(courierkit.ClientStats, dict(stats))
    service = stats["services"]["a"]
    check(courierkit.ServiceStats, dict(service))
    assert service["breaker_state"] in ("closed", "open", "half_open", "disabled")
    assert service["rate_per_sec"] is None
    for endpoint in service["endpoints"]:
        check(courierkit.EndpointStats, dict(endpoint))
        assert isinstance(endpoint["ewma_ms"], float) and isinstance(endpoint["ejected"], bool)
    assert [e["version"] for e in service["endpoints"]] == [None, "v2"]
