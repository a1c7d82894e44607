// courierkit quick start for Kotlin/JVM: one HTTP call and one message. The HTTP upstream is
// the JDK's own server on 127.0.0.1; messages go through the in-process memory:// broker
// and, when COURIER_AMQP_URL is set, through RabbitMQ too.
import com.sun.net.httpserver.HttpServer
import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.QueueOptions
import io.github.courierkit.get
import io.github.courierkit.publish
import io.github.courierkit.text
import kotlinx.coroutines.runBlocking
import java.net.InetSocketAddress
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds

suspend fun httpCall() {
    val server = HttpServer.create(InetSocketAddress("127.0.0.1", 0), 0)
    server.createContext("/") { exchange ->
        val body = """{"item": "${exchange.requestURI.path.substringAfterLast('/')}", "in_stock": 3}""".toByteArray()
        exchange.responseHeaders.add("content-type", "application/json")
        exchange.sendResponseHeaders(200, body.size.toLong())
        exchange.responseBody.use { it.write(body) }
    }
    server.start()
    val upstream = "http://127.0.0.1:${server.address.port}"
    Client("""{"services": {"inventory": {"endpoints": ["$upstream"], "deadline_ms": 2000}}}""").use { client ->
        val resp = client.get("inventory", "/v1/items/42")
        println("GET inventory /v1/items/42 -> ${resp.status} ${resp.text()} (${resp.attempts} attempt)")
        check(resp.status.toInt() == 200 && resp.text().contains("\"42\"")) { "unexpected answer" }
    }
    server.stop(0)
}

suspend fun messaging(url: String) {
    val queue = "quickstart.${UUID.randomUUID().toString().take(8)}"
    val bus = Bus.connect("""{"urls": ["$url"]}""")
    // A classic queue without a dead-letter queue: nothing is left behind on a broker.
    bus.declareQueue(queue, QueueOptions(quorum = false, deadLetter = false, ttl = 60_000.milliseconds))
    val receipt = bus.publish("", queue, """{"order": 42}""".toByteArray())
    println("[${url.substringAfterLast('@')}] published ${receipt.messageId} (confirmed)")
    val consumer = bus.consume(queue, null, true)
    val delivery = consumer.next(5_000.milliseconds) ?: error("no delivery within 5 s")
    check(delivery.messageId() == receipt.messageId) { "another message arrived" }
    delivery.ack()
    println("consumed ${delivery.messageId()} body=${delivery.body().toString(Charsets.UTF_8)} -> acked")
    consumer.shutdown()
    bus.shutdown()
    bus.close()
}

fun main() = runBlocking {
    httpCall()
    messaging("memory://quickstart")
    System.getenv("COURIER_AMQP_URL")?.takeIf { it.isNotEmpty() }?.let { messaging(it) }
    println("quickstart: ok")
}
