"""Telemetry from Python: core log records in :mod:`logging`, the level filter, metrics
as Prometheus text and at an OTLP receiver, and one connected trace (host span →
courier's CLIENT / PRODUCER / CONSUMER spans → the upstream's traceparent) exported by
the host SDK and courier to the same receiver from a child process that takes its
settings from the standard OpenTelemetry variables."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

import courierkit


def wait_for(predicate, what: str, limit_s: float = 10.0):
    """Records arrive on courier's log thread, after the call that caused them."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    pytest.fail(f"no {what} within {limit_s} s")


@pytest.fixture
def debug_records(caplog):
    caplog.set_level(logging.DEBUG, logger="courier")
    courierkit.set_log_level("debug")
    yield caplog
    courierkit.set_log_level("warn")


def test_core_records_reach_python_logging_without_secrets(testkit, debug_records):
    testkit.behave(0, script=[{"status": 503}], default={"status": 200})
    endpoint = testkit.urls[0].replace("http://", "http://ops:s3cret-pw@")
    with courierkit.Client({"services": {"orders": {"endpoints": [endpoint]}}}) as client:
        assert client.get("orders", "/items").attempts == 2

    def retry_record():
        return next((r for r in debug_records.records if r.getMessage().startswith("retry")), None)

    record = wait_for(retry_record, "retry record")
    assert record.name == "courier.http.call"
    assert record.levelno == logging.DEBUG
    assert record.courier["service"] == "orders"
    assert all(
        "s3cret-pw" not in r.getMessage() and "s3cret-pw" not in str(r.courier) for r in debug_records.records
    )


def test_records_below_the_level_are_not_produced(testkit, debug_records):
    courierkit.set_log_level(logging.WARNING)
    assert courierkit.log_level() == "warn"
    testkit.behave(0, script=[{"status": 503}], default={"status": 200})
    with courierkit.Client({"services": {"orders": {"endpoints": [testkit.urls[0]]}}}) as client:
        assert client.get("orders", "/items").attempts == 2
    # A record the log thread delivers after this one proves the retry's was not queued.
    courierkit.set_log_level("debug")
    testkit.behave(0, script=[{"status": 503}], default={"status": 200})
    with courierkit.Client({"services": {"later": {"endpoints": [testkit.urls[0]]}}}) as client:
        client.get("later", "/items")

    def later():
        return [r for r in debug_records.records if r.getMessage().startswith("retry")]

    retries = wait_for(later, "retry record")
    assert [r.courier["service"] for r in retries] == ["later"]


def test_levels_are_checked():
    with pytest.raises(courierkit.ConfigError) as e:
        courierkit.set_log_level("loud")
    assert e.value.field == "level"
    with pytest.raises(courierkit.ConfigError):
        courierkit.set_log_level(True)  # type: ignore[arg-type]
    with pytest.raises(courierkit.ConfigError) as e:
        courierkit.configure_telemetry(traces_endpoint="ftp://collector")
    assert "endpoint" in e.value.field
    with pytest.raises(courierkit.ConfigError) as e:
        courierkit.configure_telemetry(sampler="sometimes")
    assert e.value.field == "sampler"


def test_metrics_as_prometheus_text(testkit):
    testkit.behave(0, script=[{"status": 503}], default={"status": 200})
    with courierkit.Client({"services": {"metered": {"endpoints": [testkit.urls[0]]}}}) as client:
        client.get("metered", "/items")
    text = courierkit.metrics_text()
    assert "# TYPE http_client_request_duration_seconds histogram" in text
    assert 'courier_retry_attempts_total{courier_service="metered"} 1' in text
    counts = [
        line
        for line in text.splitlines()
        if line.startswith("http_client_request_duration_seconds_count{")
        and 'courier_service="metered"' in line
    ]
    assert sorted(line.rsplit(" ", 1)[1] for line in counts) == ["1", "1"], counts


