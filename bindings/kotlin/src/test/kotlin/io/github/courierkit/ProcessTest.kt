package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.QueueOptions
import kotlinx.coroutines.flow.take
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

/** `Delivery.process` settles by scope; a flow left early shuts its consumer down. */
@Timeout(30)
class ProcessTest {
    private fun url(transport: String) = when (transport) {
        "amqp" -> System.getenv("COURIER_AMQP_URL") ?: "amqp://guest:guest@127.0.0.1:5672/%2f"
        else -> "memory://kotlin-process-${UUID.randomUUID()}"
    }

    @ParameterizedTest
    @ValueSource(strings = ["amqp", "memory"])
    fun `process acks on success, nacks on a throw, leaves a settled delivery alone`(transport: String) = runBlocking {
        val bus = Bus.connect("""{"urls": ["${url(transport)}"]}""")
        val q = "courier-test.kotlin.process.${UUID.randomUUID()}"
        try {
            bus.declareQueue(q, QueueOptions(quorum = false))
            for (i in 0 until 4) bus.publish("", q, byteArrayOf(), PublishOptions(messageId = "p$i"))
            val consumer = bus.consume(q, dedup = false)
            suspend fun next() = checkNotNull(consumer.next(5_000.milliseconds))
            assertEquals("p0", next().process { it.messageId() })
            assertThrows<IllegalStateException> { next().process(requeue = false) { error("bad") } }
            val rejected = next()
            assertEquals(false, rejected.isSettled())
            rejected.process { it.reject() }
            assertTrue(rejected.isSettled(), "settled by the block, left alone by the scope")
            assertThrows<IllegalArgumentException> { next().process { throw IllegalArgumentException("again") } }
            val again = next()
            assertEquals("p3" to true, again.messageId() to again.redelivered())
            again.process { }
            val stats = bus.stats()
            assertEquals(Triple(2uL, 2uL, 1uL), Triple(stats.acked, stats.nacked, stats.rejected))
            consumer.shutdown()
            val dead = bus.consume("$q.dlq")
            val parked = List(2) { checkNotNull(dead.next(5_000.milliseconds)) }
            assertEquals(listOf("p1", "p2"), parked.map { it.messageId() })
            parked.forEach { it.ack() }
            dead.shutdown()
        } finally {
            bus.shutdown()
        }
    }

    @Test
    fun `a flow left early shuts its consumer down, and the unsettled rest returns`() = runBlocking {
        val bus = Bus.connect("""{"urls": ["memory://kotlin-process-${UUID.randomUUID()}"]}""")
        try {
            bus.declareQueue("orders")
            bus.publish("", "orders", "1".toByteArray())
            bus.publish("", "orders", "2".toByteArray())
            val consumer = bus.consume("orders")
            consumer.asFlow(5_000.milliseconds).take(1).collect { d -> d.process { assertEquals("1", String(it.body())) } }
            assertNull(consumer.next(1_000.milliseconds), "take(1) shut the consumer down")
            val again = bus.consume("orders")
            val d = checkNotNull(again.next(5_000.milliseconds))
            assertEquals("2", String(d.body()))
            d.ack()
            again.shutdown()
            assertTrue(bus.stats().acked == 2uL)
        } finally {
            bus.shutdown()
        }
    }
}
