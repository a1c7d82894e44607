/**
 * The Kotlin parity driver: runs the cases in the JSON files of `tests/interop/cases` through
 * courier's Kotlin API and prints one normalised outcome per case
 * (`tests/interop/PROTOCOL.md`, "Parity suite"). Run it through
 * `tests/interop/kotlin/run.sh parity`, which starts `java` on the test classpath.
 *
 * ```text
 * ParityKt CASES.json... --testkit-control URL --testkit-upstreams URL,URL,... --amqp URL
 * ```
 *
 * One JSON object per line on stdout, `{"case": name, "outcome": {...}}`; logs on
 * stderr. Like the agent it is compiled with the test sources, with no `@Test`, so
 * surefire never runs it; the cases are nested JSON, so it carries a small reader and
 * writer ([Json]), the project having no JSON library.
 */
package io.github.courierkit.interop

import io.github.courierkit.call
import io.github.courierkit.ffi.BatchMessage
import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.BusStats
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.QueueOptions
import io.github.courierkit.ffi.Request
import io.github.courierkit.forward
import io.github.courierkit.process
import io.github.courierkit.publishMany
import io.github.courierkit.publish
import io.github.courierkit.request
import kotlinx.coroutines.runBlocking
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.time.Duration
import java.util.UUID
import kotlin.system.exitProcess
import kotlin.time.Duration.Companion.milliseconds

/** Bounds every control-API request; the testkit answers in milliseconds. */
private val CONTROL_TIMEOUT: Duration = Duration.ofSeconds(10)

/** Exit code for a bad command line, as the agents use. */
private const val USAGE_EXIT = 2

private class ParityUsageException(message: String) : Exception(message)

private class DriverArgs(val files: List<String>, val control: String, val upstreams: List<String>, val amqp: String)

private fun parseArgs(argv: Array<String>): DriverArgs {
    val files = mutableListOf<String>()
    val options = mutableMapOf<String, String>()
    var i = 0
    while (i < argv.size) {
        val arg = argv[i++]
        if (!arg.startsWith("--")) {
            files += arg
            continue
        }
        val name = arg.removePrefix("--")
        if (name !in setOf("testkit-control", "testkit-upstreams", "amqp")) throw ParityUsageException("unknown option $arg")
        options[name] = argv.getOrNull(i++) ?: throw ParityUsageException("$arg needs a value")
    }
    fun take(name: String) = options[name] ?: throw ParityUsageException("--$name is required")
    if (files.isEmpty()) throw ParityUsageException("no cases files given")
    return DriverArgs(files, take("testkit-control"), take("testkit-upstreams").split(","), take("amqp"))
}

/** Just enough JSON for the cases: objects keep their key order, integers are Longs. */
private object Json {
    fun parse(text: String): Any? = Reader(text).run { value().also { end() } }

    fun write(value: Any?): String = buildString { write(value, this) }

    private fun write(value: Any?, out: StringBuilder) {
        when (value) {
            null -> out.append("null")
            is Boolean, is Long, is Int, is Double -> out.append(value.toString())
            is String -> {
                out.append('"')
                for (c in value) {
                    when {
                        c == '"' -> out.append("\\\"")
                        c == '\\' -> out.append("\\\\")
                        c < ' ' -> out.append("\\u%04x".format(c.code))
                        else -> out.append(c)
                    }
                }
                out.append('"')
            }
            is Map<*, *> -> {
                out.append('{')
                value.entries.forEachIndexed { i, (k, v) ->
                    if (i > 0) out.append(',')
                    write(k.toString(), out)
                    out.append(':')
                    write(v, out)
                }
                out.append('}')
            }
            is List<*> -> {
                out.append('[')
                value.forEachIndexed { i, v ->
                    if (i > 0) out.append(',')
                    write(v, out)
                }
                out.append(']')
            }
            else -> error("cannot write ${value.javaClass} as JSON")
        }
    }

    private class Reader(private val s: String) {
        private var i = 0

        fun end() {
            skip()
            if (i != s.length) fail("trailing characters")
        }

