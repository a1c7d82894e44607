"""docs/api.md's Python snippets, run as a reader would run them: in order, in one
namespace (a later snippet uses what an earlier one imported), with the documentation's
upstream address pointed at the testkit. A snippet that no longer matches the package
fails here."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import courierkit

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"
DOC_UPSTREAM = "http://127.0.0.1:8081"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", API_MD.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_the_documented_configurations_are_valid(amqp_url):
    """The reference configurations (every key with its default) are accepted as they
    are: a renamed or removed key would be refused by name."""
    client, bus, tls = (json.loads(block) for block in blocks("json"))
    courierkit.Client(client).close()
    courierkit.Client(tls).close()
    bus["urls"] = [amqp_url]
    with courierkit.Bus.connect(bus):
        pass


def test_every_python_snippet_in_the_api_docs_runs(testkit):
    snippets = blocks("python")
    assert snippets, f"no ```python blocks found in {API_MD}"
    namespace: dict[str, object] = {"__name__": "docs_api_md"}
    printed = io.StringIO()
    for i, snippet in enumerate(snippets, start=1):
        source = snippet.replace(DOC_UPSTREAM, testkit.urls[0])
        code = compile(source, f"docs/api.md python block {i}", "exec")
        with contextlib.redirect_stdout(printed):
            exec(code, namespace)  # the documentation's own code, nothing else
    # What the snippets print: a created order, a consumed message, an RPC reply.
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith("200 1 "), lines
    assert lines[1] == "b'hello' True", lines
    assert lines[2] == "b'42'", lines
