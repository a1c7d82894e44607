package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.LogLevel
import io.github.courierkit.ffi.LogRecord
import io.github.courierkit.ffi.LogSink
import io.github.courierkit.ffi.Request
import io.github.courierkit.ffi.setLogSinkNative
import io.opentelemetry.api.common.AttributeKey
import io.opentelemetry.api.common.Attributes
import io.opentelemetry.exporter.otlp.http.trace.OtlpHttpSpanExporter
import io.opentelemetry.sdk.resources.Resource
import io.opentelemetry.sdk.trace.SdkTracerProvider
import io.opentelemetry.sdk.trace.export.SimpleSpanProcessor
import kotlinx.coroutines.runBlocking
import org.json.JSONArray
import org.json.JSONObject
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import java.util.UUID
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.logging.Handler
import java.util.logging.Level
import java.util.logging.Logger
import kotlin.time.Duration.Companion.milliseconds

/**
 * Telemetry from Kotlin: core's log records in java.util.logging and SLF4J, a host span from
 * the OpenTelemetry SDK as the parent of courier's exported spans, metrics as Prometheus text
 * and at an OTLP receiver, and typed errors for unusable settings.
 *
 * Telemetry settings, the log sink and the level are process-wide, and surefire runs every
 * test class in one JVM: each test sets what it relies on, asserts only on records and spans
 * of its own (its service names, its trace ids), and [restore] puts the defaults back.
 */
@Timeout(60)
class TelemetryTest : WithTestkit(upstreams = 1) {
    /** Held, so java.util.logging does not collect it (and its level and handler) meanwhile. */
    private val courierLogger: Logger = Logger.getLogger("courier")

    @AfterEach
    fun restore() {
        Courier.configureTelemetry()
        Courier.setLogLevel(LogLevel.WARN)
        Courier.setLogSink(CourierLogging.defaultSink())
    }

    /** An upstream that answers 503 once, then 200: one retry, which core logs at debug. */
    private fun failOnce() = kit.behave(0, """{"script": [{"status": 503}], "default": {"status": 200}}""")

    /** The upstream's URL with credentials, which must show in no record, span or metric. */
    private fun endpointWithPassword(): String = kit.upstreams[0].replace("http://", "http://ops:s3cret@")

    private fun client(service: String): Client =
        Client("""{"services": {"$service": {"endpoints": ["${endpointWithPassword()}"]}}}""")

    /** The java.util.logging records under `courier`, captured from every level. */
    private inner class Captured : Handler() {
        val records = CopyOnWriteArrayList<java.util.logging.LogRecord>()
        private val previous = courierLogger.level

        init {
            level = Level.ALL
            courierLogger.level = Level.ALL
            courierLogger.addHandler(this)
        }

        override fun publish(record: java.util.logging.LogRecord) {
            records.add(record)
        }

        override fun flush() {}

        override fun close() {
            courierLogger.removeHandler(this)
            courierLogger.level = previous
        }

        /** The first record matching [predicate], waiting for courier's log thread up to 10 s. */
        fun await(predicate: (java.util.logging.LogRecord) -> Boolean): java.util.logging.LogRecord {
            repeat(200) {
                records.firstOrNull(predicate)?.let { return it }
                Thread.sleep(50)
            }
            error("no such record in ${records.map { "${it.loggerName} ${it.level}: ${it.message}" }}")
        }
    }

    private fun <T> capturing(block: (Captured) -> T): T {
        val captured = Captured()
        try {
            return block(captured)
        } finally {
            captured.close()
        }
    }

    /** A retried call on [service], with core's records at DEBUG; returns the retry record. */
    private fun retryRecord(service: String, captured: Captured): java.util.logging.LogRecord = runBlocking {
        Courier.setLogLevel(LogLevel.DEBUG)
        assertEquals(LogLevel.DEBUG, Courier.logLevel())
        failOnce()
        client(service).use { client ->
            assertEquals(2u, client.get(service, "/items").attempts)
        }
        captured.await { it.message.startsWith("retry") && it.message.contains("service=$service") }
    }

    @Test
    fun `core log records reach java util logging under courier dot module`() {
        capturing { captured ->
            Courier.setLogSink(JulLogSink())
            val retry = retryRecord("jul", captured)
            assertEquals("courier.http.call", retry.loggerName)
            assertEquals(Level.FINE, retry.level, "debug is FINE")
            assertEquals("courier.http.call", retry.sourceClassName, "no stack walk for a source")
            assertTrue(
                captured.records.none { "s3cret" in it.message },
                "the password in the endpoint URL shows in no record: ${captured.records.map { it.message }}",
            )

            // Below the level, nothing is produced.
            Courier.setLogLevel(LogLevel.WARN)
            val before = captured.records.count { "service=jul" in it.message }
            failOnce()
            runBlocking { client("jul").use { assertEquals(2u, it.get("jul", "/items").attempts) } }
            Thread.sleep(300)
            assertEquals(before, captured.records.count { "service=jul" in it.message }, "no debug record at WARN")
        }
    }

