"""Hostile input and hostile peers: limits, paths, ids and secrets (each once broke)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import Testkit, wait_for_child

import courierkit

AMQP_URL = os.environ.get("COURIER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def client(testkit: Testkit, **extra: object) -> courierkit.Client:
    return courierkit.Client({"services": {"orders": {"endpoints": [testkit.urls[0]]}}, **extra})


def test_an_endless_response_body_stops_at_the_limit(testkit: Testkit) -> None:
    testkit.behave(0, default={"stream_body_bytes": 2**63})
    c = client(testkit, limits={"max_response_body_bytes": 1_000_000})
    with pytest.raises(courierkit.LimitExceededError) as info:
        c.get("orders", "/endless")
    assert info.value.kind == "limit_exceeded"
    assert (info.value.limit, info.value.max) == ("limits.max_response_body_bytes", 1_000_000)
    assert testkit.requests(0)["total"] == 1, "not retried"


def test_a_response_head_over_the_limit_fails_and_is_not_retried(testkit: Testkit) -> None:
    testkit.behave(0, default={"headers": {"x-big": "a" * 70_000}})
    with pytest.raises(courierkit.LimitExceededError) as info:
        client(testkit).get("orders", "/head")
    assert (info.value.limit, info.value.max) == ("limits.max_response_header_bytes", 65_536)
    assert testkit.requests(0)["total"] == 1, "not retried"


def test_a_config_document_over_1_mib_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    path.write_text('{"services": {}, "x": "' + "a" * (1 << 20) + '"}')
    with pytest.raises(courierkit.ConfigError) as info:
        courierkit.Client.from_file(str(path))
    assert info.value.field == "config"
    assert "1048576-byte limit" in str(info.value)


def test_peak_memory_stays_near_the_limit_for_an_endless_body(testkit: Testkit) -> None:
    """The default limit (64 MiB) bounds memory: a fresh process reading an endless body
    peaks far below what reading it whole would take (it ran to ~1.1 GB before)."""
    testkit.behave(0, default={"stream_body_bytes": 2**63})
    script = (
        "import resource, sys, courierkit\n"
        "c = courierkit.Client({'services': {'o': {'endpoints': [sys.argv[1]], 'deadline_ms': 60000}}})\n"
        "try:\n"
        "    c.get('o', '/endless')\n"
        "except courierkit.LimitExceededError:\n"
        "    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, testkit.urls[0]], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
    peak_mib = int(out.stdout) / 1024
    assert peak_mib < 400, f"peak RSS {peak_mib:.0f} MiB"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


def test_a_request_body_over_the_limit_is_refused_before_sending(testkit: Testkit) -> None:
    c = client(testkit, limits={"max_request_body_bytes": 10})
    with pytest.raises(courierkit.ConfigError) as info:
        c.post("orders", "/x", body=b"x" * 11)
    assert info.value.field == "body"
    assert testkit.requests(0)["total"] == 0


@pytest.mark.parametrize("path", ["../../admin", "%2e%2e/%2e%2e/admin", "..%2fadmin"])
def test_paths_cannot_climb_out_of_the_base_path(testkit: Testkit, path: str) -> None:
    c = courierkit.Client({"services": {"orders": {"endpoints": [testkit.urls[0] + "/api/v1"]}}})
    with pytest.raises(courierkit.ConfigError) as info:
        c.get("orders", path)
    assert info.value.field == "path"
    assert testkit.requests(0)["total"] == 0


def test_a_header_name_longer_than_255_bytes_is_a_config_error() -> None:
    with courierkit.Bus.connect({"urls": ["memory://hostile-headers"]}) as bus:
        bus.declare_queue("q")
        with pytest.raises(courierkit.ConfigError) as info:
            bus.publish("", "q", b"x", headers={"h" * 256: "v"})
        assert info.value.field == "headers"
        assert bus.stats()["published"] == 0


def _everything_shown(err: BaseException) -> str:
    """str, repr and args of an error and of its whole cause/context chain."""
    parts = []
    seen: set[int] = set()
    node: BaseException | None = err
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        parts += [str(node), repr(node), repr(node.args), repr(vars(node))]
        node = node.__cause__ or node.__context__
    return " | ".join(parts)


def test_passwords_and_tokens_in_urls_never_appear_in_errors_or_stats(testkit: Testkit) -> None:
    """Every error path reachable with a credential-carrying URL: HTTP to a closed port
    (by service and by absolute URL), an upstream answering 503, AMQP with wrong
    credentials and to a closed port, invalid URLs. Searched: str/repr/args/attributes
    of each error and its cause chain, and the stats."""
    password, token = "pw-" + uuid.uuid4().hex, "tok-" + uuid.uuid4().hex
    up = testkit.urls[0].removeprefix("http://")
    testkit.behave(0, default={"status": 503})
    shown: list[str] = []

    def attempt(call: object) -> None:
        try:
            call()  # type: ignore[operator]
        except courierkit.CourierError as e:
            shown.append(_everything_shown(e))

    c = courierkit.Client(
        {
            "services": {
                "pw": {"endpoints": [f"http://user:{password}@127.0.0.1:1"]},
                "tok": {"endpoints": [f"http://{token}@127.0.0.1:1"]},
                "pw503": {"endpoints": [f"http://user:{password}@{up}"]},
                "tok503": {"endpoints": [f"http://{token}@{up}"]},
            }
        }
    )
    for target in ("pw", "tok", f"http://user:{password}@127.0.0.1:1/x", f"http://{token}@127.0.0.1:1/x"):
        attempt(lambda target=target: c.get(target, "/", deadline=2))
    for target in ("pw503", "tok503"):
        assert c.get(target, "/").status == 503
    broker = AMQP_URL.split("@", 1)[1]
    for url in (
        f"amqp://guest:{password}@{broker}",
        f"amqp://{token}@{broker}",
        f"amqp://guest:{password}@127.0.0.1:1/%2f",
        f"amqp://{token}@127.0.0.1:1/%2f",
        f"amqp://guest:{password}@127.0.0.1:99999",
    ):
        attempt(lambda url=url: courierkit.Bus.connect({"urls": [url]}))
    for url in (f"http://user:{password}@127.0.0.1:99999", f"ftp://{token}@h"):
        attempt(lambda url=url: courierkit.Client({"services": {"s": {"endpoints": [url]}}}))
    assert len(shown) == 11, shown
    assert sum("***@" in text for text in shown) >= 7, shown
    shown += [repr(c.stats()), repr(c)]
    for text in shown:
        assert password not in text and token not in text, text


def _delete_queue(queue: str) -> None:
    pika = pytest.importorskip("pika")
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    conn.channel().queue_delete(queue)
    conn.close()


def test_empty_message_ids_from_other_publishers_are_not_deduplicated() -> None:
    pika = pytest.importorskip("pika")
    queue = f"courier-test.py.empty-id.{uuid.uuid4()}"
    with courierkit.Bus.connect({"urls": [AMQP_URL]}) as bus:
        bus.declare_queue(queue, quorum=False, dead_letter=False)
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = conn.channel()
        for body in (b"first", b"second"):
            ch.basic_publish("", queue, body, pika.BasicProperties(message_id=""))
        conn.close()
        with bus.consume(queue) as consumer:
            for expected in (b"first", b"second"):
                d = consumer.next(timeout=5)
                assert d is not None and d.body == expected and d.message_id is None
                d.ack()
        assert bus.stats()["deduplicated"] == 0
    _delete_queue(queue)


@pytest.mark.parametrize(
    "deadline",
    [2**63, timedelta(days=31), -0.001, timedelta(seconds=-1), float("inf"), float("nan"), 0.0004, True, "2"],
)
def test_a_deadline_out_of_range_is_a_config_error_not_an_overflow(
    testkit: Testkit, deadline: object
) -> None:
    c = client(testkit)
    with pytest.raises(courierkit.ConfigError) as info:
        c.get("orders", "/", deadline=deadline)  # type: ignore[arg-type]
    assert info.value.field == "deadline_ms"
    assert testkit.requests(0)["total"] == 0


def test_a_bus_reconnects_after_its_connection_is_cut_and_resubscribes(testkit: Testkit) -> None:
    """Through a testkit proxy the test cuts: the bus reconnects on its own, the consumer
    is subscribed again, and publishing goes on (each step waits on state: the stats)."""
    proxy = testkit.proxy(AMQP_URL)
    queue = f"courier-test.py.reconnect.{uuid.uuid4()}"
    with courierkit.Bus.connect(
        {"urls": [proxy.url(AMQP_URL)], "reconnect": {"base_delay_ms": 50, "max_delay_ms": 500}}
    ) as bus:
        bus.declare_queue(queue, quorum=False, dead_letter=False)
        with bus.consume(queue) as consumer:
            bus.publish("", queue, b"before", message_id="before")
            d = consumer.next(timeout=10)
            assert d is not None and d.message_id == "before"
            d.ack()
            proxy.cut()
            bus.publish("", queue, b"after", message_id="after")  # waits for the new connection
            d = consumer.next(timeout=30)
            assert d is not None and d.message_id == "after", "the consumer was subscribed again"
            d.ack()
        assert bus.stats()["reconnects"] >= 1
        assert proxy.accepted() >= 2
    _delete_queue(queue)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_bus_used_after_fork_says_so_instead_of_hanging() -> None:
    """The child has none of the parent's threads, so the bus's connection is dead there:
    every operation used to hang (declare_queue) or time out misleadingly (publish)."""
    bus = courierkit.Bus.connect({"urls": [AMQP_URL]})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            bus.declare_queue("courier-test.py.after-fork", quorum=False, dead_letter=False)
        except courierkit.ClosedError as e:
            os.write(write, str(e).encode())
            code = 0
        except BaseException as e:  # any other outcome is a failure, reported
            os.write(write, repr(e).encode())
        os._exit(code)
    os.close(write)
    code = wait_for_child(pid, "the forked child hung using the parent's bus")
    message = os.read(read, 4096).decode()
    os.close(read)
    assert code == 0, message
    assert "fork()" in message
    # The parent's bus still works: a publish nobody can take comes back as unroutable.
    with pytest.raises(courierkit.UnroutableError):
        bus.publish("", f"courier-test.py.no-such-queue.{uuid.uuid4()}", b"x")
    bus.close()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"body": 5}, "body"),
        ({"body": None, "headers": {"x-a": None}}, "headers.x-a"),
        ({"headers": {"x-a": 1}}, "headers.x-a"),
        ({"query": {"page": None}}, "query.page"),
        ({"deadline": 2**70}, "deadline_ms"),
        ({"deadline": -1}, "deadline_ms"),
        ({"deadline": "1.5"}, "deadline_ms"),
        ({"timeout": True}, "timeout_ms"),
    ],
)
def test_arguments_are_never_converted_silently(testkit: Testkit, kwargs: dict, field: str) -> None:
    """``body=5`` once sent five zero bytes and a header value None the text "None"; big
    ints raised a bare OverflowError. Each is now a ConfigError naming the argument."""
    with pytest.raises(courierkit.ConfigError) as info:
        client(testkit).post("orders", "/x", **kwargs)
    assert info.value.field == field
    assert testkit.requests(0)["total"] == 0


def test_bus_arguments_are_checked_by_name() -> None:
    with courierkit.Bus.connect({"urls": ["memory://hostile-args"]}) as bus:
        bus.declare_queue("q")
        for call, field in [
            (lambda: bus.publish("", "q", 5), "body"),  # type: ignore[arg-type]
            (lambda: bus.publish("", "q", b"x", headers={"a": None}), "headers.a"),  # type: ignore[dict-item]
            (lambda: bus.publish("", "q", b"x", deadline=2**70), "deadline_ms"),
            (lambda: bus.consume("q", prefetch=2**16), "prefetch"),
            (lambda: bus.declare_queue("r", ttl=-1), "ttl_ms"),
        ]:
            with pytest.raises(courierkit.ConfigError) as info:
                call()
            assert info.value.field == field


def test_a_config_nested_too_deeply_is_a_config_error() -> None:
    deep: dict = {}
    node = deep
    for _ in range(100_000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(courierkit.ConfigError) as info:
        courierkit.Client(deep)
    assert info.value.field == "config"


def test_a_panic_inside_core_is_an_internal_error_sync() -> None:
    from courierkit import _courier

    with pytest.raises(courierkit.InternalError, match="forced panic"):
        _courier._panic_for_tests(False)


async def test_a_panic_inside_core_is_an_internal_error_async() -> None:
    from courierkit import _courier

    with pytest.raises(courierkit.InternalError, match="forced panic"):
        await _courier._panic_for_tests(True)
