"""TraceContext, trace= on calls, publishes and requests, and the host's OpenTelemetry span
as the default parent."""

import asyncio
import sys
import threading
import uuid

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import courierkit
from courierkit import _trace

TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

# A provider of our own, not the global one: starting a span as current is all courier
# reads, and a test must not fix the process-wide provider for the rest of the suite.
tracer = TracerProvider().get_tracer("courier-tests")


def http_config(testkit):
    return {"services": {"orders": {"endpoints": [testkit.urls[0]]}}}


def memory_config():
    return {"urls": [f"memory://courier-py-trace-{uuid.uuid4().hex}"]}


def hex_ids(span):
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def sent_traceparents(testkit):
    return [r["headers"]["traceparent"] for r in testkit.requests(0)["requests"]]


# --- the TraceContext API -------------------------------------------------------------


def test_parse_exposes_ids_flags_and_tracestate():
    ctx = courierkit.TraceContext.parse(TP, "vendor=abc")
    assert (ctx.trace_id, ctx.span_id, ctx.sampled) == (TRACE_ID, "00f067aa0ba902b7", True)
    assert (ctx.traceparent, ctx.tracestate) == (TP, "vendor=abc")
    assert ctx.to_carrier() == {"traceparent": TP, "tracestate": "vendor=abc"}
    unsampled = courierkit.TraceContext.parse(TP[:-2] + "00")
    assert unsampled.sampled is False
    assert unsampled.tracestate is None
    assert repr(unsampled) == f"TraceContext.parse('{TP[:-2]}00')"


