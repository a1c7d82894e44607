package io.github.courierkit

import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.Request
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import kotlin.time.Duration.Companion.milliseconds

@Timeout(30)
class ClientTest : WithTestkit(upstreams = 2) {
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
    fun `a GET reaches the configured upstream once`() = runBlocking {
        val response = client.get("echo", "/v1/items", headers = mapOf("x-test" to "kotlin"))

        assertEquals(200.toUShort(), response.status)
        assertEquals(1u, response.attempts, "a 200 on the first attempt needs no retry")
        assertTrue(response.endpoint.startsWith(kit.upstreams[0].trimEnd('/')), "endpoint: ${response.endpoint}")
        val echo = response.text()
        assertTrue(echo.contains("\"/v1/items\""), "the testkit echoes the path: $echo")
        assertTrue(echo.contains("kotlin"), "the testkit echoes headers: $echo")
        assertEquals(1L, kit.requestCount(0), "the upstream saw exactly one request")
    }

    @Test
    fun `every verb shortcut sends its method, path and body`() = runBlocking {
        val body = "{\"sku\": 1}".toByteArray()
        val responses = linkedMapOf(
            "GET" to client.get("echo", "/v/get"),
            "HEAD" to client.head("echo", "/v/head"),
            "OPTIONS" to client.options("echo", "/v/options"),
            "DELETE" to client.delete("echo", "/v/delete"),
            "POST" to client.post("echo", "/v/post", body = body, idempotencyKey = "k-post"),
            "PUT" to client.put("echo", "/v/put", body = body),
            "PATCH" to client.patch("echo", "/v/patch", body = body, idempotencyKey = "k-patch"),
        )
        for ((method, response) in responses) {
            assertEquals(200.toUShort(), response.status, method)
            if (method == "HEAD") continue // a HEAD response has no body to echo into
            val echo = response.text()
            val bodyLen = if (method in setOf("POST", "PUT", "PATCH")) body.size else 0
            for (part in listOf("\"method\":\"$method\"", "\"path\":\"/v/${method.lowercase()}\"", "\"body_len\":$bodyLen")) {
                assertTrue(echo.contains(part), "$method: the upstream echoes $part: $echo")
            }
        }
        assertEquals(responses.keys.associateWith { 1L }, kit.methodCounts(0), "one request per verb")
        assertEquals(mapOf("k-post" to 1L, "k-patch" to 1L), kit.idempotencyKeyCounts(0))
    }

    @Test
    fun `a client loads its config from a TOML file`() = runBlocking {
        val file = kotlin.io.path.createTempFile(suffix = ".toml").toFile()
        try {
            file.writeText("[services.fromfile]\nendpoints = [\"${kit.upstreams[0]}\"]\n")
            Client.fromFile(file.path).use { fromFile ->
                assertEquals(200.toUShort(), fromFile.get("fromfile", "/").status)
            }
            file.writeText("[services.bad]\nendpoints = []\n")
            val err = assertThrows<CourierException.Config> { Client.fromFile(file.path) }
            assertEquals("services.bad.endpoints", err.field)
        } finally {
            file.delete()
        }
    }

    @Test
    fun `a trace carrier round-trips through a call`() = runBlocking {
        val parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        val response = client.call(
            Request(method = "GET", target = "echo", path = "/t", trace = mapOf("traceparent" to parent)),
        )
        val sent = response.trace["traceparent"]!!.split("-")
        assertEquals("4bf92f3577b34da6a3ce929d0e0e4736", sent[1], "the call continues the caller's trace")
        assertTrue(sent[2] != "00f067aa0ba902b7", "as a child span")
        assertTrue(response.text().contains(response.trace["traceparent"]!!), "the upstream received it")
    }

    @Test
    fun `a call slower than its deadline fails with Timeout`() {
        kit.behave(0, """{"default": {"latency_ms": 3000}}""")

        val started = System.nanoTime()
        val error = assertThrows<CourierException.Timeout> {
            runBlocking { client.call(Request(method = "GET", target = "echo", path = "/slow", deadline = 200.milliseconds)) }
        }
        val elapsedMs = (System.nanoTime() - started) / 1_000_000

        assertTrue(error.detail.contains("timed out"), "detail is core's message: ${error.detail}")
        assertTrue(elapsedMs < 2000, "the deadline, not the upstream, ends the call (took $elapsedMs ms)")
    }

    @Test
    fun `a service without endpoints is a Config error naming the field`() {
        val error = assertThrows<CourierException.Config> {
            Client("""{"services": {"a": {"endpoints": []}}}""")
        }
        assertEquals("services.a.endpoints", error.field)
    }

    @Test
    fun `an endpoint that is not a URL is a Config error naming the field`() {
        val error = assertThrows<CourierException.Config> {
            Client("""{"services": {"a": {"endpoints": ["not a url"]}}}""")
        }
        assertEquals("services.a.endpoints[0].url", error.field)
        assertTrue(error.reason.isNotEmpty())
    }

    @Test
    fun `calls after shutdown fail with Closed`() {
        val closing = Client("""{"services": {"echo": {"endpoints": ["${kit.upstreams[1]}"]}}}""")
        closing.use {
            it.shutdown()
            assertThrows<CourierException.Closed> { runBlocking { it.get("echo", "/") } }
        }
        assertEquals(0L, kit.requestCount(1), "a closed client sends nothing")
    }
}
