import asyncio
import threading
import uuid

import pytest

import courierkit

# Fixed queue names (not random) so repeated runs reuse the same queues on a dev broker;
# each test skips leftovers from an interrupted earlier run by message id.


def take(consumer, message_id):
    while True:
        d = consumer.next(timeout=5)
        assert d is not None
        if d.message_id == message_id:
            return d
        d.ack()


async def take_async(consumer, message_id):
    while True:
        d = await consumer.next(timeout=5)
        assert d is not None
        if d.message_id == message_id:
            return d
        await d.ack_async()


def test_publish_consume_ack(amqp_url):
    with courierkit.Bus.connect({"urls": [amqp_url]}) as bus:
        bus.declare_queue("courier-test.py.sync")
        receipt = bus.publish("", "courier-test.py.sync", "hello", headers={"x-n": "1"}, correlation_id="c1")
        with bus.consume("courier-test.py.sync", prefetch=10) as consumer:
            d = take(consumer, receipt.message_id)
            assert d.body == b"hello"
            assert d.headers["x-n"] == "1"
            assert set(d.headers) == {"x-n", "traceparent"}, "application headers plus the trace"
            assert (d.correlation_id, d.routing_key, d.redelivered) == ("c1", "courier-test.py.sync", False)
            d.ack()
            with pytest.raises(courierkit.ClosedError):
                d.ack()
            with pytest.raises(courierkit.TimeoutError):
                consumer.next(timeout=0.2)


async def test_async_publish_consume_ack(amqp_url):
    async with await courierkit.AsyncBus.connect({"urls": [amqp_url]}) as bus:
        await bus.declare_queue("courier-test.py.async")
        receipt = await bus.publish("", "courier-test.py.async", b"\x00\x01")
        consumer = await bus.consume("courier-test.py.async")
        d = await take_async(consumer, receipt.message_id)
        assert d.body == b"\x00\x01"
        await d.ack_async()
        await consumer.close()
        async for _ in consumer:
            pytest.fail("a closed consumer yields nothing")


def test_unroutable_and_bad_config(amqp_url):
    with courierkit.Bus.connect({"urls": [amqp_url]}) as bus:
        with pytest.raises(courierkit.UnroutableError) as unroutable:
            bus.publish("", "courier-test.py.no-such-queue", b"x", message_id="m-1")
        # The fields of core's error table, the same in every language.
        e = unroutable.value
        assert (e.message_id, e.exchange, e.routing_key) == ("m-1", "", "courier-test.py.no-such-queue")
        assert e.reply_text == "NO_ROUTE"
        with pytest.raises(courierkit.BrokerError) as broker:
            bus.consume("courier-test.py.no-such-queue")
        assert (broker.value.reply_code, broker.value.operation) == (404, "basic.consume")
    with pytest.raises(courierkit.ConfigError) as info:
        courierkit.Bus.connect({"urls": ["http://nope"]})
    assert info.value.field == "urls[0]"
    with pytest.raises(courierkit.ClosedError):
        bus.publish("", "q", b"x")


