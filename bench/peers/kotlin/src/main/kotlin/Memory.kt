// Memory figures from Kotlin (bench/peers/run.sh memory), each measured in a JVM of its
// own so one's allocations cannot hide in another's peak; the same figures as memory.py
// and node/memory.mjs:
//
// - unconfirmed: peak RSS added by 10,000 confirmed publishes started at once (256-byte
//   persistent messages, one durable classic queue on the local RabbitMQ), courier's Bus
//   from 10,000 coroutines against the RabbitMQ Java client publishing as many on one
//   confirm channel before waiting for the confirms.
// - in flight: peak RSS added by 10,000 GETs in flight at once, each held 2 s by a slow
//   upstream (slow_upstream.py, a process of its own), courier's Client from 10,000
//   coroutines against OkHttp's asynchronous calls with room for 10,000 connections.
//
// Every child JVM runs with the same flags (the parent's), so heap growth counts the same
// for both. RSS is VmRSS before and VmHWM (the peak) after, from /proc/self/status.
// Prints one JSON object per figure on stdout.
//
// Usage: java -cp ... MemoryKt --amqp URL --upstream URL-of-slow_upstream.py

import com.rabbitmq.client.AMQP
import com.rabbitmq.client.ConnectionFactory
import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.get
import io.github.courierkit.publish
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.runBlocking
import okhttp3.Call
import okhttp3.Callback
import okhttp3.ConnectionPool
import okhttp3.Dispatcher
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.Response
import java.io.File
import java.io.IOException
import java.lang.management.ManagementFactory
import java.util.UUID
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger

private const val OPERATIONS = 10_000
private val PAYLOAD = ByteArray(256) { 'x'.code.toByte() }

/** KiB: `VmRSS` (now) or `VmHWM` (the peak so far) of this process. */
private fun kib(field: String): Long =
    File("/proc/self/status").readLines().first { it.startsWith("$field:") }.split(Regex("\\s+"))[1].toLong()

/** [block] with a fresh durable classic queue, deleted afterwards. */
private fun withQueue(amqp: String, block: (String) -> Long): Long {
    val queue = "bench.memory.kotlin.${UUID.randomUUID().toString().take(8)}"
    ConnectionFactory().apply { setUri(amqp) }.newConnection().use { admin ->
        val channel = admin.createChannel()
        channel.queueDeclare(queue, true, false, false, mapOf("x-queue-type" to "classic"))
        try {
            return block(queue)
        } finally {
            channel.queueDelete(queue)
        }
    }
}

private fun publishCourier(amqp: String): Long = withQueue(amqp) { queue ->
    runBlocking(Dispatchers.Default) {
        val bus = Bus.connect("""{"urls": ["$amqp"], "max_unconfirmed": $OPERATIONS}""")
        bus.publish("", queue, PAYLOAD) // connection and channel up before the baseline
        val before = kib("VmRSS")
        (1..OPERATIONS).map { async { bus.publish("", queue, PAYLOAD) } }.awaitAll()
        val added = kib("VmHWM") - before
        bus.shutdown()
        bus.close()
        added
    }
}

private fun publishJava(amqp: String): Long = withQueue(amqp) { queue ->
    ConnectionFactory().apply { setUri(amqp) }.newConnection().use { connection ->
        val channel = connection.createChannel()
        channel.confirmSelect()
        val persistent = AMQP.BasicProperties.Builder().deliveryMode(2).build()
        channel.basicPublish("", queue, true, persistent, PAYLOAD)
        channel.waitForConfirmsOrDie(60_000)
        val before = kib("VmRSS")
        repeat(OPERATIONS) { channel.basicPublish("", queue, true, persistent, PAYLOAD) }
        channel.waitForConfirmsOrDie(60_000)
        kib("VmHWM") - before
    }
}

