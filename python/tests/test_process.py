"""Settle-by-scope (``Delivery.process``) and loops that close their consumer when left
early, sync and asyncio, on memory:// and RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from conftest import bus_config

import courierkit


@pytest.mark.parametrize("transport", ["memory", "amqp"])
def test_process_acks_on_success_and_nacks_on_an_exception(transport, amqp_url):
    q = f"courier-py.process.{uuid.uuid4().hex}"
    with courierkit.Bus.connect(bus_config(transport, amqp_url)) as bus:
        bus.declare_queue(q, quorum=False)
        for i in range(4):
            bus.publish("", q, b"x", message_id=f"p{i}")
        with bus.consume(q, dedup=False) as consumer:
            d = consumer.next(timeout=5)
            assert d is not None and d.message_id == "p0"
            with d.process():
                pass
            d = consumer.next(timeout=5)
            assert d is not None and d.message_id == "p1"
            with pytest.raises(ValueError, match="bad"), d.process(requeue=False):
                raise ValueError("bad")
            d = consumer.next(timeout=5)
            assert d is not None and d.message_id == "p2"
            with d.process():
                d.reject()  # settled inside: the scope leaves it alone
            d = consumer.next(timeout=5)
            assert d is not None and d.message_id == "p3"
            with pytest.raises(RuntimeError), d.process():
                raise RuntimeError("try again")
            again = consumer.next(timeout=5)
            assert again is not None and again.message_id == "p3" and again.redelivered
            with again.process():
                pass
        stats = bus.stats()
        assert (stats["acked"], stats["nacked"], stats["rejected"]) == (2, 2, 1)
        with bus.consume(f"{q}.dlq") as dead:
            parked = [dead.next(timeout=5), dead.next(timeout=5)]
            assert [p.message_id for p in parked if p is not None] == ["p1", "p2"]
            for p in parked:
                assert p is not None
                p.ack()


@pytest.mark.parametrize("transport", ["memory", "amqp"])
def test_async_process_and_leaving_loops_close_the_consumer(transport, amqp_url):
    async def main() -> None:
        q = f"courier-py.process-async.{uuid.uuid4().hex}"
        async with await courierkit.AsyncBus.connect(bus_config(transport, amqp_url)) as bus:
            await bus.declare_queue(q, quorum=False)
            for i in range(3):
                await bus.publish("", q, b"x", message_id=f"a{i}")
            consumer = await bus.consume(q)
            async for d in consumer:
                async with d.process():
                    assert d.message_id == "a0"
                break
            # The loop's generator closes the consumer once asyncio finalizes it.
            for _ in range(100):
                try:
                    if await consumer.next(timeout=0.05) is None:
                        break
                except courierkit.TimeoutError:
                    pass
                await asyncio.sleep(0.01)
            else:
                pytest.fail("leaving the async for did not close the consumer")
            consumer = await bus.consume(q)
            failing = await consumer.next(timeout=5)
            assert failing is not None
            with pytest.raises(KeyError):
                async with failing.process(requeue=False):
                    raise KeyError("missing")
            await consumer.close()
            assert bus.stats()["acked"] == 1 and bus.stats()["nacked"] == 1

    asyncio.run(main())


def test_leaving_a_for_loop_closes_the_consumer():
    with courierkit.Bus.connect({"urls": [f"memory://courier-py-{uuid.uuid4().hex}"]}) as bus:
        bus.declare_queue("orders")
        bus.publish("", "orders", b"1")
        bus.publish("", "orders", b"2")
        consumer = bus.consume("orders")
        for d in consumer:
            d.ack()
            break
        assert consumer.next(timeout=1) is None, "closed when the loop was left"
        # The unsettled second message went back to the queue.
        with bus.consume("orders") as again:
            d = again.next(timeout=5)
            assert d is not None and d.body == b"2"
            d.ack()
