package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.QueueOptions
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.yield
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.ValueSource
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds

/**
 * Coroutine cancellation on the bus: the cancelled coroutine ends with a
 * CancellationException at once, the Rust future is dropped, and what it held is released
 * (the request's reply slot, the waiting consumer's place, the unconfirmed-publish slot)
 * without losing a message; on memory:// and RabbitMQ. The HTTP call's case (its
 * in-flight slots) is in HedgeTest.
 */
@Timeout(30)
class CancelTest {
    private val amqpUrl = System.getenv("COURIER_AMQP_URL") ?: "amqp://guest:guest@127.0.0.1:5672/%2f"

    private fun url(transport: String) =
        if (transport == "memory") "memory://courier-kt-cancel-${UUID.randomUUID()}" else amqpUrl

    /** Polls every 10 ms, 5 s at most. */
    private suspend fun eventually(what: String, check: () -> Boolean) {
        repeat(500) {
            if (check()) return
            delay(10)
        }
        throw AssertionError("not within 5 s: $what")
    }

    private suspend fun <T> withBus(transport: String, more: String = "", block: suspend (Bus) -> T): T {
        val bus = Bus.connect("""{"urls": ["${url(transport)}"]$more}""")
        try {
            return block(bus)
        } finally {
            bus.shutdown()
            bus.close()
        }
    }

    @ParameterizedTest
    @ValueSource(strings = ["memory", "amqp"])
    fun `a cancelled request frees its reply slot`(transport: String) = runBlocking {
        withBus(transport) { bus ->
            val queue = "courier-kt.cancel.rpc.${UUID.randomUUID()}"
            bus.declareQueue(queue, QueueOptions(quorum = false))
            val server = bus.serve(queue) // takes the request and never answers
            val request = async { bus.request(queue, "x".toByteArray(), timeout = 30_000.milliseconds) }
            eventually("the request in flight") { bus.stats().rpcInFlight == 1uL }
            request.cancel()
            assertThrows<CancellationException> { request.await() }
            eventually("the reply slot freed") { bus.stats().rpcInFlight == 0uL }
            server.shutdown()
            server.close()
        }
    }

    @ParameterizedTest
    @ValueSource(strings = ["memory", "amqp"])
    fun `a cancelled next leaves the delivery for the next call`(transport: String) = runBlocking {
        withBus(transport) { bus ->
            val queue = "courier-kt.cancel.next.${UUID.randomUUID()}"
            bus.declareQueue(queue, QueueOptions(quorum = false))
            val consumer = bus.consume(queue)
            val waiting = async(start = CoroutineStart.UNDISPATCHED) { consumer.next() }
            val batch = async(start = CoroutineStart.UNDISPATCHED) { consumer.nextBatch(5u, 30_000.milliseconds) }
            // UNDISPATCHED: both ran to their first suspension, waiting inside the core.
            waiting.cancel()
            batch.cancel()
            assertThrows<CancellationException> { waiting.await() }
            assertThrows<CancellationException> { batch.await() }
            bus.publish("", queue, "later".toByteArray(), PublishOptions(messageId = "m1"))
            val delivery = consumer.next(5_000.milliseconds)
            assertNotNull(delivery)
            assertEquals("m1", delivery!!.messageId())
            delivery.ack()
            assertEquals(1uL, bus.stats().delivered)
            consumer.shutdown()
            consumer.close()
        }
    }

    @ParameterizedTest
    @ValueSource(strings = ["memory", "amqp"])
    fun `a cancelled publish gives back its unconfirmed slot`(transport: String) = runBlocking {
        // With room for one unconfirmed publish, a cancelled publish that kept its slot
        // would make every later publish time out; they are confirmed instead.
        withBus(transport, """, "max_unconfirmed": 1, "publish_deadline_ms": 5000""") { bus ->
            val queue = "courier-kt.cancel.publish.${UUID.randomUUID()}"
            bus.declareQueue(queue, QueueOptions(quorum = false))
            val publishes = (0 until 50).map { i ->
                async { bus.publish("", queue, "x".toByteArray(), PublishOptions(messageId = "c$i")) }
            }
            yield()
            publishes.forEach { it.cancel() }
            publishes.forEach { p -> runCatching { p.await() }.onFailure { assertTrue(it is CancellationException, "$it") } }
            repeat(5) { i ->
                val receipt = bus.publish("", queue, "after".toByteArray(), PublishOptions(messageId = "after$i"))
                assertEquals("after$i", receipt.messageId)
            }
        }
    }
}