    @Test
    fun `the default sink goes through SLF4J when its API is on the classpath`() {
        // amqp-client brings slf4j-api, and slf4j-jdk14 (test scope) hands SLF4J's events to
        // java.util.logging, where Captured sees them.
        assertTrue(CourierLogging.slf4jAvailable)
        val sink = CourierLogging.defaultSink()
        assertTrue(sink is Slf4jLogSink, "default: $sink")
        capturing { captured ->
            Courier.setLogSink(sink)
            val retry = retryRecord("slf4j", captured)
            assertEquals("courier.http.call", retry.loggerName)
            assertEquals(Level.FINE, retry.level, "SLF4J's debug is JUL's FINE")
            assertTrue(captured.records.none { "s3cret" in it.message })
        }
    }

    @Test
    fun `a sink that throws loses its records and courier's log thread goes on`() = runBlocking {
        val thrown = CountDownLatch(1)
        // Unguarded (Courier.setLogSink would catch the exception in Kotlin): the exception
        // crosses into Rust as a panic, which core catches around the sink (the panic message
        // on stderr is expected).
        setLogSinkNative(
            object : LogSink {
                override fun log(record: LogRecord) {
                    thrown.countDown()
                    throw IllegalStateException("host logger broke")
                }
            },
        )
        Courier.setLogLevel(LogLevel.DEBUG)
        failOnce()
        client("throwing").use { assertEquals(2u, it.get("throwing", "/items").attempts) }
        assertTrue(thrown.await(10, TimeUnit.SECONDS), "the sink was called")

        val records = CopyOnWriteArrayList<LogRecord>()
        Courier.setLogSink { records.add(it) }
        failOnce()
        client("after").use { assertEquals(2u, it.get("after", "/items").attempts) }
        repeat(200) {
            if (records.any { it.message.startsWith("retry") }) return@runBlocking
            Thread.sleep(50)
        }
        error("no record after the throwing sink: $records")
    }

    @Test
    fun `a host span is the parent of courier's client, producer and consumer spans at the collector`() = runBlocking {
        Courier.configureTelemetry(
            tracesEndpoint = kit.otlp + "/v1/traces",
            metricsEndpoint = kit.otlp + "/v1/metrics",
            serviceName = "kotlin-test",
        )
        val provider = SdkTracerProvider.builder()
            .setResource(
                Resource.getDefault().merge(Resource.create(Attributes.of(AttributeKey.stringKey("service.name"), "kotlin-host"))),
            )
            .addSpanProcessor(
                SimpleSpanProcessor.create(OtlpHttpSpanExporter.builder().setEndpoint(kit.otlp + "/v1/traces").build()),
            )
            .build()
        val tracer = provider.get("courier-telemetry-test")

        val host = tracer.spanBuilder("kotlin host operation").startSpan()
        val hostTrace = host.spanContext.traceId
        val hostSpan = host.spanContext.spanId
        val bus = Bus.connect("""{"urls": ["memory://kotlin-telemetry-${UUID.randomUUID()}"]}""")
        val (response, receipt) = try {
            bus.declareQueue("telemetry")
            host.makeCurrent().use {
                val response = client("traced").use { it.call(Request(method = "GET", target = "traced", path = "/items")) }
                response to bus.publish("", "telemetry", "x".toByteArray())
            }
        } finally {
            host.end()
        }
        val consumer = bus.consume("telemetry")
        val delivery = checkNotNull(consumer.next(5_000.milliseconds))
        assertEquals(receipt.traceContext(), delivery.traceContext())
        delivery.ack()
        // The CONSUMER span lasts until the delivery is dropped: free it now.
        delivery.close()
        consumer.shutdown()
        consumer.close()
        bus.shutdown()
        bus.close()
        assertTrue(provider.shutdown().join(10, TimeUnit.SECONDS).isSuccess, "the SDK exported the host span")
        Courier.flushTelemetry()

        // What the upstream received: courier's attempt, a child of the host span.
        val sent = JSONObject(response.text()).getJSONObject("headers").getString("traceparent")
        val (_, sentTrace, sentSpan) = sent.split("-")
        assertEquals(hostTrace, sentTrace, "the upstream continues the host's trace: $sent")

        val spans = awaitSpans(hostTrace) { trace ->
            trace.any { kind(it) == CLIENT } && trace.any { kind(it) == PRODUCER } && trace.any { kind(it) == CONSUMER } &&
                trace.any { it.getString("spanId") == hostSpan }
        }
        val byId = spans.associateBy { it.getString("spanId") }
        assertEquals("kotlin host operation", byId.getValue(hostSpan).getString("name"))
        assertTrue(resourceText(byId.getValue(hostSpan)).contains("kotlin-host"))

        val clients = spans.filter { kind(it) == CLIENT }
        assertEquals(listOf(sentSpan), clients.map { it.getString("spanId") }, "one attempt: the span the upstream was sent")
        val attempt = clients.single()
        assertEquals(hostSpan, attempt.getString("parentSpanId"), "the attempt is a child of the host span")
        assertEquals("GET", attempt.getString("name"))
        assertTrue(resourceText(attempt).contains("kotlin-test"), "courier's service.name: ${attempt.opt("resource")}")

        val producer = spans.single { kind(it) == PRODUCER }
        assertEquals(receipt.traceContext().spanId(), producer.getString("spanId"), "the message carries the producer span")
        assertEquals(hostSpan, producer.getString("parentSpanId"), "the publish is a child of the host span")
        val consumerSpan = spans.single { kind(it) == CONSUMER }
        assertEquals(producer.getString("spanId"), consumerSpan.getString("parentSpanId"), "processing continues the producer")
        val links = consumerSpan.optJSONArray("links") ?: JSONArray()
        assertTrue(
            (0 until links.length()).any { links.getJSONObject(it).getString("spanId") == producer.getString("spanId") },
            "and links to it: $consumerSpan",
        )
        assertFalse(kit.otlpSpans().contains("s3cret"), "no password in exported spans")
    }

