package io.github.courierkit

import io.github.courierkit.ffi.BatchMessage
import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Consumer
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.Delivery
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.QueueOptions
import io.github.courierkit.ffi.deadlineFromHeaders
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.ValueSource
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds
import kotlin.time.Duration

/** `publishMany`, `Consumer.nextBatch` with one settle call, and deadlines across queues. */
@Timeout(60)
class BatchTest {
    private fun url(transport: String) = when (transport) {
        "amqp" -> System.getenv("COURIER_AMQP_URL") ?: "amqp://guest:guest@127.0.0.1:5672/%2f"
        else -> "memory://kotlin-batch-${UUID.randomUUID()}"
    }

    private fun queue(name: String) = "courier-test.kotlin.$name.${UUID.randomUUID()}"

    /** Batches of at most [max] until [n] deliveries came. */
    private suspend fun gather(consumer: Consumer, max: UInt, n: Int): List<Delivery> {
        val got = mutableListOf<Delivery>()
        val until = System.nanoTime() + 30_000_000_000L
        while (got.size < n) {
            assertTrue(System.nanoTime() < until, "${got.size} of $n in 30 s")
            val batch = checkNotNull(consumer.nextBatch(max, 500.milliseconds))
            val deliveries = batch.deliveries()
            assertTrue(deliveries.size <= max.toInt())
            got += deliveries
            batch.ack()
        }
        assertEquals(n, got.size)
        return got
    }

    @ParameterizedTest
    @ValueSource(strings = ["amqp", "memory"])
    fun `publishMany reports each message and nextBatch settles with one call`(transport: String) = runBlocking {
        val bus = Bus.connect("""{"urls": ["${url(transport)}"]}""")
        val q = queue("batch")
        try {
            bus.declareQueue(q, QueueOptions(quorum = false))
            val messages = (0 until 6).map { i ->
                BatchMessage("", if (i == 2) "nowhere.${UUID.randomUUID()}" else q, "m$i".toByteArray(), PublishOptions(messageId = "m$i"))
            }
            val results = bus.publishMany(messages)
            assertEquals(6, results.size)
            assertTrue(results[2].exceptionOrNull() is CourierException.Unroutable, "${results[2]}")
            assertEquals(listOf("m0", "m1", "m3", "m4", "m5"), results.filter { it.isSuccess }.map { it.getOrThrow().messageId })
            val empty = assertThrows<CourierException.Config> { bus.publishMany(emptyList()) }
            assertEquals("messages", empty.field)

            val consumer = bus.consume(q, prefetch = 5u)
            val over = assertThrows<CourierException.Config> { consumer.nextBatch(6u, 100.milliseconds) }
            assertEquals("max", over.field)
            val first = checkNotNull(consumer.nextBatch(5u, 5_000.milliseconds))
            val got = first.deliveries().toMutableList()
            got[0].reject()
            first.ack()
            // The fifth may still be on its way when the first batch returned.
            if (got.size < 5) got += gather(consumer, 5u, 5 - got.size)
            assertEquals(listOf("m0", "m1", "m3", "m4", "m5"), got.map { it.messageId() })
            assertEquals(0, checkNotNull(consumer.nextBatch(5u, 0.milliseconds)).deliveries().size)
            val stats = bus.stats()
            assertEquals(Triple(5uL, 4uL, 1uL), Triple(stats.delivered, stats.acked, stats.rejected))
            consumer.shutdown()
            assertNull(consumer.nextBatch(5u, 1_000.milliseconds))
        } finally {
            bus.shutdown()
        }
    }

    @ParameterizedTest
    @ValueSource(strings = ["amqp", "memory"])
    fun `expired messages are dead-lettered and the rest carry their budget`(transport: String) = runBlocking {
        val bus = Bus.connect("""{"urls": ["${url(transport)}"]}""")
        val q = queue("ttl")
        try {
            bus.declareQueue(q, QueueOptions(quorum = false))
            val zero = assertThrows<CourierException.Config> { bus.publish("", q, byteArrayOf(), PublishOptions(ttl = 0.milliseconds)) }
            assertEquals("ttl_ms", zero.field)
            bus.publish("", q, "stale".toByteArray(), PublishOptions(messageId = "stale", headers = mapOf("x-courier-deadline" to "1000")))
            bus.publish("", q, "fresh".toByteArray(), PublishOptions(messageId = "fresh", ttl = 60_000.milliseconds))
            val consumer = bus.consume(q)
            val d = checkNotNull(consumer.next(5_000.milliseconds))
            assertEquals("fresh", d.messageId())
            val left = checkNotNull(d.remaining())
            assertTrue(left > Duration.ZERO && left <= 60.seconds, "$left")
            d.ack()
            val dead = bus.consume("$q.dlq")
            val parked = checkNotNull(dead.next(5_000.milliseconds))
            assertEquals("stale", parked.messageId())
            assertEquals(Duration.ZERO, parked.remaining())
            parked.ack()
            assertEquals(1uL, bus.stats().expired)
            consumer.shutdown()
            dead.shutdown()
        } finally {
            bus.shutdown()
        }
    }

    @Test
    fun `deadlineFromHeaders reads the caller's budget`() {
        assertEquals(1500.milliseconds, deadlineFromHeaders(mapOf("X-Courier-Deadline-Ms" to "1500")))
        assertNull(deadlineFromHeaders(mapOf("accept" to "*/*")))
        val bad = assertThrows<CourierException.Config> { deadlineFromHeaders(mapOf("x-courier-deadline-ms" to "soon")) }
        assertEquals("x-courier-deadline-ms", bad.field)
    }
}
