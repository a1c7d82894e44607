import asyncio
import builtins
from datetime import timedelta

import pytest

import courierkit


def config(testkit, **service):
    return {"services": {"orders": {"endpoints": [testkit.urls[0]], **service}}}


def test_get_through_a_service(testkit):
    with courierkit.Client(config(testkit)) as client:
        resp = client.get("orders", "/v1/items", query={"page": 2}, headers={"x-trace": "t1"})
    assert resp.status == 200
    assert resp.attempts == 1
    assert resp.endpoint.rstrip("/") == testkit.urls[0]
    echo = resp.json()
    assert (echo["method"], echo["path"], echo["query"]) == ("GET", "/v1/items", "page=2")
    assert echo["headers"]["x-trace"] == "t1"
    assert testkit.requests(0)["by_path"] == {"/v1/items": 1}


async def test_async_get_and_post_with_idempotency_key(testkit):
    client = courierkit.AsyncClient(config(testkit))
    resp = await client.post("orders", "/v1/orders", json={"sku": "a"}, idempotency_key="k-1")
    assert resp.status == 200
    assert resp.json()["headers"]["content-type"] == "application/json"
    # Two concurrent calls share the one runtime.
    a, b = await asyncio.gather(client.get("orders", "/a"), client.get(testkit.urls[1], "/b"))
    assert (a.status, b.status) == (200, 200)
    assert testkit.requests(0)["by_idempotency_key"] == {"k-1": 1}
    client.close()


def test_final_error_status_is_a_response(testkit):
    testkit.behave(0, default={"status": 500, "retry_after": "1"})
    resp = courierkit.Client(config(testkit)).get("orders", "/x")
    assert (resp.status, resp.attempts) == (500, 1)
    assert resp.headers["retry-after"] == "1"
    with pytest.raises(courierkit.HTTPStatusError) as info:
        resp.raise_for_status()
    assert info.value.response is resp


@pytest.mark.parametrize(
    ("cfg", "field"),
    [
        ({"services": {"a": {"endpoints": []}}}, "services.a.endpoints"),
        ({"services": {"a": {"endpoints": ["not a url"]}}}, "services.a.endpoints[0].url"),
        ({"services": {"a": {"endpoints": ["http://h:1"], "deadline_ms": 0}}}, "services.a.deadline_ms"),
    ],
)
def test_bad_config_names_the_field(cfg, field):
    with pytest.raises(courierkit.ConfigError) as info:
        courierkit.Client(cfg)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")


def test_deadline_raises_timeout(testkit):
    testkit.behave(0, default={"latency_ms": 5000})
    client = courierkit.Client(config(testkit, deadline_ms=200))
    with pytest.raises(courierkit.TimeoutError) as info:
        client.get("orders", "/slow")
    assert isinstance(info.value, builtins.TimeoutError)
    assert info.value.kind == "timeout"


async def test_async_per_call_deadline(testkit):
    testkit.behave(0, default={"latency_ms": 5000})
    client = courierkit.AsyncClient(config(testkit))
    with pytest.raises(courierkit.TimeoutError):
        await client.get("orders", "/slow", deadline=0.2)


@pytest.mark.parametrize("deadline", [0.57, timedelta(milliseconds=570)])
def test_a_deadline_is_seconds_or_a_timedelta(testkit, deadline):
    testkit.behave(0, default={"latency_ms": 5000})
    client = courierkit.Client(config(testkit))
    with pytest.raises(courierkit.TimeoutError) as info:
        client.get("orders", "/slow", deadline=deadline)
    # 0.57 s is 570 ms, not 569 (0.57 * 1000 is just below 570 in binary floating point).
    assert info.value.after_ms == 570


def test_refused_connection_is_a_connect_error(testkit):
    testkit.stop(2)
    with pytest.raises(courierkit.ConnectError) as info:
        courierkit.Client({"services": {}}).get(testkit.urls[2] + "/x")
    assert isinstance(info.value, ConnectionError)


def test_credentials_never_appear_in_errors(testkit):
    testkit.stop(2)
    url = testkit.urls[2].replace("http://", "http://user:s3cret-pw@")
    with pytest.raises(courierkit.ConnectError) as info:
        courierkit.Client({"services": {}}).get(url)
    assert "s3cret-pw" not in str(info.value)


def test_unknown_service_and_closed_client(testkit):
    client = courierkit.Client(config(testkit))
    with pytest.raises(courierkit.ConfigError, match="unknown service"):
        client.get("nope")
    client.close()
    with pytest.raises(courierkit.ClosedError):
        client.get("orders")


def test_from_file_reads_toml(testkit, tmp_path):
    path = tmp_path / "courier.toml"
    path.write_text(f'[services.orders]\nendpoints = ["{testkit.urls[0]}"]\n')
    assert courierkit.Client.from_file(path).get("orders", "/").status == 200


async def test_cancelling_an_async_call_releases_its_slot(testkit):
    """With room for one call, a cancelled call that leaked its in-flight slot would make
    the next call Overloaded; it must instead be admitted, and in_flight return to 0."""
    # Far longer than the waits below: a call that only ended with its response would fail.
    testkit.behave(0, default={"latency_ms": 20_000})
    client = courierkit.AsyncClient(config(testkit, max_concurrency=1))
    task = asyncio.ensure_future(client.get("orders", "/slow"))
    for _ in range(500):  # until the request reached the upstream (bounded: 5 s)
        if testkit.requests(0)["total"] == 1:
            break
        await asyncio.sleep(0.01)
    assert client.stats()["services"]["orders"]["in_flight"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(500):  # the Rust future is dropped on the runtime's thread (bounded: 5 s)
        if client.stats()["services"]["orders"]["in_flight"] == 0:
            break
        await asyncio.sleep(0.01)
    assert client.stats()["services"]["orders"]["in_flight"] == 0
    testkit.behave(0, default={})
    assert (await client.get("orders", "/fast")).status == 200
    assert client.stats()["services"]["orders"]["overloaded"] == 0


def test_every_attempt_continues_the_callers_trace(testkit):
    testkit.behave(0, script=[{"status": 503}], default={"status": 200})
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    resp = courierkit.Client(config(testkit)).get("orders", "/t", trace={"traceparent": parent})
    sent = [r["headers"]["traceparent"] for r in testkit.requests(0)["requests"]]
    assert len(sent) == 2
    assert {tp.split("-")[1] for tp in sent} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    assert len({tp.split("-")[2] for tp in sent}) == 2, "a new parent-id per attempt"
    assert resp.trace["traceparent"] == sent[-1]
