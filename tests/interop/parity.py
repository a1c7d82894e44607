"""The parity suite: one table of behavioural cases, run by a driver in every language
(tests/interop/PROTOCOL.md, "Parity suite").

Usage: .venv/bin/python tests/interop/parity.py [--languages python,node,kotlin,rust,swift]
                                                [CASES.json ...]

Builds each language through its agent wrapper, starts one courier-testkit, runs every
available language's driver (`<lang>/run.sh parity`) over the cases in
tests/interop/cases/*.json (or the files given), one language after another since they
share the testkit, and compares each language's outcome of every case with the case's
expected outcome and with the other languages'. Prints a case x language grid and exits
non-zero on any disagreement, a failed build or a driver that failed.

Needs RabbitMQ (COURIER_AMQP_URL, default the local guest account) for the cases that
use `{amqp}` or `{amqp_proxy}`, and the testkit binary (COURIER_TESTKIT, default
$CARGO_TARGET_DIR/debug/courier-testkit).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import pika
import pika.exceptions
from common import ALL_LANGUAGES, AMQP_URL, ROOT, Testkit, build, log, missing_expected, start_wrapper

CASES = ROOT / "tests/interop/cases"
# A driver runs every case in seconds (the slowest cases wait out a Retry-After of 1 s);
# this only bounds a hung one, JVM start included.
DRIVER_TIMEOUT_S = 300.0
# How much of a difference a grid cell shows; the full differences follow the grid.
CELL_WIDTH = 48


def expected(case: dict[str, Any]) -> Any:
    """The outcome a driver must print for `case`: the per-call or per-step `expect`s of
    http and bus cases, the case's own `expect` otherwise."""
    if case["kind"] == "http":
        return {"calls": [call["expect"] for call in case["calls"]]}
    if case["kind"] == "bus":
        return {"steps": [step["expect"] for step in case["steps"]]}
    return case["expect"]


def differences(want: Any, got: Any, path: str = "") -> list[str]:
    """Where `got` differs from `want`, as `path: want X, got Y` lines. Types matter: 1 and
    1.0 or 1 and true are different outcomes."""
    if isinstance(want, dict) and isinstance(got, dict):
        return [
            line
            for key in [*want, *(k for k in got if k not in want)]
            for line in differences(want.get(key, "<absent>"), got.get(key, "<absent>"), f"{path}.{key}")
        ]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [line for i, (w, g) in enumerate(zip(want, got)) for line in differences(w, g, f"{path}[{i}]")]
    if type(want) is type(got) and want == got:
        return []
    return [f"{path.lstrip('.') or 'outcome'}: want {json.dumps(want)}, got {json.dumps(got)}"]


@dataclass
class Run:
    """One language's driver run: its outcome per case, and what went wrong around them."""

    outcomes: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def has_driver(lang: str) -> bool:
    """Whether the language's wrapper offers the `parity` subcommand (PROTOCOL.md)."""
    return "parity" in common.wrapper(lang).read_text()


