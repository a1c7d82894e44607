"""The process-wide runtime's guarantees: signals interrupt blocking waits, fork is safe."""

import os
import signal
import time

import pytest

import courier


class Interrupted(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs POSIX timers")
def test_a_signal_interrupts_a_blocking_call(testkit):
    testkit.behave(0, default={"latency_ms": 10_000})
    client = courier.Client({"services": {"orders": {"endpoints": [testkit.urls[0]]}}})

    def handler(signum, frame):
        raise Interrupted

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        # Without the periodic signal check this would block until the 10 s deadline
        # and raise TimeoutError instead.
        with pytest.raises(Interrupted):
            client.get("orders", "/slow", deadline_ms=10_000)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_gets_a_working_runtime(testkit):
    cfg = {"services": {"orders": {"endpoints": [testkit.urls[0]]}}}
    assert courier.Client(cfg).get("orders", "/parent").status == 200  # the parent's runtime exists
    pid = os.fork()
    if pid == 0:  # child: the parent's worker threads do not exist here
        try:
            ok = courier.Client(cfg).get("orders", "/child", deadline_ms=5000).status == 200
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung: it must get a fresh runtime")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    assert testkit.requests(0)["by_path"].get("/child") == 1
