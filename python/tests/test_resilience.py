"""Retries, POST safety, the breaker and the limit, counted at the testkit upstream.

Each test uses a service name of its own: retry budgets are per process and per service.
"""

import asyncio

import pytest

import courierkit


def client(testkit, name, cls=courierkit.Client, **service):
    return cls({"services": {name: {"endpoints": [testkit.urls[0]], **service}}})


def test_retries_503_until_success(testkit):
    testkit.behave(0, script=[{"status": 503}, {"status": 503}], default={"status": 200})
    c = client(testkit, "py-retry")
    resp = c.get("py-retry", "/x")
    assert (resp.status, resp.attempts) == (200, 3)
    assert testkit.requests(0)["total"] == 3
    stats = c.stats()["services"]["py-retry"]
    assert (stats["requests"], stats["attempts"], stats["retries"]) == (1, 3, 2)


async def test_async_retry_and_timeout_types(testkit):
    testkit.behave(0, script=[{"status": 502}], default={"status": 200})
    c = client(testkit, "py-async-retry", courierkit.AsyncClient)
    resp = await c.get("py-async-retry")
    assert resp.attempts == 2
    testkit.behave(0, default={"latency_ms": 5000})
    with pytest.raises(courierkit.TimeoutError):
        await c.get("py-async-retry", deadline=0.2)


def test_post_is_resent_only_with_an_idempotency_key(testkit):
    testkit.behave(0, default={"reset": "mid_response"})
    c = client(testkit, "py-post")
    with pytest.raises(courierkit.ConnectError):
        c.post("py-post", "/orders", json={"sku": 1})
    assert testkit.requests(0)["total"] == 1, "a POST that may have run is never re-sent"
    testkit.reset()
    testkit.behave(0, default={"reset": "mid_response"})
    with pytest.raises(courierkit.ConnectError):
        c.post("py-post", "/orders", json={"sku": 1}, idempotency_key="k-1")
    assert testkit.requests(0)["by_idempotency_key"] == {"k-1": 3}


def test_open_breaker_fails_fast_without_network(testkit):
    testkit.behave(0, default={"status": 503})
    breaker = {"min_calls": 2, "failure_ratio": 0.5, "open_ms": 60000, "max_open_ms": 60000, "probes": 1}
    c = client(testkit, "py-breaker", retry={"max_attempts": 1}, breaker=breaker)
    assert [c.get("py-breaker").status for _ in range(2)] == [503, 503]
    with pytest.raises(courierkit.CircuitOpenError) as info:
        c.get("py-breaker")
    assert info.value.retry_after_ms > 0
    assert testkit.requests(0)["total"] == 2
    assert c.stats()["services"]["py-breaker"]["breaker_state"] == "open"


def test_budget_exhaustion_carries_the_last_error(testkit):
    testkit.stop(2)
    c = courierkit.Client(
        {
            "services": {
                "py-budget": {
                    "endpoints": [testkit.urls[2]],
                    "budget": {"ratio": 0.0, "min_per_sec": 0},
                    "breaker": None,
                }
            }
        }
    )
    with pytest.raises(courierkit.BudgetExhaustedError) as info:
        c.get("py-budget")
    assert isinstance(info.value.last, courierkit.ConnectError)
    assert info.value.__cause__ is info.value.last
    assert info.value.attempts == 1


async def test_concurrency_limit_raises_overloaded(testkit):
    testkit.behave(0, default={"latency_ms": 1500})
    c = client(testkit, "py-limit", courierkit.AsyncClient, max_concurrency=2)
    slow = [asyncio.ensure_future(c.get("py-limit")) for _ in range(2)]
    for _ in range(200):  # bounded wait until both are at the server
        if testkit.requests(0)["total"] == 2:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(courierkit.OverloadedError):
        await c.get("py-limit")
    assert [r.status for r in await asyncio.gather(*slow)] == [200, 200]
