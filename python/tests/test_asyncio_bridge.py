"""How awaitables are settled: on their own event loop's thread, many per wake-up, with
core's threads never entering Python (python/src/asyncio_bridge.rs)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import courierkit


async def publish_all(name: str, n: int) -> list[int]:
    """`n` publishes in flight at once on a memory:// bus; their sequence numbers."""
    bus = await courierkit.AsyncBus.connect({"urls": [f"memory://{name}"]})
    await bus.declare_queue("q")
    receipts = await asyncio.gather(*(bus.publish("", "q", str(i).encode()) for i in range(n)))
    consumer = await bus.consume("q", prefetch=n)
    bodies = [(await consumer.next(timeout=5)).body for _ in range(n)]
    await bus.close()
    assert all(r is not None for r in receipts)
    return sorted(int(b) for b in bodies)


def test_thousands_in_flight_all_settle_with_their_own_result():
    assert asyncio.run(publish_all("bridge-many", 3000)) == list(range(3000))


def test_loops_on_several_threads_settle_their_own_futures():
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = asyncio.run(publish_all(f"bridge-thread-{i}", 500))
        except BaseException as e:  # reported below, with the thread's index
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert all(not t.is_alive() for t in threads), "a thread's loop never finished"
    assert results == {i: list(range(500)) for i in range(4)}


LOOPS_SCRIPT = """
import asyncio, os, courierkit
async def one():
    bus = await courierkit.AsyncBus.connect({"urls": ["memory://loops"]})
    await bus.declare_queue("q")
    await bus.publish("", "q", b"x")
    await bus.close()
asyncio.run(one())
before = len(os.listdir("/proc/self/fd"))
for _ in range(30):
    asyncio.run(one())
print(len(os.listdir("/proc/self/fd")) - before)
"""


def test_a_closed_loop_leaves_no_socket_behind():
    # Each loop gets one socket pair for its wake-ups; a thread forgets its closed loops
    # (and closes their sockets) when it meets a new one, so 30 loops one after another
    # hold at most the last one's pair, not 30.
    done = subprocess.run([sys.executable, "-c", LOOPS_SCRIPT], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-500:]
    assert int(done.stdout) <= 2


def test_a_cancelled_awaitable_is_not_settled_later():
    async def main() -> None:
        bus = await courierkit.AsyncBus.connect({"urls": ["memory://bridge-cancel"]})
        await bus.declare_queue("q")
        consumer = await bus.consume("q")
        waiting = asyncio.ensure_future(consumer.next(timeout=10))
        await asyncio.sleep(0)
        waiting.cancel()
        # Once the cancellation has run its course (the core task is aborted then, before
        # the task's own wake-up), the next delivery is not the cancelled call's.
        await asyncio.gather(waiting, return_exceptions=True)
        await bus.publish("", "q", b"after")
        # The cancelled next() did not take the delivery, and nothing raised
        # InvalidStateError into the loop's exception handler.
        d = await consumer.next(timeout=5)
        assert d is not None and d.body == b"after"
        assert waiting.cancelled()
        await bus.close()

    run_reporting_failures(main)


def run_reporting_failures(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Runs `main` on a new loop and fails on anything reported beside it: setting a
    result on a cancelled future would raise InvalidStateError in the bridge's drain,
    which reports it as unraisable; the loop's handler sees the rest."""
    failures: list[object] = []
    hook = sys.unraisablehook
    sys.unraisablehook = failures.append
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda _loop, context: failures.append(context))
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        sys.unraisablehook = hook
    assert failures == []


def test_an_outcome_that_arrives_after_the_cancel_is_dropped_quietly():
    async def main() -> None:
        bus = await courierkit.AsyncBus.connect({"urls": ["memory://bridge-late"]})
        await bus.declare_queue("q")
        publishing = asyncio.ensure_future(bus.publish("", "q", b"x"))
        await asyncio.sleep(0)  # the publish is under way in core
        # Hold the loop (no await) until core has confirmed it: its outcome is then queued
        # or about to be, and the drain that would settle it cannot run before the cancel.
        deadline = time.monotonic() + 10
        while bus.stats()["confirmed"] < 1:
            assert time.monotonic() < deadline, "the publish was not confirmed within 10 s"
        publishing.cancel()
        await asyncio.gather(publishing, return_exceptions=True)
        assert publishing.cancelled()
        await bus.publish("", "q", b"y")  # a drain runs after the cancel
        await bus.close()

    run_reporting_failures(main)
