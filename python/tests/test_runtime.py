"""The process-wide runtime's guarantees: signals interrupt blocking waits, fork is safe."""

import os
import signal
import subprocess
import sys
import uuid

import pytest
from conftest import wait_for_child

import courierkit


class Interrupted(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX timers")
def test_a_signal_interrupts_a_blocking_call(testkit):
    testkit.behave(0, default={"latency_ms": 10_000})
    client = courierkit.Client({"services": {"orders": {"endpoints": [testkit.urls[0]]}}})

    def handler(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        # Without the periodic signal check this would block until the 10 s deadline
        # and raise TimeoutError instead.
        with pytest.raises(Interrupted):
            client.get("orders", "/slow", deadline=10)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_gets_a_working_runtime(testkit):
    cfg = {"services": {"orders": {"endpoints": [testkit.urls[0]]}}}
    assert courierkit.Client(cfg).get("orders", "/parent").status == 200  # the parent's runtime exists
    pid = os.fork()
    if pid == 0:  # child: the parent's worker threads do not exist here
        try:
            ok = courierkit.Client(cfg).get("orders", "/child", deadline=5).status == 200
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    assert wait_for_child(pid, "the forked child hung: it must get a fresh runtime") == 0
    assert testkit.requests(0)["by_path"].get("/child") == 1


EXIT_SCRIPT = """
import asyncio, sys, courierkit
async def main():
    bus = await courierkit.AsyncBus.connect({"urls": [sys.argv[1]]})
    await bus.declare_queue(sys.argv[2], quorum=False, dead_letter=False)
    sem = asyncio.Semaphore(16)
    async def one(i):
        async with sem:
            trace = courierkit.TraceContext.new_root()
            r = await bus.publish("", sys.argv[2], b"x", persistent=False, trace=trace)
        print(r.trace_context.trace_id)
    await asyncio.gather(*(one(i) for i in range(1000)))
    await bus.close()
asyncio.run(main())
"""


def test_exit_right_after_async_work_does_not_crash(tmp_path, amqp_url):
    # Core threads that took the GIL while the interpreter finalized (the asyncio bridge
    # once did, for every completion) crashed the process at exit with SIGSEGV/SIGABRT in
    # about one run in seven. Completions no longer enter Python on core threads; the log
    # sink still does, behind exit's hook, which the next test checks.

    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT)
    queue = f"courier-test.exit.{uuid.uuid4().hex}"
    runs = [
        subprocess.Popen(
            [sys.executable, str(script), amqp_url, queue],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(12)
    ]
    failures = []
    for run in runs:
        _, err = run.communicate(timeout=120)
        if run.returncode != 0:
            failures.append((run.returncode, err.decode(errors="replace")[-500:]))
    import pika

    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as conn:
        conn.channel().queue_delete(queue)
    assert failures == []


QUIESCED_SCRIPT = """
import asyncio, logging, time, courierkit
from courierkit._courier import _quiesce
records = []
class Collect(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger("courier").addHandler(Collect())
logging.getLogger("courier").setLevel(logging.DEBUG)
courierkit.set_log_level("debug")
async def attempt(client):
    try:
        await client.get("down", "/")
    except courierkit.CourierError:
        pass
async def main():
    client = courierkit.AsyncClient({"services": {"down": {"endpoints": ["http://127.0.0.1:9"]}}})
    await attempt(client)
    deadline = time.monotonic() + 10
    while not records and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    print("records before:", len(records) > 0)
    _quiesce()  # what exit runs: from now on no core thread enters Python
    seen = len(records)
    await attempt(client)  # still settles: awaitables never need a core thread in Python
    await asyncio.sleep(0.5)
    print("records after:", len(records) - seen)
asyncio.run(main())
"""


def test_exit_stops_core_threads_from_entering_python(tmp_path):
    script = tmp_path / "quiesced.py"
    script.write_text(QUIESCED_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-500:]
    assert done.stdout.decode().split("\n")[:2] == ["records before: True", "records after: 0"]