        fun value(): Any? {
            skip()
            return when (val c = s.getOrNull(i)) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c != null && (c == '-' || c.isDigit())) number() else fail("unexpected ${c ?: "end"}")
            }
        }

        private fun obj(): Map<String, Any?> {
            val map = LinkedHashMap<String, Any?>()
            i++
            skip()
            if (s.getOrNull(i) == '}') return map.also { i++ }
            while (true) {
                skip()
                val key = string()
                expect(':')
                map[key] = value()
                skip()
                when (s.getOrNull(i++)) {
                    ',' -> continue
                    '}' -> return map
                    else -> fail("expected , or }")
                }
            }
        }

        private fun array(): List<Any?> {
            val list = mutableListOf<Any?>()
            i++
            skip()
            if (s.getOrNull(i) == ']') return list.also { i++ }
            while (true) {
                list += value()
                skip()
                when (s.getOrNull(i++)) {
                    ',' -> continue
                    ']' -> return list
                    else -> fail("expected , or ]")
                }
            }
        }

        private fun string(): String {
            expect('"')
            val out = StringBuilder()
            while (true) {
                when (val c = s.getOrNull(i++) ?: fail("unterminated string")) {
                    '"' -> return out.toString()
                    '\\' -> when (val e = s.getOrNull(i++)) {
                        'n' -> out.append('\n')
                        't' -> out.append('\t')
                        'r' -> out.append('\r')
                        'b' -> out.append('\b')
                        'f' -> out.append('\u000c')
                        'u' -> out.append(s.substring(i, i + 4).toInt(16).toChar()).also { i += 4 }
                        '"', '\\', '/' -> out.append(e)
                        else -> fail("bad escape \\$e")
                    }
                    else -> out.append(c)
                }
            }
        }

        private fun number(): Any {
            val start = i
            while (i < s.length && (s[i].isDigit() || s[i] in "+-.eE")) i++
            val text = s.substring(start, i)
            return text.toLongOrNull() ?: text.toDoubleOrNull() ?: fail("bad number $text")
        }

        private fun literal(word: String, value: Any?): Any? {
            if (!s.startsWith(word, i)) fail("expected $word")
            i += word.length
            return value
        }

        private fun expect(c: Char) {
            skip()
            if (s.getOrNull(i++) != c) fail("expected $c")
        }

        private fun skip() {
            while (i < s.length && s[i].isWhitespace()) i++
        }

        private fun fail(message: String): Nothing = throw IllegalArgumentException("JSON at $i: $message")
    }
}

@Suppress("UNCHECKED_CAST")
private fun Any?.obj(): Map<String, Any?> = this as? Map<String, Any?> ?: error("expected an object, got $this")

private fun Any?.list(): List<Any?> = this as? List<Any?> ?: error("expected a list, got $this")

private fun Map<String, Any?>.text(key: String): String = this[key] as? String ?: error("$key must be a string")

private fun Map<String, Any?>.long(key: String): Long = this[key] as? Long ?: error("$key must be an integer")

/** The testkit's control API. */
private class Testkit(val control: String, val upstreams: List<String>) {
    private val http = HttpClient.newBuilder().connectTimeout(CONTROL_TIMEOUT).build()

    fun send(method: String, path: String, body: Any? = null): Any? {
        val publisher = if (body == null) {
            HttpRequest.BodyPublishers.noBody()
        } else {
            HttpRequest.BodyPublishers.ofString(Json.write(body))
        }
        val request = HttpRequest.newBuilder(URI.create(control + path))
            .method(method, publisher)
            .timeout(CONTROL_TIMEOUT)
            .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() in 200..299) { "testkit $method $path: ${response.statusCode()} ${response.body()}" }
        return response.body().takeIf { it.isNotEmpty() }?.let(Json::parse)
    }

    fun totals(count: Int): List<Long> = (0 until count).map { send("GET", "/upstreams/$it/requests").obj().long("total") }
}

/** The case with every placeholder string (`{upstream:N}`, `{memory}`, `{amqp}`) replaced. */
private fun substitute(value: Any?, names: Map<String, String>): Any? = when (value) {
    is String -> names[value] ?: value
    is List<*> -> value.map { substitute(it, names) }
    is Map<*, *> -> value.entries.associate { (k, v) -> k to substitute(v, names) }
    else -> value
}

/** `CircuitOpen` → `circuit_open`: the kind every language shares, from the exception class. */
private fun kindOf(e: CourierException): String =
    e.javaClass.simpleName.replace(Regex("([a-z])([A-Z])"), "$1_$2").lowercase()

private fun outcomeOf(e: CourierException): Map<String, Any?> =
    if (e is CourierException.Config) mapOf("error" to kindOf(e), "field" to e.field) else mapOf("error" to kindOf(e))

