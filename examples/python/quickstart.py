"""courierkit quick start: one HTTP call and one message, from the installed wheel.

    pip install courierkit
    python quickstart.py                       # in-process memory:// broker
    COURIER_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f python quickstart.py
                                               # the same messages, also over RabbitMQ

The HTTP upstream is a tiny server started here on 127.0.0.1, so the example needs
nothing else running.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import courierkit


class Inventory(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        body = json.dumps({"item": self.path.rsplit("/", 1)[-1], "in_stock": 3}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def http_call() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Inventory)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream = f"http://127.0.0.1:{server.server_address[1]}"
    config = {"services": {"inventory": {"endpoints": [upstream], "deadline_ms": 2000}}}
    with courierkit.Client(config) as client:
        resp = client.get("inventory", "/v1/items/42").raise_for_status()
        print(f"GET inventory /v1/items/42 -> {resp.status} {resp.json()} ({resp.attempts} attempt)")
        assert resp.json() == {"item": "42", "in_stock": 3}
    server.shutdown()


def messaging(url: str) -> None:
    queue = f"quickstart.{uuid.uuid4().hex[:8]}"
    with courierkit.Bus.connect({"urls": [url]}) as bus:
        # A classic queue without a dead-letter queue: nothing is left behind on a broker.
        bus.declare_queue(queue, quorum=False, dead_letter=False, ttl=60)
        receipt = bus.publish("", queue, b'{"order": 42}')
        where = url.split("@")[-1]  # no credentials in the output
        print(f"[{where}] published {receipt.message_id} (confirmed)")
        with bus.consume(queue) as consumer:
            delivery = consumer.next(timeout=5)
            assert delivery is not None, "no delivery within 5 s"
            assert delivery.message_id == receipt.message_id
            delivery.ack()
            print(f"consumed {delivery.message_id} body={delivery.body!r} -> acked")


if __name__ == "__main__":
    http_call()
    messaging("memory://quickstart")
    amqp = os.environ.get("COURIER_AMQP_URL")
    if amqp:
        messaging(amqp)
    print("quickstart: ok")
