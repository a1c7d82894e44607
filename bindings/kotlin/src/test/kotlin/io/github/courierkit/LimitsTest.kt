package io.github.courierkit

import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.Request
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

/**
 * The client-side rate limit (refusals counted at the testkit, keys, the 429 feedback) and the
 * adaptive concurrency limit through the binding.
 */
@Timeout(30)
class LimitsTest : WithTestkit(upstreams = 1) {
    private fun limited(service: String, rate: String): Client =
        Client("""{"services": {"$service": {"endpoints": ["${kit.upstreams[0]}"], "rate_limit": $rate}}}""")

    @Test
    fun `past the burst a limit that does not wait throws RateLimited`() = runBlocking {
        limited("kt-rate", """{"per_second": 0.5, "burst": 2, "wait": false}""").use { client ->
            repeat(2) { assertEquals(200.toUShort(), client.get("kt-rate", "/x").status) }
            val e = assertThrows<CourierException.RateLimited> { runBlocking { client.get("kt-rate", "/x") } }
            assertEquals("kt-rate", e.service)
            assertTrue(e.retryAfterMs in 1001uL..2000uL, "${e.retryAfterMs}")
            assertEquals(2L, kit.requestCount(0))
            val stats = client.stats().services["kt-rate"]!!
            assertEquals(1uL, stats.rateLimited)
            assertEquals(0.5, stats.ratePerSec)
        }
    }

    @Test
    fun `keys have buckets of their own`() = runBlocking {
        limited("kt-rate-keys", """{"per_second": 0.5, "burst": 1, "wait": false}""").use { client ->
            fun keyed(key: String) = Request(method = "GET", target = "kt-rate-keys", path = "/x", rateKey = key)
            client.call(keyed("tenant-a"))
            assertThrows<CourierException.RateLimited> { runBlocking { client.call(keyed("tenant-a")) } }
            client.call(keyed("tenant-b"))
            client.get("kt-rate-keys", "/x")
            assertEquals(3L, kit.requestCount(0))
        }
    }

    @Test
    fun `a 429 with Retry-After pauses the bucket`() = runBlocking {
        kit.behave(0, """{"script": [{"status": 429, "retry_after": "30"}]}""")
        limited("kt-rate-429", """{"per_second": 1000, "burst": 100, "wait": false}""").use { client ->
            assertEquals(429.toUShort(), client.get("kt-rate-429", "/x").status)
            val e = assertThrows<CourierException.RateLimited> { runBlocking { client.get("kt-rate-429", "/x") } }
            assertTrue(e.retryAfterMs > 25_000uL, "${e.retryAfterMs}")
            val rate = client.stats().services["kt-rate-429"]!!.ratePerSec!!
            assertTrue(rate >= 500.0 && rate < 1000.0, "$rate")
        }
    }

    @Test
    fun `rate_key errors name the field`() = runBlocking {
        Client("""{"services": {"kt-open": {"endpoints": ["${kit.upstreams[0]}"]}}}""").use { client ->
            val e = assertThrows<CourierException.Config> {
                runBlocking { client.call(Request(method = "GET", target = "kt-open", rateKey = "tenant-a")) }
            }
            assertEquals("rate_key", e.field)
        }
        val bad = assertThrows<CourierException.Config> { limited("kt-bad-rate", """{"per_second": 0}""") }
        assertEquals("services.kt-bad-rate.rate_limit.per_second", bad.field)
    }

    @Test
    fun `an adaptive limit throws Overloaded past its current limit`() = runBlocking {
        // Long enough that the two calls still hold their slots after a stalled machine.
        kit.behave(0, """{"default": {"latency_ms": 1500}}""")
        val adaptive = """{"min_limit": 1, "max_limit": 50, "initial_limit": 2}"""
        Client("""{"services": {"kt-adaptive": {"endpoints": ["${kit.upstreams[0]}"], "adaptive_concurrency": $adaptive}}}""")
            .use { client ->
                assertEquals(2uL, client.stats().services["kt-adaptive"]!!.concurrencyLimit)
                val first = List(2) { async { client.get("kt-adaptive", "/x") } }
                var waits = 0
                while (client.stats().services["kt-adaptive"]!!.inFlight < 2uL && waits++ < 200) delay(5)
                val e = assertThrows<CourierException.Overloaded> { runBlocking { client.get("kt-adaptive", "/x") } }
                assertEquals(2u, e.limit)
                assertEquals(listOf(200, 200), first.awaitAll().map { it.status.toInt() })
                val stats = client.stats().services["kt-adaptive"]!!
                assertEquals(listOf(1uL, 0uL), listOf(stats.overloaded, stats.inFlight))
            }
    }
}
