// courier from Kotlin against the JVM libraries a service would otherwise use (OkHttp,
// the RabbitMQ Java client), in one JVM, against one upstream and one broker. Every
// contender gets an untimed warm-up round first (the JIT), then peer and courier rounds
// alternate; each figure is the median over the rounds. Prints one JSON row per workload
// on stdout (bench/peers/run.sh assembles the table); progress goes to stderr.
//
// Usage: java -cp ... PeersKt --upstream URL --amqp URL [--rounds N] [--only NAME,...]

import com.rabbitmq.client.AMQP
import com.rabbitmq.client.ConnectionFactory
import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.get
import io.github.courierkit.publish
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import okhttp3.ConnectionPool
import okhttp3.Dispatcher
import okhttp3.OkHttpClient
import okhttp3.Request
import java.io.File
import java.util.UUID
import java.util.concurrent.ConcurrentSkipListSet
import java.util.concurrent.Semaphore
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlin.concurrent.thread

private const val IN_FLIGHT = 256
private const val CONCURRENCY = 64
private val BODY = ByteArray(256) { 'x'.code.toByte() }

private fun log(message: String) = System.err.println(message)

/**
 * CPU time so far, in clock ticks (1/100 s on Linux), from /proc: the whole machine's busy
 * time and this process's (every thread: courier's workers, the JIT and the GC too).
 */
private fun cpuTicks(): LongArray {
    val own = File("/proc/self/stat").readText().substringAfterLast(')').trim().split(Regex("\\s+"))
    val cpu = File("/proc/stat").useLines { it.first() }.split(Regex("\\s+")).drop(1).map { it.toLong() }
    return longArrayOf(cpu.sum() - cpu[3] - cpu[4], own[11].toLong() + own[12].toLong())
}

private const val TICK_US = 10_000.0

/** The last run's CPU microseconds per operation: this process, and the rest of the machine. */
private var lastCpu = mapOf<String, Double>()

/** `count` operations per second for one run of [block]. */
private inline fun rate(count: Int, block: () -> Unit): Double {
    val before = cpuTicks()
    val start = System.nanoTime()
    block()
    val elapsed = (System.nanoTime() - start) / 1e9
    val after = cpuTicks()
    val machine = after[0] - before[0]
    val process = after[1] - before[1]
    lastCpu = mapOf("process" to process * TICK_US / count, "rest" to (machine - process) * TICK_US / count)
    return count / elapsed
}

/** `count` calls of [call] spread over [width] coroutines on the default dispatcher. */
private fun coroutines(count: Int, width: Int, call: suspend () -> Unit) = runBlocking(Dispatchers.Default) {
    val remaining = AtomicInteger(count)
    (1..width).map {
        async {
            while (remaining.getAndDecrement() > 0) call()
        }
    }.awaitAll()
}

/** `count` calls of [call] spread over [width] threads. */
private fun threads(count: Int, width: Int, call: () -> Unit) {
    val remaining = AtomicInteger(count)
    (1..width).map {
        thread {
            while (remaining.getAndDecrement() > 0) call()
        }
    }.forEach { it.join() }
}

/** One warm-up run of each contender, then [rounds] alternating timed runs; medians. */
private fun compare(workload: String, rounds: Int, contenders: Map<String, () -> Double>): String {
    contenders.values.forEach { it() }
    val figures = contenders.keys.associateWith { mutableListOf<Double>() }
    val cpu = contenders.keys.associateWith { mutableListOf<Map<String, Double>>() }
    repeat(rounds) { round ->
        contenders.forEach { (name, run) ->
            figures.getValue(name).add(run())
            cpu.getValue(name).add(lastCpu)
        }
        log("$workload round ${round + 1}: " + figures.entries.joinToString { "${it.key} ${"%,.0f".format(it.value.last())}/s" })
    }
    fun json(s: String) = "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\""
    val medians = figures.entries.joinToString(", ") { (k, v) -> "${json(k)}: ${v.sorted()[v.size / 2]}" }
    val all = figures.entries.joinToString(", ") { (k, v) -> "${json(k)}: ${v.joinToString(", ", "[", "]")}" }
    fun median(v: List<Double>) = v.sorted()[v.size / 2]
    val cpuMedians = cpu.entries.joinToString(", ") { (k, runs) ->
        "${json(k)}: {" + runs[0].keys.joinToString(", ") { part -> "${json(part)}: ${median(runs.map { it.getValue(part) })}" } + "}"
    }
    return "{\"workload\": ${json(workload)}, \"language\": \"kotlin\", \"per_sec\": {$medians}, \"rounds\": {$all}, \"cpu_us_per_op\": {$cpuMedians}}"
}

/**
 * The floor under every courier call from Kotlin: a call that core refuses (an unknown
 * service) still goes to a core worker and back through JNI, so its rate is the hand-off
 * alone (two thread wake-ups and one coroutine resumption), with no network in it.
 */
private fun handoff(upstream: String, rounds: Int, calls: Int): String {
    val client = Client("""{"services": {"svc": {"endpoints": ["$upstream"]}}}""")
    val refused: suspend () -> Unit = {
        try {
            client.get("unknown", "/bench")
        } catch (e: CourierException.Config) {
            // expected: the service is not configured
        }
    }
    try {
        return compare(
            "hand-off floor (refused in core), c=1",
            rounds,
            linkedMapOf("courier" to { rate(calls) { coroutines(calls, 1, refused) } }),
        )
    } finally {
        client.close()
    }
}

