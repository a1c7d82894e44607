/**
 * The Kotlin interop agent: plays one role (publish, consume or serve) of an interop
 * scenario through courier's Kotlin API, exactly as `tests/interop/PROTOCOL.md`
 * specifies. Run it through `tests/interop/kotlin/run.sh`, which starts `java` on the
 * test classpath Maven wrote (a Maven start per agent would cost seconds).
 *
 * ```text
 * AgentKt ROLE --bus URL --run ID [options]
 *   publish --count N [--duplicates D]
 *   consume --expect N --duplicates D
 *   serve   --http URL --expect N
 *   every role: [--max-ms MS] (default 120000)
 * ```
 *
 * One JSON object per line on stdout, the last one `{"event": "done", ...}`; logs on
 * stderr. It is compiled with bindings/kotlin's test sources (the pom adds
 * tests/interop/kotlin as a test source root), with no `@Test`, so it ships nothing and
 * surefire never runs it; JSON is written and read by hand, since the project has no JSON library
 * and the bodies are one-field objects.
 */
package io.github.courierkit.interop

import io.github.courierkit.call
import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.Consumer
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.Delivery
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.Request
import io.github.courierkit.ffi.TraceContext
import io.github.courierkit.publish
import io.github.courierkit.request
import io.github.courierkit.traceContext
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.sync.Semaphore
import kotlinx.coroutines.withTimeout
import java.lang.management.ManagementFactory
import kotlin.system.exitProcess
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/** Orders worked on at once by publish, consume and serve. */
private const val IN_FLIGHT = 16

/** How long one `next()` waits before the loop checks again whether it may stop. */
private val POLL = 100.milliseconds

/** The consumer's RPC timeout, from the protocol. */
private val RPC_TIMEOUT = 10.seconds

/** The consumer's prefetch, from the protocol. */
private const val PREFETCH: UShort = 50u

private const val DEFAULT_MAX_MS = 120_000L

/**
 * Kept out of `--max-ms` for the graceful end (closing the consumer and the bus), so
 * the soft deadline fails with a message before the watchdog has to halt the JVM.
 */
private const val SHUTDOWN_MARGIN_MS = 2_000L

/** Exit code for a bad command line, as the other agents use. */
private const val USAGE_EXIT = 2

private enum class Role(val required: List<String>, val optional: Map<String, String>) {
    PUBLISH(listOf("count"), mapOf("duplicates" to "0")),
    CONSUME(listOf("expect", "duplicates"), emptyMap()),
    SERVE(listOf("http", "expect"), emptyMap()),
    ;

    val label: String = name.lowercase()
}

private val NUMERIC = setOf("count", "duplicates", "expect", "max-ms")

private class UsageException(message: String) : Exception(message)

private class Options(val role: Role, private val values: Map<String, String>) {
    fun text(name: String): String = values.getValue(name)
    fun number(name: String): Long = values.getValue(name).toLong()
    fun int(name: String): Int = values.getValue(name).toInt()
}

/** `ROLE --name value ...`; the role's required options must be there, no others. */
private fun parse(args: Array<String>): Options {
    val role = Role.entries.find { it.label == args.firstOrNull() }
        ?: throw UsageException(
            "unknown role ${args.firstOrNull()}; expected one of ${Role.entries.joinToString { it.label }}",
        )
    val known = setOf("bus", "run", "max-ms") + role.required + role.optional.keys
    val values = mutableMapOf("max-ms" to DEFAULT_MAX_MS.toString()).apply { putAll(role.optional) }
    val rest = args.drop(1)
    for (i in rest.indices step 2) {
        val name = rest[i].removePrefix("--").takeIf { rest[i].startsWith("--") && it in known }
            ?: throw UsageException("${role.label}: unknown option ${rest[i]}")
        val value = rest.getOrNull(i + 1) ?: throw UsageException("${role.label}: ${rest[i]} needs a value")
        if (name in NUMERIC && value.toIntOrNull().let { it == null || it < 0 }) {
            throw UsageException("${role.label}: --$name must be a non-negative integer, got $value")
        }
        values[name] = value
    }
    for (name in listOf("bus", "run") + role.required) {
        if (name !in values) throw UsageException("${role.label}: --$name is required")
    }
    val options = Options(role, values)
    if (role == Role.PUBLISH && options.int("duplicates") > options.int("count")) {
        throw UsageException("publish: --duplicates ${options.int("duplicates")} exceeds --count ${options.int("count")}")
    }
    return options
}

/** The run's exchange and queues: the run id keeps runs apart on a shared broker. */
private class Names(run: String) {
    val exchange = "interop.$run.orders"
    val orders = "interop.$run.orders"
    val pricing = "interop.$run.pricing"
}

/** What a role has done so far, for the message when `--max-ms` runs out. */
private class Progress(private val verb: String, private val expect: Int) {
    /** Distinct orders handled. */
    val orders = HashSet<Long>()

