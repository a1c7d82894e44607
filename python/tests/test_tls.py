"""TLS through the binding: config passes through as data; handshake failures are TlsError."""

import os
from pathlib import Path

import pytest

import courierkit


def tls_config(pki: Path, client: str | None = "client") -> dict[str, str]:
    tls = {"ca_pem": (pki / "ca.pem").read_text()}
    if client is not None:
        tls["client_cert_pem"] = (pki / f"{client}.pem").read_text()
        tls["client_key_pem"] = (pki / f"{client}.key").read_text()
    return tls


def secure(testkit, tls):
    # One attempt: a handshake failure must surface, not be retried away.
    service = {"endpoints": [testkit.tls_urls["mtls"]], "retry": {"max_attempts": 1}}
    return {"services": {"secure": service}, "tls": tls}


def test_mutual_tls_call_succeeds(testkit):
    with courierkit.Client(secure(testkit, tls_config(testkit.tls_dir))) as client:
        resp = client.get("secure", "/over-tls")
    assert resp.status == 200
    assert resp.json()["path"] == "/over-tls"


async def test_no_client_certificate_is_a_tls_error(testkit):
    client = courierkit.AsyncClient(secure(testkit, tls_config(testkit.tls_dir, client=None)))
    with pytest.raises(courierkit.TlsError) as info:
        await client.get("secure", "/")
    assert info.value.kind == "tls"
    assert "client certificate" in str(info.value)
    assert "PRIVATE KEY" not in str(info.value)
    client.close()


def test_a_certificate_without_its_key_is_a_config_error(testkit):
    tls = tls_config(testkit.tls_dir)
    del tls["client_key_pem"]
    with pytest.raises(courierkit.ConfigError) as info:
        courierkit.Client(secure(testkit, tls))
    assert info.value.field == "tls.client_key_pem"
    assert str(info.value).startswith("tls.client_key_pem:")


def test_amqps_publish_and_consume_with_a_client_certificate():
    url = os.environ.get("COURIER_AMQPS_URL")
    if not url:
        pytest.skip("COURIER_AMQPS_URL is unset (tests/scripts/test-all.sh sets up RabbitMQ's TLS listener)")
    pki = Path(os.environ.get("COURIER_PKI_DIR", Path.home() / ".cache/courier/pki"))
    queue = "courier-test.py.tls"
    with courierkit.Bus.connect({"urls": [url], "tls": tls_config(pki)}) as bus:
        bus.declare_queue(queue)
        receipt = bus.publish("", queue, b"over tls")
        with bus.consume(queue) as consumer:
            # Messages left by an interrupted earlier run are acked away, not asserted on.
            while True:
                d = consumer.next(timeout=5)
                assert d is not None
                if d.message_id == receipt.message_id:
                    break
                d.ack()
            assert d.body == b"over tls"
            d.ack()
