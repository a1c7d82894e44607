package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.CourierException
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import io.github.courierkit.ffi.Client as NativeClient

/** The typed configuration (Config.kt, generated from core's schema): every section, built as data classes and with the Java builders, accepted by core. */
@Timeout(60)
class ConfigTest : WithTestkit(upstreams = 2) {
    private fun everySection(): ClientConfig = ClientConfig(
        services = mapOf(
            "orders" to ServiceConfig(
                endpoints = listOf(Endpoint(kit.upstreams[0], version = "v1", weight = 2), Endpoint(kit.upstreams[1])),
                timeoutMs = 2_000,
                deadlineMs = 5_000,
                headers = mapOf("x-team" to "payments"),
                retry = RetryConfig(
                    maxAttempts = 2, baseDelayMs = 10, maxDelayMs = 100,
                    retryOn = listOf(RetryOn.Connect, RetryOn.Timeout, RetryOn.Status(503)),
                ),
                budget = BudgetConfig(ratio = 0.5, minPerSec = 5, windowMs = 5_000),
                breaker = BreakerConfig(windowMs = 5_000, minCalls = 10, failureRatio = 0.6, openMs = 1_000, maxOpenMs = 10_000, probes = 2),
                hedge = HedgeConfig(maxHedges = 1, delayMs = 100, percentile = 95.0),
                rateLimit = RateLimitConfig(perSecond = 1_000.0, burst = 100, wait = true),
                maxConcurrency = 64,
                balancer = Balancer.RoundRobin,
                outlier = OutlierConfig(consecutiveFailures = 3, baseEjectionMs = 1_000, maxEjectionMs = 10_000, maxEjectedRatio = 0.5),
                versions = VersionConfig(default = "v1", split = mapOf("v1" to 100L)),
            ),
            "adaptive" to ServiceConfig(
                endpoints = listOf(Endpoint(kit.upstreams[1])),
                adaptiveConcurrency = AdaptiveConcurrencyConfig(minLimit = 1, maxLimit = 50, initialLimit = 10),
                breaker = null,
                outlier = null,
            ),
            "discovered" to ServiceConfig(
                discovery = DiscoveryConfig(dns = "localhost", port = 8080, refreshMs = 60_000, scheme = "http"),
            ),
        ),
        tls = TlsConfig(minVersion = TlsVersion.V1_3),
        limits = HttpLimits(maxResponseBodyBytes = 1_000_000, maxRequestBodyBytes = 1_000_000, maxResponseHeaderBytes = 32_768),
    )

    @Test
    fun `every client section in the typed form is accepted and used`() = runBlocking {
        Client(everySection()).use { client ->
            assertEquals(200, client.get("orders", "/typed").status.toInt())
            val stats = client.stats().services
            assertEquals("closed", stats["orders"]!!.breakerState)
            assertEquals(listOf(2u, 1u), stats["orders"]!!.endpoints.map { it.weight })
            assertEquals(64uL, stats["orders"]!!.concurrencyLimit)
            assertEquals(200, client.get("adaptive", "/typed").status.toInt())
            assertEquals("disabled", client.stats().services["adaptive"]!!.breakerState, "breaker = null turns it off")
        }
    }

    @Test
    fun `the Java builders make the same config as the constructors`() {
        val built = ClientConfig.builder()
            .services(
                mapOf(
                    "orders" to ServiceConfig.builder()
                        .endpoints(listOf(Endpoint.builder(kit.upstreams[0]).weight(2).build()))
                        .retry(RetryConfig.builder().maxAttempts(2).retryOn(listOf(RetryOn.Status(503))).build())
                        .breaker(null)
                        .build(),
                ),
            )
            .build()
        val named = ClientConfig(
            services = mapOf(
                "orders" to ServiceConfig(
                    endpoints = listOf(Endpoint(kit.upstreams[0], weight = 2)),
                    retry = RetryConfig(maxAttempts = 2, retryOn = listOf(RetryOn.Status(503))),
                    breaker = null,
                ),
            ),
        )
        assertEquals(named, built)
        assertEquals(named.toJson(), built.toJson())
        NativeClient(built.toJson()).use { assertEquals("disabled", it.stats().services["orders"]!!.breakerState) }
    }

    @Test
    fun `an invalid typed value is refused by core naming its field`() {
        val bad = ClientConfig(services = mapOf("orders" to ServiceConfig(endpoints = listOf(Endpoint(kit.upstreams[0])), deadlineMs = 0)))
        val e = assertThrows<CourierException.Config> { Client(bad) }
        assertEquals("services.orders.deadline_ms", e.field)
        val nan = ClientConfig(services = mapOf("orders" to ServiceConfig(endpoints = listOf(Endpoint(kit.upstreams[0])), budget = BudgetConfig(ratio = Double.NaN))))
        assertEquals("services.orders.budget.ratio", assertThrows<CourierException.Config> { Client(nan) }.field)
    }

    @Test
    fun `every bus section in the typed form is accepted, and credentials never show in toString`() = runBlocking {
        val config = BusConfig(
            urls = listOf("memory://typed-config"),
            prefetch = 10,
            maxUnconfirmed = 32,
            reconnect = ReconnectConfig(baseDelayMs = 50, maxDelayMs = 500),
            dedup = DedupConfig.Memory(capacity = 1_000, ttlMs = 60_000),
            publishDeadlineMs = 5_000,
            limits = MessageLimits(maxMessageBytes = 1_000_000, maxHeaders = 16, maxHeaderValueBytes = 4_096),
        )
        Bus.connect(config).use { bus ->
            bus.declareQueue("orders")
            bus.publish("", "orders", "typed".toByteArray())
            bus.consume("orders").use { consumer ->
                val d = checkNotNull(consumer.next())
                assertEquals("typed", String(d.body()))
                d.ack()
            }
        }
        val secret = BusConfig(
            urls = listOf("amqp://courier:s3cret@127.0.0.1:5672/%2f"),
            dedup = DedupConfig.Redis(url = "redis://:hunter2@127.0.0.1:6379/0"),
            tls = TlsConfig(clientKeyPem = "-----BEGIN PRIVATE KEY-----\nsecret-key\n"),
        )
        val service = ServiceConfig(
            endpoints = listOf(Endpoint("http://svc:pa55@10.0.0.1:8080")),
            headers = mapOf("authorization" to "Bearer t0ken"),
        )
        for (text in listOf(secret.toString(), secret.dedup.toString(), secret.tls.toString(), service.toString())) {
            assertFalse(listOf("s3cret", "hunter2", "secret-key", "pa55", "t0ken").any { it in text }, text)
        }
        assertTrue(secret.toJson().contains("\"store\":\"redis\""), secret.toJson())
    }
}