private fun httpCourier(upstream: String): Long {
    val config = """{"services": {"slow": {"endpoints": ["$upstream"], "max_concurrency": $OPERATIONS, "deadline_ms": 60000}}}"""
    val client = Client(config)
    return runBlocking(Dispatchers.Default) {
        client.get("slow", "/") // runtime, pool and client up before the baseline
        val before = kib("VmRSS")
        val statuses = (1..OPERATIONS).map { async { client.get("slow", "/").status.toInt() } }.awaitAll()
        check(statuses.all { it == 200 }) { "a GET failed" }
        val added = kib("VmHWM") - before
        client.shutdown()
        client.close()
        added
    }
}

private fun httpOkHttp(upstream: String): Long {
    val okhttp = OkHttpClient.Builder()
        .connectionPool(ConnectionPool(OPERATIONS, 5, TimeUnit.MINUTES))
        .dispatcher(Dispatcher().apply { maxRequests = OPERATIONS; maxRequestsPerHost = OPERATIONS })
        .readTimeout(60, TimeUnit.SECONDS)
        .build()
    val request = Request.Builder().url("$upstream/").build()
    okhttp.newCall(request).execute().use { check(it.code == 200) }
    val before = kib("VmRSS")
    val done = CountDownLatch(OPERATIONS)
    val failed = AtomicInteger()
    repeat(OPERATIONS) {
        okhttp.newCall(request).enqueue(object : Callback {
            override fun onFailure(call: Call, e: IOException) {
                failed.incrementAndGet()
                done.countDown()
            }

            override fun onResponse(call: Call, response: Response) {
                response.use { if (it.code != 200) failed.incrementAndGet() }
                done.countDown()
            }
        })
    }
    check(done.await(120, TimeUnit.SECONDS)) { "GETs still in flight after 120 s" }
    check(failed.get() == 0) { "${failed.get()} GETs failed" }
    val added = kib("VmHWM") - before
    okhttp.dispatcher.executorService.shutdown()
    okhttp.connectionPool.evictAll()
    return added
}

/** Runs one figure in a JVM of its own, with this JVM's flags; its last line of output. */
private fun measure(kind: String, options: Map<String, String>): Long {
    val java = ProcessHandle.current().info().command().orElse("java")
    val flags = ManagementFactory.getRuntimeMXBean().inputArguments
    val command = listOf(java) + flags + listOf("-cp", System.getProperty("java.class.path"), "MemoryKt") +
        options.flatMap { (k, v) -> listOf("--$k", v) } + listOf("--child", kind)
    val process = ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start()
    val out = process.inputStream.bufferedReader().readText()
    check(process.waitFor() == 0) { "$kind failed" }
    return out.trim().lines().last().toLong()
}

private fun figure(what: String, values: Map<String, Long>): String {
    val json = values.entries.joinToString(", ") { (k, v) -> "\"$k\": $v" }
    return "{\"figure\": \"$what\", \"language\": \"kotlin\", \"values\": {$json}}"
}

fun main(args: Array<String>) {
    val options = args.toList().chunked(2).associate { it[0].removePrefix("--") to it[1] }
    val amqp = options.getValue("amqp")
    val upstream = options.getValue("upstream")
    when (options["child"]) {
        "publish-courier" -> println(publishCourier(amqp))
        "publish-java" -> println(publishJava(amqp))
        "http-courier" -> println(httpCourier(upstream))
        "http-okhttp" -> println(httpOkHttp(upstream))
        null -> {
            val parent = options - "child"
            println(
                figure(
                    "peak RSS added by 10,000 unconfirmed publishes, KiB",
                    linkedMapOf("Java client" to measure("publish-java", parent), "courier" to measure("publish-courier", parent)),
                ),
            )
            println(
                figure(
                    "peak RSS added by 10,000 GETs in flight (2 s each), KiB",
                    linkedMapOf("OkHttp" to measure("http-okhttp", parent), "courier" to measure("http-courier", parent)),
                ),
            )
        }
        else -> error("unknown child ${options["child"]}")
    }
}