/** Every counter under the snake_case name the other languages use. */
private fun BusStats.bySnakeName(): Map<String, Long> = mapOf(
    "published" to published, "confirmed" to confirmed, "resent" to resent, "returned" to returned,
    "publish_rejected" to publishRejected, "republished" to republished, "delivered" to delivered, "acked" to acked, "nacked" to nacked,
    "rejected" to rejected, "redelivered" to redelivered, "deduplicated" to deduplicated,
    "retried" to retried, "delayed" to delayed, "expired" to expired,
    "rpc_in_flight" to rpcInFlight, "reconnects" to reconnects,
).mapValues { it.value.toLong() }

private suspend fun runHttp(case: Map<String, Any?>, kit: Testkit): Map<String, Any?> {
    val behaviors = case["upstreams"].list()
    kit.send("POST", "/reset")
    behaviors.forEachIndexed { i, behavior -> kit.send("PUT", "/upstreams/$i/behavior", behavior) }
    val urls = kit.upstreams.map { it.trimEnd('/') }
    val calls = mutableListOf<Map<String, Any?>>()
    Client(Json.write(case["config"])).use { client ->
        for (call in case["calls"].list().map { it.obj() }) {
            if (call.containsKey("reconfigure")) {
                val outcome: MutableMap<String, Any?> = try {
                    client.reconfigure(Json.write(call["reconfigure"]))
                    linkedMapOf("ok" to true)
                } catch (e: CourierException) {
                    LinkedHashMap(outcomeOf(e))
                }
                outcome["requests"] = List(behaviors.size) { 0L }
                calls += outcome
                continue
            }
            val before = kit.totals(behaviors.size)
            val outcome: MutableMap<String, Any?> = try {
                val response = client.call(
                    Request(
                        method = call.text("method"),
                        target = call.text("target"),
                        path = call["path"] as? String ?: "",
                        headers = (call["headers"] as? Map<*, *>)?.entries?.associate { (k, v) -> k.toString() to v.toString() }
                            ?: emptyMap(),
                        body = (call["body"] as? String)?.toByteArray(),
                        deadline = (call["deadline_ms"] as? Long)?.milliseconds,
                        idempotencyKey = call["idempotency_key"] as? String,
                        idempotent = when (val flag = call["idempotent"]) {
                            null -> false
                            is Boolean -> flag
                            else -> error("idempotent must be a boolean")
                        },
                        version = call["version"] as? String,
                    ),
                )
                val endpoint = response.endpoint.trimEnd('/')
                val index = urls.indexOf(endpoint)
                linkedMapOf(
                    "status" to response.status.toLong(),
                    "attempts" to response.attempts.toLong(),
                    "upstream" to if (index >= 0) index.toLong() else endpoint,
                )
            } catch (e: CourierException) {
                LinkedHashMap(outcomeOf(e))
            }
            val after = kit.totals(behaviors.size)
            outcome["requests"] = after.zip(before) { a, b -> a - b }
            calls += outcome
        }
        client.shutdown()
    }
    return mapOf("calls" to calls)
}

/** What a `process_fail` step's handler throws inside `Delivery.process`. */
private class HandlerFailed : Exception()

