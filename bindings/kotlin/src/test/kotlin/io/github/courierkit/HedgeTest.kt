package io.github.courierkit

import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

/**
 * Hedged requests and the per-call idempotency key through the binding, counted at the
 * testkit. Round robin's first pick is the first endpoint, so a script that hangs upstream
 * 0's first request makes the first attempt hang; only a hedge to upstream 1 answers within
 * the deadline. Every test names its own service (retry budgets are per process).
 */
@Timeout(30)
class HedgeTest : WithTestkit(upstreams = 2) {
    private fun hedged(service: String, deadlineMs: Int = 3000): Client = Client(
        """{"services": {"$service": {"endpoints": ["${kit.upstreams[0]}", "${kit.upstreams[1]}"],
            "balancer": "round_robin", "deadline_ms": $deadlineMs, "hedge": {"delay_ms": 50}}}}""",
    )

    @Test
    fun `a hedge answers while the first attempt hangs`() = runBlocking {
        kit.behave(0, """{"script": [{"latency_ms": 10000}]}""")
        hedged("kt-hedge").use { client ->
            val response = client.get("kt-hedge", "/x")
            assertEquals(200.toUShort(), response.status)
            assertEquals(2u, response.attempts)
            assertEquals(kit.upstreams[1].trimEnd('/'), response.endpoint.trimEnd('/'))
            val stats = client.stats().services["kt-hedge"]!!
            assertEquals(listOf(1uL, 1uL, 0uL), listOf(stats.hedges, stats.hedgesWon, stats.inFlight))
            assertEquals(listOf(1L, 1L), listOf(kit.requestCount(0), kit.requestCount(1)))
        }
    }

    @Test
    fun `an idempotent POST is hedged with one generated key`() = runBlocking {
        kit.behave(0, """{"script": [{"latency_ms": 10000}]}""")
        hedged("kt-hedge-post").use { client ->
            val response = client.post("kt-hedge-post", "/orders", "{}".toByteArray(), idempotent = true)
            assertEquals(2u, response.attempts)
            val key = response.idempotencyKey!!
            assertTrue(Regex("^[0-9a-f]{8}-[0-9a-f]{4}-7").containsMatchIn(key), key)
            assertEquals(mapOf(key to 1L), kit.idempotencyKeyCounts(0))
            assertEquals(mapOf(key to 1L), kit.idempotencyKeyCounts(1))
        }
    }

    @Test
    fun `a POST without a key is not hedged`() = runBlocking {
        kit.behave(0, """{"script": [{"latency_ms": 300}]}""")
        hedged("kt-hedge-plain").use { client ->
            val response = client.post("kt-hedge-plain", "/orders", "{}".toByteArray())
            assertEquals(1u, response.attempts)
            assertNull(response.idempotencyKey)
            assertEquals(0uL, client.stats().services["kt-hedge-plain"]!!.hedges)
        }
    }

    @Test
    fun `an idempotent POST is retried with one key and a given key is kept`() = runBlocking {
        kit.behave(0, """{"script": [{"status": 503}, {"status": 503}], "default": {"status": 201}}""")
        Client("""{"services": {"kt-idem": {"endpoints": ["${kit.upstreams[0]}"]}}}""").use { client ->
            val response = client.post("kt-idem", "/charges", "{}".toByteArray(), idempotent = true)
            assertEquals(listOf(201, 3), listOf(response.status.toInt(), response.attempts.toInt()))
            assertEquals(mapOf(response.idempotencyKey!! to 3L), kit.idempotencyKeyCounts(0))
            val given = client.post("kt-idem", "/charges", idempotencyKey = "charge-17", idempotent = true)
            assertEquals("charge-17", given.idempotencyKey)
        }
    }

    @Test
    fun `cancelling a hedged call releases both attempts`() = runBlocking {
        kit.behave(0, """{"default": {"latency_ms": 10000}}""")
        kit.behave(1, """{"default": {"latency_ms": 10000}}""")
        hedged("kt-hedge-cancel", deadlineMs = 20000).use { client ->
            val call = async { client.get("kt-hedge-cancel", "/x") }
            var waits = 0
            while (kit.requestCount(0) + kit.requestCount(1) < 2 && waits++ < 200) delay(10)
            assertEquals(listOf(1L, 1L), listOf(kit.requestCount(0), kit.requestCount(1)))
            call.cancel()
            var stats = client.stats().services["kt-hedge-cancel"]!!
            waits = 0
            while ((stats.inFlight != 0uL || stats.endpoints.any { it.inFlight != 0uL }) && waits++ < 200) {
                delay(10)
                stats = client.stats().services["kt-hedge-cancel"]!!
            }
            assertEquals(0uL, stats.inFlight)
            assertEquals(listOf(0uL, 0uL), stats.endpoints.map { it.inFlight })
        }
    }

    @Test
    fun `hedge settings are checked and named`() {
        val error = assertThrows<CourierException.Config> {
            Client("""{"services": {"a": {"endpoints": ["http://127.0.0.1:9"], "hedge": {"max_hedges": 9}}}}""")
        }
        assertEquals("services.a.hedge.max_hedges", error.field)
    }
}