    /** Lines printed for handled orders (the `done` count). */
    var lines = 0

    fun record(order: Long) {
        orders += order
        lines++
    }

    override fun toString() = "$verb ${orders.size} of $expect orders"
}

private fun log(message: String) {
    System.err.println("Agent.kt: $message")
}

/** One JSON object per line; only ever called from the single runBlocking thread. */
private fun emit(vararg fields: Pair<String, Any?>) {
    val line = fields.joinToString(",", "{", "}") { (key, value) -> "${json(key)}:${json(value)}" }
    System.out.print(line + "\n")
    System.out.flush()
}

private fun json(value: Any?): String = when (value) {
    null -> "null"
    is Number, is Boolean -> value.toString()
    is RawJson -> value.text
    else -> buildString {
        append('"')
        for (c in value.toString()) {
            when {
                c == '"' -> append("\\\"")
                c == '\\' -> append("\\\\")
                c < ' ' -> append("\\u%04x".format(c.code))
                else -> append(c)
            }
        }
        append('"')
    }
}

/** A JSON value copied as it came (the reply's `price`, reported as the server sent it). */
private class RawJson(val text: String)

private val NUMBER = """-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"""

/** The number at [field] of a flat JSON object such as `{"order": 3}`. */
private fun numberField(body: ByteArray, field: String): String {
    val text = body.toString(Charsets.UTF_8)
    return Regex(""""$field"\s*:\s*($NUMBER)""").find(text)?.groupValues?.get(1)
        ?: throw IllegalArgumentException("no number \"$field\" in $text")
}

private fun orderOf(body: ByteArray): Long = numberField(body, "order").toLong()

private fun Delivery.traceId(): String = traceContext().use { it.traceId() }

/** Declares the orders exchange, queue and binding; idempotent, so every role may do it. */
private suspend fun declareOrders(bus: Bus, names: Names) {
    bus.declareExchange(names.exchange, "topic")
    bus.declareQueue(names.orders)
    bus.bind(names.orders, names.exchange, "order.placed")
}

/** Runs `block(0) .. block(count - 1)` with at most [IN_FLIGHT] running at once. */
private suspend fun forEachIndex(count: Int, block: suspend (Int) -> Unit) = coroutineScope {
    var next = 0
    repeat(minOf(IN_FLIGHT, count)) {
        launch {
            while (next < count) block(next++)
        }
    }
}

private suspend fun publish(options: Options, bus: Bus, progress: Progress) {
    val names = Names(options.text("run"))
    val count = options.int("count")
    val duplicates = options.int("duplicates")
    declareOrders(bus, names)
    val parents = arrayOfNulls<Map<String, String>>(count)
    suspend fun send(i: Int) = bus.publish(
        names.exchange, "order.placed", """{"order": $i}""".toByteArray(),
        PublishOptions(messageId = "order-$i", trace = parents[i]),
    )
    forEachIndex(count) { i ->
        parents[i] = TraceContext.newRoot().use { it.toCarrier() }
        val receipt = send(i)
        progress.record(i.toLong())
        emit(
            "event" to "published", "order" to i, "message_id" to receipt.messageId,
            "trace_id" to receipt.traceContext().use { it.traceId() },
        )
    }
    // Only after every first copy is confirmed, so each duplicate queues behind its original.
    forEachIndex(duplicates) { i -> send(i) }
    emit("event" to "done", "published" to count + duplicates)
}

/**
 * Hands deliveries to [handle], at most [IN_FLIGHT] at once, until [progress] has
 * reached `--expect` distinct orders, nothing is in flight, and [caughtUp] holds. A
 * handler that fails is logged and its delivery returned to the queue, so a transient
 * failure is retried; the order counts only once it succeeds.
 */
private suspend fun drain(
    consumer: Consumer,
    options: Options,
    progress: Progress,
    caughtUp: () -> Boolean,
    handle: suspend (Delivery) -> Unit,
) = coroutineScope {
    val expect = options.int("expect")
    val slots = Semaphore(IN_FLIGHT)
    var running = 0
    while (true) {
        if (progress.orders.size >= expect && running == 0 && caughtUp()) break
        slots.acquire()
        val delivery = try {
            consumer.next(POLL)
        } catch (e: CourierException.Timeout) {
            slots.release()
            continue
        } ?: error("the consumer was closed before the run ended")
        running++
        launch {
            try {
                delivery.use { d ->
                    try {
                        handle(d)
                    } catch (e: CancellationException) {
                        throw e
                    } catch (e: Exception) {
                        log("message ${d.messageId()}: ${e.javaClass.simpleName}: ${e.message}; returning it to the queue")
                        try {
                            d.nack(requeue = true)
                        } catch (nack: CourierException) {
                            log("nack ${d.messageId()}: ${nack.message}")
                        }
                    }
                }
            } finally {
                running--
                slots.release()
            }
        }
    }
}

