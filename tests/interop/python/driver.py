"""The Python parity driver: runs the cases of tests/interop/cases/*.json through courier's
Python API and prints one normalised outcome per case (PROTOCOL.md, "Parity suite").

Usage: driver.py CASES.json... --testkit-control URL --testkit-upstreams URL,URL,... --amqp URL

One JSON object per line on stdout, ``{"case": name, "outcome": {...}}``; logs on stderr.
The sync API, since every case runs its calls and steps one after another.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
import uuid
from typing import Any

import courierkit

# Bounds every control-API request; the testkit answers in milliseconds.
CONTROL_TIMEOUT_S = 10


class Testkit:
    def __init__(self, control: str, upstreams: list[str]) -> None:
        self.control, self.upstreams = control, upstreams

    def send(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.control + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=CONTROL_TIMEOUT_S) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def totals(self, count: int) -> list[int]:
        return [self.send("GET", f"/upstreams/{i}/requests")["total"] for i in range(count)]


def substitute(value: Any, names: dict[str, str]) -> Any:
    """The case with every placeholder string (``{upstream:N}``, ``{memory}``, ``{amqp}``)
    replaced by what it stands for in this run."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    return value


def seconds(ms: int | None) -> float | None:
    """A case's milliseconds (the schema's unit) as the seconds Python takes."""
    return None if ms is None else ms / 1000


def error(e: courierkit.CourierError) -> dict[str, Any]:
    outcome: dict[str, Any] = {"error": e.kind}
    if isinstance(e, courierkit.ConfigError):
        outcome["field"] = e.field
    return outcome


def run_http(case: dict[str, Any], kit: Testkit) -> dict[str, Any]:
    count = len(case["upstreams"])
    kit.send("POST", "/reset")
    for i, behavior in enumerate(case["upstreams"]):
        kit.send("PUT", f"/upstreams/{i}/behavior", behavior)
    client = courierkit.Client(case["config"])
    outcomes = []
    try:
        for call in case["calls"]:
            before = kit.totals(count)
            try:
                if "reconfigure" in call:
                    client.reconfigure(call["reconfigure"])
                    outcomes.append({"ok": True, "requests": [0] * count})
                    continue
                resp = client.call(
                    call["method"],
                    call["target"],
                    call.get("path", ""),
                    headers=call.get("headers"),
                    body=call.get("body"),
                    deadline=seconds(call.get("deadline_ms")),
                    idempotency_key=call.get("idempotency_key"),
                    idempotent=call.get("idempotent"),
                    version=call.get("version"),
                )
                endpoint = resp.endpoint.rstrip("/")
                urls = [url.rstrip("/") for url in kit.upstreams]
                outcome: dict[str, Any] = {
                    "status": resp.status,
                    "attempts": resp.attempts,
                    "upstream": urls.index(endpoint) if endpoint in urls else endpoint,
                }
            except courierkit.CourierError as e:
                outcome = error(e)
            outcome["requests"] = [a - b for a, b in zip(kit.totals(count), before)]
            outcomes.append(outcome)
    finally:
        client.close()
    return {"calls": outcomes}


class HandlerFailed(Exception):
    """What a `process_fail` step's handler raises inside `Delivery.process`."""


