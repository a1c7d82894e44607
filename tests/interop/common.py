"""What the interop runner (run.py) and the parity runner (parity.py) share: where the
languages' wrappers are (tests/interop/<lang>/run.sh), building them, and the testkit
process (tests/interop/PROTOCOL.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INTEROP = ROOT / "tests/interop"
ALL_LANGUAGES = ["python", "node", "kotlin", "rust", "swift"]
BUILD_TIMEOUT_S = 1200.0
AMQP_URL = os.environ.get("COURIER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def log(message: str) -> None:
    print(message, flush=True)


class Testkit:
    """One courier-testkit process with `upstreams` HTTP upstreams and its control API."""

    def __init__(self, upstreams: int) -> None:
        binary = os.environ.get("COURIER_TESTKIT") or str(
            Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/courier/target"))
            / "debug/courier-testkit"
        )
        if not Path(binary).is_file():
            raise SystemExit(f"no testkit at {binary}; build it: cargo build -p courier-testkit")
        # Exits when its stdin closes, so it cannot outlive this process.
        self.proc = subprocess.Popen(
            [binary, "--upstreams", str(upstreams)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline())
        self.control: str = ready["control"]
        self.upstreams: list[str] = ready["upstreams"]
        self.dns: str = ready["dns"]

    def send(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.control + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def wrapper(lang: str) -> Path:
    """The language's wrapper script, `tests/interop/<lang>/run.sh` (PROTOCOL.md): its agent,
    its parity driver and their build, all in that directory."""
    return INTEROP / lang / "run.sh"


def start_wrapper(lang: str, command: str, args: list[str], stderr: Any) -> subprocess.Popen[str]:
    """Runs `<lang>/run.sh command args` with stdout piped as text. In a session of its own,
    so killing its process group takes the wrapper's children (a JVM) too."""
    return subprocess.Popen(
        ["bash", str(wrapper(lang)), command, *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )


def expected_languages(languages: list[str]) -> list[str]:
    """The languages that must take part: all of `languages`, except Swift on a machine
    without a Swift toolchain, unless COURIER_REQUIRE_SWIFT=1 makes its absence a failure.
    A run where an expected language was skipped, failed to build or lacks a driver fails:
    one language alone must never pass for all of them."""
    swift_expected = shutil.which("swift") is not None or os.environ.get("COURIER_REQUIRE_SWIFT") == "1"
    return [lang for lang in languages if lang != "swift" or swift_expected]


def missing_expected(languages: list[str], state: dict[str, str]) -> list[str]:
    """`lang: why` for each expected language that is not ready, after logging the set."""
    expected = expected_languages(languages)
    log(f"expected languages: {', '.join(expected)}")
    return [f"{lang} ({state[lang]})" for lang in expected if state[lang] != "ok"]


def build(languages: list[str]) -> dict[str, str]:
    """Each language's state: "ok", "skipped: <why>" or "build failed".

    COURIER_INTEROP_BUILT names the languages whose wrapper builds are taken as done, comma
    separated, or "1" for all: test-all.sh sets it for the parity runner right after run.py
    built the same checkout, and names kotlin for run.py when its Kotlin step has just
    compiled the same test sources (Kotlin's build alone takes most of a minute even when
    nothing changed).
    """
    built = os.environ.get("COURIER_INTEROP_BUILT", "")
    prebuilt_langs = set(languages) if built == "1" else set(filter(None, built.split(",")))
    state = {}
    for lang in languages:
        script = wrapper(lang)
        if lang == "swift" and not shutil.which("swift"):
            state[lang] = "skipped: no toolchain"
        elif not script.is_file():
            state[lang] = "skipped: no wrapper script"
        elif lang in prebuilt_langs:
            state[lang] = "ok"
        else:
            started = time.monotonic()
            try:
                result = subprocess.run(
                    ["bash", str(script), "build"],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=BUILD_TIMEOUT_S,
                )
                ok, output = result.returncode == 0, result.stdout + result.stderr
            except subprocess.TimeoutExpired:
                ok, output = False, f"no result after {BUILD_TIMEOUT_S:.0f} s"
            state[lang] = "ok" if ok else "build failed"
            log(f"build {lang}: {state[lang]} ({time.monotonic() - started:.1f} s)")
            if not ok:
                log("\n".join(f"  | {line}" for line in output.splitlines()[-30:]))
        if state[lang] != "ok" and not state[lang].startswith("build"):
            log(f"build {lang}: {state[lang]}")
    return state
