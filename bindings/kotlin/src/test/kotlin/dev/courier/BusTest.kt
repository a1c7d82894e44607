package dev.courier

import dev.courier.ffi.Bus
import dev.courier.ffi.CourierException
import dev.courier.ffi.PublishOptions
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

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
            val delivery = consumer.asFlow(timeoutMs = 10_000uL).first { d ->
                (d.messageId() == receipt.messageId).also { mine -> if (!mine) d.ack() }
            }
            assertArrayEquals("hello from kotlin".toByteArray(), delivery.body())
            assertEquals("kotlin", delivery.headers()["x-lang"])
            assertEquals("c-1", delivery.correlationId())
            assertEquals("", delivery.exchange())
            assertEquals(queue, delivery.routingKey())
            assertEquals(receipt.trace, delivery.trace(), "the consumer sees the trace the publisher sent")
            val traceparent = delivery.trace()["traceparent"]!!
            assertEquals("4bf92f3577b34da6a3ce929d0e0e4736", traceparent.split("-")[1], "the caller's trace continues")
            delivery.ack()
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

        assertNull(consumer.next(5_000uL), "a shut-down consumer yields null")
    }

    @Test
    fun `a publish no queue takes is Unroutable`() {
        val error = assertThrows<CourierException.Unroutable> {
            runBlocking { bus.publish("", "courier-test.kotlin.no-such-queue", "lost".toByteArray()) }
        }
        assertEquals(true, error.detail.contains("unroutable"), error.detail)
    }
}
