package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.QueueOptions
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration
import kotlin.time.Duration.Companion.days

/** Hostile input and hostile peers: limits, paths, header names and secrets (each once broke). */
@Timeout(30)
class HostileTest : WithTestkit(upstreams = 1) {
    @Test
    fun `an endless response body stops at the limit`() = runBlocking {
        kit.behave(0, """{"default": {"stream_body_bytes": 9007199254740991}}""")
        Client(
            """{"services": {"orders": {"endpoints": ["${kit.upstreams[0]}"]}},
                "limits": {"max_response_body_bytes": 1000000}}""",
        ).use { client ->
            val e = assertThrows<CourierException.LimitExceeded> { runBlocking { client.get("orders", "/endless") } }
            assertEquals("limits.max_response_body_bytes", e.limit)
            assertEquals(1_000_000uL, e.max)
        }
        assertEquals(1L, kit.requestCount(0), "not retried")
    }

    @Test
    fun `a response head over the limit fails with LimitExceeded`() = runBlocking {
        kit.behave(0, """{"default": {"headers": {"x-big": "${"a".repeat(70_000)}"}}}""")
        Client("""{"services": {"orders": {"endpoints": ["${kit.upstreams[0]}"]}}}""").use { client ->
            val e = assertThrows<CourierException.LimitExceeded> { runBlocking { client.get("orders", "/head") } }
            assertEquals("limits.max_response_header_bytes", e.limit)
            assertEquals(65_536uL, e.max)
        }
        assertEquals(1L, kit.requestCount(0), "not retried")
    }

    @Test
    fun `empty message ids from another publisher are not deduplicated`() = runBlocking<Unit> {
        val url = System.getenv("COURIER_AMQP_URL") ?: "amqp://guest:guest@127.0.0.1:5672/%2f"
        val queue = "courier-test.kotlin.empty-id.${UUID.randomUUID()}"
        val bus = Bus.connect("""{"urls": ["$url"]}""")
        try {
            bus.declareQueue(queue, QueueOptions(quorum = false, deadLetter = false))
            val factory = com.rabbitmq.client.ConnectionFactory().apply { setUri(url) }
            factory.newConnection().use { conn ->
                conn.createChannel().use { ch ->
                    val props = com.rabbitmq.client.AMQP.BasicProperties.Builder().messageId("").build()
                    for (body in listOf("first", "second")) ch.basicPublish("", queue, props, body.toByteArray())
                }
            }
            val consumer = bus.consume(queue, prefetch = 10u)
            try {
                for (expected in listOf("first", "second")) {
                    val d = consumer.next(5_000.milliseconds) ?: error("$expected never arrived")
                    assertEquals(expected, String(d.body()))
                    assertEquals(null, d.messageId(), "an empty id is no id")
                    d.ack()
                }
            } finally {
                consumer.shutdown()
            }
            assertEquals(0uL, bus.stats().deduplicated)
            factory.newConnection().use { conn -> conn.createChannel().use { it.queueDelete(queue) } }
        } finally {
            bus.shutdown()
            bus.close()
        }
    }

    @Test
    fun `a bus reconnects after its connection is cut and its consumer is subscribed again`() = runBlocking<Unit> {
        val url = System.getenv("COURIER_AMQP_URL") ?: "amqp://guest:guest@127.0.0.1:5672/%2f"
        val proxy = kit.proxy(url)
        val queue = "courier-test.kotlin.reconnect.${UUID.randomUUID()}"
        val bus = Bus.connect(
            """{"urls": ["${proxy.url(url)}"], "reconnect": {"base_delay_ms": 50, "max_delay_ms": 500}}""",
        )
        try {
            bus.declareQueue(queue, QueueOptions(quorum = false, deadLetter = false))
            val consumer = bus.consume(queue, prefetch = 10u)
            try {
                bus.publish("", queue, "before".toByteArray(), PublishOptions(messageId = "before"))
                val first = consumer.next(10_000.milliseconds) ?: error("before never arrived")
                assertEquals("before", first.messageId())
                first.ack()
                proxy.cut()
                // Waits for the new connection.
                bus.publish("", queue, "after".toByteArray(), PublishOptions(messageId = "after"))
                val second = consumer.next(30_000.milliseconds) ?: error("the consumer was not subscribed again")
                assertEquals("after", second.messageId())
                second.ack()
            } finally {
                consumer.shutdown()
            }
            assertTrue(bus.stats().reconnects >= 1uL)
            assertTrue(proxy.accepted() >= 2)
            val factory = com.rabbitmq.client.ConnectionFactory().apply { setUri(url) }
            factory.newConnection().use { conn -> conn.createChannel().use { it.queueDelete(queue) } }
        } finally {
            bus.shutdown()
            bus.close()
        }
    }

