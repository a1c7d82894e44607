package io.github.courierkit

import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.Request
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

/**
 * Core's client-side load balancing as seen through the binding: version routing, the
 * latency-aware default balancer against round robin, and per-endpoint stats.
 *
 * Every test names its own service, so one test's latency estimates and counters never
 * leak into another's. Counts are the testkit's (what the upstreams received), not the
 * client's, except where the stats themselves are under test.
 */
@Timeout(60)
class BalanceTest : WithTestkit(upstreams = 4) {
    @Test
    fun `a request's version routes only to endpoints with that version`() = runBlocking {
        val service = "balance-version"
        val endpoints = """[{"url": "${kit.upstreams[0]}", "version": "v1"}, {"url": "${kit.upstreams[1]}", "version": "v2"}]"""

        Client("""{"services": {"$service": {"endpoints": $endpoints}}}""").use { client ->
            repeat(20) {
                val response = client.call(Request(method = "GET", target = service, path = "/v", version = "v2"))
                assertEquals(200.toUShort(), response.status)
            }

            assertEquals(0L, kit.requestCount(0), "the v1 endpoint got none")
            assertEquals(20L, kit.requestCount(1), "the v2 endpoint got all 20")

            assertThrows<CourierException.NoEndpoint> {
                runBlocking { client.call(Request(method = "GET", target = service, path = "/v", version = "v3")) }
            }
            assertEquals(20L, kit.requestCount(0) + kit.requestCount(1), "the v3 call reached no upstream")
        }
    }

    @Test
    fun `p2c_ewma sends few calls to a slow endpoint`() {
        val slow = runAgainstSlowUpstream("balance-slow-p2c", "p2c_ewma")
        // Under half of round robin's 25%, as in core's test: P2C weighs in-flight calls,
        // so the idle slow endpoint still wins a few picks, more on a loaded machine.
        assertTrue(slow < CALLS / 8, "upstream 3 (50 ms) received $slow of $CALLS calls; want under 12.5%")
    }

    @Test
    fun `round_robin keeps sending a slow endpoint its share`() {
        val slow = runAgainstSlowUpstream("balance-slow-rr", "round_robin")
        assertTrue(slow >= CALLS / 5, "upstream 3 (50 ms) received $slow of $CALLS calls; want at least 20%")
    }

    /**
     * Makes [CALLS] GETs to [service] (all four upstreams, [balancer]) from [WORKERS]
     * coroutines while upstream 3 answers after 50 ms; checks the service's endpoint stats
     * and returns how many requests upstream 3 received.
     */
    private fun runAgainstSlowUpstream(service: String, balancer: String): Long = runBlocking {
        kit.behave(3, """{"default": {"latency_ms": 50}}""")
        val endpoints = kit.upstreams.joinToString(", ", "[", "]") { "\"$it\"" }

        Client("""{"services": {"$service": {"endpoints": $endpoints, "balancer": "$balancer"}}}""").use { client ->
            coroutineScope {
                repeat(WORKERS) {
                    launch {
                        repeat(CALLS / WORKERS) {
                            assertEquals(200.toUShort(), client.get(service, "/work").status)
                        }
                    }
                }
            }

            val counts = (0 until 4).map { kit.requestCount(it) }
            assertEquals(CALLS.toLong(), counts.sum(), "per-upstream counts $counts")

            val stats = client.stats().services[service]!!
            assertEquals(4, stats.endpoints.size, "one entry per endpoint: ${stats.endpoints}")
            assertEquals(CALLS.toULong(), stats.endpoints.sumOf { it.requests }, "endpoint requests: ${stats.endpoints}")
            assertEquals(CALLS.toULong(), stats.requests)
            assertTrue(stats.endpoints.none { it.ejected }, "nothing failed, so nothing is ejected")

            counts[3]
        }
    }

    private companion object {
        const val CALLS = 400
        const val WORKERS = 8
    }
}
