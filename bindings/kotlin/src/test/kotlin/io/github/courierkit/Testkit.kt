package io.github.courierkit

import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.TestInstance

/**
 * The `courier-testkit` binary as a child process: fault-injecting HTTP upstreams plus a
 * control API, the same ones every language's tests drive.
 *
 * It prints one JSON line (`{"control": url, "upstreams": [url, ...], "otlp": url, "tls":
 * {"dir": path, "urls": {name: url, ...}}, ...}`) when ready and
 * exits when its stdin closes, so [close] (or this JVM dying) stops it.
 */
class Testkit private constructor(
    private val process: Process,
    val control: String,
    val upstreams: List<String>,
    /** The PKI directory of the HTTPS upstreams (`ca.pem`, `client.pem`, `client.key`, ...). */
    val tlsDir: String,
    /** HTTPS upstreams by name: `mtls`, `tls12`, `expired`, `wrong_san`, `other_ca`, `no_client_auth`. */
    val tlsUrls: Map<String, String>,
    /**
     * The OTLP/HTTP receiver's base URL (`http://127.0.0.1:PORT`): exporters post to
     * `/v1/traces` and `/v1/metrics` (protobuf or JSON); [otlpSpans] and [otlpMetrics] read
     * back what arrived.
     */
    val otlp: String,
) : AutoCloseable {

    private val http = HttpClient.newHttpClient()

    /** PUTs a behaviour (`{"default": {...}, "script": [...]}`) for upstream [index]. */
    fun behave(index: Int, behaviorJson: String) {
        send("PUT", "/upstreams/$index/behavior", behaviorJson)
    }

    /** Forgets every upstream's requests and behaviour. */
    fun reset() {
        send("POST", "/reset", "")
    }

    /** How many requests upstream [index] received since the last reset. */
    fun requestCount(index: Int): Long {
        val log = send("GET", "/upstreams/$index/requests", null)
        val total = Regex("\"total\"\\s*:\\s*(\\d+)").find(log)
            ?: error("no total in the testkit's request log: $log")
        return total.groupValues[1].toLong()
    }

    /**
     * Requests upstream [index] received since the last reset, counted by `Idempotency-Key`
     * (requests without one are not counted). Parsed with a regex like [requestCount], so
     * keys must not contain `"` or `}`; test keys are plain ASCII.
     */
    fun idempotencyKeyCounts(index: Int): Map<String, Long> = counts(index, "by_idempotency_key")

    /** Requests upstream [index] received since the last reset, counted by method. */
    fun methodCounts(index: Int): Map<String, Long> = counts(index, "by_method")

    private fun counts(index: Int, field: String): Map<String, Long> {
        val log = send("GET", "/upstreams/$index/requests", null)
        val counts = Regex("\"$field\"\\s*:\\s*\\{([^}]*)}").find(log)
            ?: error("no $field in the testkit's request log: $log")
        return Regex("\"([^\"]*)\"\\s*:\\s*(\\d+)").findAll(counts.groupValues[1])
            .associate { it.groupValues[1] to it.groupValues[2].toLong() }
    }

    /** A TCP proxy to the host and port of [url] (the testkit's `POST /proxies`). */
    fun proxy(url: String): Proxy {
        val target = URI.create(url)
        val made = send("POST", "/proxies", """{"target": "${target.host}:${target.port}"}""")
        val index = Regex("\"index\"\\s*:\\s*(\\d+)").find(made)!!.groupValues[1].toInt()
        val address = Regex("\"address\"\\s*:\\s*\"([^\"]+)\"").find(made)!!.groupValues[1]
        return Proxy(index, address)
    }

    /** A testkit TCP proxy: cut its connections, count the ones it accepted. */
    inner class Proxy(private val index: Int, val address: String) {
        /** [url] with its host and port replaced by the proxy's. */
        fun url(url: String): String {
            val u = URI.create(url)
            return url.replaceFirst(u.rawAuthority, u.rawUserInfo?.let { "$it@" }.orEmpty() + address)
        }

        fun cut() {
            send("POST", "/proxies/$index/cut", "")
        }

        fun accepted(): Long {
            val status = send("GET", "/proxies/$index", null)
            return Regex("\"accepted\"\\s*:\\s*(\\d+)").find(status)!!.groupValues[1].toLong()
        }
    }

    /**
     * Every span the OTLP receiver took so far, as a JSON array of OTLP JSON spans (`traceId`,
     * `spanId`, `parentSpanId`, `name`, `kind`, `links`...), each with its `resource`.
     */
    fun otlpSpans(): String = get(otlp + "/spans")

    /** Every metric the OTLP receiver took so far (`name`, `unit`, ...), as for [otlpSpans]. */
    fun otlpMetrics(): String = get(otlp + "/metrics")

    private fun get(url: String): String {
        val response = http.send(HttpRequest.newBuilder(URI.create(url)).GET().build(), HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() == 200) { "GET $url: ${response.statusCode()} ${response.body()}" }
        return response.body()
    }

    private fun send(method: String, path: String, body: String?): String {
        val publisher = body?.let { HttpRequest.BodyPublishers.ofString(it) } ?: HttpRequest.BodyPublishers.noBody()
        val request = HttpRequest.newBuilder(URI.create(control + path))
            .method(method, publisher)
            .header("content-type", "application/json")
            .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() in 200..299) { "testkit $method $path: ${response.statusCode()} ${response.body()}" }
        return response.body()
    }

    override fun close() {
        process.outputStream.close()
        if (!process.waitFor(5, java.util.concurrent.TimeUnit.SECONDS)) {
            process.destroyForcibly()
        }
    }

    companion object {
        /** `$COURIER_TESTKIT`, else `<cargo target dir>/debug/courier-testkit`. */
        fun binary(): File {
            System.getenv("COURIER_TESTKIT")?.let { return File(it) }
            val targetDir = System.getProperty("courier.cargoTargetDir")
                ?: System.getenv("CARGO_TARGET_DIR")
                ?: (System.getProperty("user.home") + "/.cache/courier/target")
            return File(targetDir, "debug/courier-testkit")
        }

        fun start(upstreams: Int = 2): Testkit {
            val binary = binary()
            check(binary.canExecute()) { "no testkit at $binary; run `cargo build -p courier-testkit` or set COURIER_TESTKIT" }
            val process = ProcessBuilder(binary.path, "--upstreams", upstreams.toString())
                .redirectError(ProcessBuilder.Redirect.INHERIT)
                .start()
            val ready = process.inputStream.bufferedReader().readLine()
                ?: error("the testkit exited before printing its addresses")
            val control = Regex("\"control\"\\s*:\\s*\"([^\"]+)\"").find(ready)?.groupValues?.get(1)
                ?: error("no control URL in $ready")
            val list = Regex("\"upstreams\"\\s*:\\s*\\[([^]]*)]").find(ready)?.groupValues?.get(1)
                ?: error("no upstreams in $ready")
            val urls = Regex("\"([^\"]+)\"").findAll(list).map { it.groupValues[1] }.toList()
            val tls = ready.substringAfter("\"tls\"", "")
            val tlsDir = Regex("\"dir\"\\s*:\\s*\"([^\"]+)\"").find(tls)?.groupValues?.get(1)
                ?: error("no tls.dir in $ready")
            val tlsList = Regex("\"urls\"\\s*:\\s*\\{([^}]*)}").find(tls)?.groupValues?.get(1)
                ?: error("no tls.urls in $ready")
            val tlsUrls = Regex("\"([^\"]+)\"\\s*:\\s*\"([^\"]+)\"").findAll(tlsList)
                .associate { it.groupValues[1] to it.groupValues[2] }
            val otlp = Regex("\"otlp\"\\s*:\\s*\"([^\"]+)\"").find(ready)?.groupValues?.get(1)
                ?: error("no otlp in $ready")
            return Testkit(process, control, urls, tlsDir, tlsUrls, otlp)
        }
    }
}

/**
 * A test class with a testkit of its own, [upstreams] upstreams wide: started before the
 * class's first test, reset (behaviours and request logs) before each, closed after the last.
 * A subclass's own `@BeforeAll` runs after the testkit started, its `@AfterAll` before it closes.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
abstract class WithTestkit(private val upstreams: Int) {
    protected lateinit var kit: Testkit
        private set

    @BeforeAll
    fun startTestkit() {
        kit = Testkit.start(upstreams)
    }

    @AfterAll
    fun closeTestkit() {
        if (::kit.isInitialized) kit.close()
    }

    @BeforeEach
    fun resetTestkit() = kit.reset()
}
