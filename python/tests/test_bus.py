import pytest

import courier

# Fixed queue names (not random) so repeated runs reuse the same queues on a dev broker;
# each test skips leftovers from an interrupted earlier run by message id.


def take(consumer, message_id):
    while True:
        d = consumer.next(timeout_ms=5000)
        assert d is not None
        if d.message_id == message_id:
            return d
        d.ack()


async def take_async(consumer, message_id):
    while True:
        d = await consumer.next(timeout_ms=5000)
        assert d is not None
        if d.message_id == message_id:
            return d
        await d.ack_async()


def test_publish_consume_ack(amqp_url):
    with courier.Bus.connect({"urls": [amqp_url]}) as bus:
        bus.declare_queue("courier-test.py.sync")
        receipt = bus.publish("", "courier-test.py.sync", "hello", headers={"x-n": "1"}, correlation_id="c1")
        with bus.consume("courier-test.py.sync", prefetch=10) as consumer:
            d = take(consumer, receipt.message_id)
            assert d.body == b"hello"
            assert d.headers["x-n"] == "1"
            assert set(d.headers) == {"x-n", "traceparent"}, "application headers plus the trace"
            assert (d.correlation_id, d.routing_key, d.redelivered) == ("c1", "courier-test.py.sync", False)
            d.ack()
            with pytest.raises(courier.ClosedError):
                d.ack()
            with pytest.raises(courier.TimeoutError):
                consumer.next(timeout_ms=200)


async def test_async_publish_consume_ack(amqp_url):
    async with await courier.AsyncBus.connect({"urls": [amqp_url]}) as bus:
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
    with courier.Bus.connect({"urls": [amqp_url]}) as bus:
        with pytest.raises(courier.UnroutableError):
            bus.publish("", "courier-test.py.no-such-queue", b"x")
        with pytest.raises(courier.BrokerError):
            bus.consume("courier-test.py.no-such-queue")
    with pytest.raises(courier.ConfigError) as info:
        courier.Bus.connect({"urls": ["http://nope"]})
    assert info.value.field == "urls[0]"
    with pytest.raises(courier.ClosedError):
        bus.publish("", "q", b"x")


def test_a_message_carries_the_callers_trace(amqp_url):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with courier.Bus.connect({"urls": [amqp_url]}) as bus:
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
