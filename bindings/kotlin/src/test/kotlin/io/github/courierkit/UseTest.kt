package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import kotlinx.coroutines.async
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.yield
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds

/** `use { }` shuts a client, bus or consumer down and frees its handle, however the block ends. */
@Timeout(30)
class UseTest {
    private fun memory() = """{"urls": ["memory://kotlin-use-${UUID.randomUUID()}"]}"""

    // dedup = false: a delivery left unsettled keeps its dedup claim until its handle is
    // freed, which would hold back the redelivery these tests look for.

    @Test
    fun `a consumer used in a block is shut down after it, and its unsettled delivery returns`() = runBlocking<Unit> {
        val bus = Bus.connect(memory())
        try {
            bus.declareQueue("orders")
            bus.publish("", "orders", "1".toByteArray())
            val consumer = bus.consume("orders", dedup = false)
            val body = consumer.use { String(checkNotNull(it.next(5_000.milliseconds)).body()) }
            assertEquals("1", body)
            // Freed: the handle is gone, not merely closed.
            assertThrows<IllegalStateException> { runBlocking { consumer.next(0.milliseconds) } }
            val again = bus.consume("orders", dedup = false)
            val d = checkNotNull(again.next(5_000.milliseconds)) { "the unsettled delivery went back to the queue" }
            assertEquals("1" to true, String(d.body()) to d.redelivered())
            d.ack()
            again.shutdown()
        } finally {
            bus.shutdown()
        }
    }

    @Test
    fun `a bus used in a block that throws is shut down, and the exception comes through`() = runBlocking<Unit> {
        val bus = Bus.connect(memory())
        val thrown = assertThrows<IllegalArgumentException> {
            runBlocking {
                bus.use {
                    it.declareQueue("q")
                    it.publish("", "q", "x".toByteArray())
                    throw IllegalArgumentException("the block failed")
                }
            }
        }
        assertEquals("the block failed", thrown.message)
        assertThrows<IllegalStateException> { bus.stats() }
    }

    @Test
    fun `a cancelled coroutine still shuts its consumer down`() = runBlocking<Unit> {
        val bus = Bus.connect(memory())
        try {
            bus.declareQueue("orders")
            bus.publish("", "orders", "1".toByteArray())
            val consumer = bus.consume("orders", dedup = false)
            val waiting = async {
                consumer.use {
                    checkNotNull(it.next(5_000.milliseconds)) // taken, never settled
                    it.next(10_000.milliseconds) // cancelled while waiting here
                }
            }
            while (bus.stats().delivered < 1uL) yield()
            waiting.cancelAndJoin()
            assertThrows<IllegalStateException> { runBlocking { consumer.next(0.milliseconds) } }
            val again = bus.consume("orders", dedup = false)
            val d = checkNotNull(again.next(5_000.milliseconds)) { "the shutdown returned the unsettled delivery" }
            assertEquals(true, d.redelivered())
            d.ack()
            again.shutdown()
        } finally {
            bus.shutdown()
        }
    }

    @Test
    fun `a client used in a block is shut down and freed after it`() {
        val client = Client("""{"services": {"s": {"endpoints": ["http://127.0.0.1:9"]}}}""")
        val services = client.use { it.stats().services.keys }
        assertEquals(setOf("s"), services)
        assertThrows<IllegalStateException> { client.stats() }
    }
}