private suspend fun consume(options: Options, bus: Bus, progress: Progress) {
    val names = Names(options.text("run"))
    declareOrders(bus, names)
    // Declared here too, so requests sent before the server is up are queued, not unroutable.
    bus.declareQueue(names.pricing)
    val consumer = bus.consume(names.orders, prefetch = PREFETCH)
    val duplicates = options.number("duplicates").toULong()
    // Dedup skips the publisher's duplicates inside `next()`: stopping before every one was
    // skipped would leave a late copy unseen.
    drain(consumer, options, progress, caughtUp = { bus.stats().deduplicated >= duplicates }) { d ->
        val order = orderOf(d.body())
        val (price, replyTraceId) = bus.request(
            names.pricing, """{"order": $order}""".toByteArray(),
            timeout = RPC_TIMEOUT, trace = d.trace(),
        ).use { reply -> numberField(reply.body(), "price") to reply.traceId() }
        d.ack()
        progress.record(order)
        emit(
            "event" to "processed", "order" to order, "message_id" to d.messageId(),
            "trace_id" to d.traceId(), "price" to RawJson(price), "reply_trace_id" to replyTraceId,
        )
    }
    consumer.shutdown()
    consumer.close()
    emit("event" to "done", "processed" to progress.lines)
}

private suspend fun serve(options: Options, bus: Bus, progress: Progress) {
    val names = Names(options.text("run"))
    bus.declareQueue(names.pricing)
    Client("""{"services": {"upstream": {"endpoints": [${json(options.text("http"))}]}}}""").use { client ->
        val server = bus.serve(names.pricing)
        // Duplicates never reach the server (the consumer skips them): nothing follows the last order.
        drain(server, options, progress, caughtUp = { true }) { d ->
            val order = orderOf(d.body())
            val response = client.call(
                Request(method = "GET", target = "upstream", path = "/price/$order", trace = d.trace()),
            )
            d.reply("""{"order": $order, "price": ${order * 10 + 1}}""".toByteArray())
            d.ack()
            progress.record(order)
            emit(
                "event" to "served", "order" to order, "trace_id" to d.traceId(),
                "http_status" to response.status.toInt(), "http_attempts" to response.attempts.toLong(),
            )
        }
        server.shutdown()
        server.close()
        client.shutdown()
    }
    emit("event" to "done", "served" to progress.lines)
}

/**
 * Milliseconds left of [maxMs] since the JVM started, so its startup counts against the
 * bound too. The JVM's uptime, not `ProcessHandle`'s start instant: Linux gives that one
 * only to the second.
 */
private fun remainingMs(maxMs: Long): Long = maxMs - ManagementFactory.getRuntimeMXBean().uptime

/**
 * The hard bound: whatever hangs (a native call that ignores cancellation, a shutdown
 * hook), the process is gone after [ms]. A daemon thread, so it never keeps the JVM up.
 */
private fun startWatchdog(role: Role, ms: Long) {
    Thread({
        Thread.sleep(ms.coerceAtLeast(0))
        log("${role.label}: gave up after --max-ms; halting")
        System.out.flush()
        Runtime.getRuntime().halt(1)
    }, "max-ms watchdog").apply { isDaemon = true }.start()
}

fun main(args: Array<String>) {
    val options = try {
        parse(args)
    } catch (e: UsageException) {
        log(e.message ?: "bad arguments")
        exitProcess(USAGE_EXIT)
    }
    val role = options.role
    val budget = remainingMs(options.number("max-ms"))
    startWatchdog(role, budget)
    val progress = when (role) {
        Role.PUBLISH -> Progress("published", options.int("count"))
        Role.CONSUME -> Progress("processed", options.int("expect"))
        Role.SERVE -> Progress("served", options.int("expect"))
    }
    val code = try {
        // One thread: every coroutine below resumes on it, so the handlers share their
        // counters without locks while the native calls run concurrently in core.
        runBlocking {
            withTimeout(budget - minOf(SHUTDOWN_MARGIN_MS, budget / 10)) {
                val bus = Bus.connect("""{"urls": [${json(options.text("bus"))}]}""")
                when (role) {
                    Role.PUBLISH -> publish(options, bus, progress)
                    Role.CONSUME -> consume(options, bus, progress)
                    Role.SERVE -> serve(options, bus, progress)
                }
                bus.shutdown()
                bus.close()
            }
        }
        0
    } catch (e: TimeoutCancellationException) {
        log("${role.label}: --max-ms ${options.number("max-ms")} passed with $progress")
        1
    } catch (e: Exception) {
        log("${role.label} failed ($progress): ${e.javaClass.simpleName}: ${e.message}")
        1
    }
    System.out.flush()
    // Explicit: native threads of the binding could otherwise keep the JVM running.
    exitProcess(code)
}
