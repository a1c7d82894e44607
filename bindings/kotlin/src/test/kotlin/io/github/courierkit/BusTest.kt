package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.BusStats
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.PublishOptions
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Job
import kotlinx.coroutines.async
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds

/** Against the RabbitMQ at `$COURIER_AMQP_URL` (default: guest on localhost). */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@Timeout(30)
class BusTest {
    private val url = System.getenv("COURIER_AMQP_URL") ?: "amqp://guest:guest@127.0.0.1:5672/%2f"
    private lateinit var bus: Bus

    @BeforeAll
    fun connect() = runBlocking {
        bus = Bus.connect("""{"urls": ["$url"]}""")
    }

    @AfterAll
    fun close() = runBlocking {
        if (::bus.isInitialized) {
            bus.shutdown()
            bus.close()
        }
    }

    @Test
    fun `a published message is consumed and acked`() = runBlocking {
        val queue = "courier-test.kotlin.roundtrip"
        bus.declareQueue(queue)
        val receipt = bus.publish(
            "", queue, "hello from kotlin".toByteArray(),
            PublishOptions(
                headers = mapOf("x-lang" to "kotlin"),
                correlationId = "c-1",
                trace = mapOf("traceparent" to "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ),
        )

        val consumer = bus.consume(queue, prefetch = 10u)
        try {
            // Messages left by an interrupted earlier run are acked away, not asserted on.
            // Settled inside the flow: leaving it with `first` shuts the consumer down.
            val delivery = consumer.asFlow(timeout = 10_000.milliseconds).first { d ->
                d.process { it.messageId() == receipt.messageId }
            }
            assertNull(consumer.next(100.milliseconds), "first {} shut the consumer down")
            assertArrayEquals("hello from kotlin".toByteArray(), delivery.body())
            assertEquals("kotlin", delivery.headers()["x-lang"])
            assertEquals("c-1", delivery.correlationId())
            assertEquals("", delivery.exchange())
            assertEquals(queue, delivery.routingKey())
            assertEquals(receipt.trace, delivery.trace(), "the consumer sees the trace the publisher sent")
            val traceparent = delivery.trace()["traceparent"]!!
            assertEquals("4bf92f3577b34da6a3ce929d0e0e4736", traceparent.split("-")[1], "the caller's trace continues")
        } finally {
            consumer.shutdown()
        }
    }

    @Test
    fun `cancelling a collecting coroutine shuts the consumer down`() = runBlocking {
        val queue = "courier-test.kotlin.cancel"
        bus.declareQueue(queue)
        val consumer = bus.consume(queue)
        val collecting = launch(start = CoroutineStart.UNDISPATCHED) {
            consumer.asFlow().collect { it.nack(requeue = true) }
        }
        collecting.cancelAndJoin()

        assertNull(consumer.next(5_000.milliseconds), "a shut-down consumer yields null")
    }

    @Test
    fun `a request to a served queue gets its reply over direct reply-to`() = runBlocking {
        val queue = "courier-test.kotlin.rpc"
        bus.declareQueue(queue)
        // Requests left by an interrupted earlier run expired with their timeout.
        val serving = serveEcho(bus, queue)
        try {
            val reply = bus.request(queue, "ping".toByteArray(), timeout = 10_000.milliseconds)
            assertEquals("echo: ping", String(reply.body()))
        } finally {
            serving.cancelAndJoin()
        }
    }

    @Test
    fun `a publish no queue takes is Unroutable`() {
        val error = assertThrows<CourierException.Unroutable> {
            runBlocking { bus.publish("", "courier-test.kotlin.no-such-queue", "lost".toByteArray()) }
        }
        assertEquals(true, error.detail.contains("unroutable"), error.detail)
        // The fields of core's error table, the same in every language.
        assertEquals("courier-test.kotlin.no-such-queue", error.routingKey)
        assertEquals("NO_ROUTE", error.replyText)
        val broker = assertThrows<CourierException.Broker> {
            runBlocking { bus.consume("courier-test.kotlin.no-such-queue") }
        }
        assertEquals(404uL, broker.replyCode)
        assertEquals("basic.consume", broker.operation)
    }
}

/** A fresh in-process broker per call: `memory://` names are process-wide, so each test isolates itself. */
private fun memoryUrl(test: String) = "memory://kotlin-$test-${UUID.randomUUID()}"

private suspend fun memoryBus(url: String, extra: String = ""): Bus {
    val more = if (extra.isEmpty()) "" else ", $extra"
    return Bus.connect("""{"urls": ["$url"]$more}""")
}

/** Closes the bus (core's `close()`), then frees its handle. */
private suspend fun <T> Bus.using(block: suspend (Bus) -> T): T =
    try {
        block(this)
    } finally {
        shutdown()
        close()
    }

/**
 * Serves [queue] in a coroutine, answering each request with `echo: <body>` and the
 * request's `x-lang` header echoed; cancel the job to stop (that shuts the consumer down).
 */
private suspend fun CoroutineScope.serveEcho(bus: Bus, queue: String): Job {
    val server = bus.serve(queue)
    return launch {
        server.asFlow().collect { request ->
            val headers = request.headers()["x-lang"]?.let { mapOf("x-lang" to it) } ?: emptyMap()
            request.reply("echo: ${String(request.body())}".toByteArray(), headers)
            request.ack()
        }
    }
}

/** The in-process broker (`memory://NAME`): no RabbitMQ needed, one broker per test. */
@Timeout(30)
class MemoryBusTest {
    private val traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test
    fun `a published message is consumed and acked`() = runBlocking {
        memoryBus(memoryUrl("roundtrip")).using { bus ->
            bus.declareQueue("orders")
            val receipt = bus.publish(
                "", "orders", "hello".toByteArray(),
                PublishOptions(headers = mapOf("x-lang" to "kotlin"), correlationId = "c-1", deadline = 2_000.milliseconds),
            )
            val consumer = bus.consume("orders")
            try {
                val delivery = checkNotNull(consumer.next(5_000.milliseconds)) { "a delivery must arrive" }
                assertEquals(receipt.messageId, delivery.messageId())
                assertArrayEquals("hello".toByteArray(), delivery.body())
                assertEquals("kotlin", delivery.headers()["x-lang"])
                assertEquals("c-1", delivery.correlationId())
                assertNull(delivery.replyTo(), "a published message is not a request")
                assertEquals(receipt.trace, delivery.trace())
                val notARequest = assertThrows<CourierException.Config>("only a request can be replied to") {
                    delivery.reply("no".toByteArray())
                }
                assertEquals("reply", notARequest.field)
                delivery.ack()
                assertThrows<CourierException.Closed>("a delivery settles once") { delivery.ack() }
            } finally {
                consumer.shutdown()
            }
            val stats = bus.stats()
            assertEquals(1uL, stats.published)
            assertEquals(1uL, stats.confirmed)
            assertEquals(1uL, stats.delivered)
            assertEquals(1uL, stats.acked)
        }
    }

    @Test
    fun `a message id already acked is skipped and counted as deduplicated`() = runBlocking {
        memoryBus(memoryUrl("dedup")).using { bus ->
            bus.declareQueue("orders")
            for (id in listOf("order-1", "order-1", "order-2")) {
                bus.publish("", "orders", id.toByteArray(), PublishOptions(messageId = id))
            }
            val consumer = bus.consume("orders", prefetch = 1u)
            try {
                val seen = mutableListOf<String?>()
                // The first copy is acked before the next pull, so the second is a known
                // duplicate there: core acks and skips it, and hands over order-2.
                repeat(2) {
                    val delivery = checkNotNull(consumer.next(5_000.milliseconds)) { "a delivery must arrive" }
                    seen += delivery.messageId()
                    delivery.ack()
                }
                assertEquals(listOf("order-1", "order-2"), seen, "each message id reaches the application once")
                assertThrows<CourierException.Timeout>("nothing is left: the duplicate was consumed by core") {
                    consumer.next(200.milliseconds)
                }
            } finally {
                consumer.shutdown()
            }
            val stats = bus.stats()
            assertEquals(1uL, stats.deduplicated)
            assertEquals(3uL, stats.published)
            assertEquals(2uL, stats.delivered)
            assertEquals(2uL, stats.acked)
        }
    }

    @Test
    fun `a consumer without dedup sees every copy`() = runBlocking {
        memoryBus(memoryUrl("no-dedup")).using { bus ->
            bus.declareQueue("orders")
            repeat(2) { bus.publish("", "orders", "same".toByteArray(), PublishOptions(messageId = "same")) }
            val consumer = bus.consume("orders", dedup = false)
            try {
                repeat(2) {
                    val delivery = checkNotNull(consumer.next(5_000.milliseconds)) { "a delivery must arrive" }
                    assertEquals("same", delivery.messageId())
                    delivery.ack()
                }
            } finally {
                consumer.shutdown()
            }
            assertEquals(0uL, bus.stats().deduplicated)
        }
    }

    @Test
    fun `a request is answered by a server coroutine`() = runBlocking {
        val url = memoryUrl("rpc")
        // Two connections to one in-process broker, as a client and a server process would be.
        memoryBus(url).using { server ->
            memoryBus(url).using { client ->
                server.declareQueue("pricing")
                val serving = serveEcho(server, "pricing")
                try {
                    val reply = client.request(
                        "pricing", "quote".toByteArray(),
                        headers = mapOf("x-lang" to "kotlin"),
                        trace = mapOf("traceparent" to traceparent),
                    )
                    assertEquals("echo: quote", String(reply.body()))
                    assertEquals("kotlin", reply.headers()["x-lang"], "the server's reply headers arrive")
                    assertNotNull(reply.correlationId(), "a reply carries its request's correlation id")
                    assertEquals(
                        "4bf92f3577b34da6a3ce929d0e0e4736", reply.trace()["traceparent"]!!.split("-")[1],
                        "the reply continues the caller's trace",
                    )
                    reply.ack() // a reply was settled by the broker: a no-op

                    val second = client.request("pricing", "again".toByteArray(), timeout = 2_000.milliseconds)
                    assertEquals("echo: again", String(second.body()))
                } finally {
                    serving.cancelAndJoin()
                }
                val stats = client.stats()
                assertEquals(2uL, stats.published, "two requests")
                assertEquals(0uL, stats.rpcInFlight, "no request is waiting any more")
                assertEquals(2uL, server.stats().acked, "the server acked both requests")
            }
        }
    }

    @Test
    fun `a request whose server does not reply fails with Timeout`() = runBlocking {
        memoryBus(memoryUrl("rpc-timeout")).using { bus ->
            bus.declareQueue("silent")
            val server = bus.serve("silent")
            val served = mutableListOf<String?>()
            val serving = launch {
                server.asFlow().collect { request ->
                    served += request.replyTo()
                    request.ack() // and no reply
                }
            }
            try {
                val error = assertThrows<CourierException.Timeout> {
                    bus.request("silent", "hello?".toByteArray(), timeout = 300.milliseconds)
                }
                assertTrue(error.detail.contains("request"), error.detail)
                assertEquals(1, served.size, "the server got the request")
                assertNotNull(served[0], "a request carries a reply-to address")
            } finally {
                serving.cancelAndJoin()
            }
            assertEquals(0uL, bus.stats().rpcInFlight, "a timed-out request is forgotten")
        }
    }

    @Test
    fun `a request no queue takes is Unroutable`() = runBlocking {
        memoryBus(memoryUrl("rpc-unroutable")).using { bus ->
            assertThrows<CourierException.Unroutable> {
                bus.request("nobody-home", "hello?".toByteArray(), timeout = 2_000.milliseconds)
            }
            Unit
        }
    }

    @Test
    fun `shutting a consumer down ends a pending next with null`() = runBlocking {
        memoryBus(memoryUrl("shutdown-pending")).using { bus ->
            bus.declareQueue("idle")
            val consumer = bus.consume("idle")
            val pending = async(start = CoroutineStart.UNDISPATCHED) { consumer.next(null) }
            // Swift's AsyncSequence relies on this: its cancellation handler closes the
            // consumer while a next() is pending.
            withTimeout(5_000) { consumer.shutdown() }
            assertNull(withTimeout(5_000) { pending.await() }, "a closed consumer yields null")
        }
    }

    @Test
    fun `stats start at zero on a new bus`() = runBlocking {
        memoryBus(memoryUrl("stats"), """"dedup": {"store": "memory", "capacity": 10}""").using { bus ->
            assertEquals(
                BusStats(
                    published = 0u, confirmed = 0u, resent = 0u, returned = 0u, publishRejected = 0u,
                    republished = 0u, delivered = 0u, acked = 0u, nacked = 0u, rejected = 0u, redelivered = 0u,
                    deduplicated = 0u, retried = 0u, delayed = 0u, expired = 0u, rpcInFlight = 0u, reconnects = 0u,
                ),
                bus.stats(),
            )
        }
    }

    @Test
    fun `a closed bus refuses publishes with Closed`() = runBlocking {
        val bus = memoryBus(memoryUrl("closed"))
        bus.declareQueue("orders")
        bus.shutdown()
        assertThrows<CourierException.Closed> { bus.publish("", "orders", "late".toByteArray()) }
        bus.close()
    }
}
