"""``Delivery.forward``: the next workflow step under an id derived from the current
one, acked after the confirm, on memory:// and RabbitMQ, sync and asyncio."""

from __future__ import annotations

import uuid

import pytest

import courierkit

# docs/messaging.md: the next step's id is uuid5(this namespace, "<id>\n<exchange>\n<key>").
FORWARD_NAMESPACE = uuid.UUID("5b1f4c8e-5d4e-4f0a-9a53-2c7e61b0d3a4")


def next_id(message_id: str, exchange: str, routing_key: str) -> str:
    return str(uuid.uuid5(FORWARD_NAMESPACE, f"{message_id}\n{exchange}\n{routing_key}"))


def memory() -> dict[str, object]:
    return {"urls": [f"memory://courier-py-{uuid.uuid4().hex}"]}


@pytest.mark.parametrize("transport", ["memory", "amqp"])
def test_forward_hands_on_once_under_a_derived_id(transport, amqp_url):
    config = memory() if transport == "memory" else {"urls": [amqp_url]}
    first, last = (f"courier-py.forward-{step}.{uuid.uuid4().hex}" for step in ("first", "last"))
    with courierkit.Bus.connect(config) as bus:
        bus.declare_queue(first, quorum=False, dead_letter=False)
        bus.declare_queue(last, quorum=False, dead_letter=False)
        receipt = bus.publish("", first, b"order", message_id="order-1")
        # A second copy of order-1 stands for the redelivery after a crash between the
        # forward's confirm and its ack (the first step consumes without dedup).
        bus.publish("", first, b"order", message_id="order-1", trace=receipt.trace_context)
        with bus.consume(first, dedup=False) as step1:
            for _ in range(2):
                d = step1.next(timeout=5)
                assert d is not None
                sent = d.forward("", last, b"step 2", headers={"x-step": "2"})
                assert sent.message_id == next_id("order-1", "", last)
                assert sent.trace_context.trace_id == receipt.trace_context.trace_id
                with pytest.raises(courierkit.ClosedError):
                    d.ack()
        with bus.consume(last) as step2:
            d = step2.next(timeout=5)
            assert d is not None
            assert (d.message_id, d.body, d.headers["x-step"]) == (sent.message_id, b"step 2", "2")
            with pytest.raises(courierkit.ConfigError) as e:
                d.forward("", first, b"x", message_id="mine")
            assert e.value.field == "message_id"
            d.ack()
            with pytest.raises(courierkit.TimeoutError):
                step2.next(timeout=0.3)
        stats = bus.stats()
        assert (stats["acked"], stats["deduplicated"]) == (3, 1), stats


async def test_forward_async_on_memory():
    async with await courierkit.AsyncBus.connect(memory()) as bus:
        await bus.declare_queue("orders")
        await bus.declare_queue("invoices")
        await bus.publish("", "orders", b"order", message_id="order-7")
        async with await bus.consume("orders") as orders:
            d = await orders.next(timeout=5)
            assert d is not None
            sent = await d.forward_async("", "invoices", b"invoice")
            assert sent.message_id == next_id("order-7", "", "invoices")
        async with await bus.consume("invoices") as invoices:
            invoice = await invoices.next(timeout=5)
            assert invoice is not None and invoice.message_id == sent.message_id
            await invoice.ack_async()
