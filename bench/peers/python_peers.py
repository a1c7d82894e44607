"""courier from Python against the libraries a Python service would otherwise use, in one
process, against one upstream and one broker. Peer and courier rounds alternate; each
figure is the median over the rounds. Prints nothing but one JSON row per workload on
stdout (bench/peers/run.sh assembles the table); progress goes to stderr.

Usage: python_peers.py --upstream URL --amqp URL [--rounds N] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiohttp
import courierkit
import httpx
import pika
import requests

BODY = b"x" * 256
IN_FLIGHT = 256
CONCURRENCY = 64


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def cpu_ticks() -> tuple[int, int, int]:
    """CPU time so far, in clock ticks, from /proc: the whole machine's busy time, this
    process's (every thread: courier's workers too) and the calling thread's."""

    def own(path: str) -> int:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime

    with open("/proc/stat") as f:
        cpu = [int(v) for v in f.readline().split()[1:]]
    busy = sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait
    return busy, own("/proc/self/stat"), own(f"/proc/self/task/{threading.get_native_id()}/stat")


class Measured:
    """One round's rate and CPU microseconds per operation: `caller` (the thread running
    the loop), `process` (all of this process's threads) and `rest` (the rest of the
    machine: the upstream or the broker, and noise)."""

    last: dict[str, float] = {}

    def __init__(self, count: int) -> None:
        self.count = count
        self.start = time.perf_counter()
        self.ticks = cpu_ticks()

    def done(self) -> float:
        elapsed = time.perf_counter() - self.start
        machine, process, caller = (b - a for a, b in zip(self.ticks, cpu_ticks(), strict=True))
        per_op = TICK_US / self.count
        Measured.last = {
            "caller": caller * per_op,
            "process": process * per_op,
            "rest": (machine - process) * per_op,
        }
        return self.count / elapsed


def rate(count: int, run: Callable[[], None]) -> float:
    measured = Measured(count)
    run()
    return measured.done()


def arate(count: int, run: Callable[[], Awaitable[None]]) -> float:
    async def timed() -> float:
        measured = Measured(count)
        await run()
        return measured.done()

    return asyncio.run(timed())


