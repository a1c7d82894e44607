"""asyncio cancellation on the bus: a cancelled coroutine raises CancelledError at once,
the Rust future is dropped, and what it held is released (the request's reply slot, the
waiting consumer's place) without losing a message. The HTTP call's case (its in-flight
slot) is in test_client.py and test_hedge.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from conftest import bus_config

import courierkit


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Polls every 10 ms, 5 s at most."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"not within 5 s: {what}")


@pytest.mark.parametrize("transport", ["memory", "amqp"])
async def test_a_cancelled_request_frees_its_reply_slot(transport, amqp_url):
    q = f"courier-py.cancel.rpc.{uuid.uuid4().hex}"
    async with await courierkit.AsyncBus.connect(bus_config(transport, amqp_url)) as bus:
        await bus.declare_queue(q, quorum=False)
        server = await bus.serve(q)  # takes the request and never answers
        task = asyncio.ensure_future(bus.request(q, b"x", timeout=30))
        await eventually(lambda: bus.stats()["rpc_in_flight"] == 1, "the request in flight")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await eventually(lambda: bus.stats()["rpc_in_flight"] == 0, "the reply slot freed")
        await server.close()


@pytest.mark.parametrize("transport", ["memory", "amqp"])
async def test_a_cancelled_next_leaves_the_delivery_for_the_next_call(transport, amqp_url):
    q = f"courier-py.cancel.next.{uuid.uuid4().hex}"
    async with await courierkit.AsyncBus.connect(bus_config(transport, amqp_url)) as bus:
        await bus.declare_queue(q, quorum=False)
        async with await bus.consume(q) as consumer:
            waiting = asyncio.ensure_future(consumer.next())
            batch = asyncio.ensure_future(consumer.next_batch(5, timeout=30))
            await asyncio.sleep(0)  # both start: each has spawned its core future and waits on it
            waiting.cancel()
            batch.cancel()
            for task in (waiting, batch):
                with pytest.raises(asyncio.CancelledError):
                    await task
            await bus.publish("", q, b"later", message_id="m1")
            d = await consumer.next(timeout=5)
            assert d is not None and d.message_id == "m1"
            await d.ack_async()
            assert bus.stats()["delivered"] == 1


@pytest.mark.parametrize("transport", ["memory", "amqp"])
async def test_a_cancelled_publish_gives_back_its_unconfirmed_slot(transport, amqp_url):
    """With room for one unconfirmed publish, a cancelled publish that kept its slot
    would make every later publish time out; they are confirmed instead. (Whether a
    cancelled message reached the broker is not knowable, as with any cancelled write.)"""
    q = f"courier-py.cancel.publish.{uuid.uuid4().hex}"
    cfg = {**bus_config(transport, amqp_url), "max_unconfirmed": 1, "publish_deadline_ms": 5000}
    async with await courierkit.AsyncBus.connect(cfg) as bus:
        await bus.declare_queue(q, quorum=False)
        tasks = [asyncio.ensure_future(bus.publish("", q, b"x", message_id=f"c{i}")) for i in range(50)]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, (asyncio.CancelledError, courierkit.Receipt)) for o in outcomes), outcomes
        for i in range(5):
            receipt = await bus.publish("", q, b"after", message_id=f"after{i}")
            assert receipt.message_id == f"after{i}"
