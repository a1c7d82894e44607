package io.github.courierkit

import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows

/** `reconfigure` through the binding: swapped under load without losing a call, rejected whole when invalid. */
@Timeout(60)
class ReconfigureTest : WithTestkit(upstreams = 3) {
    private fun endpoints(vararg i: Int) = i.joinToString(", ") { "\"${kit.upstreams[it]}\"" }

    @Test
    fun `reconfigure under 64 concurrent calls loses none`() = runBlocking {
        val a = """{"services": {"swap": {"endpoints": [${endpoints(0, 1)}]}}}"""
        val b = """{"services": {"swap": {"endpoints": [${endpoints(1, 2)}], "balancer": "round_robin"}}}"""
        Client(a).use { client ->
            val callers = List(64) {
                async(Dispatchers.Default) { repeat(20) { assertEquals(200, client.get("swap", "/x").status.toInt()) } }
            }
            var swaps = 0
            val swapper = launch(Dispatchers.Default) {
                while (callers.any { it.isActive } && swaps < 200) {
                    client.reconfigure(if (swaps % 2 == 0) b else a)
                    swaps++
                    delay(5)
                }
            }
            callers.awaitAll()
            swapper.join()
            assertTrue(swaps >= 2, "$swaps")
            assertEquals(64L * 20, (0..2).sumOf { kit.requestCount(it) })
            val stats = client.stats().services["swap"]!!
            assertEquals(listOf(64uL * 20uL, 0uL), listOf(stats.requests, stats.inFlight))
        }
    }

    @Test
    fun `an invalid config is rejected whole`() = runBlocking<Unit> {
        Client("""{"services": {"keep": {"endpoints": [${endpoints(0)}]}}}""").use { client ->
            val e = assertThrows<CourierException.Config> {
                client.reconfigure("""{"services": {"keep": {"endpoints": [${endpoints(1)}]}, "other": {"endpoints": ["not a url"]}}}""")
            }
            assertEquals("services.other.endpoints[0].url", e.field)
            assertEquals(kit.upstreams[0].trimEnd('/'), client.get("keep", "/x").endpoint.trimEnd('/'))
            assertThrows<CourierException.Config> { runBlocking { client.get("other", "/x") } }
        }
    }
}
