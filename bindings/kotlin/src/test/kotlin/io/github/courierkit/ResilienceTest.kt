package io.github.courierkit

import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

/**
 * Core's retries, idempotency rules and circuit breaker as seen through the binding.
 *
 * Every test names its own service: retry budgets are per process and per service name,
 * so sharing a name would let one test's retries spend another's budget. (The deadline
 * case lives in [ClientTest].)
 */
@Timeout(30)
class ResilienceTest : WithTestkit(upstreams = 1) {
    /** A client with one [service] on upstream 0; [extra] is spliced into the service's config. */
    private fun client(service: String, extra: String = ""): Client {
        val more = if (extra.isEmpty()) "" else ", $extra"
        return Client("""{"services": {"$service": {"endpoints": ["${kit.upstreams[0]}"]$more}}}""")
    }

    @Test
    fun `a GET retried past two 503s succeeds on the third attempt`() = runBlocking {
        kit.behave(0, """{"script": [{"status": 503}, {"status": 503}], "default": {"status": 200}}""")

        client("resilience-get-503").use { client ->
            val response = client.get("resilience-get-503", "/flaky")

            assertEquals(200.toUShort(), response.status)
            assertEquals(3u, response.attempts)
            assertEquals(3L, kit.requestCount(0), "two 503s and the 200")
            val stats = client.stats().services["resilience-get-503"]!!
            assertEquals(1uL, stats.requests, "one call, however many attempts")
            assertEquals(3uL, stats.attempts)
            assertEquals(2uL, stats.retries)
        }
    }

    @Test
    fun `a POST without an idempotency key is not retried after a mid-response reset`() {
        kit.behave(0, """{"default": {"reset": "mid_response"}}""")

        client("resilience-post-no-key").use { client ->
            assertThrows<CourierException.Connect> {
                runBlocking { client.post("resilience-post-no-key", "/orders", body = "{}".toByteArray()) }
            }

            assertEquals(1L, kit.requestCount(0), "the server may have acted on it, so it is sent once")
            assertEquals(0uL, client.stats().services["resilience-post-no-key"]!!.retries)
        }
    }

    @Test
    fun `a POST with an idempotency key is retried after a mid-response reset`() {
        kit.behave(0, """{"default": {"reset": "mid_response"}}""")

        client("resilience-post-key").use { client ->
            assertThrows<CourierException.Connect> {
                runBlocking {
                    client.post("resilience-post-key", "/orders", body = "{}".toByteArray(), idempotencyKey = "k-1")
                }
            }

            assertEquals(3L, kit.requestCount(0), "max_attempts defaults to 3")
            assertEquals(mapOf("k-1" to 3L), kit.idempotencyKeyCounts(0), "every attempt carries the same key")
        }
    }

    @Test
    fun `an open breaker fails calls fast without reaching the upstream`() {
        kit.behave(0, """{"default": {"status": 503}}""")
        val breaker = """"retry": {"max_attempts": 1}, "breaker": {"min_calls": 2, "failure_ratio": 0.5,""" +
            """ "open_ms": 60000, "max_open_ms": 60000, "probes": 1}"""

        client("resilience-breaker", breaker).use { client ->
            repeat(2) {
                val response = runBlocking { client.get("resilience-breaker", "/down") }
                assertEquals(503.toUShort(), response.status, "a final 5xx is a response, not an error")
            }
            val open = assertThrows<CourierException.CircuitOpen> {
                runBlocking { client.get("resilience-breaker", "/down") }
            }
            assertTrue(open.retryAfterMs > 0uL, "says when the breaker lets a probe through")

            assertEquals(2L, kit.requestCount(0), "the rejected call never reached the upstream")
            val stats = client.stats().services["resilience-breaker"]!!
            assertEquals("open", stats.breakerState)
            assertEquals(1uL, stats.breakerOpened)
            assertEquals(1uL, stats.circuitRejected)
        }
    }
}