def compare(name: str, rounds: int, contenders: dict[str, Callable[[], float]]) -> dict[str, Any]:
    """Runs each contender once per round, in the same order every round, and keeps the
    median; courier is the last key."""
    figures: dict[str, list[float]] = {key: [] for key in contenders}
    cpu: dict[str, list[dict[str, float]]] = {key: [] for key in contenders}
    for round_no in range(rounds):
        for key, run in contenders.items():
            figures[key].append(run())
            cpu[key].append(Measured.last)
        log(f"{name} round {round_no + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in figures.items()))
    medians = {key: statistics.median(values) for key, values in figures.items()}
    cpu_medians = {
        key: {part: statistics.median(r[part] for r in runs) for part in runs[0]} for key, runs in cpu.items()
    }
    return {
        "workload": name,
        "language": "python",
        "per_sec": medians,
        "rounds": figures,
        "cpu_us_per_op": cpu_medians,
    }


# HTTP ----------------------------------------------------------------------------------


def sync_get(upstream: str, rounds: int, calls: int) -> dict[str, Any]:
    url = f"{upstream}/bench"
    client = courierkit.Client({"services": {"svc": {"endpoints": [upstream]}}})
    hx = httpx.Client()
    session = requests.Session()

    def loop(call: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            def body() -> None:
                for _ in range(calls):
                    call()

            return rate(calls, body)

        return run

    for _ in range(50):  # connections open, code paths warm
        hx.get(url)
        session.get(url)
        client.get("svc", "/bench")
    result = compare(
        "sync GET, c=1",
        rounds,
        {
            "requests": loop(lambda: session.get(url).content),
            "httpx": loop(lambda: hx.get(url).content),
            "courier": loop(lambda: client.get("svc", "/bench").body),
        },
    )
    client.close()
    hx.close()
    session.close()
    return result


def async_get(upstream: str, rounds: int, calls: int) -> dict[str, Any]:
    url = f"{upstream}/bench"

    async def workers(call: Callable[[], Awaitable[object]]) -> None:
        per_worker = calls // CONCURRENCY

        async def worker() -> None:
            for _ in range(per_worker):
                await call()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    def aiohttp_round() -> float:
        async def run() -> None:
            connector = aiohttp.TCPConnector(limit=CONCURRENCY)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def get() -> None:
                    async with session.get(url) as resp:
                        await resp.read()

                await asyncio.gather(*(get() for _ in range(CONCURRENCY)))  # connections open
                await workers(get)

        return arate(calls, run)

    def courier_round() -> float:
        async def run() -> None:
            async with courierkit.AsyncClient({"services": {"svc": {"endpoints": [upstream]}}}) as client:

                async def get() -> None:
                    await client.get("svc", "/bench")

                await asyncio.gather(*(get() for _ in range(CONCURRENCY)))
                await workers(get)

        return arate(calls, run)

    # Connection set-up happens before the clock starts in both; the timed part is `calls`.
    return compare(
        f"async GET, {CONCURRENCY} tasks", rounds, {"aiohttp": aiohttp_round, "courier": courier_round}
    )


# AMQP ----------------------------------------------------------------------------------


def fresh_queue(amqp: str, name: str) -> None:
    """A durable classic queue, declared empty, through pika (the peers' own tool)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp))
    channel = connection.channel()
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "classic"})
    channel.queue_purge(name)
    connection.close()


def drop_queue(amqp: str, name: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp))
    connection.channel().queue_delete(name)
    connection.close()


def sync_publish(amqp: str, rounds: int, messages: int) -> dict[str, Any]:
    queue = f"bench.peers.{uuid.uuid4().hex[:8]}"
    fresh_queue(amqp, queue)
    connection = pika.BlockingConnection(pika.URLParameters(amqp))
    channel = connection.channel()
    channel.confirm_delivery()
    persistent = pika.BasicProperties(delivery_mode=2)
    bus = courierkit.Bus.connect({"urls": [amqp]})

    def pika_round() -> float:
        def run() -> None:
            for _ in range(messages):
                channel.basic_publish("", queue, BODY, persistent, mandatory=True)

        result = rate(messages, run)
        channel.queue_purge(queue)
        return result

    def courier_round() -> float:
        def run() -> None:
            for _ in range(messages):
                bus.publish("", queue, BODY)

        result = rate(messages, run)
        channel.queue_purge(queue)
        return result

    try:
        return compare("sync confirmed publish, c=1", rounds, {"pika": pika_round, "courier": courier_round})
    finally:
        bus.close()
        connection.close()
        drop_queue(amqp, queue)


def async_publish(amqp: str, rounds: int, messages: int) -> dict[str, Any]:
    queue = f"bench.peers.{uuid.uuid4().hex[:8]}"
    fresh_queue(amqp, queue)

    async def windowed(publish: Callable[[], Awaitable[object]]) -> float:
        """Publishes per second for `messages` publishes, IN_FLIGHT unconfirmed at any moment."""
        remaining = messages

        async def lane() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await publish()

        measured = Measured(messages)
        await asyncio.gather(*(lane() for _ in range(IN_FLIGHT)))
        return measured.done()

    def emptied_after(run: Callable[[], Awaitable[float]]) -> float:
        result = asyncio.run(run())
        fresh_queue(amqp, queue)
        return result

    persistent = aio_pika.DeliveryMode.PERSISTENT

    def bare() -> aio_pika.Message:
        return aio_pika.Message(BODY, delivery_mode=persistent)

    def courier_properties() -> aio_pika.Message:
        """What courier puts on every message besides the body: a message id (courier's
        is a UUIDv7, as long as this v4) and a W3C traceparent header, made per message."""
        return aio_pika.Message(
            BODY,
            delivery_mode=persistent,
            message_id=str(uuid.uuid4()),
            headers={"traceparent": f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"},
        )

    async def aio_pika_round(message: Callable[[], aio_pika.Message]) -> float:
        connection = await aio_pika.connect(amqp)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = channel.default_exchange

            async def publish() -> None:
                await exchange.publish(message(), queue, mandatory=True)

            return await windowed(publish)

    async def courier_round() -> float:
        async with await courierkit.AsyncBus.connect({"urls": [amqp]}) as bus:

            async def publish() -> None:
                await bus.publish("", queue, BODY)

            return await windowed(publish)

    try:
        return compare(
            f"async confirmed publish, {IN_FLIGHT} in flight",
            rounds,
            {
                "aio-pika": lambda: emptied_after(lambda: aio_pika_round(bare)),
                "aio-pika, courier's properties": lambda: emptied_after(
                    lambda: aio_pika_round(courier_properties)
                ),
                "courier": lambda: emptied_after(courier_round),
            },
        )
    finally:
        drop_queue(amqp, queue)


def handoff(upstream: str, rounds: int, calls: int) -> dict[str, Any]:
    """The floor under every courier call from Python: a call core refuses (an unknown
    service) still goes to a core worker and back, so its rate is the hand-off alone,
    with no network in it; from a thread (which spins, then parks) and from asyncio
    (one call_soon_threadsafe per batch of completions). No peer: requests, httpx and
    aiohttp never leave the calling thread."""
    config = {"services": {"svc": {"endpoints": [upstream]}}}
    client = courierkit.Client(config)

    def sync_round() -> float:
        def run() -> None:
            for _ in range(calls):
                try:
                    client.get("unknown", "/bench")
                except courierkit.ConfigError:
                    pass

        return rate(calls, run)

    def async_round() -> float:
        async def run() -> None:
            async with courierkit.AsyncClient(config) as aclient:
                for _ in range(calls):
                    try:
                        await aclient.get("unknown", "/bench")
                    except courierkit.ConfigError:
                        pass

        return arate(calls, run)

    try:
        return compare(
            "hand-off floor (refused in core), c=1",
            rounds,
            {"courier (asyncio)": async_round, "courier": sync_round},
        )
    finally:
        client.close()


WORKLOADS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "handoff": lambda a: handoff(a.upstream, a.rounds, 10_000),
    "sync_get": lambda a: sync_get(a.upstream, a.rounds, 5_000),
    "async_get": lambda a: async_get(a.upstream, a.rounds, 20_000),
    "sync_publish": lambda a: sync_publish(a.amqp, a.rounds, 2_000),
    "async_publish": lambda a: async_publish(a.amqp, a.rounds, 10_000),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(WORKLOADS))
    args = parser.parse_args()
    for name in args.only.split(","):
        print(json.dumps(WORKLOADS[name](args)), flush=True)


if __name__ == "__main__":
    main()
