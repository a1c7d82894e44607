package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Consumer
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.Delivery
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.QueueOptions
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.ValueSource
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds

/**
 * Delayed publishes (`delay`) and delayed retries (`retryDelays`) on RabbitMQ and
 * memory://. Delays are checked as lower bounds: a message may never arrive early.
 */
@Timeout(30)
class DelayTest {
    private fun url(transport: String) = when (transport) {
        "amqp" -> System.getenv("COURIER_AMQP_URL") ?: "amqp://guest:guest@127.0.0.1:5672/%2f"
        else -> "memory://kotlin-delay-${UUID.randomUUID()}"
    }

    private suspend fun Consumer.take(): Delivery = checkNotNull(next(5_000.milliseconds)) { "a delivery within 5 s" }

    @ParameterizedTest
    @ValueSource(strings = ["amqp", "memory"])
    fun `a delayed message is overtaken and arrives no earlier than its delay`(transport: String) = runBlocking {
        val bus = Bus.connect("""{"urls": ["${url(transport)}"]}""")
        try {
            val queue = "courier-test.kotlin.delayed.${UUID.randomUUID()}"
            bus.declareQueue(queue, QueueOptions(quorum = false, deadLetter = false))
            val sent = System.nanoTime()
            val receipt = bus.publish("", queue, "later".toByteArray(), PublishOptions(delay = 700.milliseconds))
            bus.publish("", queue, "now".toByteArray())
            val consumer = bus.consume(queue)
            val first = consumer.take()
            assertEquals("now", String(first.body()))
            first.ack()
            val later = consumer.take()
            val waitedMs = (System.nanoTime() - sent) / 1_000_000
            assertTrue(waitedMs >= 700, "arrived after $waitedMs ms")
            assertEquals("later", String(later.body()))
            assertEquals(receipt.messageId, later.messageId())
            assertEquals(receipt.trace["traceparent"]!!.split("-")[1], later.traceContext().traceId())
            later.ack()
            assertEquals(1uL, bus.stats().delayed)
            consumer.shutdown()
        } finally {
            bus.shutdown()
        }
    }

    @ParameterizedTest
    @ValueSource(strings = ["amqp", "memory"])
    fun `nacks come back after each retry delay, then dead-letter`(transport: String) = runBlocking {
        val bus = Bus.connect("""{"urls": ["${url(transport)}"]}""")
        try {
            val queue = "courier-test.kotlin.retry.${UUID.randomUUID()}"
            bus.declareQueue(queue, QueueOptions(retryDelays = listOf(200.milliseconds, 400.milliseconds)))
            bus.publish("", queue, "flaky".toByteArray(), PublishOptions(messageId = "order-1"))
            val consumer = bus.consume(queue)
            var delivery = consumer.take()
            for ((retry, delayMs) in listOf(1 to 200L, 2 to 400L)) {
                val nacked = System.nanoTime()
                delivery.nack(requeue = true)
                delivery = consumer.take()
                val waitedMs = (System.nanoTime() - nacked) / 1_000_000
                assertTrue(waitedMs >= delayMs, "retry $retry after $waitedMs ms")
                assertEquals("order-1", delivery.messageId())
                assertEquals(retry.toString(), delivery.headers()["x-courier-retries"])
                assertEquals("" to queue, delivery.exchange() to delivery.routingKey())
            }
            delivery.nack(requeue = true)
            val dead = bus.consume("$queue.dlq")
            val parked = dead.take()
            assertEquals("order-1", parked.messageId())
            assertEquals("2", parked.headers()["x-courier-retries"])
            parked.ack()
            val stats = bus.stats()
            assertEquals(2uL to 3uL, stats.retried to stats.nacked)
            consumer.shutdown()
            dead.shutdown()
        } finally {
            bus.shutdown()
        }
    }

    @Test
    fun `invalid delays are refused with the field named`() = runBlocking {
        val bus = Bus.connect("""{"urls": ["${url("memory")}"]}""")
        try {
            bus.declareQueue("orders")
            val zero = assertThrows<CourierException.Config> {
                bus.declareQueue("retrying", QueueOptions(retryDelays = listOf(1_000.milliseconds, 0.milliseconds)))
            }
            assertEquals("retry_delays_ms[1]", zero.field)
            val noDlq = assertThrows<CourierException.Config> {
                bus.declareQueue("retrying", QueueOptions(deadLetter = false, retryDelays = listOf(1.milliseconds)))
            }
            assertEquals("retry_delays_ms", noDlq.field)
            val never = assertThrows<CourierException.Config> {
                bus.publish("", "orders", "x".toByteArray(), PublishOptions(delay = 0.milliseconds))
            }
            assertEquals("delay_ms", never.field)
            assertEquals(0uL, bus.stats().published)
        } finally {
            bus.shutdown()
        }
    }
}