@pytest.mark.parametrize("bad", ["", "00-bad", TP.replace(TRACE_ID, "0" * 32), TP[:-2] + "zz"])
def test_an_invalid_traceparent_is_a_config_error_naming_it(bad):
    with pytest.raises(courierkit.ConfigError) as info:
        courierkit.TraceContext.parse(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.field == "traceparent"


def test_a_child_keeps_the_trace_id_and_gets_a_new_span_id():
    parent = courierkit.TraceContext.parse(TP, "vendor=abc")
    a, b = parent.child(), parent.child()
    assert a.trace_id == b.trace_id == TRACE_ID
    assert len({parent.span_id, a.span_id, b.span_id}) == 3
    assert (a.sampled, a.tracestate) == (True, "vendor=abc"), "flags and tracestate carry over"


def test_a_new_root_round_trips_through_its_carrier():
    root = courierkit.TraceContext.new_root()
    assert len(root.trace_id) == 32 and len(root.span_id) == 16 and root.sampled
    assert courierkit.TraceContext.new_root().trace_id != root.trace_id
    carrier = root.to_carrier()
    assert courierkit.TraceContext.parse(carrier["traceparent"]) == root
    assert courierkit.TraceContext.from_carrier(carrier) == root
    assert courierkit.TraceContext.from_carrier({"TraceParent": TP}).trace_id == TRACE_ID
    assert courierkit.TraceContext.from_carrier({}).trace_id != TRACE_ID, "no parent: a new trace"


# --- trace= takes a TraceContext or a carrier ------------------------------------------


def test_a_trace_context_is_the_parent_of_a_call(testkit):
    parent = courierkit.TraceContext.parse(TP)
    resp = courierkit.Client(http_config(testkit)).get("orders", "/t", trace=parent)
    [sent] = sent_traceparents(testkit)
    assert sent.split("-")[1] == TRACE_ID
    assert resp.trace_context == courierkit.TraceContext.parse(sent)
    assert resp.trace == {"traceparent": sent}, "the carrier dict still works"
    assert resp.trace_context.span_id != parent.span_id, "the attempt is a child span"


async def test_async_calls_take_a_trace_context_or_a_carrier(testkit):
    client = courierkit.AsyncClient(http_config(testkit))
    a = await client.get("orders", "/a", trace=courierkit.TraceContext.parse(TP))
    b = await client.get("orders", "/b", trace={"traceparent": TP})
    assert a.trace_context.trace_id == b.trace_context.trace_id == TRACE_ID


def test_publish_and_request_take_a_trace_context_and_deliveries_expose_it():
    parent = courierkit.TraceContext.parse(TP)
    with courierkit.Bus.connect(memory_config()) as bus:
        bus.declare_queue("orders")
        receipt = bus.publish("", "orders", b"x", trace=parent)
        assert receipt.trace_context.trace_id == TRACE_ID
        assert receipt.trace == receipt.trace_context.to_carrier()
        with bus.consume("orders") as consumer:
            d = consumer.next(timeout=5)
            assert d is not None
            assert d.trace_context == receipt.trace_context
            assert d.trace == receipt.trace
            d.ack()

        bus.declare_queue("pricing")
        server = bus.serve("pricing")
        seen = []

        def handle():
            d = server.next(timeout=5)
            if d is not None:
                seen.append(d.trace_context)
                d.reply(b"ok")
                d.ack()

        thread = threading.Thread(target=handle)
        thread.start()
        reply = bus.request("pricing", b"q", trace=parent)
        thread.join(timeout=10)
        assert seen and seen[0].trace_id == TRACE_ID
        assert reply.trace_context.trace_id == TRACE_ID, "the reply continues the request's trace"


# --- the host's OpenTelemetry span as the default parent ---------------------------------


def test_the_current_otel_span_is_the_parent_of_a_call(testkit):
    client = courierkit.Client(http_config(testkit))
    with tracer.start_as_current_span("checkout") as span:
        resp = client.get("orders", "/t")
    trace_id, span_id = hex_ids(span)
    [sent] = sent_traceparents(testkit)
    assert sent.split("-")[1] == trace_id, "the testkit saw the OpenTelemetry span's trace"
    assert resp.trace_context.trace_id == trace_id
    assert resp.trace_context.span_id not in (span_id, "0" * 16), "courier's attempt is a child"

    testkit.reset()
    outside = client.get("orders", "/t")
    assert outside.trace_context.trace_id != trace_id, "outside the span: a new trace"


def test_an_explicit_trace_wins_over_the_otel_span(testkit):
    client = courierkit.Client(http_config(testkit))
    with tracer.start_as_current_span("checkout"):
        resp = client.get("orders", "/t", trace={"traceparent": TP})
    assert resp.trace_context.trace_id == TRACE_ID


def test_courier_traceparents_parse_with_opentelemetrys_propagator(testkit):
    with courierkit.Bus.connect(memory_config()) as bus:
        bus.declare_queue("orders")
        with tracer.start_as_current_span("publish") as span:
            receipt = bus.publish("", "orders", b"x")
            resp = courierkit.Client(http_config(testkit)).get("orders", "/t")
    for carrier, ctx in ((receipt.trace, receipt.trace_context), (resp.trace, resp.trace_context)):
        extracted = otel_trace.get_current_span(TraceContextTextMapPropagator().extract(carrier))
        got = extracted.get_span_context()
        assert got.is_valid and got.is_remote
        assert (format(got.trace_id, "032x"), format(got.span_id, "016x")) == (ctx.trace_id, ctx.span_id)
        assert format(got.trace_id, "032x") == hex_ids(span)[0]
        assert got.trace_flags.sampled == ctx.sampled


def test_an_unsampled_otel_span_is_continued_unsampled():
    with courierkit.Bus.connect(memory_config()) as bus:
        bus.declare_queue("orders")
        unsampled = otel_trace.NonRecordingSpan(
            otel_trace.SpanContext(
                trace_id=int(TRACE_ID, 16),
                span_id=0x00F067AA0BA902B7,
                is_remote=True,
                trace_flags=otel_trace.TraceFlags(0),
            )
        )
        with otel_trace.use_span(unsampled):
            receipt = bus.publish("", "orders", b"x")
    assert (receipt.trace_context.trace_id, receipt.trace_context.sampled) == (TRACE_ID, False)


async def test_concurrent_asyncio_tasks_each_continue_their_own_span():
    bus = await courierkit.AsyncBus.connect(memory_config())
    await bus.declare_queue("events", quorum=False, dead_letter=False)

    async def task(i):
        with tracer.start_as_current_span(f"task-{i}") as span:
            # Yield first, so every task is suspended inside its span before any publishes.
            await asyncio.sleep(0)
            receipt = await bus.publish("", "events", str(i))
        return hex_ids(span)[0], receipt.trace_context.trace_id

    pairs = await asyncio.gather(*(task(i) for i in range(1000)))
    mixed = [(mine, sent) for mine, sent in pairs if mine != sent]
    assert not mixed, f"{len(mixed)} of 1000 publishes carried another task's trace"
    assert len({mine for mine, _ in pairs}) == 1000, "each task had a trace of its own"
    await bus.close()


async def test_concurrent_asyncio_calls_each_continue_their_own_span(testkit):
    client = courierkit.AsyncClient(http_config(testkit))

    async def task(i):
        with tracer.start_as_current_span(f"call-{i}") as span:
            await asyncio.sleep(0)
            resp = await client.get("orders", f"/t/{i}")
        return hex_ids(span)[0], resp.trace_context.trace_id, resp.json()["headers"]["traceparent"]

    results = await asyncio.gather(*(task(i) for i in range(100)))
    for mine, sent, received in results:
        assert mine == sent == received.split("-")[1], "the upstream saw the task's own trace"


def test_threads_each_continue_their_own_span():
    with courierkit.Bus.connect(memory_config()) as bus:
        bus.declare_queue("events", quorum=False, dead_letter=False)
        results = []

        def worker():
            for _ in range(20):
                with tracer.start_as_current_span("worker") as span:
                    receipt = bus.publish("", "events", b"x")
                results.append((hex_ids(span)[0], receipt.trace_context.trace_id))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert len(results) == 160
    assert all(mine == sent for mine, sent in results)


def test_without_opentelemetry_calls_start_new_traces(monkeypatch, testkit):
    # As if the package were not installed: the import fails, nothing else changes.
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.setattr(_trace, "_loaded", False)
    monkeypatch.setattr(_trace, "_current", None)
    with tracer.start_as_current_span("ignored") as span:
        resp = courierkit.Client(http_config(testkit)).get("orders", "/t")
        assert _trace.host_carrier() is None
    assert resp.status == 200
    assert resp.trace_context.trace_id != hex_ids(span)[0]
    assert _trace._loaded and _trace._current is None, "the failed import is remembered"
