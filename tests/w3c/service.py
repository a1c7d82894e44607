"""The service under test for the W3C Trace Context test suite
(https://github.com/w3c/trace-context, folder test/), driving courier's Python ``Client``.

The harness POSTs a JSON list of ``{"url": ..., "arguments": ...}`` with trace headers.
For each entry this service POSTs ``arguments`` as JSON to ``url`` through courier,
passing the incoming ``traceparent`` / ``tracestate`` / ``baggage`` as the trace
carrier: courier parses them, takes a child span and writes the outgoing headers, so the
harness sees exactly what courier propagates. See README.md beside this file for the
commands.

A header received more than once is combined into one comma-separated value, as
RFC 9110 section 5.3 prescribes (a carrier is a dict): repeated ``tracestate`` fields
become one list, repeated ``traceparent`` fields an invalid value, which restarts the
trace as the specification requires.

Usage: python service.py [--host 127.0.0.1] [--port 5000]
"""

from __future__ import annotations

import argparse
import json
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import courierkit

TRACE_HEADERS = ("traceparent", "tracestate", "baggage")

client = courierkit.Client({})


def carrier(headers: HTTPMessage) -> dict[str, str]:
    """The incoming trace headers, each repeated field joined with "," (RFC 9110 5.3)."""
    out: dict[str, str] = {}
    for name in TRACE_HEADERS:
        values = headers.get_all(name)
        if values:
            out[name] = ",".join(values)
    return out


def forward(entry: dict, trace: dict[str, str]) -> int:
    """POSTs the entry's arguments to its url through courier; the response status."""
    url = urlsplit(entry["url"])
    path = url.path + ("?" + url.query if url.query else "")
    resp = client.post(f"{url.scheme}://{url.netloc}", path, json=entry.get("arguments") or [], trace=trace)
    return resp.status


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        entries = json.loads(self.rfile.read(length) or b"[]")
        trace = carrier(self.headers)
        statuses = [forward(entry, trace) for entry in entries]
        body = json.dumps(statuses).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"service under test listening on http://{args.host}:{args.port}/test", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        client.close()


if __name__ == "__main__":
    main()