private fun get(upstream: String, rounds: Int, concurrency: Int, calls: Int): String {
    val url = "$upstream/bench"
    val okhttp = OkHttpClient.Builder()
        .connectionPool(ConnectionPool(concurrency, 5, TimeUnit.MINUTES))
        .dispatcher(Dispatcher().apply { maxRequests = concurrency; maxRequestsPerHost = concurrency })
        .build()
    val request = Request.Builder().url(url).build()
    val client = Client("""{"services": {"svc": {"endpoints": ["$upstream"]}}}""")
    val okhttpGet = { okhttp.newCall(request).execute().use { it.body.bytes() }; Unit }
    val courierGet: suspend () -> Unit = { client.get("svc", "/bench").body }
    val name = if (concurrency == 1) "GET, c=1" else "GET, $concurrency coroutines vs $concurrency threads"
    val peer = if (concurrency == 1) "OkHttp" else "OkHttp, $concurrency threads"
    try {
        return compare(
            name,
            rounds,
            linkedMapOf(
                peer to { rate(calls) { threads(calls, concurrency, okhttpGet) } },
                "courier" to { rate(calls) { coroutines(calls, concurrency, courierGet) } },
            ),
        )
    } finally {
        client.close()
        okhttp.dispatcher.executorService.shutdown()
        okhttp.connectionPool.evictAll()
    }
}

private fun publish(amqp: String, rounds: Int, messages: Int): String {
    val queue = "bench.peers.${UUID.randomUUID().toString().take(8)}"
    val factory = ConnectionFactory().apply { setUri(amqp) }
    val admin = factory.newConnection()
    val adminChannel = admin.createChannel()
    adminChannel.queueDeclare(queue, true, false, false, mapOf("x-queue-type" to "classic"))
    val persistent = AMQP.BasicProperties.Builder().deliveryMode(2).build()
    // What courier puts on every message besides the body: a message id (courier's is a
    // UUIDv7, as long as this v4) and a W3C traceparent header, made per message.
    val random = java.security.SecureRandom()
    fun hex(bytes: Int) = ByteArray(bytes).also(random::nextBytes).joinToString("") { "%02x".format(it) }
    val courierProperties = {
        AMQP.BasicProperties.Builder()
            .deliveryMode(2)
            .messageId(UUID.randomUUID().toString())
            .headers(mapOf("traceparent" to "00-${hex(16)}-${hex(8)}-01"))
            .build()
    }

    // The Java client's asynchronous confirms: a window of IN_FLIGHT unconfirmed
    // publishes, released by the confirm listener (the pattern its documentation gives).
    fun javaRound(properties: () -> AMQP.BasicProperties): Double {
        val connection = factory.newConnection()
        val channel = connection.createChannel()
        channel.confirmSelect()
        val window = Semaphore(IN_FLIGHT)
        val outstanding = ConcurrentSkipListSet<Long>()
        val release = { tag: Long, multiple: Boolean ->
            if (multiple) {
                val done = outstanding.headSet(tag, true)
                window.release(done.size)
                done.clear()
            } else if (outstanding.remove(tag)) {
                window.release()
            }
        }
        channel.addConfirmListener({ tag, multiple -> release(tag, multiple) }, { tag, multiple -> release(tag, multiple) })
        val result = rate(messages) {
            repeat(messages) {
                window.acquire()
                outstanding.add(channel.nextPublishSeqNo)
                channel.basicPublish("", queue, true, properties(), BODY)
            }
            window.acquire(IN_FLIGHT)
        }
        connection.close()
        adminChannel.queuePurge(queue)
        return result
    }
    val courierRound = {
        val bus = runBlocking { Bus.connect("""{"urls": ["$amqp"]}""") }
        val result = rate(messages) { coroutines(messages, IN_FLIGHT) { bus.publish("", queue, BODY) } }
        runBlocking { bus.shutdown() }
        bus.close()
        adminChannel.queuePurge(queue)
        result
    }
    try {
        return compare(
            "confirmed publish, $IN_FLIGHT in flight",
            rounds,
            linkedMapOf(
                "Java client ConfirmChannel" to { javaRound { persistent } },
                "Java client, courier's properties" to { javaRound(courierProperties) },
                "courier" to courierRound,
            ),
        )
    } finally {
        adminChannel.queueDelete(queue)
        admin.close()
    }
}

fun main(args: Array<String>) {
    val options = args.toList().chunked(2).associate { it[0].removePrefix("--") to it[1] }
    val upstream = options.getValue("upstream")
    val amqp = options.getValue("amqp")
    val rounds = options["rounds"]?.toInt() ?: 3
    val workloads = linkedMapOf(
        "handoff" to { handoff(upstream, rounds, 10_000) },
        "get_c1" to { get(upstream, rounds, 1, 5_000) },
        "get_c64" to { get(upstream, rounds, CONCURRENCY, 20_000) },
        "publish" to { publish(amqp, rounds, 10_000) },
    )
    val only = options["only"]?.split(",") ?: workloads.keys.toList()
    for (name in only) println(workloads[name]?.invoke() ?: error("unknown workload $name (${workloads.keys})"))
}
