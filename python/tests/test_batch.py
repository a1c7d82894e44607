"""Batches (``publish_many``, ``next_batch`` with one settle call) and deadlines across
queues (``ttl``, ``Delivery.remaining``, ``deadline_from_headers``), on memory://
and RabbitMQ, sync and asyncio."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from conftest import bus_config

import courierkit


def queue(name: str) -> str:
    return f"courier-py.{name}.{uuid.uuid4().hex}"


def gather(consumer: courierkit.Consumer, n: int) -> list[courierkit.Delivery]:
    """Batches of at most 5 until ``n`` deliveries came, each batch acked in one call."""
    got: list[courierkit.Delivery] = []
    for _ in range(60):
        if len(got) >= n:
            break
        batch = consumer.next_batch(5, timeout=0.5)
        assert batch is not None
        got.extend(batch)
        batch.ack()
    assert len(got) == n
    return got


@pytest.mark.parametrize("transport", ["memory", "amqp"])
def test_publish_many_reports_each_message_and_a_batch_settles_in_one_call(transport, amqp_url):
    q = queue("batch")
    with courierkit.Bus.connect(bus_config(transport, amqp_url)) as bus:
        bus.declare_queue(q, quorum=False)
        messages = [courierkit.BatchMessage("", q, f"m{i}", message_id=f"m{i}") for i in range(6)]
        messages[2] = courierkit.BatchMessage("", f"nowhere.{uuid.uuid4().hex}", b"x")
        messages[4] = courierkit.BatchMessage("", q, b"x", message_id="")
        results = bus.publish_many(messages)
        assert isinstance(results[2], courierkit.UnroutableError)
        assert isinstance(results[4], courierkit.ConfigError) and results[4].field == "message_id"
        assert [r.message_id for r in results if isinstance(r, courierkit.Receipt)] == [
            "m0",
            "m1",
            "m3",
            "m5",
        ]
        with pytest.raises(courierkit.ConfigError) as e:
            bus.publish_many([])
        assert e.value.field == "messages"
        with pytest.raises(courierkit.ConfigError) as e:
            bus.publish_many(["not a message"])  # type: ignore[list-item]
        assert e.value.field == "messages[0]"

        with bus.consume(q, prefetch=5) as consumer:
            with pytest.raises(courierkit.ConfigError) as e:
                consumer.next_batch(6, timeout=0.1)
            assert e.value.field == "max"
            first = consumer.next_batch(5, timeout=5)
            assert first is not None and 1 <= len(first) <= 4
            first[0].reject()
            first.ack()
            got = list(first) + (gather(consumer, 4 - len(first)) if len(first) < 4 else [])
            assert [d.message_id for d in got] == ["m0", "m1", "m3", "m5"]
            empty = consumer.next_batch(5, timeout=0)
            assert empty is not None and len(empty) == 0
        stats = bus.stats()
        assert (stats["delivered"], stats["acked"], stats["rejected"]) == (4, 3, 1)
        assert consumer.next_batch(5, timeout=0.1) is None


@pytest.mark.parametrize("transport", ["memory", "amqp"])
def test_async_batches_nack_together(transport, amqp_url):
    async def main() -> None:
        q = queue("batch-async")
        async with await courierkit.AsyncBus.connect(bus_config(transport, amqp_url)) as bus:
            await bus.declare_queue(q, quorum=False)
            results = await bus.publish_many(
                [courierkit.BatchMessage("", q, b"x", message_id=f"a{i}") for i in range(3)]
            )
            assert all(isinstance(r, courierkit.Receipt) for r in results)
            async with await bus.consume(q, dedup=False) as consumer:
                seen: list[str | None] = []
                while len(seen) < 3:
                    batch = await consumer.next_batch(3, timeout=2)
                    assert batch is not None
                    seen.extend(d.message_id for d in batch)
                    await batch.nack_async(requeue=False)
                assert seen == ["a0", "a1", "a2"]
            assert bus.stats()["nacked"] == 3

    asyncio.run(main())


@pytest.mark.parametrize("transport", ["memory", "amqp"])
def test_expired_messages_are_dead_lettered_and_the_rest_carry_their_budget(transport, amqp_url):
    q = queue("ttl")
    with courierkit.Bus.connect(bus_config(transport, amqp_url)) as bus:
        bus.declare_queue(q, quorum=False)
        with pytest.raises(courierkit.ConfigError) as e:
            bus.publish("", q, b"x", ttl=1, delay=2)
        assert e.value.field == "ttl_ms"
        # A deadline long past, as from a publisher whose caller gave up.
        bus.publish("", q, b"stale", message_id="stale", headers={"x-courier-deadline": "1000"})
        bus.publish("", q, b"fresh", message_id="fresh", ttl=60)
        with bus.consume(q) as consumer:
            d = consumer.next(timeout=5)
            assert d is not None and d.message_id == "fresh"
            assert d.remaining is not None and 0 < d.remaining <= 60
            d.ack()
        with bus.consume(f"{q}.dlq") as dead:
            parked = dead.next(timeout=5)
            assert parked is not None and parked.message_id == "stale"
            assert parked.remaining == 0
            parked.ack()
        assert bus.stats()["expired"] == 1


def test_deadline_from_headers_reads_the_callers_budget():
    assert courierkit.deadline_from_headers({"X-Courier-Deadline-Ms": "1500"}) == 1.5
    assert courierkit.deadline_from_headers({"accept": "*/*"}) is None
    with pytest.raises(courierkit.ConfigError) as e:
        courierkit.deadline_from_headers({"x-courier-deadline-ms": "soon"})
    assert e.value.field == "x-courier-deadline-ms"
