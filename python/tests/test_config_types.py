"""The typed configuration (``courierkit.config``, generated from core's schema): every
section built as ``TypedDict``s is accepted by core, ``None`` turns the breaker off, and
mypy refuses a misspelt key."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import Testkit

import courierkit
from courierkit.config import (
    BreakerConfig,
    BudgetConfig,
    BusConfig,
    ClientConfig,
    HedgeConfig,
    HttpLimits,
    MemoryDedupConfig,
    MessageLimits,
    OutlierConfig,
    RateLimitConfig,
    ReconnectConfig,
    RetryConfig,
    ServiceConfig,
    TlsConfig,
    VersionConfig,
)


def every_section(testkit: Testkit) -> ClientConfig:
    orders: ServiceConfig = {
        "endpoints": [{"url": testkit.urls[0], "version": "v1", "weight": 2}, testkit.urls[1]],
        "timeout_ms": 2_000,
        "deadline_ms": 5_000,
        "headers": {"x-team": "payments"},
        "retry": RetryConfig(
            max_attempts=2, base_delay_ms=10, max_delay_ms=100, retry_on=["connect", "timeout", 503]
        ),
        "budget": BudgetConfig(ratio=0.5, min_per_sec=5, window_ms=5_000),
        "breaker": BreakerConfig(
            window_ms=5_000, min_calls=10, failure_ratio=0.6, open_ms=1_000, max_open_ms=10_000
        ),
        "hedge": HedgeConfig(max_hedges=1, delay_ms=100, percentile=95.0),
        "rate_limit": RateLimitConfig(per_second=1_000.0, burst=100, wait=True),
        "max_concurrency": 64,
        "balancer": "round_robin",
        "outlier": OutlierConfig(consecutive_failures=3, base_ejection_ms=1_000, max_ejected_ratio=0.5),
        "versions": VersionConfig(default="v1", split={"v1": 100}),
    }
    adaptive: ServiceConfig = {
        "endpoints": [testkit.urls[1]],
        "adaptive_concurrency": {"min_limit": 1, "max_limit": 50, "initial_limit": 10},
        "breaker": None,
        "outlier": None,
    }
    discovered: ServiceConfig = {"discovery": {"dns": "localhost", "port": 8080, "refresh_ms": 60_000}}
    return {
        "services": {"orders": orders, "adaptive": adaptive, "discovered": discovered},
        "tls": TlsConfig(min_version="1.3"),
        "limits": HttpLimits(max_response_body_bytes=1_000_000, max_response_header_bytes=32_768),
    }


def test_every_client_section_in_the_typed_form_is_accepted_and_used(testkit: Testkit) -> None:
    with courierkit.Client(every_section(testkit)) as client:
        assert client.get("orders", "/typed").status == 200
        orders = client.stats()["services"]["orders"]
        assert orders["breaker_state"] == "closed"
        assert [e["weight"] for e in orders["endpoints"]] == [2, 1]
        assert orders["concurrency_limit"] == 64
        assert client.get("adaptive", "/typed").status == 200
        assert client.stats()["services"]["adaptive"]["breaker_state"] == "disabled", "None turns it off"


def test_every_bus_section_in_the_typed_form_is_accepted() -> None:
    config: BusConfig = {
        "urls": ["memory://typed-config-py"],
        "prefetch": 10,
        "max_unconfirmed": 32,
        "reconnect": ReconnectConfig(base_delay_ms=50, max_delay_ms=500),
        "dedup": MemoryDedupConfig(store="memory", capacity=1_000, ttl_ms=60_000),
        "publish_deadline_ms": 5_000,
        "limits": MessageLimits(max_message_bytes=1_000_000, max_headers=16, max_header_value_bytes=4_096),
    }
    with courierkit.Bus.connect(config) as bus:
        bus.declare_queue("orders")
        bus.publish("", "orders", b"typed")
        with bus.consume("orders") as consumer:
            d = consumer.next(timeout=5)
            assert d is not None and d.body == b"typed"
            d.ack()


def test_mypy_refuses_a_misspelt_key_in_a_typed_config(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    source = tmp_path / "typo.py"
    source.write_text(
        textwrap.dedent(
            """
            from courierkit import ClientConfig

            config: ClientConfig = {"services": {"orders": {"endpoints": ["http://a"], "dedline_ms": 5}}}
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"dedline_ms"' in result.stdout, result.stdout