def run_driver(lang: str, files: list[Path], kit: Testkit, logs: Path) -> Run:
    run = Run()
    started = time.monotonic()
    stderr_path = logs / f"parity-{lang}.stderr"
    args = [
        *(str(f) for f in files),
        "--testkit-control",
        kit.control,
        "--testkit-upstreams",
        ",".join(kit.upstreams),
        "--amqp",
        AMQP_URL,
    ]
    with open(stderr_path, "w") as stderr:
        proc = start_wrapper(lang, "parity", args, stderr)
        try:
            stdout, _ = proc.communicate(timeout=DRIVER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, _ = proc.communicate(timeout=10)
            run.problems.append(f"no end after {DRIVER_TIMEOUT_S:.0f} s; killed")
    run.seconds = time.monotonic() - started
    for raw in stdout.splitlines():
        try:
            line = json.loads(raw)
            run.outcomes[line["case"]] = line["outcome"]
        except (ValueError, KeyError, TypeError):
            run.problems.append(f"not a case line on stdout: {raw[:200]!r}")
    if proc.returncode:
        run.problems.append(f"exited with {proc.returncode}")
    if run.problems:
        tail = stderr_path.read_text(errors="replace").splitlines()[-15:]
        run.problems += [f"stderr ({stderr_path}):", *(f"  | {line}" for line in tail)]
    return run


REDIS_URL = os.environ.get("COURIER_REDIS_URL", "redis://127.0.0.1:6379/0")
# The queue and routing-key fields of bus steps, namespaced in the RabbitMQ twins.
NAME_FIELDS = ("queue", "routing_key")


def namespaced(step: dict[str, Any]) -> dict[str, Any]:
    """A bus step with its queue names and routing keys (those of a `publish_many`'s
    messages too) under the `courier-parity.{ns}.` prefix."""
    renamed = {**step, **{k: f"courier-parity.{{ns}}.{step[k]}" for k in NAME_FIELDS if k in step}}
    if "messages" in step:
        renamed["messages"] = [namespaced(m) for m in step["messages"]]
    return renamed


def rabbitmq_twins(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every bus case on `{memory}` again on RabbitMQ (`{amqp}`), and its dedup cases
    again with the Redis store, so each binding's messaging is exercised on the real
    broker and not only in process. Queue names get a `{ns}.` prefix that `for_driver`
    makes unique per driver run, so runs on the shared broker never see each other's
    messages. Cases written for RabbitMQ (`{amqp}`, `{amqp_proxy}`) have no twin."""
    twins = []
    for case in cases:
        if case["kind"] != "bus" or case["config"].get("urls") != ["{memory}"] or not case.get("twin", True):
            continue
        steps = [namespaced(step) for step in case["steps"]]
        twin = {**case, "name": f"{case['name']} [rabbitmq]", "steps": steps}
        twin["config"] = {**case["config"], "urls": ["{amqp}"]}
        twins.append(twin)
        if any(step.get("op") in ("consume", "consume_batches") and step.get("dedup") for step in steps):
            redis = {"store": "redis", "url": "{redis}", "prefix": "courier-parity:{ns}:"}
            name = f"{case['name']} [rabbitmq, redis dedup]"
            twins.append({**twin, "name": name, "config": {**twin["config"], "dedup": redis}})
    return twins


def set_dns(cases: list[dict[str, Any]], kit: Testkit) -> None:
    """Loads the `dns` records of the http cases into the testkit's DNS server, with each
    `"{port:N}"` made upstream N's port. Names are unique across cases, and the drivers'
    `POST /reset` leaves DNS alone, so this is done once for every driver."""
    ports = [int(url.rsplit(":", 1)[1]) for url in kit.upstreams]
    for case in cases:
        for name, records in case.get("dns", {}).items():
            text = json.dumps(records)
            for i, port in enumerate(ports):
                text = text.replace(f'"{{port:{i}}}"', str(port))
            kit.send("PUT", f"/dns/{name}", json.loads(text))


def amqp_proxy(kit: Testkit) -> str:
    """Makes the testkit's proxy 0, a TCP proxy to the RabbitMQ broker of AMQP_URL that
    `testkit` steps cut (`POST /proxies/0/cut`), and returns AMQP_URL through it: host and
    port replaced by the proxy's address, credentials and vhost kept."""
    parts = urllib.parse.urlsplit(AMQP_URL)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    made = kit.send("POST", "/proxies", {"target": target})
    if made["index"] != 0:
        raise SystemExit(f"parity.py: the AMQP proxy is the testkit's proxy {made['index']}, not 0")
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{made['address']}" if credentials else made["address"]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def for_driver(
    files: list[Path], lang: str, kit: Testkit, proxy_url: str, logs: Path
) -> tuple[list[Path], str]:
    """The case files with `{ns}` (a namespace unique to this driver run), `{redis}`,
    `{dns}` (the testkit's DNS server) and `{amqp_proxy}` (`proxy_url`, RabbitMQ through
    the testkit's proxy 0) filled in, written for `lang`'s driver; and the namespace."""
    ns = f"{lang}-{time.time_ns()}"
    written = []
    for f in files:
        text = f.read_text().replace("{ns}", ns).replace('"{redis}"', json.dumps(REDIS_URL))
        text = text.replace('"{dns}"', json.dumps(kit.dns)).replace('"{amqp_proxy}"', json.dumps(proxy_url))
        out = logs / f"cases-{lang}-{f.name}"
        out.write_text(text)
        written.append(out)
    return written, ns


def delete_queues(cases: list[dict[str, Any]], ns: str) -> None:
    """Deletes the `courier-parity.{ns}.*` queues (and their `.dlq`s) that any bus case
    names, twins included, in namespace `ns`."""
    prefix = "courier-parity.{ns}."
    steps = [step for case in cases if case["kind"] == "bus" for step in case["steps"]]
    steps += [m for step in steps for m in step.get("messages", [])]
    names = {
        step[k].replace("{ns}", ns)
        for step in steps
        for k in NAME_FIELDS
        if isinstance(step.get(k), str) and step[k].startswith(prefix)
    }
    if not names:
        return
    with pika.BlockingConnection(pika.URLParameters(AMQP_URL)) as conn:
        for name in sorted(names | {f"{n}.dlq" for n in names}):
            channel = conn.channel()
            try:
                channel.queue_delete(name)
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:
                pass  # never declared (an unroutable case's routing key)


def load(files: list[Path]) -> list[dict[str, Any]]:
    cases = [case for f in files for case in json.loads(f.read_text())["cases"]]
    names = [case["name"] for case in cases]
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise SystemExit(f"parity.py: case names used twice: {sorted(duplicated)}")
    return cases


def grid(cases: list[dict[str, Any]], columns: list[str], cells: dict[tuple[str, str], str]) -> str:
    header = ["case", *columns]
    rows = [[case["name"], *(cells[case["name"], lang] for lang in columns)] for case in cases]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row).rstrip() for row in [header, *rows])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", default=",".join(ALL_LANGUAGES))
    parser.add_argument("files", nargs="*", type=Path, help="case files (default: tests/interop/cases)")
    args = parser.parse_args()
    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()]
    unknown = set(languages) - set(ALL_LANGUAGES)
    if unknown:
        parser.error(f"unknown languages {sorted(unknown)}; known: {', '.join(ALL_LANGUAGES)}")
    started = time.monotonic()
    files = [f.resolve() for f in args.files] or sorted(CASES.glob("*.json"))
    cases = load(files)
    logs = Path(tempfile.mkdtemp(prefix="courier-parity-"))
    twins = rabbitmq_twins(cases)
    if twins:
        twin_file = logs / "rabbitmq-twins.json"
        twin_file.write_text(json.dumps({"about": "generated by parity.py: rabbitmq_twins", "cases": twins}))
        files, cases = [*files, twin_file], [*cases, *twins]
    state = build(languages)
    for lang in languages:
        if state[lang] == "ok" and not has_driver(lang):
            state[lang] = "missing driver"
    ready = [lang for lang in languages if state[lang] == "ok"]
    absent = missing_expected(languages, state)
    log(
        f"{len(cases)} cases from {', '.join(f.name for f in files)}"
        f" ({len(twins)} RabbitMQ twins of memory:// cases); drivers: {', '.join(ready) or 'none'}"
    )
    upstreams = max([len(case["upstreams"]) for case in cases if case["kind"] == "http"] or [1])
    runs: dict[str, Run] = {}
    kit = Testkit(upstreams)
    try:
        set_dns(cases, kit)
        proxy_url = amqp_proxy(kit)
        for lang in ready:
            driver_files, ns = for_driver(files, lang, kit, proxy_url, logs)
            try:
                runs[lang] = run_driver(lang, driver_files, kit, logs)
            finally:
                delete_queues(cases, ns)
            log(f"driver {lang}: {len(runs[lang].outcomes)} outcomes ({runs[lang].seconds:.1f} s)")
    finally:
        kit.close()

    cells: dict[tuple[str, str], str] = {}
    details: list[str] = []
    failed_cases = 0
    for case in cases:
        name, want = case["name"], expected(case)
        seen: dict[str, list[str]] = {}
        case_failed = False
        for lang in languages:
            if lang not in runs:
                cells[name, lang] = state[lang]
                continue
            if name not in runs[lang].outcomes:
                cells[name, lang] = "✗ no outcome"
                case_failed = True
                continue
            got = runs[lang].outcomes[name]
            seen.setdefault(json.dumps(got, sort_keys=True), []).append(lang)
            diff = differences(want, got)
            if diff:
                case_failed = True
                cells[name, lang] = f"✗ {diff[0]}"[:CELL_WIDTH]
                details += [f"{name} [{lang}]: {line}" for line in diff]
            else:
                cells[name, lang] = "✓"
        if len(seen) > 1:
            case_failed = True
            groups = " vs ".join("+".join(langs) for langs in seen.values())
            details.append(f"{name}: the languages disagree with each other: {groups}")
        failed_cases += case_failed

    log("")
    log(grid(cases, languages, cells))
    log("")
    for line in details:
        log(line)
    broken = [lang for lang in languages if state[lang] == "build failed"]
    for lang, run in runs.items():
        for line in run.problems:
            log(f"driver {lang}: {line}")
    driver_failed = [lang for lang, run in runs.items() if run.problems]
    ok = not failed_cases and not broken and not driver_failed and not absent and bool(runs)
    if ok:
        summary = f"parity: {len(cases)} cases x {len(runs)} languages agree"
    else:
        summary = f"parity: {failed_cases} of {len(cases)} cases disagree across {len(runs)} languages"
        summary += f", builds failed: {', '.join(broken)}" if broken else ""
        summary += f", drivers failed: {', '.join(driver_failed)}" if driver_failed else ""
        summary += f", expected languages missing: {', '.join(absent)}" if absent else ""
        log(f"driver logs kept in {logs}")
    if ok:
        shutil.rmtree(logs, ignore_errors=True)
    log(f"{summary} ({time.monotonic() - started:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