private suspend fun step(bus: Bus, kit: Testkit, s: Map<String, Any?>): Map<String, Any?> {
    val body = (s["body"] as? String ?: "").toByteArray()
    val exchange = s["exchange"] as? String ?: ""
    when (val op = s.text("op")) {
        // A control-API request (cutting the bus's connection through a proxy); an answer other
        // than 2xx fails its check, which ends the case as a driver error.
        "testkit" -> kit.send(s.text("method"), s.text("path"), s["body"])
        "declare_queue" -> {
            val delays = (s["retry_delays_ms"] as? List<*>)?.map { (it as Long).milliseconds } ?: emptyList()
            bus.declareQueue(s.text("queue"), QueueOptions(retryDelays = delays))
        }
        "publish" -> bus.publish(
            exchange, s.text("routing_key"), body,
            PublishOptions(
                messageId = s["message_id"] as? String,
                delay = (s["delay_ms"] as? Long)?.milliseconds,
                ttl = (s["ttl_ms"] as? Long)?.milliseconds,
                headers = (s["headers"] as? Map<*, *>)?.entries?.associate { (k, v) -> k as String to v as String } ?: emptyMap(),
            ),
        )
        "publish_many" -> {
            val messages = s["messages"].list().map { it.obj() }.map { m ->
                BatchMessage(
                    m["exchange"] as? String ?: "", m.text("routing_key"), (m["body"] as? String ?: "").toByteArray(),
                    PublishOptions(messageId = m["message_id"] as? String),
                )
            }
            val results = bus.publishMany(messages).map { result ->
                result.fold({ mapOf("ok" to true) }, { e -> outcomeOf(e as CourierException) })
            }
            return mapOf("results" to results)
        }
        "request" -> bus.request(s.text("routing_key"), body, exchange = exchange, timeout = s.long("timeout_ms").milliseconds).close()
        "consume" -> {
            val ids = mutableListOf<String?>()
            bus.consume(s.text("queue"), dedup = s["dedup"] as? Boolean ?: error("dedup must be a boolean")).use { consumer ->
                while (true) {
                    val delivery = try {
                        consumer.next(s.long("wait_ms").milliseconds)
                    } catch (e: CourierException.Timeout) {
                        break
                    } ?: error("the consumer closed")
                    delivery.use { d ->
                        ids += d.messageId()
                        when (val settle = s.text("settle")) {
                            "ack" -> d.ack()
                            "reject" -> d.reject()
                            "nack" -> d.nack(requeue = true)
                            "forward" -> d.forward("", s.text("forward_to"), d.body())
                            "process" -> d.process { }
                            "process_fail" -> try {
                                d.process(requeue = false) { throw HandlerFailed() }
                            } catch (e: HandlerFailed) {
                            }
                            else -> error("unknown settle $settle")
                        }
                    }
                }
                consumer.shutdown()
            }
            return mapOf("message_ids" to ids)
        }
        "consume_batches" -> {
            val ids = mutableListOf<String?>()
            bus.consume(s.text("queue"), dedup = s["dedup"] as? Boolean ?: error("dedup must be a boolean")).use { consumer ->
                while (true) {
                    val batch = consumer.nextBatch(s.long("max").toUInt(), s.long("wait_ms").milliseconds) ?: error("the consumer closed")
                    batch.use {
                        val deliveries = batch.deliveries()
                        if (deliveries.isEmpty()) break
                        ids += deliveries.map { d -> d.use { it.messageId() } }
                        when (val settle = s.text("settle")) {
                            "ack" -> batch.ack()
                            "reject" -> batch.reject()
                            "nack" -> batch.nack(requeue = true)
                            else -> error("unknown settle $settle")
                        }
                    }
                }
                consumer.shutdown()
            }
            return mapOf("message_ids" to ids)
        }
        "stats" -> {
            val stats = bus.stats().bySnakeName()
            return s["fields"].list().associate { it as String to stats[it] }
        }
        else -> error("unknown op $op")
    }
    return mapOf("ok" to true)
}

private suspend fun runBus(case: Map<String, Any?>, kit: Testkit): Map<String, Any?> {
    val steps = mutableListOf<Map<String, Any?>>()
    Bus.connect(Json.write(case["config"])).use { bus ->
        for (s in case["steps"].list().map { it.obj() }) {
            steps += try {
                step(bus, kit, s)
            } catch (e: CourierException) {
                outcomeOf(e)
            }
        }
        bus.shutdown()
    }
    return mapOf("steps" to steps)
}

private suspend fun runConfig(case: Map<String, Any?>): Map<String, Any?> {
    try {
        val config = Json.write(case["config"])
        if (case.text("target") == "client") {
            Client(config).use { it.shutdown() }
        } else {
            Bus.connect(config).use { it.shutdown() }
        }
    } catch (e: CourierException) {
        return outcomeOf(e)
    }
    return mapOf("ok" to true)
}

fun main(argv: Array<String>) {
    val args = try {
        parseArgs(argv)
    } catch (e: ParityUsageException) {
        System.err.println("Parity.kt: ${e.message}")
        exitProcess(USAGE_EXIT)
    }
    val kit = Testkit(args.control, args.upstreams)
    runBlocking {
        for (file in args.files) {
            for (raw in Json.parse(File(file).readText()).obj()["cases"].list().map { it.obj() }) {
                val names = args.upstreams.withIndex().associate { (i, url) -> "{upstream:$i}" to url } +
                    mapOf("{memory}" to "memory://parity-kotlin-${UUID.randomUUID()}", "{amqp}" to args.amqp)
                val case = substitute(raw, names).obj()
                val outcome = try {
                    when (val kind = case.text("kind")) {
                        "http" -> runHttp(case, kit)
                        "bus" -> runBus(case, kit)
                        "config" -> runConfig(case)
                        else -> error("unknown kind $kind")
                    }
                } catch (e: Exception) {
                    mapOf("driver_error" to "${e.javaClass.simpleName}: ${e.message}")
                }
                print(Json.write(mapOf("case" to raw["name"], "outcome" to outcome)) + "\n")
                System.out.flush()
            }
        }
    }
    // Explicit: native threads of the binding could otherwise keep the JVM running.
    exitProcess(0)
}
