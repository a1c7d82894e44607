"""Against the three-node RabbitMQ cluster of tests/scripts/ensure-rabbitmq-cluster.sh: the
queue leader's node killed mid-stream, and a partition of the client from its node.
`make test-cluster` runs them (it sets COURIER_CLUSTER_URLS); a plain pytest run skips them.
The Rust suite (core/tests/cluster) has the same scenarios and more."""

import asyncio
import os
import pathlib
import subprocess
import time
import uuid

import pytest

import courierkit

pytestmark = pytest.mark.skipif(
    not os.environ.get("COURIER_CLUSTER_URLS"), reason="needs the three-node cluster: make test-cluster"
)

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "scripts" / "ensure-rabbitmq-cluster.sh"


def cluster(*args: str) -> str:
    """`ensure-rabbitmq-cluster.sh ARGS...`, its stdout."""
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=480, check=False
    )
    assert done.returncode == 0, f"ensure-rabbitmq-cluster.sh {args}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture
def urls() -> list[str]:
    """The node URLs once all three run (an earlier test may have left one down)."""
    for node in ("1", "2", "3"):
        cluster("start", node)
    urls = os.environ["COURIER_CLUSTER_URLS"].split()
    assert len(urls) == 3
    return urls


def bus_config(urls: list[str]) -> dict[str, object]:
    return {
        "urls": urls,
        "reconnect": {"base_delay_ms": 100, "max_delay_ms": 2000},
        "publish_deadline_ms": 60_000,
        "max_unconfirmed": 256,
    }


async def test_killing_the_queue_leader_loses_and_duplicates_nothing(urls: list[str]) -> None:
    """RabbitMQ 3.10.8 sometimes confirms a publish during the failover and then does not
    keep it (see core/tests/cluster): a run that ends with confirmed messages missing, and
    no other failure, is repeated once, saying so; a second loss fails."""
    missing = await kill_the_leader(urls)
    if missing:
        print(f"the broker confirmed {len(missing)} message(s) it did not keep ({missing[:10]}); once more")
        missing = await kill_the_leader(urls)
        assert not missing, f"lost in two runs in a row: {missing[:10]}"


async def kill_the_leader(urls: list[str]) -> list[str]:
    """One run: 10,000 publishes, the leader's node killed at 30% confirmed, a dedup
    consumer on another node. Asserts everything but loss; returns the missing ids."""
    n = 10_000
    q = f"courier-test.py.cluster.leader.{uuid.uuid4()}"
    publisher = await courierkit.AsyncBus.connect(bus_config(urls))
    await publisher.declare_queue(q)
    leader = int(cluster("leader", q))
    other = leader % 3 + 1
    consumer_bus = await courierkit.AsyncBus.connect(bus_config(urls[other - 1 :] + urls[: other - 1]))
    consumer = await consumer_bus.consume(q, prefetch=100, dedup=True)

    async def kill_at_30_percent() -> int:
        while publisher.stats()["confirmed"] < n * 3 // 10:
            await asyncio.sleep(0.02)
        at = publisher.stats()["confirmed"]
        await asyncio.to_thread(cluster, "kill", str(leader))
        return at

    in_flight = asyncio.Semaphore(256)

    async def publish(i: int) -> BaseException | None:
        async with in_flight:
            try:
                await publisher.publish("", q, b"x" * 256, message_id=f"m-{i}", persistent=True)
            except courierkit.CourierError as e:
                return e
            return None

    started = time.monotonic()
    killer = asyncio.create_task(kill_at_30_percent())
    results = await asyncio.wait_for(asyncio.gather(*(publish(i) for i in range(n))), timeout=300)
    killed_at = await killer
    failed = [r for r in results if r is not None]
    assert not failed, f"{len(failed)} of {n} failed: {failed[:5]}"
    stats = publisher.stats()
    took = time.monotonic() - started
    print(f"leader node {leader} killed at {killed_at} confirmed; {n} publishes in {took:.1f} s; {stats}")
    assert (stats["published"], stats["confirmed"]) == (n, n)

    processed: dict[str, int] = {}
    idle_since = time.monotonic()  # until all arrived, or nothing did for 20 s
    while len(processed) < n and time.monotonic() - idle_since < 20:
        try:
            d = await consumer.next(timeout=1)
        except courierkit.CourierError:
            continue  # its node is up; a reconnect or the leader's move may still show
        assert d is not None
        idle_since = time.monotonic()
        processed[d.message_id] = processed.get(d.message_id, 0) + 1
        await d.ack_async()
    await asyncio.to_thread(cluster, "start", str(leader))
    late = 0
    while True:
        try:
            d = await consumer.next(timeout=3)
        except courierkit.TimeoutError:
            break
        assert d is not None
        late += 1
        processed[d.message_id] = processed.get(d.message_id, 0) + 1
        await d.ack_async()
    twice = {k: v for k, v in processed.items() if v > 1}
    missing = [f"m-{i}" for i in range(n) if f"m-{i}" not in processed]
    stats = consumer_bus.stats()
    print(f"processed {len(processed)}, {len(missing)} missing, {len(twice)} twice, {late} late; {stats}")
    assert not twice, f"none processed twice: {list(twice)[:5]}"
    assert late == 0
    await consumer.close()
    await consumer_bus.close()
    await publisher.close()
    return missing


async def test_a_partition_moves_the_bus_to_another_node(urls: list[str], testkit) -> None:
    """The client's node goes silent (the proxy's blackhole: nothing closed, no bytes either
    way); with heartbeat=2 the bus notices within two periods and moves to the next node.
    Unconfirmed publishes are re-sent there; the request in flight fails and leaves no
    correlation entry."""
    n = 20
    proxy = testkit.proxy(urls[0])
    partitioned = proxy.url(urls[0]) + "?heartbeat=2"
    bus = await courierkit.AsyncBus.connect(bus_config([partitioned, urls[1], urls[2]]))
    q = f"courier-test.py.cluster.partition.{uuid.uuid4()}"
    silent = f"courier-test.py.cluster.silent.{uuid.uuid4()}"
    await bus.declare_queue(q)
    await bus.declare_queue(silent)

    proxy.faults(blackhole=True)
    started = time.monotonic()
    request = asyncio.create_task(bus.request(silent, b"?", timeout=5))
    publishes = asyncio.gather(*(bus.publish("", q, b"x" * 256, message_id=f"p-{i}") for i in range(n)))
    while bus.stats()["reconnects"] < 1:
        assert time.monotonic() - started < 60, "the partition was not noticed within 60 s"
        await asyncio.sleep(0.05)
    detected = time.monotonic() - started
    print(f"partition detected and left after {detected:.2f} s (heartbeat 2 s)")
    await asyncio.wait_for(publishes, timeout=120)
    with pytest.raises((courierkit.TimeoutError, courierkit.ConnectError)):
        await request
    stats = bus.stats()
    assert stats["rpc_in_flight"] == 0, stats
    assert (stats["published"], stats["confirmed"]) == (n, n), stats
    assert stats["resent"] >= 1, f"the publishes on the silent connection went again: {stats}"

    consumer = await bus.consume(q)
    seen: set[str] = set()
    while len(seen) < n:
        d = await consumer.next(timeout=10)
        assert d is not None
        seen.add(d.message_id)
        await d.ack_async()
    await consumer.close()
    await bus.close()
