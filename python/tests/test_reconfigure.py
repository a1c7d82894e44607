"""``reconfigure`` from Python: swapped under load without losing a call, rejected whole
when invalid, calls in flight finishing under the old configuration."""

import asyncio
import threading

import pytest

import courierkit


def services(**named):
    return {"services": {name: {"endpoints": endpoints} for name, endpoints in named.items()}}


async def test_reconfigure_under_64_concurrent_calls_loses_none(testkit):
    # Upstreams 0 and 1 only: other tests stop upstream 2 for good.
    a = services(py_swap=[testkit.urls[0]])
    b = {"services": {"py_swap": {"endpoints": testkit.urls[:2], "balancer": "round_robin"}}}
    c = courierkit.AsyncClient(a)

    async def caller():
        for _ in range(20):
            assert (await c.get("py_swap", "/x")).status == 200

    callers = asyncio.gather(*(caller() for _ in range(64)))
    swaps = 0
    while not callers.done() and swaps < 200:
        c.reconfigure(b if swaps % 2 == 0 else a)
        swaps += 1
        await asyncio.sleep(0.005)
    await callers
    assert swaps >= 2
    assert sum(testkit.requests(i)["total"] for i in range(2)) == 64 * 20
    stats = c.stats()["services"]["py_swap"]
    assert (stats["requests"], stats["in_flight"]) == (64 * 20, 0)


def test_an_invalid_config_is_rejected_whole(testkit):
    c = courierkit.Client(services(py_keep=[testkit.urls[0]]))
    bad = services(py_keep=[testkit.urls[1]], py_other=["not a url"])
    with pytest.raises(courierkit.ConfigError) as info:
        c.reconfigure(bad)
    assert info.value.field == "services.py_other.endpoints[0].url"
    assert c.get("py_keep").endpoint.rstrip("/") == testkit.urls[0].rstrip("/")
    with pytest.raises(courierkit.ConfigError):
        c.get("py_other")


def test_a_call_in_flight_finishes_under_the_old_config(testkit):
    testkit.behave(0, default={"latency_ms": 300})
    c = courierkit.Client(services(py_old=[testkit.urls[0]]))
    answers = []
    call = threading.Thread(target=lambda: answers.append(c.get("py_old")))
    call.start()
    for _ in range(200):
        if testkit.requests(0)["total"]:
            break
        threading.Event().wait(0.005)
    c.reconfigure(services(py_new=[testkit.urls[1]]))
    call.join(10)
    assert answers[0].endpoint.rstrip("/") == testkit.urls[0].rstrip("/")
    with pytest.raises(courierkit.ConfigError):
        c.get("py_old")
    assert c.get("py_new").endpoint.rstrip("/") == testkit.urls[1].rstrip("/")
    c.close()
    with pytest.raises(courierkit.ClosedError):
        c.reconfigure(services(py_new=[testkit.urls[1]]))
