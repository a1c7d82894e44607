"""Type-checked by ``mypy --strict`` (tests/scripts/test-all.sh), not run: the public
types are precise where the core's are known, so a user's code checks without ``Any``."""

from __future__ import annotations

import courierkit


def bus_usage(bus: courierkit.Bus) -> None:
    receipt: courierkit.Receipt = bus.publish("", "orders", b"x", ttl=1, headers={"a": "b"})
    results: list[courierkit.Receipt | courierkit.CourierError] = bus.publish_many(
        [courierkit.BatchMessage("", "orders", "x", message_id=receipt.message_id)]
    )
    with bus.consume("orders", prefetch=10) as consumer:
        for d in consumer:
            body: bytes = d.body
            headers: dict[str, str] = d.headers
            ids: tuple[str | None, str | None, str | None] = (d.message_id, d.correlation_id, d.reply_to)
            where: tuple[str, str, bool, int | None] = (
                d.exchange,
                d.routing_key,
                d.redelivered,
                d.delivery_count,
            )
            left: float | None = d.remaining
            with d.process(requeue=False):
                print(body, headers, ids, where, left, results)
        batch: courierkit.Batch | None = consumer.next_batch(10, timeout=0.1)
        if batch is not None:
            first: courierkit.Delivery = batch[0]
            settled: bool = first.is_settled
            batch.ack()
            print(settled, len(batch))
    stats: courierkit.BusStats = bus.stats()
    expired: int = stats["expired"]
    budget: float | None = courierkit.deadline_from_headers({"x-courier-deadline-ms": "5"})
    print(expired, budget)


def client_usage(client: courierkit.Client) -> None:
    stats: courierkit.ClientStats = client.stats()
    for name, service in stats["services"].items():
        state: str = service["breaker_state"]
        rate: float | None = service["rate_per_sec"]
        urls: list[str] = [e["url"] for e in service["endpoints"]]
        print(name, state, rate, urls)


async def async_usage(bus: courierkit.AsyncBus) -> None:
    consumer = await bus.consume("orders")
    async with consumer:
        async for d in consumer:
            async with d.process():
                print(d.body)
        batch = await consumer.next_batch(5, timeout=0)
        if batch is not None:
            await batch.reject_async()


def config_usage(url: str) -> courierkit.Client:
    # An annotated literal is checked key by key (a misspelt key is an error).
    config: courierkit.ClientConfig = {
        "services": {
            "orders": {"endpoints": [url, {"url": url, "weight": 2}], "deadline_ms": 2_000, "breaker": None}
        }
    }
    return courierkit.Client(config)
