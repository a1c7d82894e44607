"""Hedged requests and the per-call idempotency key from Python, counted at the testkit.

Round robin's first pick is the first endpoint, so a script that hangs upstream 0's
first request makes the first attempt hang; only a hedge to upstream 1 answers within
the deadline. Each test uses a service name of its own (retry budgets are per process).
"""

import asyncio

import pytest

import courierkit


def hedged(testkit, name, cls=courierkit.Client, **service):
    config = {
        "endpoints": testkit.urls[:2],
        "balancer": "round_robin",
        "deadline_ms": 3000,
        "hedge": {"delay_ms": 50},
        **service,
    }
    return cls({"services": {name: config}})


def test_a_hedge_answers_while_the_first_attempt_hangs(testkit):
    testkit.behave(0, script=[{"latency_ms": 10000}])
    c = hedged(testkit, "py-hedge")
    resp = c.get("py-hedge", "/x")
    assert (resp.status, resp.attempts) == (200, 2)
    assert resp.endpoint.rstrip("/") == testkit.urls[1].rstrip("/")
    stats = c.stats()["services"]["py-hedge"]
    assert (stats["hedges"], stats["hedges_won"], stats["in_flight"]) == (1, 1, 0)
    assert [testkit.requests(i)["total"] for i in (0, 1)] == [1, 1]


async def test_async_idempotent_post_is_hedged_with_one_generated_key(testkit):
    testkit.behave(0, script=[{"latency_ms": 10000}])
    c = hedged(testkit, "py-hedge-post", courierkit.AsyncClient)
    resp = await c.post("py-hedge-post", "/orders", json={"sku": 1}, idempotent=True)
    assert (resp.status, resp.attempts) == (200, 2)
    key = resp.idempotency_key
    assert isinstance(key, str) and len(key) == 36 and key[14] == "7", key
    sent = [testkit.requests(i)["by_idempotency_key"] for i in (0, 1)]
    assert sent == [{key: 1}, {key: 1}], "both attempts sent the one key"


def test_a_post_without_a_key_is_not_hedged(testkit):
    testkit.behave(0, script=[{"latency_ms": 300}])
    c = hedged(testkit, "py-hedge-plain")
    resp = c.post("py-hedge-plain", "/orders", json={})
    assert (resp.attempts, resp.idempotency_key) == (1, None)
    assert c.stats()["services"]["py-hedge-plain"]["hedges"] == 0


def test_idempotent_post_is_retried_with_one_key_and_a_given_key_is_kept(testkit):
    testkit.behave(0, script=[{"status": 503}, {"status": 503}], default={"status": 201})
    c = courierkit.Client({"services": {"py-idem": {"endpoints": [testkit.urls[0]]}}})
    resp = c.post("py-idem", "/charges", body=b"{}", idempotent=True)
    assert (resp.status, resp.attempts) == (201, 3)
    assert testkit.requests(0)["by_idempotency_key"] == {resp.idempotency_key: 3}
    given = c.post("py-idem", "/charges", idempotent=True, idempotency_key="charge-17")
    assert given.idempotency_key == "charge-17"
    with pytest.raises(courierkit.ConfigError) as info:
        c.post("py-idem", "/charges", idempotent="yes")
    assert info.value.field == "idempotent"


async def test_cancelling_a_hedged_call_releases_both_attempts(testkit):
    testkit.behave(0, default={"latency_ms": 10000})
    testkit.behave(1, default={"latency_ms": 10000})
    c = hedged(testkit, "py-hedge-cancel", courierkit.AsyncClient, deadline_ms=20000)
    call = asyncio.ensure_future(c.get("py-hedge-cancel"))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if sum(testkit.requests(i)["total"] for i in (0, 1)) == 2:
            break
    assert [testkit.requests(i)["total"] for i in (0, 1)] == [1, 1], "the first attempt and its hedge"
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    for _ in range(200):
        stats = c.stats()["services"]["py-hedge-cancel"]
        if stats["in_flight"] == 0 and all(ep["in_flight"] == 0 for ep in stats["endpoints"]):
            break
        await asyncio.sleep(0.01)
    assert stats["in_flight"] == 0 and [ep["in_flight"] for ep in stats["endpoints"]] == [0, 0], stats


def test_hedge_settings_are_checked_and_named():
    with pytest.raises(courierkit.ConfigError) as info:
        courierkit.Client(
            {"services": {"a": {"endpoints": ["http://127.0.0.1:9"], "hedge": {"max_hedges": 9}}}}
        )
    assert info.value.field == "services.a.hedge.max_hedges"
    assert "must be 1..=4, got 9" in str(info.value)