def test_a_message_carries_the_callers_trace(amqp_url):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with courierkit.Bus.connect({"urls": [amqp_url]}) as bus:
        bus.declare_queue("courier-test.py.trace")
        receipt = bus.publish(
            "", "courier-test.py.trace", b"x", trace={"traceparent": parent, "baggage": "k=v"}
        )
        assert receipt.trace["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert receipt.trace["traceparent"] != parent, "the message is a child span"
        with bus.consume("courier-test.py.trace") as consumer:
            d = take(consumer, receipt.message_id)
            assert d.trace == receipt.trace
            assert d.trace["baggage"] == "k=v"
            d.ack()


# The in-process broker (memory://NAME): RabbitMQ's semantics without one; a unique name
# per test gives each test a broker of its own.

STATS_FIELDS = {
    "published",
    "confirmed",
    "resent",
    "returned",
    "publish_rejected",
    "republished",
    "delivered",
    "acked",
    "nacked",
    "rejected",
    "redelivered",
    "deduplicated",
    "retried",
    "delayed",
    "expired",
    "rpc_in_flight",
    "reconnects",
}


def memory_bus_config(**extra):
    return {"urls": [f"memory://courier-py-{uuid.uuid4().hex}"], **extra}


def test_memory_publish_consume_round_trip():
    with courierkit.Bus.connect(memory_bus_config()) as bus:
        bus.declare_queue("orders")
        receipt = bus.publish("", "orders", "hello", headers={"x-n": "1"}, correlation_id="c1", deadline=2)
        with bus.consume("orders", prefetch=5) as consumer:
            d = consumer.next(timeout=5)
            assert d is not None
            assert (d.message_id, d.body, d.headers["x-n"]) == (receipt.message_id, b"hello", "1")
            assert (d.correlation_id, d.exchange, d.routing_key) == ("c1", "", "orders")
            assert d.reply_to is None, "a published message is not a request"
            assert d.trace == receipt.trace
            with pytest.raises(courierkit.ConfigError):
                d.reply(b"nobody asked")
            d.ack()
            with pytest.raises(courierkit.TimeoutError):
                consumer.next(timeout=0.1)
        stats = bus.stats()
        assert set(stats) == STATS_FIELDS
        assert (stats["published"], stats["confirmed"], stats["delivered"], stats["acked"]) == (1, 1, 1, 1)


def test_memory_consumer_sees_each_message_id_once():
    config = memory_bus_config(dedup={"store": "memory", "capacity": 1000, "ttl_ms": 60000})
    with courierkit.Bus.connect(config) as bus:
        bus.declare_queue("orders")
        bus.publish("", "orders", b"first", message_id="order-1")
        bus.publish("", "orders", b"again", message_id="order-1")
        bus.publish("", "orders", b"other", message_id="order-2")
        seen = []
        with bus.consume("orders", dedup=True) as consumer:
            for _ in range(2):
                d = consumer.next(timeout=5)
                assert d is not None
                seen.append((d.message_id, d.body))
                d.ack()
            with pytest.raises(courierkit.TimeoutError):
                consumer.next(timeout=0.2)
        assert seen == [("order-1", b"first"), ("order-2", b"other")]
        stats = bus.stats()
        assert stats["deduplicated"] == 1, "the second order-1 was acked and skipped"
        assert (stats["delivered"], stats["acked"]) == (2, 2)


def test_memory_consume_without_dedup_sees_duplicates():
    with courierkit.Bus.connect(memory_bus_config()) as bus:
        bus.declare_queue("orders")
        bus.publish("", "orders", b"x", message_id="same")
        bus.publish("", "orders", b"x", message_id="same")
        with bus.consume("orders", dedup=False) as consumer:
            for _ in range(2):
                d = consumer.next(timeout=5)
                assert d is not None and d.message_id == "same"
                d.ack()
        assert bus.stats()["deduplicated"] == 0


def test_memory_request_gets_the_reply_of_a_served_queue():
    bus = courierkit.Bus.connect(memory_bus_config())
    bus.declare_queue("pricing")
    server = bus.serve("pricing")
    served = []

    def handle():
        # Ends when the bus closes: next() returns None.
        for d in server:
            served.append(d)
            d.reply(b"price:" + d.body, headers={"x-currency": "EUR"})
            d.ack()

    thread = threading.Thread(target=handle)
    thread.start()
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    reply = bus.request("pricing", b"sku-1", timeout=5, headers={"x-n": "1"}, trace={"traceparent": parent})
    assert (reply.body, reply.headers["x-currency"]) == (b"price:sku-1", "EUR")
    assert reply.correlation_id == served[0].correlation_id, "the reply answers that request"
    assert served[0].reply_to is not None and served[0].headers["x-n"] == "1"
    assert served[0].trace["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert reply.trace["traceparent"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    reply.ack()  # a reply was settled by the broker: a no-op
    assert bus.request("pricing", "sku-2").body == b"price:sku-2"
    assert bus.stats()["rpc_in_flight"] == 0
    bus.close()
    thread.join(timeout=10)
    assert not thread.is_alive(), "a closed bus ends the server's iteration"


def test_memory_request_without_a_reply_times_out():
    with courierkit.Bus.connect(memory_bus_config()) as bus:
        bus.declare_queue("silent")
        server = bus.serve("silent")
        got = []

        def ignore():
            d = server.next(timeout=5)
            got.append(d)
            if d is not None:
                d.ack()

        thread = threading.Thread(target=ignore)
        thread.start()
        with pytest.raises(courierkit.TimeoutError) as info:
            bus.request("silent", b"anyone?", timeout=0.3)
        assert isinstance(info.value, TimeoutError), "also the builtin TimeoutError"
        thread.join(timeout=10)
        assert got and got[0] is not None, "the handler received the request and did not reply"
        assert bus.stats()["rpc_in_flight"] == 0, "a timed-out request is forgotten"
        with pytest.raises(courierkit.UnroutableError):
            bus.request("no-such-queue", b"x", timeout=1)


def test_memory_close():
    bus = courierkit.Bus.connect(memory_bus_config())
    bus.declare_queue("orders")
    consumer = bus.consume("orders")
    bus.close()
    assert consumer.next(timeout=1) is None, "a closed bus ends its consumers"
    with pytest.raises(courierkit.ClosedError):
        bus.publish("", "orders", b"x")
    with pytest.raises(courierkit.ClosedError):
        bus.request("orders", b"x")
    with pytest.raises(courierkit.ClosedError):
        bus.serve("orders")
    bus.close()  # closing again is fine
    assert set(bus.stats()) == STATS_FIELDS


async def test_async_memory_request_serve_and_dedup():
    async with await courierkit.AsyncBus.connect(memory_bus_config()) as bus:
        await bus.declare_queue("pricing")
        await bus.declare_queue("silent")
        await bus.declare_queue("events")
        server = await bus.serve("pricing")

        async def handle():
            async for d in server:
                await d.reply_async(d.body.upper())
                await d.ack_async()

        serving = asyncio.create_task(handle())
        replies = await asyncio.gather(*(bus.request("pricing", f"sku-{i}") for i in range(3)))
        assert sorted(r.body for r in replies) == [b"SKU-0", b"SKU-1", b"SKU-2"]

        silent = await bus.serve("silent")
        received = asyncio.ensure_future(silent.next(timeout=5))
        with pytest.raises(courierkit.TimeoutError):
            await bus.request("silent", b"x", timeout=0.3)
        d = await received
        assert d is not None and d.reply_to is not None, "the request reached the silent server"
        await d.ack_async()

        await bus.publish("", "events", b"a", message_id="m1")
        await bus.publish("", "events", b"a", message_id="m1")
        await bus.publish("", "events", b"b", message_id="m2", deadline=1)
        consumer = await bus.consume("events", prefetch=10)
        ids = []
        for _ in range(2):
            d = await consumer.next(timeout=5)
            assert d is not None
            ids.append(d.message_id)
            await d.ack_async()
        with pytest.raises(courierkit.TimeoutError):
            await consumer.next(timeout=0.2)
        assert ids == ["m1", "m2"]
        stats = bus.stats()
        assert set(stats) == STATS_FIELDS
        assert stats["deduplicated"] == 1
        assert stats["rpc_in_flight"] == 0
    # Closing the bus ends the server's async iteration.
    await asyncio.wait_for(serving, timeout=10)
