"""Memory figures from Python (bench/peers/run.sh memory): each measurement runs in a
process of its own, so one's allocations cannot hide in another's peak.

- unconfirmed: peak RSS added by 10,000 confirmed publishes started at once (256-byte
  persistent messages, one durable classic queue on the local RabbitMQ), courier's
  AsyncBus against aio-pika doing the same on a confirm channel.
- in flight: peak RSS added by 10,000 async GETs in flight at once, each held 2 s by a
  slow upstream (a stdlib asyncio server in a process of its own), courier's AsyncClient
  against aiohttp with an unlimited connector: 10,000 connections either way.
- dedup: bytes per message id the memory dedup window holds, from 200,000 ids of 20
  characters through memory://: the same publish-consume-ack run with dedup on and off,
  the difference in RSS divided by the number of ids (medians of 5 alternating runs).

Prints one JSON object per figure on stdout; progress goes to stderr.

Usage: memory.py --amqp URL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

import aio_pika
import aiohttp
import courierkit
from python_peers import BODY, drop_queue, fresh_queue

PUBLISHES = 10_000
IDS = 200_000
DEDUP_ROUNDS = 5
IN_FLIGHT = 10_000
HOLD_S = 2.0


def rss_kib() -> int:
    """Current resident set size, from /proc (ru_maxrss is only the peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def unconfirmed_courier(amqp: str, queue: str) -> int:
    async with await courierkit.AsyncBus.connect({"urls": [amqp], "max_unconfirmed": PUBLISHES}) as bus:
        await bus.publish("", queue, BODY)  # connection and channel up before the baseline
        before = rss_kib()
        await asyncio.gather(*(bus.publish("", queue, BODY) for _ in range(PUBLISHES)))
        return peak_kib() - before


async def unconfirmed_aio_pika(amqp: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange

        async def publish() -> None:
            message = aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await exchange.publish(message, queue, mandatory=True)

        await publish()
        before = rss_kib()
        await asyncio.gather(*(publish() for _ in range(PUBLISHES)))
        return peak_kib() - before


# The slow upstream, also started by the Kotlin memory figures (kotlin/.../Memory.kt).
SLOW_UPSTREAM = str(Path(__file__).with_name("slow_upstream.py"))


async def in_flight_courier(upstream: str) -> int:
    slow = {"endpoints": [upstream], "max_concurrency": IN_FLIGHT, "deadline_ms": 60_000}
    config = {"services": {"slow": slow}}
    async with courierkit.AsyncClient(config) as client:
        await client.get("slow", "/")  # runtime, pool and client up before the baseline
        before = rss_kib()
        responses = await asyncio.gather(*(client.get("slow", "/") for _ in range(IN_FLIGHT)))
        assert all(r.status == 200 for r in responses)
        return peak_kib() - before


async def in_flight_aiohttp(upstream: str) -> int:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def get() -> int:
            async with session.get(f"{upstream}/") as resp:
                await resp.read()
                return resp.status

        await get()
        before = rss_kib()
        statuses = await asyncio.gather(*(get() for _ in range(IN_FLIGHT)))
        assert all(s == 200 for s in statuses)
        return peak_kib() - before


def in_flight(kind: str) -> int:
    # 10,000 sockets each side: raise the soft limit to the hard one for both processes.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    command = [sys.executable, SLOW_UPSTREAM, str(HOLD_S)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        upstream = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        run = in_flight_courier if kind == "http-courier" else in_flight_aiohttp
        return asyncio.run(run(upstream))
    finally:
        server.kill()
        server.wait()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def dedup_run(dedup: bool) -> int:
    """RSS added by publishing, consuming and acking IDS messages with 20-character ids."""
    config = {
        "urls": [f"memory://memory-bench-{uuid.uuid4().hex}"],
        # Room for every id, so the window holds all of them when measured.
        "dedup": {"store": "memory", "capacity": IDS},
    }
    with courierkit.Bus.connect(config) as bus:
        bus.declare_queue("q", quorum=False, dead_letter=False)
        ids = [f"{i:020d}" for i in range(IDS)]  # allocated before the baseline
        before = rss_kib()
        with bus.consume("q", dedup=dedup, prefetch=1000) as consumer:
            for start in range(0, IDS, 1000):
                receipts = bus.publish_many(
                    [courierkit.BatchMessage("", "q", b"", message_id=i) for i in ids[start : start + 1000]]
                )
                assert not any(isinstance(r, Exception) for r in receipts)
                batch = consumer.next_batch(1000, timeout=5)
                assert batch is not None
                batch.ack()
        return rss_kib() - before


def child(kind: str, amqp: str) -> None:
    if kind in ("courier", "aio-pika"):
        queue = f"bench.memory.{uuid.uuid4().hex[:8]}"
        fresh_queue(amqp, queue)
        try:
            measure = unconfirmed_courier if kind == "courier" else unconfirmed_aio_pika
            print(asyncio.run(measure(amqp, queue)))
        finally:
            drop_queue(amqp, queue)
    elif kind.startswith("http-"):
        print(in_flight(kind))
    else:
        print(dedup_run(kind == "dedup-on"))


def measure(kind: str, amqp: str) -> int:
    out = subprocess.run(
        [sys.executable, __file__, "--amqp", amqp, "--child", kind],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.amqp)
        return
    figures = {kind: measure(kind, args.amqp) for kind in ("aio-pika", "courier")}
    print(
        json.dumps(
            {
                "figure": f"peak RSS added by {PUBLISHES:,} unconfirmed publishes, KiB",
                "language": "python",
                "values": figures,
            }
        )
    )
    figures = {"aiohttp": measure("http-aiohttp", args.amqp), "courier": measure("http-courier", args.amqp)}
    print(
        json.dumps(
            {
                "figure": f"peak RSS added by {IN_FLIGHT:,} async GETs in flight ({HOLD_S:g} s each), KiB",
                "language": "python",
                "values": figures,
            }
        )
    )
    # The RSS of a run with dedup off varies by a few MB from run to run (the allocator's
    # share of the transient batches): alternating rounds, medians.
    runs: dict[str, list[int]] = {"dedup-on": [], "dedup-off": []}
    for _ in range(DEDUP_ROUNDS):
        for kind, sizes in runs.items():
            sizes.append(measure(kind, args.amqp))
    on, off = (statistics.median(sizes) for sizes in runs.values())
    print(
        json.dumps(
            {
                "figure": f"memory dedup window, bytes per id ({IDS:,} ids of 20 characters)",
                "language": "python",
                "values": {"courier": round((on - off) * 1024 / IDS, 1)},
                "rss_added_kib": {"dedup on": on, "dedup off": off},
            }
        )
    )


if __name__ == "__main__":
    main()
