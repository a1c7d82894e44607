"""Cross-language interop scenarios over RabbitMQ (tests/interop/PROTOCOL.md).

Usage: .venv/bin/python tests/interop/run.py [--languages python,node,kotlin,rust,swift]
                                             [--orders 1000] [--duplicates 100]

Builds each language's agent, starts one courier-testkit (its upstream 0 answers the
first requests of every scenario with 503, so the servers' courier Clients retry), then
runs the order flow in rotations, so every available language plays publisher,
consumer and server, and three scenarios in which pika, a plain AMQP client, stands in
for one side. Prints one line per scenario, a grid of who played what, and exits
non-zero when a scenario or a build failed.

Needs RabbitMQ (COURIER_AMQP_URL, default the local guest account) and the testkit
binary (COURIER_TESTKIT, default $CARGO_TARGET_DIR/debug/courier-testkit).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import common
import pika
import pika.exceptions
from common import ALL_LANGUAGES, AMQP_URL, build, log, missing_expected, start_wrapper

ROLES = ["publish", "consume", "serve+http"]
# How much of a role's wait is allowed in all (the agents' --max-ms); a healthy
# scenario takes seconds, so this only bounds a broken one.
AGENT_MAX_MS = 90_000
# Waiting for the consumer and server to be subscribed before anything is published, so
# no request is unroutable because its server was still starting (a JVM takes seconds).
READY_TIMEOUT_S = 60.0
# The first requests of each scenario get a 503. Two, because a call makes at most
# three attempts: even a call whose retries follow each other immediately gets its 200.
SCRIPTED_503 = 2
# The testkit keeps only its last 1000 requests in full; polled this often, none are lost.
POLL_LOG_S = 0.2
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def traceparent() -> tuple[str, str]:
    """A new root W3C traceparent, as a foreign (non-courier) service makes one, and its trace id."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


def trace_id_of(header: Any) -> str | None:
    parts = str(header).split("-") if header else []
    return parts[1] if len(parts) == 4 else None


# ---------------------------------------------------------------------------------------
# The testkit: one process for the whole run, upstream 0 reset for every scenario.


class Testkit(common.Testkit):
    def __init__(self) -> None:
        super().__init__(upstreams=1)
        self.upstream: str = self.upstreams[0]

    def prepare(self) -> None:
        """Forgets the last scenario's requests and scripts this one's 503s."""
        self.send("POST", "/upstreams/0/reset")
        self.send("PUT", "/upstreams/0/behavior", {"script": [{"status": 503}] * SCRIPTED_503})


class UpstreamLog:
    """Follows upstream 0's request log while a scenario runs: the trace ids each order's
    requests carried (every attempt's ``traceparent``) and how many went unseen."""

    def __init__(self, kit: Testkit) -> None:
        self.kit = kit
        self.traces: dict[int, set[str]] = defaultdict(set)
        self.total = 0
        self.missed = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        snapshot = self.kit.send("GET", "/upstreams/0/requests")
        new = snapshot["total"] - self.total
        kept = snapshot["requests"]
        self.missed += max(0, new - len(kept))
        for request in kept[len(kept) - min(new, len(kept)) :] if new > 0 else []:
            match = re.fullmatch(r"/price/(\d+)", request["path"])
            trace = trace_id_of(request["headers"].get("traceparent"))
            if match and trace:
                self.traces[int(match.group(1))].add(trace)
        self.total = snapshot["total"]

    def _follow(self) -> None:
        while not self.stopped.wait(POLL_LOG_S):
            self._poll()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        self._poll()


# ---------------------------------------------------------------------------------------
# Agents: one process per role, speaking PROTOCOL.md.


