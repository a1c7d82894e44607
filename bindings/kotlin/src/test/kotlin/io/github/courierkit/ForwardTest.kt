package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.QueueOptions
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.ValueSource
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds

/** `Delivery.forward`: the next workflow step under an id derived from the current one. */
@Timeout(30)
class ForwardTest {
    private fun url(transport: String) = when (transport) {
        "amqp" -> System.getenv("COURIER_AMQP_URL") ?: "amqp://guest:guest@127.0.0.1:5672/%2f"
        else -> "memory://kotlin-forward-${UUID.randomUUID()}"
    }

    /** docs/messaging.md: uuid5(namespace, "<id>\n<exchange>\n<routing key>"), by the JDK. */
    private fun nextId(messageId: String, exchange: String, routingKey: String): String {
        val namespace = UUID.fromString("5b1f4c8e-5d4e-4f0a-9a53-2c7e61b0d3a4")
        val bytes = java.nio.ByteBuffer.allocate(16)
            .putLong(namespace.mostSignificantBits).putLong(namespace.leastSignificantBits).array()
        val hash = java.security.MessageDigest.getInstance("SHA-1")
            .digest(bytes + "$messageId\n$exchange\n$routingKey".toByteArray())
        hash[6] = ((hash[6].toInt() and 0x0f) or 0x50).toByte()
        hash[8] = ((hash[8].toInt() and 0x3f) or 0x80).toByte()
        val buffer = java.nio.ByteBuffer.wrap(hash, 0, 16)
        return UUID(buffer.long, buffer.long).toString()
    }

    @ParameterizedTest
    @ValueSource(strings = ["amqp", "memory"])
    fun `forward hands on once under a derived id, then acks`(transport: String) = runBlocking {
        val bus = Bus.connect("""{"urls": ["${url(transport)}"]}""")
        try {
            val (first, last) = listOf("first", "last").map { "courier-test.kotlin.forward-$it.${UUID.randomUUID()}" }
            for (q in listOf(first, last)) bus.declareQueue(q, QueueOptions(quorum = false, deadLetter = false))
            val receipt = bus.publish("", first, "order".toByteArray(), PublishOptions(messageId = "order-1"))
            // A second copy stands for the redelivery after a crash between confirm and ack.
            bus.publish("", first, "order".toByteArray(), PublishOptions(messageId = "order-1", trace = receipt.trace))
            val step1 = bus.consume(first, dedup = false)
            var forwarded = ""
            repeat(2) {
                val d = checkNotNull(step1.next(5_000.milliseconds))
                val sent = d.forward("", last, "step 2".toByteArray())
                assertEquals(nextId("order-1", "", last), sent.messageId)
                assertEquals(receipt.trace["traceparent"]!!.split("-")[1], sent.trace["traceparent"]!!.split("-")[1])
                assertThrows<CourierException.Closed> { d.ack() }
                forwarded = sent.messageId
            }
            step1.shutdown()
            val step2 = bus.consume(last)
            val d = checkNotNull(step2.next(5_000.milliseconds))
            assertEquals(forwarded, d.messageId())
            assertEquals("step 2", String(d.body()))
            val mine = assertThrows<CourierException.Config> {
                d.forward("", first, "x".toByteArray(), PublishOptions(messageId = "mine"))
            }
            assertEquals("message_id", mine.field)
            d.ack()
            assertThrows<CourierException.Timeout> { step2.next(300.milliseconds) }
            val stats = bus.stats()
            assertEquals(3uL to 1uL, stats.acked to stats.deduplicated)
            step2.shutdown()
        } finally {
            bus.shutdown()
        }
    }
}
