"""Delayed publishes and delayed retries (``delay_ms``, ``retry_delays_ms``) on RabbitMQ
and ``memory://``; a plain pika consumer checks a delayed message with the broker's own
clock."""

from __future__ import annotations

import calendar
import math
import time
import uuid

import pika
import pytest

import courierkit


def unique(prefix: str) -> str:
    return f"courier-py.{prefix}.{uuid.uuid4().hex}"


def memory() -> dict[str, object]:
    return {"urls": [f"memory://courier-py-{uuid.uuid4().hex}"]}


def test_a_pika_consumer_sees_a_delayed_message_no_earlier_than_its_delay(amqp_url):
    queue = unique("delayed")
    with courierkit.Bus.connect({"urls": [amqp_url]}) as bus:
        bus.declare_queue(queue, quorum=False, dead_letter=False)
        sent = time.time()
        receipt = bus.publish("", queue, b"later", delay=2, headers={"x-tenant": "acme"})
        assert bus.stats()["delayed"] == 1
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as conn:
        ch = conn.channel()
        try:
            method, props, body = next(ch.consume(queue, inactivity_timeout=10))
            assert method is not None, "nothing arrived within 10 s"
            ch.basic_ack(method.delivery_tag)
        finally:
            ch.cancel()
            ch.queue_delete(queue)
    assert body == b"later"
    assert props.message_id == receipt.message_id
    assert props.headers["x-tenant"] == "acme"
    assert props.headers["traceparent"].split("-")[1] == receipt.trace_context.trace_id
    # The broker dead-lettered it out of the delay queue when it expired, and wrote the
    # time (whole seconds, its clock) into x-death: no earlier than the delay.
    (death,) = props.headers["x-death"]
    assert death["reason"] == "expired"
    assert death["queue"] == "courier.delay.1984ms"
    expired_at = calendar.timegm(death["time"].timetuple())
    assert expired_at >= math.floor(sent + 2.0), (expired_at, sent)


def retry_round(bus: courierkit.Bus, queue: str) -> None:
    bus.declare_queue(queue, retry_delays=[0.2, 0.4])
    receipt = bus.publish("", queue, b"flaky", message_id="order-1")
    with bus.consume(queue) as consumer:
        d = consumer.next(timeout=5)
        assert d is not None
        for retry, delay in ((1, 0.2), (2, 0.4)):
            nacked = time.monotonic()
            d.nack()
            d = consumer.next(timeout=5)
            assert d is not None
            assert time.monotonic() - nacked >= delay
            assert d.message_id == "order-1"
            assert d.headers["x-courier-retries"] == str(retry)
            assert d.trace_context.trace_id == receipt.trace_context.trace_id
            assert (d.exchange, d.routing_key) == ("", queue)
        d.nack()
    with bus.consume(f"{queue}.dlq") as dead:
        parked = dead.next(timeout=5)
        assert parked is not None
        assert parked.message_id == "order-1"
        assert parked.headers["x-courier-retries"] == "2"
        parked.ack()
    stats = bus.stats()
    assert (stats["retried"], stats["nacked"]) == (2, 3), stats


def test_nacks_come_back_after_each_retry_delay_then_dead_letter(amqp_url):
    queue = unique("retry")
    with courierkit.Bus.connect({"urls": [amqp_url]}) as bus:
        try:
            retry_round(bus, queue)
        finally:
            bus.close()
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as conn:
        conn.channel().queue_delete(queue)
        conn.channel().queue_delete(f"{queue}.dlq")


def test_memory_retries_the_same_way():
    with courierkit.Bus.connect(memory()) as bus:
        retry_round(bus, "orders")


async def test_async_delayed_publish_on_memory():
    async with await courierkit.AsyncBus.connect(memory()) as bus:
        await bus.declare_queue("orders")
        sent = time.monotonic()
        await bus.publish("", "orders", b"later", delay=0.3)
        await bus.publish("", "orders", b"now")
        async with await bus.consume("orders") as consumer:
            first = await consumer.next(timeout=5)
            assert first is not None and first.body == b"now"
            await first.ack_async()
            later = await consumer.next(timeout=5)
            assert later is not None and later.body == b"later"
            assert time.monotonic() - sent >= 0.3
            await later.ack_async()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"retry_delays": [1, 0]}, "retry_delays_ms[1]"),
        ({"retry_delays": "1000"}, "retry_delays_ms"),
        ({"retry_delays": ["1.5"]}, "retry_delays_ms[0]"),
        ({"retry_delays": [1, -2]}, "retry_delays_ms[1]"),
        ({"retry_delays": [1], "dead_letter": False}, "retry_delays_ms"),
        ({"retry_delays": [1] * 17}, "retry_delays_ms"),
    ],
)
def test_invalid_retry_delays_name_the_field(kwargs, field):
    with courierkit.Bus.connect(memory()) as bus:
        with pytest.raises(courierkit.ConfigError) as e:
            bus.declare_queue("orders", **kwargs)
        assert e.value.field == field


@pytest.mark.parametrize(
    ("delay", "field"),
    [(0, "delay_ms"), (-1, "delay_ms"), (0.0004, "delay_ms"), (float("nan"), "delay_ms"), ("1", "delay_ms")],
)
def test_invalid_delays_name_the_field(delay, field):
    with courierkit.Bus.connect(memory()) as bus:
        bus.declare_queue("orders")
        with pytest.raises(courierkit.ConfigError) as e:
            bus.publish("", "orders", b"x", delay=delay)
        assert e.value.field == field
        assert bus.stats()["published"] == 0
