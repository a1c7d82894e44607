package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.QueueOptions
import io.github.courierkit.ffi.Request
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds

/**
 * The JNI path of `Client.call` and `Bus.publish` (JniCalls.kt, jvm.rs) against the
 * generated JNA path it stands in for: the same outcomes and errors, every one of many
 * concurrent operations settled, and core's workers attached as daemons (a non-daemon
 * attachment would keep every JVM that used courier from exiting).
 */
@Timeout(60)
class JniTest : WithTestkit(upstreams = 1) {
    private lateinit var client: Client

    @BeforeAll
    fun start() {
        client = Client("""{"services": {"echo": {"endpoints": ["${kit.upstreams[0]}"]}}}""")
    }

    @AfterAll
    fun stop() {
        if (::client.isInitialized) client.close()
    }

    @Test
    fun `a call answers as the generated callNative does`() = runBlocking {
        val request = Request(
            method = "POST", target = "echo", path = "/jni", headers = mapOf("x-path" to "jni"),
            body = "héllo".toByteArray(), idempotencyKey = "k-jni", trace = emptyMap(),
        )
        val fast = client.call(request)
        val generated = client.callNative(request)
        assertEquals(generated.status, fast.status)
        // The testkit echoes method, path, headers and body; each call is a trace of its own.
        val untraced = Regex("\"traceparent\":\"[^\"]*\",?")
        assertEquals(generated.text().replace(untraced, ""), fast.text().replace(untraced, ""))
        assertEquals(generated.attempts, fast.attempts)
        assertEquals(generated.endpoint, fast.endpoint)
        assertEquals(generated.idempotencyKey, fast.idempotencyKey)
        assertEquals(generated.headers.keys, fast.headers.keys)
    }

    @Test
    fun `errors cross as the same CourierException`() = runBlocking {
        val cases = listOf(
            Request(method = "GET", target = "nowhere"),
            Request(method = "GET", target = "echo", deadline = (-1).milliseconds),
            Request(method = "G ET", target = "echo"),
        )
        for (request in cases) {
            val fast = runCatching { client.call(request) }.exceptionOrNull()
            val generated = runCatching { client.callNative(request) }.exceptionOrNull()
            assertTrue(fast is CourierException.Config, "$request: $fast")
            assertEquals(generated?.javaClass, fast?.javaClass, "$request")
            assertEquals(generated?.message, fast?.message, "$request")
        }
    }

    @Test
    fun `a closed object is refused as the generated path refuses it, and close never frees a lent handle`() =
        runBlocking {
            // Calls racing close(): each one either runs to its end (its handle was lent
            // while the call counter was held) or is refused as closed; none crashes.
            repeat(20) { round ->
                val racing = Client("""{"services": {"echo": {"endpoints": ["${kit.upstreams[0]}"]}}}""")
                val outcomes = withContext(Dispatchers.Default) {
                    val calls = (0 until 50).map {
                        async { runCatching { racing.get("echo", "/race/$round").status } }
                    }
                    racing.close()
                    calls.awaitAll()
                }
                for (outcome in outcomes) {
                    val e = outcome.exceptionOrNull()
                    assertTrue(
                        outcome.getOrNull() == 200.toUShort() || e is IllegalStateException || e is CourierException,
                        "$outcome",
                    )
                }
            }
            val closed = Client("""{"services": {"echo": {"endpoints": ["${kit.upstreams[0]}"]}}}""")
            closed.close()
            val request = Request(method = "GET", target = "echo")
            val fast = runCatching { closed.call(request) }.exceptionOrNull()
            val generated = runCatching { closed.callNative(request) }.exceptionOrNull()
            assertTrue(fast is IllegalStateException, "$fast")
            assertEquals(generated?.javaClass, fast?.javaClass)
            assertEquals(generated?.message, fast?.message)

            val bus = Bus.connect("""{"urls": ["memory://courier-kt-jni-closed-${UUID.randomUUID()}"]}""")
            bus.close()
            val refused = runCatching { bus.publish("", "q", ByteArray(1)) }.exceptionOrNull()
            assertTrue(refused is IllegalStateException && refused.message!!.contains("destroyed"), "$refused")
        }

    @Test
    fun `every one of many concurrent calls and publishes settles`() = runBlocking {
        // 1,000: within the default max_concurrency (1,024), so every call is sent.
        val calls = withContext(Dispatchers.Default) {
            (0 until 1_000).map { i -> async { client.get("echo", "/many/$i").status } }.awaitAll()
        }
        assertEquals(List(1_000) { 200.toUShort() }, calls)

        val bus = Bus.connect("""{"urls": ["memory://courier-kt-jni-${UUID.randomUUID()}"]}""")
        try {
            bus.declareQueue("jni", QueueOptions())
            val ids = withContext(Dispatchers.Default) {
                (0 until 1_000).map { i ->
                    async { bus.publish("", "jni", "m$i".toByteArray(), PublishOptions(messageId = "m$i")).messageId }
                }.awaitAll()
            }
            assertEquals(List(1_000) { "m$it" }, ids)
        } finally {
            bus.shutdown()
            bus.close()
        }

        val workers = Thread.getAllStackTraces().keys.filter { it.name == "courier-worker" }
        assertTrue(workers.isNotEmpty(), "core's workers settled through JNI, so they are attached")
        assertTrue(workers.all { it.isDaemon }, "attached as daemons: ${workers.map { it.isDaemon }}")
    }
}