class Agent:
    def __init__(self, lang: str, role: str, args: list[str], logs: Path, tag: str) -> None:
        self.lang, self.role = lang, role
        self.lines: list[dict[str, Any]] = []
        self.garbage: list[str] = []
        self.stderr_path = logs / f"{tag}-{role}-{lang}.stderr"
        with open(self.stderr_path, "w") as stderr:
            self.proc = start_wrapper(lang, role, args, stderr)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                line = json.loads(raw)
                if not isinstance(line, dict):
                    raise ValueError("not an object")
                self.lines.append(line)
            except ValueError:
                self.garbage.append(raw.rstrip("\n"))

    @property
    def name(self) -> str:
        return f"{self.role} ({self.lang})"

    def events(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == event]

    def kill(self) -> None:
        """SIGTERM to the agent's process group, SIGKILL if it is still there 3 s later."""
        if self.proc.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def finish(self) -> None:
        self.reader.join(timeout=5)

    def stderr_tail(self, n: int = 15) -> str:
        lines = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(f"      | {line}" for line in lines[-n:])

    def check_output(self, p: Problems, counted: str, done_key: str | None) -> None:
        """Exit code 0, only JSON objects on stdout, the last one a done event whose
        `done_key` counts the `counted` lines."""
        if self.proc.returncode != 0:
            p.add(f"{self.name} exited with {self.proc.returncode}")
        if self.garbage:
            p.add(f"{self.name}: not JSON objects on stdout", repr(self.garbage[0]))
        if not self.lines or self.lines[-1].get("event") != "done":
            p.add(f"{self.name}: the last line is not a done event")
        elif done_key and self.lines[-1].get(done_key) != len(self.events(counted)):
            p.add(
                f"{self.name}: done says {done_key}={self.lines[-1].get(done_key)}, "
                f"but it printed {len(self.events(counted))} {counted} lines"
            )


# ---------------------------------------------------------------------------------------
# pika: a plain AMQP client, the other side of the wire-compatibility scenarios.


class Broker:
    """Short-lived pika connections for the runner's own look-ups and cleanup."""

    def __init__(self, url: str) -> None:
        self.params = pika.URLParameters(url)

    def connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.params)

    def queue_state(self, name: str) -> tuple[int, int] | None:
        """(ready messages, consumers) of a queue, None when it does not exist."""
        conn = self.connect()
        try:
            ok = conn.channel().queue_declare(name, passive=True)
            return ok.method.message_count, ok.method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            return None
        finally:
            if conn.is_open:
                conn.close()

    def delete(self, run: str) -> None:
        conn = self.connect()
        try:
            channel = conn.channel()
            for queue in ("orders", "orders.dlq", "pricing", "pricing.dlq"):
                channel.queue_delete(f"interop.{run}.{queue}")
            channel.exchange_delete(f"interop.{run}.orders")
        finally:
            conn.close()


