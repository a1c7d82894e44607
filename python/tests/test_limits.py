"""The client-side rate limit (refusals counted at the testkit, keys, the 429 feedback) and
the adaptive concurrency limit from Python. Each test uses a service name of its own."""

import asyncio

import pytest

import courierkit


def limited(testkit, name, cls=courierkit.Client, **rate):
    return cls({"services": {name: {"endpoints": [testkit.urls[0]], "rate_limit": rate}}})


def test_past_the_burst_a_limit_that_does_not_wait_raises(testkit):
    c = limited(testkit, "py-rate", per_second=0.5, burst=2, wait=False)
    assert [c.get("py-rate").status for _ in range(2)] == [200, 200]
    with pytest.raises(courierkit.RateLimitedError) as info:
        c.get("py-rate")
    assert info.value.service == "py-rate"
    assert 1000 < info.value.retry_after_ms <= 2000
    assert testkit.requests(0)["total"] == 2
    stats = c.stats()["services"]["py-rate"]
    assert (stats["rate_limited"], stats["rate_per_sec"]) == (1, 0.5)


async def test_async_keys_have_buckets_of_their_own(testkit):
    c = limited(testkit, "py-rate-keys", courierkit.AsyncClient, per_second=0.5, burst=1, wait=False)
    await c.get("py-rate-keys", rate_key="tenant-a")
    with pytest.raises(courierkit.RateLimitedError):
        await c.get("py-rate-keys", rate_key="tenant-a")
    await c.get("py-rate-keys", rate_key="tenant-b")
    await c.get("py-rate-keys")
    assert testkit.requests(0)["total"] == 3


def test_a_429_with_retry_after_pauses_the_bucket(testkit):
    testkit.behave(0, script=[{"status": 429, "retry_after": "30"}])
    c = limited(testkit, "py-rate-429", per_second=1000, burst=100, wait=False)
    assert c.get("py-rate-429").status == 429
    with pytest.raises(courierkit.RateLimitedError) as info:
        c.get("py-rate-429")
    assert info.value.retry_after_ms > 25_000
    assert 500 <= c.stats()["services"]["py-rate-429"]["rate_per_sec"] < 1000


def test_rate_key_errors_name_the_field(testkit):
    c = courierkit.Client({"services": {"py-open": {"endpoints": [testkit.urls[0]]}}})
    with pytest.raises(courierkit.ConfigError) as info:
        c.get("py-open", rate_key="tenant-a")
    assert info.value.field == "rate_key"
    with pytest.raises(courierkit.ConfigError) as info:
        c.get("py-open", rate_key=7)
    assert info.value.field == "rate_key"
    with pytest.raises(courierkit.ConfigError) as info:
        limited(testkit, "py-bad-rate", per_second=0)
    assert info.value.field == "services.py-bad-rate.rate_limit.per_second"


async def test_an_adaptive_limit_refuses_past_its_current_limit(testkit):
    # Long enough that the two calls still hold their slots after a stalled machine.
    testkit.behave(0, default={"latency_ms": 1500})
    adaptive = {"min_limit": 1, "max_limit": 50, "initial_limit": 2}
    c = courierkit.AsyncClient(
        {"services": {"py-adaptive": {"endpoints": [testkit.urls[0]], "adaptive_concurrency": adaptive}}}
    )
    assert c.stats()["services"]["py-adaptive"]["concurrency_limit"] == 2
    first = [asyncio.ensure_future(c.get("py-adaptive")) for _ in range(2)]
    for _ in range(200):
        if c.stats()["services"]["py-adaptive"]["in_flight"] == 2:
            break
        await asyncio.sleep(0.005)
    with pytest.raises(courierkit.OverloadedError) as info:
        await c.get("py-adaptive")
    assert info.value.limit == 2
    assert [r.status for r in await asyncio.gather(*first)] == [200, 200]
    stats = c.stats()["services"]["py-adaptive"]
    assert (stats["overloaded"], stats["in_flight"]) == (1, 0)
