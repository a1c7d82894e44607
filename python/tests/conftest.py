"""Fixtures: the courier-testkit binary (HTTP upstreams with fault injection), RabbitMQ, and
bus configs for tests parametrized over the transport."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def wait_for_child(pid: int, hung: str, timeout_s: float = 30) -> int:
    """The exit code of forked child ``pid``; kills it and fails with ``hung`` if it has
    not exited within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(hung)
        time.sleep(0.05)


def testkit_binary() -> str:
    if path := os.environ.get("COURIER_TESTKIT"):
        return path
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/courier/target"))
    return str(Path(target) / "debug" / "courier-testkit")


class Testkit:
    """Drives a courier-testkit process over its control API."""

    __test__ = False  # a fixture class, not a test class, wherever it is imported

    def __init__(self, upstreams: int) -> None:
        # The process exits when its stdin closes, so it cannot outlive the test run.
        self.proc = subprocess.Popen(
            [testkit_binary(), "--upstreams", str(upstreams)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        info = json.loads(self.proc.stdout.readline())
        self.control: str = info["control"]
        self.urls: list[str] = info["upstreams"]
        # HTTPS upstreams by name (mtls, tls12, expired, ...) and the PKI directory they use.
        self.tls_dir = Path(info["tls"]["dir"])
        self.tls_urls: dict[str, str] = info["tls"]["urls"]
        # The OTLP/HTTP receiver's base URL; GET /spans and /metrics read back exports.
        self.otlp: str = info["otlp"]

    def _send(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.control + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def behave(self, upstream: int, **behavior: Any) -> None:
        self._send("PUT", f"/upstreams/{upstream}/behavior", behavior)

    def requests(self, upstream: int) -> dict[str, Any]:
        return self._send("GET", f"/upstreams/{upstream}/requests")

    def stop(self, upstream: int) -> None:
        self._send("POST", f"/upstreams/{upstream}/stop")

    def reset(self) -> None:
        self._send("POST", "/reset")

    def exported(self, kind: str) -> list[dict[str, Any]]:
        """What exporters posted to the OTLP receiver: ``spans`` or ``metrics``."""
        with urllib.request.urlopen(f"{self.otlp}/{kind}", timeout=10) as resp:
            return json.loads(resp.read())

    def proxy(self, url: str) -> Proxy:
        """A TCP proxy to the host and port of `url` (the testkit's `POST /proxies`)."""
        parts = urllib.parse.urlsplit(url)
        made = self._send("POST", "/proxies", {"target": f"{parts.hostname}:{parts.port}"})
        return Proxy(self, made["index"], made["address"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class Proxy:
    """A testkit TCP proxy: cut or reset its connections, inject latency, a bandwidth cap
    or a blackhole, count the connections it accepted."""

    def __init__(self, kit: Testkit, index: int, address: str) -> None:
        self._kit, self._index, self.address = kit, index, address

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's."""
        parts = urllib.parse.urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{self.address}" if credentials else self.address
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def cut(self) -> None:
        self._kit._send("POST", f"/proxies/{self._index}/cut")

    def reset(self) -> None:
        """Every connection closed with an RST."""
        self._kit._send("POST", f"/proxies/{self._index}/reset")

    def faults(self, latency_ms: int = 0, bandwidth_bytes_per_sec: int = 0, blackhole: bool = False) -> None:
        """Network faults on every connection from now on; no arguments lifts them."""
        faults = {
            "latency_ms": latency_ms,
            "bandwidth_bytes_per_sec": bandwidth_bytes_per_sec,
            "blackhole": blackhole,
        }
        self._kit._send("PUT", f"/proxies/{self._index}/faults", faults)

    def accepted(self) -> int:
        return int(self._kit._send("GET", f"/proxies/{self._index}")["accepted"])


@pytest.fixture(scope="session")
def _testkit_process() -> Iterator[Testkit]:
    kit = Testkit(upstreams=3)
    yield kit
    kit.close()


@pytest.fixture
def testkit(_testkit_process: Testkit) -> Testkit:
    _testkit_process.reset()
    return _testkit_process


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return os.environ.get("COURIER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def bus_config(transport: str, amqp_url: str) -> dict[str, object]:
    """A bus config for a test parametrized over ``transport``: a memory:// broker of its
    own, or the RabbitMQ at ``amqp_url``."""
    if transport == "memory":
        return {"urls": [f"memory://courier-py-{uuid.uuid4().hex}"]}
    return {"urls": [amqp_url]}