def quorum_arguments(queue: str) -> dict[str, Any]:
    """What courier sends when it declares `queue` with its defaults, so a queue pika
    declares is the same queue any agent would declare."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": 5,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": f"{queue}.dlq",
    }


class PikaThread:
    """Runs ``body(connection, thread)`` on a thread with a connection of its own (pika's
    BlockingConnection is not thread-safe). A body that serves sets ``ready`` once
    subscribed and returns when ``stopped`` is set; ``error`` is what it raised."""

    def __init__(self, broker: Broker, body: Callable[[pika.BlockingConnection, PikaThread], None]) -> None:
        self.broker, self.body = broker, body
        self.error: BaseException | None = None
        self.stopped = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn = self.broker.connect()
            try:
                self.body(conn, self)
            finally:
                if conn.is_open:
                    conn.close()
        except BaseException as e:  # the scenario reports it
            self.error = e
        finally:
            # Also when it failed before subscribing: whoever waits then finds `error`.
            self.ready.set()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=15)
        if self.alive():
            self.error = self.error or TimeoutError("the pika thread did not stop within 15 s")


Body = Callable[[pika.BlockingConnection, PikaThread], None]


def pika_publisher(run: str, n: int, d: int, sent: dict[int, str]) -> Body:
    """Publishes orders as a publish agent does, with pika: message id `order-<i>`, a
    traceparent of its own, JSON, persistent, confirmed; then the first `d` again with
    the same message ids and traceparents."""

    def body(conn: pika.BlockingConnection, thread: PikaThread) -> None:
        channel = conn.channel()
        channel.confirm_delivery()
        exchange = f"interop.{run}.orders"
        channel.exchange_declare(exchange, "topic", durable=True)
        channel.queue_bind(f"interop.{run}.orders", exchange, "order.placed")
        headers: dict[int, str] = {}
        for i in [*range(n), *range(d)]:
            if i not in headers:
                headers[i], sent[i] = traceparent()
            channel.basic_publish(
                exchange,
                "order.placed",
                json.dumps({"order": i}).encode(),
                pika.BasicProperties(
                    message_id=f"order-{i}",
                    content_type="application/json",
                    delivery_mode=2,
                    headers={"traceparent": headers[i]},
                ),
                mandatory=True,
            )

    return body


@dataclass
class RpcReply:
    order: Any
    price: Any
    trace_id: str | None


def pika_rpc_client(run: str, n: int, sent: dict[int, str], replies: dict[str, list[RpcReply]]) -> Body:
    """Calls the pricing queue `n` times with pika: correlation id `<run>-<i>`, reply_to
    an exclusive server-named queue, a traceparent of its own; collects the replies by
    correlation id."""

    def body(conn: pika.BlockingConnection, thread: PikaThread) -> None:
        channel = conn.channel()
        reply_queue = channel.queue_declare("", exclusive=True).method.queue

        def on_reply(_ch: Any, _method: Any, props: pika.BasicProperties, raw: bytes) -> None:
            reply = json.loads(raw)
            trace = trace_id_of((props.headers or {}).get("traceparent"))
            replies.setdefault(str(props.correlation_id), []).append(
                RpcReply(reply.get("order"), reply.get("price"), trace)
            )

        channel.basic_consume(reply_queue, on_reply, auto_ack=True)
        for i in range(n):
            header, sent[i] = traceparent()
            channel.basic_publish(
                "",
                f"interop.{run}.pricing",
                json.dumps({"order": i}).encode(),
                pika.BasicProperties(
                    correlation_id=f"{run}-{i}",
                    reply_to=reply_queue,
                    content_type="application/json",
                    headers={"traceparent": header},
                ),
            )
        deadline = time.monotonic() + AGENT_MAX_MS / 1000
        while len(replies) < n and time.monotonic() < deadline and not thread.stopped.is_set():
            conn.process_data_events(time_limit=0.1)
        # A moment longer, so a second reply to any correlation id would be seen too.
        conn.process_data_events(time_limit=0.5)

    return body


def pika_rpc_server(run: str, seen: dict[int, list[str | None]]) -> Body:
    """Answers the pricing queue with pika, as any AMQP service would: to reply_to
    through the default exchange, with the request's correlation id and a child
    traceparent (same trace id, new span id)."""

    def body(conn: pika.BlockingConnection, thread: PikaThread) -> None:
        channel = conn.channel()
        queue = f"interop.{run}.pricing"
        channel.queue_declare(queue, durable=True, arguments=quorum_arguments(queue))
        channel.basic_qos(prefetch_count=50)

        def on_request(ch: Any, method: Any, props: pika.BasicProperties, raw: bytes) -> None:
            order = json.loads(raw)["order"]
            trace = trace_id_of((props.headers or {}).get("traceparent"))
            seen[order].append(trace)
            headers = {"traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"} if trace else {}
            ch.basic_publish(
                "",
                props.reply_to,
                json.dumps({"order": order, "price": order * 10 + 1}).encode(),
                pika.BasicProperties(
                    correlation_id=props.correlation_id, content_type="application/json", headers=headers
                ),
            )
            ch.basic_ack(method.delivery_tag)

        channel.basic_consume(queue, on_request)
        thread.ready.set()
        while not thread.stopped.is_set():
            conn.process_data_events(time_limit=0.1)

    return body


# ---------------------------------------------------------------------------------------
# Scenarios.


@dataclass
class Spec:
    number: int
    title: str
    publish: str | None  # a language, "pika", or None (pika calls the server directly)
    consume: str  # a language, or "pika" (an RPC client in place of the consumer)
    serve: str  # a language, or "pika" (an RPC server, without HTTP)

    def roles(self) -> dict[str, str]:
        roles = {"publish": self.publish or "", "consume": self.consume, "serve+http": self.serve}
        return {role: who for role, who in roles.items() if who}

    def who(self) -> str:
        return "  ".join(f"{role}={who}" for role, who in self.roles().items())


@dataclass
class Outcome:
    spec: Spec
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems


class Problems:
    """Failed checks grouped by kind, each with its first few examples, so a scenario
    where every order fails says so in one line, not a thousand."""

    def __init__(self) -> None:
        self.kinds: dict[str, list[str]] = {}

    def add(self, kind: str, example: Any = None) -> None:
        self.kinds.setdefault(kind, [])
        if example is not None:
            self.kinds[kind].append(str(example))

    def lines(self) -> list[str]:
        out = []
        for kind, examples in self.kinds.items():
            if examples:
                shown = ", ".join(examples[:5]) + (", ..." if len(examples) > 5 else "")
                out.append(f"{kind}: {len(examples)} ({shown})")
            else:
                out.append(kind)
        return out


def exactly_once(problems: Problems, who: str, orders: list[Any], n: int) -> None:
    counts = Counter(orders)
    for i in range(n):
        if counts[i] == 0:
            problems.add(f"{who}: orders missing", i)
    for order, count in counts.items():
        if not (isinstance(order, int) and 0 <= order < n):
            problems.add(f"{who}: unknown orders", order)
        elif count > 1:
            problems.add(f"{who}: orders more than once", f"{order} x{count}")


class Runner:
    def __init__(self, bus: str, kit: Testkit, orders: int, duplicates: int, logs: Path) -> None:
        self.bus_url, self.kit, self.n, self.d, self.logs = bus, kit, orders, duplicates, logs
        self.broker = Broker(bus)

    def agent(self, lang: str, role: str, run: str, tag: str, **options: Any) -> Agent:
        args = ["--bus", self.bus_url, "--run", run]
        for name, value in {**options, "max_ms": AGENT_MAX_MS}.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        return Agent(lang, role, args, self.logs, tag)

    def wait_ready(self, run: str, queues: list[str], agents: list[Agent]) -> None:
        """Until every queue in `queues` has a consumer. Raises when an agent exits
        first, or after READY_TIMEOUT_S."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            states = [self.broker.queue_state(f"interop.{run}.{q}") for q in queues]
            if all(state and state[1] > 0 for state in states):
                return
            for agent in agents:
                if agent.proc.poll() is not None:
                    raise RuntimeError(f"{agent.name} exited with {agent.proc.returncode} before subscribing")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nobody consumed {queues} within {READY_TIMEOUT_S:.0f} s")
            time.sleep(0.1)

    def wait_all(self, agents: list[Agent], finite: list[PikaThread], serving: list[PikaThread]) -> list[str]:
        """Until every agent has exited and every `finite` thread ended (`serving` ones
        run until stopped). When one fails, the others are stopped at once, since they
        would only wait for their --max-ms."""
        problems = []
        deadline = time.monotonic() + AGENT_MAX_MS / 1000 + 10
        while True:
            if any(a.proc.poll() not in (None, 0) for a in agents) or any(
                t.error for t in [*finite, *serving]
            ):
                break
            if all(a.proc.poll() is not None for a in agents) and not any(t.alive() for t in finite):
                break
            if time.monotonic() > deadline:
                problems.append("the scenario ran past its deadline")
                break
            time.sleep(0.1)
        for agent in agents:
            if agent.proc.poll() is None:
                problems.append(f"{agent.name} was still running and was killed")
                agent.kill()
            agent.finish()
        return problems

    def run(self, spec: Spec) -> Outcome:
        outcome = Outcome(spec)
        run = uuid.uuid4().hex[:8]
        tag = f"{spec.number}-{run}"
        started = time.monotonic()
        agents: list[Agent] = []
        finite: list[PikaThread] = []  # pika threads that end by themselves
        pika_server: PikaThread | None = None
        upstream: UpstreamLog | None = None
        published: dict[int, str] = {}  # order -> the trace id its publisher gave it
        replies: dict[str, list[RpcReply]] = {}
        pika_seen: dict[int, list[str | None]] = defaultdict(list)
        publisher = consumer = server = None
        try:
            self.kit.prepare()
            # Whoever subscribes starts first; publishing waits until they have.
            if spec.serve == "pika":
                pika_server = PikaThread(self.broker, pika_rpc_server(run, pika_seen))
                if not pika_server.ready.wait(READY_TIMEOUT_S) or pika_server.error:
                    raise RuntimeError(f"the pika RPC server did not subscribe: {pika_server.error!r}")
            else:
                # Duplicates never reach the server (the consumer skips them), so it
                # stops once it has served every order.
                server = self.agent(spec.serve, "serve", run, tag, http=self.kit.upstream, expect=self.n)
                agents.append(server)
            if spec.consume != "pika":
                # Whoever publishes (an agent or pika) sends the first `d` orders again;
                # the consumer stops only once its dedup has skipped every one of them,
                # so none can arrive unseen after it is gone.
                consumer = self.agent(spec.consume, "consume", run, tag, expect=self.n, duplicates=self.d)
                agents.append(consumer)
            self.wait_ready(run, ["pricing"] + (["orders"] if consumer else []), agents)
            if server:
                upstream = UpstreamLog(self.kit)
            if spec.publish == "pika":
                finite.append(PikaThread(self.broker, pika_publisher(run, self.n, self.d, published)))
            elif spec.publish:
                publisher = self.agent(spec.publish, "publish", run, tag, count=self.n, duplicates=self.d)
                agents.append(publisher)
            if spec.consume == "pika":
                finite.append(PikaThread(self.broker, pika_rpc_client(run, self.n, published, replies)))
            outcome.problems += self.wait_all(agents, finite, [pika_server] if pika_server else [])
        except Exception as e:
            outcome.problems.append(f"{type(e).__name__}: {e}")
            for agent in agents:
                agent.kill()
                agent.finish()
        finally:
            for thread in [*finite, *([pika_server] if pika_server else [])]:
                thread.stop()
                if thread.error:
                    outcome.problems.append(f"pika: {type(thread.error).__name__}: {thread.error}")
            if upstream:
                upstream.stop()
        outcome.seconds = time.monotonic() - started
        checks = Problems()
        self.check(checks, spec, run, publisher, consumer, server, published, replies, pika_seen, upstream)
        outcome.problems += checks.lines()
        try:
            self.broker.delete(run)
        except Exception as e:
            outcome.problems.append(f"deleting run {run}'s queues: {e}")
        if outcome.problems:
            for agent in agents:
                if tail := agent.stderr_tail():
                    outcome.problems.append(f"{agent.name} stderr, {agent.stderr_path}:\n{tail}")
        else:
            outcome.notes.append(self.describe(spec, consumer, server, replies, pika_seen, upstream))
        return outcome

    def check(
        self,
        p: Problems,
        spec: Spec,
        run: str,
        publisher: Agent | None,
        consumer: Agent | None,
        server: Agent | None,
        published: dict[int, str],
        replies: dict[str, list[RpcReply]],
        pika_seen: dict[int, list[str | None]],
        upstream: UpstreamLog | None,
    ) -> None:
        """PROTOCOL.md's checks, for whichever sides this scenario has."""
        n = self.n
        if publisher:
            publisher.check_output(p, "published", None)
            done = publisher.lines[-1] if publisher.lines else {}
            if done.get("event") == "done" and done.get("published") != n + self.d:
                p.add(f"publish: done says published={done.get('published')}, expected {n + self.d}")
            lines = publisher.events("published")
            exactly_once(p, "publish", [line.get("order") for line in lines], n)
            for line in lines:
                order, trace = line.get("order"), line.get("trace_id")
                if line.get("message_id") != f"order-{order}":
                    p.add("publish: wrong message ids", line.get("message_id"))
                if not TRACE_ID.match(str(trace)):
                    p.add("publish: trace ids that are not 32 hex digits", trace)
                if isinstance(order, int):
                    published[order] = str(trace)
        expected_trace = published.get
        if consumer:
            consumer.check_output(p, "processed", "processed")
            lines = consumer.events("processed")
            exactly_once(p, "consume", [line.get("order") for line in lines], n)
            for line in lines:
                order = line.get("order")
                if not isinstance(order, int):
                    continue
                if line.get("price") != order * 10 + 1:
                    p.add("consume: wrong prices", f"order {order}: {line.get('price')}")
                if line.get("message_id") != f"order-{order}":
                    p.add("consume: wrong message ids", f"order {order}: {line.get('message_id')}")
                if line.get("trace_id") != expected_trace(order):
                    p.add("consume: trace id differs from the publisher's", order)
                if line.get("reply_trace_id") != line.get("trace_id"):
                    p.add("consume: reply's trace id differs from the delivery's", order)
        if spec.consume == "pika":
            for i in range(n):
                got = replies.get(f"{run}-{i}", [])
                if len(got) != 1:
                    p.add("pika client: correlation ids not answered exactly once", f"{run}-{i} x{len(got)}")
                elif (got[0].order, got[0].price) != (i, i * 10 + 1):
                    p.add("pika client: wrong replies", f"{i}: order {got[0].order} price {got[0].price}")
                elif got[0].trace_id != expected_trace(i):
                    p.add("pika client: reply's traceparent has another trace id", i)
            for cid in replies:
                if not cid.startswith(f"{run}-"):
                    p.add("pika client: replies with unknown correlation ids", cid)
        if server:
            server.check_output(p, "served", "served")
            lines = server.events("served")
            exactly_once(p, "serve", [line.get("order") for line in lines], n)
            attempts = 0
            for line in lines:
                order = line.get("order")
                attempts += int(line.get("http_attempts") or 0)
                if line.get("http_status") != 200:
                    p.add("serve: calls that did not end 200", f"order {order}: {line.get('http_status')}")
                if line.get("trace_id") != expected_trace(order):
                    p.add("serve: trace id differs from the publisher's", order)
            retries = attempts - len(lines)
            if retries != SCRIPTED_503:
                p.add(f"serve: {retries} retries reported, expected the {SCRIPTED_503} scripted 503s")
            if upstream:
                if upstream.total != attempts:
                    p.add(
                        f"upstream received {upstream.total} requests, the servers report {attempts} attempts"
                    )
                if upstream.missed:
                    p.add(f"upstream: {upstream.missed} requests dropped from the log before they were read")
                for i in range(n):
                    if upstream.traces.get(i) != {expected_trace(i)}:
                        p.add("upstream: traceparent trace ids differ from the publisher's", i)
        if spec.serve == "pika":
            for i in range(n):
                if pika_seen.get(i) != [expected_trace(i)]:
                    p.add("pika server: requests not seen once with the publisher's trace id", i)
        # Every duplicate was delivered and skipped (not left behind), nothing dead-lettered.
        queues = (["orders", "orders.dlq"] if spec.publish else []) + ["pricing.dlq"]
        for queue in queues:
            state = self.broker.queue_state(f"interop.{run}.{queue}")
            if state and state[0]:
                p.add(f"{state[0]} messages left in interop.{run}.{queue}")

    def describe(
        self,
        spec: Spec,
        consumer: Agent | None,
        server: Agent | None,
        replies: dict[str, list[RpcReply]],
        pika_seen: dict[int, list[str | None]],
        upstream: UpstreamLog | None,
    ) -> str:
        parts = [f"{self.n} orders" + (f" + {self.d} duplicates" if spec.publish else "")]
        if consumer:
            parts.append(f"{len(consumer.events('processed'))} processed")
        if replies:
            parts.append(f"{len(replies)} pika RPC replies")
        if server and upstream:
            parts.append(
                f"{len(server.events('served'))} served, upstream {upstream.total} requests "
                f"({SCRIPTED_503} retried 503s)"
            )
        if pika_seen:
            parts.append(f"{len(pika_seen)} answered by pika")
        parts.append("trace ids all equal")
        return ", ".join(parts)


