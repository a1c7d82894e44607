"""The Python interop agent: roles publish, consume and serve of tests/interop/PROTOCOL.md.

Usage: agent.py ROLE --bus URL --run ID [--count N --duplicates D | --expect N
[--duplicates D | --http URL]] [--max-ms MS]. One JSON object per line on stdout, the
last one ``{"event": "done", ...}``; logs and errors on stderr.

asyncio, so the consumer and the server each handle up to ``IN_FLIGHT`` messages at once
(like a real service) while the publisher keeps ``IN_FLIGHT`` publishes awaiting their
confirms; every wait is bounded by ``--max-ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any, Callable

import courierkit

IN_FLIGHT = 16
PREFETCH = 50
REQUEST_TIMEOUT = 10.0
# How long one `next()` waits before the loop re-checks whether it may stop and --max-ms.
POLL = 0.1
# Kept out of --max-ms for closing the bus, so the process as a whole stays within it.
SHUTDOWN_MARGIN_S = 2.0


def emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def log(message: str) -> None:
    print(f"agent.py: {message}", file=sys.stderr, flush=True)


def names(run: str) -> tuple[str, str, str]:
    """The exchange, the orders queue and the RPC queue of one run."""
    return f"interop.{run}.orders", f"interop.{run}.orders", f"interop.{run}.pricing"


async def declare_orders(bus: courierkit.AsyncBus, run: str) -> None:
    exchange, queue, _ = names(run)
    await bus.declare_exchange(exchange, "topic")
    await bus.declare_queue(queue)
    await bus.bind(queue, exchange, "order.placed")


async def publish(args: argparse.Namespace, bus: courierkit.AsyncBus) -> None:
    exchange, _, _ = names(args.run)
    await declare_orders(bus, args.run)
    roots = [courierkit.TraceContext.new_root() for _ in range(args.count)]
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(i: int, first: bool) -> None:
        async with slots:
            receipt = await bus.publish(
                exchange,
                "order.placed",
                json.dumps({"order": i}),
                message_id=f"order-{i}",
                trace=roots[i],
            )
        if first:
            emit(
                event="published",
                order=i,
                message_id=receipt.message_id,
                trace_id=receipt.trace_context.trace_id,
            )

    await asyncio.gather(*(one(i, True) for i in range(args.count)))
    # Only after every first copy is confirmed, so each duplicate really follows its original.
    await asyncio.gather(*(one(i, False) for i in range(args.duplicates)))
    emit(event="done", published=args.count + args.duplicates)


async def drain(
    args: argparse.Namespace,
    consumer: courierkit.AsyncConsumer,
    handle: Any,
    deadline: float,
    caught_up: Callable[[], bool],
) -> int:
    """Runs ``handle(delivery)`` for each delivery, at most IN_FLIGHT at once, until
    ``args.expect`` distinct orders are handled, no handler is running and
    ``caught_up()`` holds; returns how many handlers completed. Raises TimeoutError at
    ``deadline``."""
    orders: set[int] = set()
    completed = 0
    slots = asyncio.Semaphore(IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()

    async def run(d: courierkit.Delivery) -> None:
        nonlocal completed
        try:
            order = await handle(d)
            if order is not None:
                orders.add(order)
                completed += 1
        finally:
            slots.release()

    while True:
        now = time.monotonic()
        if len(orders) >= args.expect and not tasks and caught_up():
            return completed
        if now >= deadline:
            raise TimeoutError(f"--max-ms passed with {len(orders)} of {args.expect} orders handled")
        try:
            await asyncio.wait_for(slots.acquire(), deadline - now)
        except asyncio.TimeoutError:
            continue
        try:
            d = await consumer.next(timeout=POLL)
        except courierkit.TimeoutError:
            slots.release()
            continue
        if d is None:
            raise RuntimeError("the consumer was closed")
        task = asyncio.ensure_future(run(d))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def consume(args: argparse.Namespace, bus: courierkit.AsyncBus, deadline: float) -> None:
    _, queue, pricing = names(args.run)
    await declare_orders(bus, args.run)
    consumer = await bus.consume(queue, prefetch=PREFETCH)

    async def handle(d: courierkit.Delivery) -> int | None:
        try:
            order = json.loads(d.body)["order"]
            reply = await bus.request(
                pricing,
                json.dumps({"order": order}),
                timeout=REQUEST_TIMEOUT,
                trace=d.trace_context,
            )
            price = json.loads(reply.body)["price"]
            await d.ack_async()
        except Exception as e:  # requeued and reported, whatever it was
            log(f"{d.message_id}: {type(e).__name__}: {e}; requeued")
            await d.nack_async(requeue=True)
            return None
        emit(
            event="processed",
            order=order,
            message_id=d.message_id,
            trace_id=d.trace_context.trace_id,
            price=price,
            reply_trace_id=reply.trace_context.trace_id,
        )
        return int(order)

    def skipped_all() -> bool:
        # Dedup skips the publisher's duplicates inside `next()`: stopping before every
        # one was skipped would leave a late copy unseen.
        return bus.stats()["deduplicated"] >= args.duplicates

    processed = await drain(args, consumer, handle, deadline, skipped_all)
    await consumer.close()
    emit(event="done", processed=processed)


async def serve(args: argparse.Namespace, bus: courierkit.AsyncBus, deadline: float) -> None:
    _, _, pricing = names(args.run)
    await bus.declare_queue(pricing)
    client = courierkit.AsyncClient({"services": {"upstream": {"endpoints": [args.http]}}})
    server = await bus.serve(pricing)

    async def handle(d: courierkit.Delivery) -> int | None:
        try:
            order = json.loads(d.body)["order"]
            resp = await client.get("upstream", f"/price/{order}", trace=d.trace_context)
            await d.reply_async(json.dumps({"order": order, "price": order * 10 + 1}))
            await d.ack_async()
        except Exception as e:  # requeued and reported, whatever it was
            log(f"request {d.correlation_id}: {type(e).__name__}: {e}; requeued")
            await d.nack_async(requeue=True)
            return None
        emit(
            event="served",
            order=order,
            trace_id=d.trace_context.trace_id,
            http_status=resp.status,
            http_attempts=resp.attempts,
        )
        return int(order)

    try:
        # Duplicates never reach the server (the consumer skips them): nothing follows
        # the last order.
        served = await drain(args, server, handle, deadline, lambda: True)
    finally:
        client.close()
    await server.close()
    emit(event="done", served=served)


async def main(args: argparse.Namespace) -> None:
    deadline = time.monotonic() + args.max_ms / 1000 - SHUTDOWN_MARGIN_S
    bus = await courierkit.AsyncBus.connect({"urls": [args.bus]})
    try:
        if args.role == "publish":
            await publish(args, bus)
        elif args.role == "consume":
            await consume(args, bus, deadline)
        else:
            await serve(args, bus, deadline)
    finally:
        await bus.close()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agent.py", description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["publish", "consume", "serve"])
    parser.add_argument("--bus", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--duplicates", type=int, default=0)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--http")
    parser.add_argument("--max-ms", type=int, default=120_000)
    args = parser.parse_args(argv)
    if args.role == "serve" and not args.http:
        parser.error("serve needs --http")
    return args


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    code = 0
    try:
        asyncio.run(asyncio.wait_for(main(arguments), arguments.max_ms / 1000))
    except Exception as e:  # every failure ends as a message and exit code 1
        log(f"{arguments.role} failed: {type(e).__name__}: {e}")
        code = 1
    sys.exit(code)