    @Test
    fun `metrics read as Prometheus text and arrive at the collector in seconds`() = runBlocking {
        // Configuring restarts the readings: this test's retry is the one counted.
        Courier.configureTelemetry(metricsEndpoint = kit.otlp + "/v1/metrics", serviceName = "kotlin-test")
        failOnce()
        client("metered").use { assertEquals(2u, it.get("metered", "/items").attempts) }

        val text = Courier.metricsText()
        assertTrue(text.contains("# TYPE http_client_request_duration_seconds histogram"), text)
        assertTrue(text.lines().any { it.startsWith("http_client_request_duration_seconds_count{") }, text)
        assertTrue(text.contains("courier_retry_attempts_total{courier_service=\"metered\"} 1"), text)
        assertFalse(text.contains("s3cret"), text)

        Courier.flushTelemetry()
        val duration = awaitMetric("http.client.request.duration")
        assertEquals("s", duration.getString("unit"))
        assertTrue(resourceText(duration).contains("kotlin-test"))
        assertFalse(kit.otlpMetrics().contains("s3cret"))
    }

    @Test
    fun `unusable settings are Config errors naming the parameter and change nothing`() {
        val cases = listOf(
            "traces_endpoint" to { Courier.configureTelemetry(tracesEndpoint = "ftp://x") },
            "metrics_endpoint" to { Courier.configureTelemetry(metricsEndpoint = "not a url") },
            "sampler" to { Courier.configureTelemetry(sampler = "xray") },
            "sampler_arg" to { Courier.configureTelemetry(sampler = "traceidratio", samplerArg = "2") },
            "metrics_interval_ms" to { Courier.configureTelemetry(metricsInterval = 0.milliseconds) },
        )
        // Metrics off: every case below would turn them on (the default), so an empty text
        // afterwards shows that a refused configuration changed nothing.
        Courier.configureTelemetry(metrics = false)
        assertEquals("", Courier.metricsText())
        for ((field, configure) in cases) {
            val error = assertThrows<CourierException.Config>(field) { configure() }
            assertEquals(field, error.field, error.message)
            assertTrue(error.reason.isNotEmpty())
            assertEquals("", Courier.metricsText(), "after the refused $field")
        }
    }

    @Test
    fun `logger names follow the record's module and JUL levels map one to one`() {
        assertEquals("courier.http.call", CourierLogging.loggerName("http::call"))
        assertEquals("courier.messaging.amqp.link", CourierLogging.loggerName("messaging::amqp::link"))
        assertEquals("courier", CourierLogging.loggerName(""))
        assertEquals(
            listOf(Level.SEVERE, Level.WARNING, Level.INFO, Level.FINE, Level.FINER, null),
            listOf(LogLevel.ERROR, LogLevel.WARN, LogLevel.INFO, LogLevel.DEBUG, LogLevel.TRACE, LogLevel.OFF)
                .map { JulLogSink.julLevel(it) },
        )
    }

    private fun kind(span: JSONObject): Int = when (val kind = span.opt("kind")) {
        is Number -> kind.toInt()
        is String -> listOf("SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER").indexOf(kind)
        else -> -1
    }

    private fun resourceText(item: JSONObject): String = item.opt("resource")?.toString().orEmpty()

    /** The receiver's spans of [traceId] once [done] holds of them, waiting up to 10 s. */
    private fun awaitSpans(traceId: String, done: (List<JSONObject>) -> Boolean): List<JSONObject> {
        var trace = emptyList<JSONObject>()
        repeat(100) {
            val all = JSONArray(kit.otlpSpans())
            trace = (0 until all.length()).map { all.getJSONObject(it) }.filter { it.optString("traceId") == traceId }
            if (done(trace)) return trace
            Thread.sleep(100)
        }
        error("spans of $traceId: $trace")
    }

    /** The last metric named [name] the receiver took, waiting up to 10 s. */
    private fun awaitMetric(name: String): JSONObject {
        repeat(100) {
            val all = JSONArray(kit.otlpMetrics())
            (0 until all.length()).map { all.getJSONObject(it) }.lastOrNull { it.optString("name") == name }?.let { return it }
            Thread.sleep(100)
        }
        error("no $name in ${kit.otlpMetrics()}")
    }

    private companion object {
        const val CLIENT = 3
        const val PRODUCER = 4
        const val CONSUMER = 5
    }
}