# ---------------------------------------------------------------------------------------
# Main: build, plan, run, report.


def plan(available: list[str]) -> list[Spec]:
    """The order flow once per available language, rotated so each plays every role
    (with one language, that language alone); then the pika scenarios around the
    python agent (else the first available one)."""
    specs = []
    m = len(available)
    for k in range(m):
        title = "order flow" if k == 0 else f"order flow, rotation {k}"
        specs.append(Spec(k + 1, title, available[k], available[(k + 1) % m], available[(k + 2) % m]))
    if available:
        courier = "python" if "python" in available else available[0]
        specs += [
            Spec(m + 1, "pika publisher", "pika", courier, courier),
            Spec(m + 2, "pika RPC client", None, "pika", courier),
            Spec(m + 3, "pika RPC server", courier, courier, "pika"),
        ]
    return specs


def grid(languages: list[str], state: dict[str, str], outcomes: list[Outcome]) -> str:
    columns = [*languages, *(["pika"] if any("pika" in o.spec.roles().values() for o in outcomes) else [])]
    rows = []
    for role in ROLES:
        cells = []
        for lang in columns:
            if lang != "pika" and state.get(lang) != "ok":
                cells.append(state.get(lang, ""))
                continue
            played = [
                f"{o.spec.number}:{'ok' if o.passed else 'FAIL'}"
                for o in outcomes
                if o.spec.roles().get(role) == lang
            ]
            cells.append(" ".join(played) or "-")
        rows.append([role, *cells])
    header = ["role", *columns]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row) for row in [header, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", default=",".join(ALL_LANGUAGES))
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--duplicates", type=int, default=100)
    args = parser.parse_args()
    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    unknown = set(languages) - set(ALL_LANGUAGES)
    if unknown:
        parser.error(f"unknown languages {sorted(unknown)}; known: {', '.join(ALL_LANGUAGES)}")
    if args.duplicates > args.orders:
        parser.error("--duplicates cannot exceed --orders")
    started = time.monotonic()
    bus = AMQP_URL
    try:
        Broker(bus).connect().close()
    except pika.exceptions.AMQPError as e:
        log(f"run.py: cannot reach RabbitMQ at {bus}: {e!r} (make rabbitmq starts one)")
        return 2
    state = build(languages)
    available = [lang for lang in ALL_LANGUAGES if state.get(lang) == "ok"]
    absent = missing_expected(languages, state)
    specs = plan(available)
    missing = [f"{lang}: {state[lang]}" for lang in languages if state[lang] != "ok"]
    log(
        f"rotations over {', '.join(available) or 'nothing'}"
        + (f" ({'; '.join(missing)})" if missing else "")
    )
    logs = Path(tempfile.mkdtemp(prefix="courier-interop-"))
    kit = Testkit()
    outcomes = []
    try:
        runner = Runner(bus, kit, args.orders, args.duplicates, logs)
        for spec in specs:
            outcome = runner.run(spec)
            outcomes.append(outcome)
            verdict = "PASS" if outcome.passed else "FAIL"
            log(f"{verdict} {spec.number} {spec.title}: {spec.who()}  ({outcome.seconds:.1f} s)")
            for line in outcome.notes + outcome.problems:
                log(f"    {line}")
    finally:
        kit.close()
    passed = sum(o.passed for o in outcomes)
    failed = len(outcomes) - passed
    broken = [lang for lang in languages if state[lang] == "build failed"]
    log("")
    log(grid(languages, state, outcomes))
    if any("pika" in o.spec.roles().values() for o in outcomes):
        log("(pika: publish = pika publisher, consume = pika RPC client, serve = pika RPC server, no HTTP)")
    log("")
    if failed or broken:
        log(f"agent logs kept in {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)
    tail = f", {failed} failed" if failed else ""
    tail += f", builds failed: {', '.join(broken)}" if broken else ""
    tail += f", expected languages missing: {', '.join(absent)}" if absent else ""
    log(f"interop: {passed} scenarios passed{tail} ({time.monotonic() - started:.0f} s)")
    return 0 if outcomes and not failed and not broken and not absent else 1


if __name__ == "__main__":
    sys.exit(main())