CHILD = textwrap.dedent(
    """
    import json, sys, uuid
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    import courierkit

    upstream, otlp = sys.argv[1], sys.argv[2]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=otlp + "/v1/traces")))
    tracer = provider.get_tracer("host")
    out = {}
    with courierkit.Client({"services": {"orders": {"endpoints": [upstream]}}}) as client:
        with tracer.start_as_current_span("host-call") as span:
            client.get("orders", "/items")
            out["call"] = format(span.get_span_context().span_id, "016x")
            out["trace"] = format(span.get_span_context().trace_id, "032x")
        with TracerProvider(sampler=ALWAYS_OFF).get_tracer("off").start_as_current_span("x") as off:
            client.get("orders", "/unsampled")
            out["unsampled"] = format(off.get_span_context().trace_id, "032x")
    with courierkit.Bus.connect({"urls": [f"memory://telemetry-{uuid.uuid4().hex}"]}) as bus:
        bus.declare_queue("jobs")
        with tracer.start_as_current_span("host-publish") as span:
            receipt = bus.publish("", "jobs", b"x")
            out["publish"] = format(span.get_span_context().span_id, "016x")
            out["publish_trace"] = format(span.get_span_context().trace_id, "032x")
        out["producer"] = receipt.trace_context.span_id
        with bus.consume("jobs") as consumer:
            delivery = consumer.next(timeout=10)
            delivery.ack()
            del delivery  # its CONSUMER span ends with it
    provider.force_flush()
    print(json.dumps(out))
    """
)


def test_one_connected_trace_from_the_host_through_courier(testkit):
    testkit.behave(0, default={"status": 200})
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": testkit.otlp,
        "OTEL_SERVICE_NAME": "python-test",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
    }
    child = subprocess.run(
        [sys.executable, "-c", CHILD, testkit.urls[0], testkit.otlp],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    ids = json.loads(child.stdout.strip().splitlines()[-1])

    spans = testkit.exported("spans")
    by_trace = [s for s in spans if s["traceId"] == ids["trace"]]
    host = next(s for s in by_trace if s["name"] == "host-call")
    assert host["spanId"] == ids["call"] and not host.get("parentSpanId")
    clients = [s for s in by_trace if s["name"] == "GET"]
    assert len(clients) == 1, by_trace
    assert clients[0]["parentSpanId"] == ids["call"], "courier's span is the host span's child"
    assert "python-test" in json.dumps(clients[0]["resource"])
    received = [r["headers"]["traceparent"] for r in testkit.requests(0)["requests"] if r["path"] == "/items"]
    assert len(received) == 1
    version, trace_id, parent_id, flags = received[0].split("-")
    assert (trace_id, parent_id) == (ids["trace"], clients[0]["spanId"]), (
        "the upstream's parent is courier's span"
    )
    assert int(flags, 16) & 1, "sampled"

    # Publish → consume: PRODUCER under the host span, CONSUMER under the producer.
    messaging = [s for s in spans if s["traceId"] == ids["publish_trace"]]
    producer = next(s for s in messaging if s["name"] == "publish jobs")
    assert (producer["spanId"], producer["parentSpanId"]) == (ids["producer"], ids["publish"])
    consumer = next(s for s in messaging if s["name"] == "process jobs")
    assert consumer["parentSpanId"] == ids["producer"]
    assert any(link["spanId"] == ids["producer"] for link in consumer.get("links", []))

    # Unsampled by the host: the flag travels, nothing of that trace is exported.
    unsampled = [
        r["headers"]["traceparent"] for r in testkit.requests(0)["requests"] if r["path"] == "/unsampled"
    ]
    assert len(unsampled) == 1 and not int(unsampled[0].rsplit("-", 1)[1], 16) & 1, unsampled
    assert not [s for s in spans if s["traceId"] == ids["unsampled"]]

    # Metrics were flushed at the bus's close and at exit.
    metrics = testkit.exported("metrics")
    durations = [m for m in metrics if m["name"] == "http.client.request.duration"]
    assert durations and durations[0]["unit"] == "s"
    assert "python-test" in json.dumps(durations[0]["resource"])


def test_courier_log_sets_the_level_at_import_and_an_unusable_one_is_logged():
    script = "import courierkit; print(courierkit.log_level())"

    def run(value: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COURIER_LOG": value}
        return subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    debug = run("debug")
    assert (debug.returncode, debug.stdout.strip()) == (0, "debug"), debug.stderr
    loud = run("loud")
    assert (loud.returncode, loud.stdout.strip()) == (0, "warn"), loud.stderr
    assert "telemetry settings ignored" in loud.stderr and "COURIER_LOG" in loud.stderr, loud.stderr


def test_bad_telemetry_options_name_the_field():
    with pytest.raises(courierkit.ConfigError) as e:
        courierkit.configure_telemetry(sampler="traceidratio", sampler_arg="2")
    assert e.value.field == "sampler_arg"
    with pytest.raises(courierkit.ConfigError) as e:
        courierkit.configure_telemetry(metrics_interval=0)
    assert e.value.field == "metrics_interval_ms"
