package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.Request
import io.github.courierkit.ffi.TraceContext
import io.opentelemetry.api.baggage.Baggage
import io.opentelemetry.api.trace.Span
import io.opentelemetry.api.trace.SpanContext
import io.opentelemetry.api.trace.TraceFlags
import io.opentelemetry.api.trace.TraceState
import io.opentelemetry.context.Context
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds

/** TraceContext, and the current OpenTelemetry span as the parent of calls and messages. */
@Timeout(30)
class TraceTest : WithTestkit(upstreams = 1) {
    private val traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    private val traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
    private suspend fun memoryBus(test: String): Bus =
        Bus.connect("""{"urls": ["memory://kotlin-trace-$test-${UUID.randomUUID()}"]}""")

    /** A remote OpenTelemetry span with fixed ids, as an incoming request would make current. */
    private fun otelSpan(sampled: Boolean = true, state: TraceState = TraceState.getDefault()): Span =
        Span.wrap(
            SpanContext.createFromRemoteParent(
                traceId, "00f067aa0ba902b7", if (sampled) TraceFlags.getSampled() else TraceFlags.getDefault(), state,
            ),
        )

    @Test
    fun `a TraceContext round-trips through its carrier`() {
        val ctx = TraceContext.parse(traceparent, "vendor=abc")
        assertEquals(traceId, ctx.traceId())
        assertEquals("00f067aa0ba902b7", ctx.spanId())
        assertTrue(ctx.sampled())
        assertEquals("vendor=abc", ctx.tracestate())
        assertEquals(traceparent, ctx.toString())
        val carrier = ctx.toCarrier()
        assertEquals(mapOf("traceparent" to traceparent, "tracestate" to "vendor=abc"), carrier)
        val again = TraceContext.parse(carrier.getValue("traceparent"), carrier["tracestate"])
        assertEquals(ctx, again, "same ids, flags and tracestate")
        assertEquals(ctx.hashCode(), again.hashCode())
        assertEquals(ctx, TraceContext.fromCarrier(carrier))

        val child = ctx.child()
        assertEquals(ctx.traceId(), child.traceId())
        assertNotEquals(ctx.spanId(), child.spanId())
        val root = TraceContext.newRoot()
        assertEquals(32, root.traceId().length)
        assertEquals(root, TraceContext.parse(root.toCarrier().getValue("traceparent")))
        assertNull(root.tracestate())
    }

    @Test
    fun `an invalid traceparent is a Config error naming it`() {
        val error = assertThrows<CourierException.Config> { TraceContext.parse("00-bad") }
        assertEquals("traceparent", error.field)
    }

    @Test
    fun `a TraceContext's carrier is the parent of a publish and deliveries expose the context`() = runBlocking {
        memoryBus("explicit").using { bus ->
            bus.declareQueue("orders")
            val parent = TraceContext.parse(traceparent)
            val receipt = bus.publish("", "orders", "x".toByteArray(), PublishOptions(trace = parent.toCarrier()))
            assertEquals(traceId, receipt.traceContext().traceId())
            assertEquals(receipt.trace, receipt.traceContext().toCarrier())
            val consumer = bus.consume("orders")
            try {
                val delivery = checkNotNull(consumer.next(5_000.milliseconds))
                assertEquals(receipt.traceContext(), delivery.traceContext())
                delivery.ack()
            } finally {
                consumer.shutdown()
            }
        }
    }

    @Test
    fun `the current OpenTelemetry span is the parent of a memory publish`() = runBlocking {
        memoryBus("otel").using { bus ->
            bus.declareQueue("orders")
            val receipt = otelSpan().makeCurrent().use {
                bus.publish("", "orders", "x".toByteArray())
            }
            assertEquals(traceId, receipt.traceContext().traceId(), "the receipt continues the span's trace")
            assertNotEquals("00f067aa0ba902b7", receipt.traceContext().spanId(), "the message is a child span")
            assertTrue(receipt.traceContext().sampled())

            val outside = bus.publish("", "orders", "y".toByteArray())
            assertNotEquals(traceId, outside.traceContext().traceId(), "outside the span: a new trace")
        }
    }

    @Test
    fun `an unsampled span with tracestate and baggage is continued as it is`() = runBlocking {
        memoryBus("unsampled").using { bus ->
            bus.declareQueue("orders")
            val context = Context.current()
                .with(otelSpan(sampled = false, state = TraceState.builder().put("vendor", "abc").build()))
                .with(Baggage.builder().put("tenant", "acme").build())
            val receipt = context.makeCurrent().use { bus.publish("", "orders", "x".toByteArray()) }
            assertEquals(traceId, receipt.traceContext().traceId())
            assertFalse(receipt.traceContext().sampled())
            assertEquals("vendor=abc", receipt.traceContext().tracestate())
            assertEquals("tenant=acme", receipt.trace["baggage"])
        }
    }

    @Test
    fun `an explicit trace wins over the current span`() = runBlocking {
        memoryBus("explicit-wins").using { bus ->
            bus.declareQueue("orders")
            val other = TraceContext.newRoot()
            val receipt = otelSpan().makeCurrent().use {
                bus.publish("", "orders", "x".toByteArray(), PublishOptions(trace = other.toCarrier()))
            }
            assertEquals(other.traceId(), receipt.traceContext().traceId())
        }
    }

    @Test
    fun `the current span is the parent of a request and of an HTTP call`() = runBlocking {
        memoryBus("rpc").using { bus ->
            bus.declareQueue("pricing")
            val server = bus.serve("pricing")
            val reply = otelSpan().makeCurrent().use {
                // Started undispatched, so the request is made here, inside the span, before
                // this coroutine suspends to take it from the server.
                val pending = async(start = CoroutineStart.UNDISPATCHED) {
                    bus.request("pricing", "q".toByteArray(), timeout = 5_000.milliseconds)
                }
                val request = checkNotNull(server.next(5_000.milliseconds))
                assertEquals(traceId, request.traceContext().traceId(), "the server sees the span's trace")
                request.reply("ok".toByteArray())
                request.ack()
                pending.await()
            }
            assertEquals(traceId, reply.traceContext().traceId())
            server.shutdown()
        }
        Client("""{"services": {"echo": {"endpoints": ["${kit.upstreams[0]}"]}}}""").use { client ->
            val response = otelSpan().makeCurrent().use { client.call(Request(method = "GET", target = "echo")) }
            assertEquals(traceId, response.traceContext().traceId())
            assertTrue(response.text().contains(traceId), "the upstream received the span's trace: ${response.text()}")
        }
    }
}

/** Closes the bus (core's `close()`), then frees its handle. */
private suspend fun <T> Bus.using(block: suspend (Bus) -> T): T =
    try {
        block(this)
    } finally {
        shutdown()
        close()
    }