def step(bus: courierkit.Bus, kit: Testkit, s: dict[str, Any]) -> dict[str, Any]:
    op = s["op"]
    if op == "testkit":
        # A control-API request (cutting the bus's connection through a proxy); an answer
        # other than 2xx raises urllib's HTTPError, which ends the case as a driver error.
        kit.send(s["method"], s["path"], s.get("body"))
    elif op == "declare_queue":
        bus.declare_queue(s["queue"], retry_delays=[ms / 1000 for ms in s.get("retry_delays_ms") or []])
    elif op == "publish":
        bus.publish(
            s.get("exchange", ""),
            s["routing_key"],
            s.get("body", ""),
            message_id=s.get("message_id"),
            delay=seconds(s.get("delay_ms")),
            ttl=seconds(s.get("ttl_ms")),
            headers=s.get("headers"),
        )
    elif op == "publish_many":
        messages = [
            courierkit.BatchMessage(
                m.get("exchange", ""), m["routing_key"], m.get("body", ""), message_id=m.get("message_id")
            )
            for m in s["messages"]
        ]
        results = bus.publish_many(messages)
        return {
            "results": [error(r) if isinstance(r, courierkit.CourierError) else {"ok": True} for r in results]
        }
    elif op == "request":
        bus.request(
            s["routing_key"],
            s.get("body", ""),
            exchange=s.get("exchange", ""),
            timeout=s["timeout_ms"] / 1000,
        )
    elif op == "consume":
        ids = []
        with bus.consume(s["queue"], dedup=s["dedup"]) as consumer:
            while True:
                try:
                    d = consumer.next(timeout=s["wait_ms"] / 1000)
                except courierkit.TimeoutError:
                    break
                if d is None:
                    raise RuntimeError("the consumer closed")
                ids.append(d.message_id)
                if s["settle"] == "forward":
                    d.forward("", s["forward_to"], d.body)
                elif s["settle"] == "process":
                    with d.process():
                        pass
                elif s["settle"] == "process_fail":
                    try:
                        with d.process(requeue=False):
                            raise HandlerFailed
                    except HandlerFailed:
                        pass
                else:
                    getattr(d, s["settle"])()
        return {"message_ids": ids}
    elif op == "consume_batches":
        ids = []
        with bus.consume(s["queue"], dedup=s["dedup"]) as consumer:
            while True:
                batch = consumer.next_batch(s["max"], timeout=s["wait_ms"] / 1000)
                if batch is None:
                    raise RuntimeError("the consumer closed")
                if len(batch) == 0:
                    break
                ids.extend(d.message_id for d in batch)
                getattr(batch, s["settle"])()
        return {"message_ids": ids}
    elif op == "stats":
        stats = bus.stats()
        return {field: stats[field] for field in s["fields"]}
    else:
        raise ValueError(f"unknown op {op!r}")
    return {"ok": True}


def run_bus(case: dict[str, Any], kit: Testkit) -> dict[str, Any]:
    outcomes = []
    with courierkit.Bus.connect(case["config"]) as bus:
        for s in case["steps"]:
            try:
                outcomes.append(step(bus, kit, s))
            except courierkit.CourierError as e:
                outcomes.append(error(e))
    return {"steps": outcomes}


def run_config(case: dict[str, Any]) -> dict[str, Any]:
    try:
        if case["target"] == "client":
            courierkit.Client(case["config"]).close()
        else:
            courierkit.Bus.connect(case["config"]).close()
    except courierkit.CourierError as e:
        return error(e)
    return {"ok": True}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--testkit-control", required=True)
    parser.add_argument("--testkit-upstreams", required=True)
    parser.add_argument("--amqp", required=True)
    args = parser.parse_args()
    upstreams = args.testkit_upstreams.split(",")
    kit = Testkit(args.testkit_control, upstreams)
    for path in args.cases:
        with open(path) as f:
            cases = json.load(f)["cases"]
        for raw in cases:
            names = {f"{{upstream:{i}}}": url for i, url in enumerate(upstreams)}
            names["{memory}"] = f"memory://parity-python-{uuid.uuid4().hex}"
            names["{amqp}"] = args.amqp
            case = substitute(raw, names)
            try:
                if case["kind"] == "http":
                    outcome = run_http(case, kit)
                elif case["kind"] == "bus":
                    outcome = run_bus(case, kit)
                elif case["kind"] == "config":
                    outcome = run_config(case)
                else:
                    raise ValueError(f"unknown kind {case['kind']!r}")
            except Exception as e:  # reported as this case's outcome, the next case still runs
                outcome = {"driver_error": f"{type(e).__name__}: {e}"}
            sys.stdout.write(json.dumps({"case": raw["name"], "outcome": outcome}) + "\n")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