    @Test
    fun `paths cannot climb out of the base path`() = runBlocking {
        Client("""{"services": {"orders": {"endpoints": ["${kit.upstreams[0]}/api/v1"]}}}""").use { client ->
            for (path in listOf("../../admin", "%2e%2e/%2e%2e/admin", "..%2fadmin")) {
                val e = assertThrows<CourierException.Config>(path) { runBlocking { client.get("orders", path) } }
                assertEquals("path", e.field)
            }
        }
        assertEquals(0L, kit.requestCount(0))
    }

    @Test
    fun `a header name longer than 255 bytes is a config error`() = runBlocking {
        val bus = Bus.connect("""{"urls": ["memory://hostile-headers"]}""")
        bus.declareQueue("q", QueueOptions())
        val e = assertThrows<CourierException.Config> {
            runBlocking { bus.publish("", "q", "x".toByteArray(), PublishOptions(headers = mapOf("h".repeat(256) to "v"))) }
        }
        assertEquals("headers", e.field)
        assertEquals(0uL, bus.stats().published)
        bus.shutdown()
        bus.close()
    }

    /**
     * Every error path reachable with a credential-carrying URL: HTTP to a closed port (by
     * service and by absolute URL), an upstream answering 503, AMQP with wrong credentials
     * and to a closed port, invalid URLs. Searched: toString, message and stack trace of
     * each error and its cause chain, and the stats.
     */
    @Test
    fun `passwords and tokens in URLs never appear in errors or stats`() = runBlocking<Unit> {
        val password = "pw-" + UUID.randomUUID()
        val token = "tok-" + UUID.randomUUID()
        val up = kit.upstreams[0].removePrefix("http://")
        kit.behave(0, """{"default": {"status": 503}}""")
        val shown = mutableListOf<String>()
        suspend fun attempt(call: suspend () -> Unit) {
            try {
                call()
            } catch (e: CourierException) {
                shown += generateSequence<Throwable>(e) { it.cause }.joinToString(" | ") { it.stackTraceToString() }
            }
        }
        Client(
            """{"services": {
                "pw": {"endpoints": ["http://user:$password@127.0.0.1:1"]},
                "tok": {"endpoints": ["http://$token@127.0.0.1:1"]},
                "pw503": {"endpoints": ["http://user:$password@$up"]},
                "tok503": {"endpoints": ["http://$token@$up"]}}}""",
        ).use { client ->
            for (target in listOf("pw", "tok", "http://user:$password@127.0.0.1:1/x", "http://$token@127.0.0.1:1/x")) {
                attempt { client.get(target, "/", deadline = 2000.milliseconds) }
            }
            for (target in listOf("pw503", "tok503")) assertEquals(503, client.get(target, "/").status.toInt())
            shown += client.stats().toString()
        }
        val amqp = System.getenv("COURIER_AMQP_URL") ?: "amqp://guest:guest@127.0.0.1:5672/%2f"
        val broker = amqp.substringAfter("@")
        for (url in listOf(
            "amqp://guest:$password@$broker",
            "amqp://$token@$broker",
            "amqp://guest:$password@127.0.0.1:1/%2f",
            "amqp://$token@127.0.0.1:1/%2f",
            "amqp://guest:$password@127.0.0.1:99999",
        )) {
            attempt { Bus.connect("""{"urls": ["$url"]}""") }
        }
        for (url in listOf("http://user:$password@127.0.0.1:99999", "ftp://$token@h")) {
            attempt { Client("""{"services": {"s": {"endpoints": ["$url"]}}}""").close() }
        }
        assertEquals(12, shown.size, shown.joinToString("\n"))
        assertTrue(shown.count { it.contains("***@") } >= 7, shown.joinToString("\n"))
        for (text in shown) assertFalse(text.contains(password) || text.contains(token), text)
    }

    @Test
    fun `a deadline beyond 30 days or below zero is a config error, not an overflow`() = runBlocking {
        Client("""{"services": {"orders": {"endpoints": ["${kit.upstreams[0]}"]}}}""").use { client ->
            for (deadline in listOf(Duration.INFINITE, 31.days, (-1).milliseconds)) {
                val e = assertThrows<CourierException.Config>("$deadline") {
                    runBlocking { client.get("orders", "/", deadline = deadline) }
                }
                assertEquals("deadline_ms", e.field)
            }
        }
        assertEquals(0L, kit.requestCount(0))
    }

    @Test
    fun `a panic inside core throws Internal from the suspend function`() = runBlocking {
        val e = assertThrows<CourierException.Internal> { runBlocking { io.github.courierkit.ffi.panicForTests() } }
        assertTrue(e.detail.contains("forced panic"), e.detail)
    }
}
