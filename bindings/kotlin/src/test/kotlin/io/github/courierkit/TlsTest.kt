package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import java.io.File
import kotlin.time.Duration.Companion.milliseconds

/** TLS through the binding: the `tls` section passes through as JSON; handshake failures are `Tls`. */
@Timeout(30)
class TlsTest : WithTestkit(upstreams = 0) {
    /** A config for the mTLS upstream; one attempt, so a handshake failure surfaces rather than being retried away. */
    private fun secure(tls: String) =
        """{"services": {"secure": {"endpoints": ["${kit.tlsUrls.getValue("mtls")}"], "retry": {"max_attempts": 1}}},
           "tls": $tls}"""

    @Test
    fun `a mutual TLS call succeeds`() = runBlocking {
        Client(secure(tlsJson(kit.tlsDir))).use { client ->
            val response = client.get("secure", "/over-tls")
            assertEquals(200.toUShort(), response.status)
            assertTrue(response.text().contains("\"/over-tls\""), "the upstream echoes the path: ${response.text()}")
        }
    }

    @Test
    fun `no client certificate fails with Tls naming it`() {
        Client(secure(tlsJson(kit.tlsDir, client = null))).use { client ->
            val error = assertThrows<CourierException.Tls> { runBlocking { client.get("secure", "/") } }
            assertTrue(error.detail.contains("client certificate"), "detail is core's message: ${error.detail}")
            assertFalse(error.detail.contains("PRIVATE KEY"), error.detail)
        }
    }

    @Test
    fun `a certificate without its key is a Config error on tls client_key_pem`() {
        val certOnly = """{"client_cert_pem": ${jsonString(File(kit.tlsDir, "client.pem").readText())}}"""
        val error = assertThrows<CourierException.Config> { Client(secure(certOnly)) }
        assertEquals("tls.client_key_pem", error.field)
    }

    @Test
    fun `AMQPS publish and consume with a client certificate`() = runBlocking {
        val url = System.getenv("COURIER_AMQPS_URL")
        assumeTrue(!url.isNullOrEmpty(), "COURIER_AMQPS_URL is unset (tests/scripts/test-all.sh sets up RabbitMQ's TLS listener)")
        val pki = System.getenv("COURIER_PKI_DIR") ?: (System.getProperty("user.home") + "/.cache/courier/pki")
        val bus = Bus.connect("""{"urls": ["$url"], "tls": ${tlsJson(pki)}}""")
        try {
            val queue = "courier-test.kotlin.tls"
            bus.declareQueue(queue)
            val receipt = bus.publish("", queue, "over tls".toByteArray())
            val consumer = bus.consume(queue)
            try {
                // Messages left by an interrupted earlier run are acked away, not asserted on.
                var delivery = checkNotNull(consumer.next(5_000.milliseconds)) { "a delivery must arrive" }
                while (delivery.messageId() != receipt.messageId) {
                    delivery.ack()
                    delivery = checkNotNull(consumer.next(5_000.milliseconds)) { "a delivery must arrive" }
                }
                assertEquals("over tls", String(delivery.body()))
                delivery.ack()
            } finally {
                consumer.shutdown()
            }
        } finally {
            bus.shutdown()
            bus.close()
        }
    }
}

/** The client side of a `tls` section from the PKI in [dir]: its CA, and [client]'s certificate and key unless null. */
private fun tlsJson(dir: String, client: String? = "client"): String {
    val fields = mutableListOf("\"ca_pem\": ${jsonString(File(dir, "ca.pem").readText())}")
    if (client != null) {
        fields += "\"client_cert_pem\": ${jsonString(File(dir, "$client.pem").readText())}"
        fields += "\"client_key_pem\": ${jsonString(File(dir, "$client.key").readText())}"
    }
    return fields.joinToString(", ", "{", "}")
}

/** [s] as a JSON string literal (PEM text: only quotes, backslashes and line breaks need escaping). */
private fun jsonString(s: String): String =
    "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n").replace("\r", "\\r") + "\""
