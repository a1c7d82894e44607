/**
 * courier from Java: `CompletableFuture` forms of the suspending operations, and builders
 * that take `java.time.Duration`.
 *
 * Java cannot call a `suspend fun`, and cannot construct the generated records whose
 * durations are `kotlin.time.Duration` (a value class: the constructor is hidden from
 * Java). These static methods of `CourierJava` run the Kotlin API in a coroutine and
 * return its future: cancelling the future cancels the coroutine, which cancels the
 * operation in core and releases what it held, as in Kotlin. The typed configuration
 * (Config.kt) already has builders and `toJson()`. Kotlin code calls the suspending API
 * directly.
 *
 * ```java
 * Client client = new Client(config.toJson());
 * Request request = CourierJava.requestBuilder("GET", "orders").path("/v1/items")
 *     .deadline(Duration.ofSeconds(2)).build();
 * Response response = CourierJava.call(client, request).get();
 * ```
 */
package io.github.courierkit

import io.github.courierkit.ffi.Batch
import io.github.courierkit.ffi.BatchMessage
import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.Consumer
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.Delivery
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.PublishResult
import io.github.courierkit.ffi.QueryParam
import io.github.courierkit.ffi.QueueOptions
import io.github.courierkit.ffi.Receipt
import io.github.courierkit.ffi.Request
import io.github.courierkit.ffi.Response
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.future.future
import java.lang.reflect.Modifier
import java.util.concurrent.CompletableFuture
import kotlin.time.toJavaDuration
import kotlin.time.toKotlinDuration
import java.time.Duration as JavaDuration

object CourierJava {
    /** Runs the futures' coroutines; a failed one fails only its own future. */
    private val futures = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    // The current OpenTelemetry span is read on the caller's thread, before the future's
    // coroutine starts on another one (where the caller's span is not current).

    /** Connects a bus from its config as JSON text (`BusConfig.toJson()`). */
    @JvmStatic fun connect(configJson: String): CompletableFuture<Bus> = futures.future { Bus.connect(configJson) }

    /** [Client.call], with the current OpenTelemetry span as the parent. */
    @JvmStatic fun call(client: Client, request: Request): CompletableFuture<Response> {
        val traced = request.tracedBy(HostTrace.carrier())
        return futures.future { client.call(traced) }
    }

    /** [Bus.publish]: completes with the receipt once the broker confirmed. */
    @JvmStatic @JvmOverloads fun publish(
        bus: Bus,
        exchange: String,
        routingKey: String,
        body: ByteArray,
        options: PublishOptions = PublishOptions(),
    ): CompletableFuture<Receipt> {
        val traced = options.tracedBy(HostTrace.carrier())
        return futures.future { bus.publish(exchange, routingKey, body, traced) }
    }

    /**
     * [Bus.publishMany]: completes once every message is settled, with one result per
     * message at its index: `PublishResult.Confirmed` (its receipt) or
     * `PublishResult.Failed` (the `CourierException` [publish] would have failed with).
     */
    @JvmStatic fun publishMany(bus: Bus, messages: List<BatchMessage>): CompletableFuture<List<PublishResult>> {
        val traced = messages.tracedBy(HostTrace.carrier())
        return futures.future { bus.publishManyNative(traced) }
    }

    /** [Bus.request]; [timeout] null is core's default (5 s). */
    @JvmStatic @JvmOverloads fun request(
        bus: Bus,
        routingKey: String,
        body: ByteArray,
        timeout: JavaDuration? = null,
        exchange: String? = null,
        headers: Map<String, String> = emptyMap(),
    ): CompletableFuture<Delivery> {
        val parent = HostTrace.carrier()
        return futures.future {
            bus.request(routingKey, body, exchange, timeout?.toKotlinDuration(), headers, parent)
        }
    }

    /** `Bus.declareQueue`. */
    @JvmStatic @JvmOverloads fun declareQueue(bus: Bus, name: String, options: QueueOptions = QueueOptions()): CompletableFuture<Unit> =
        futures.future { bus.declareQueue(name, options) }

    /** `Bus.declareExchange`; [kind] null is core's default (`topic`). */
    @JvmStatic @JvmOverloads fun declareExchange(bus: Bus, name: String, kind: String? = null): CompletableFuture<Unit> =
        futures.future { bus.declareExchange(name, kind) }

    /** `Bus.bind`: routes [exchange]'s messages matching [routingKey] to [queue]. */
    @JvmStatic fun bind(bus: Bus, queue: String, exchange: String, routingKey: String): CompletableFuture<Unit> =
        futures.future { bus.bind(queue, exchange, routingKey) }

    /**
     * `Bus.consume`; [prefetch] and [dedup] null are the config's. A prefetch core
     * refuses, or one that is no 16-bit unsigned number, fails the future with
     * `CourierException.Config` naming `prefetch`.
     */
    @JvmStatic @JvmOverloads fun consume(
        bus: Bus,
        queue: String,
        prefetch: Int? = null,
        dedup: Boolean? = null,
    ): CompletableFuture<Consumer> = futures.future {
        bus.consume(queue, prefetch?.let { unsigned("prefetch", it, UShort.MAX_VALUE.toInt()).toUShort() }, dedup)
    }

    /** `Bus.serve`: a consumer of requests on [queue], each answered with `reply`. */
    @JvmStatic fun serve(bus: Bus, queue: String): CompletableFuture<Consumer> = futures.future { bus.serve(queue) }

    /** `Consumer.next`; [timeout] null waits until a delivery comes or the consumer closes. */
    @JvmStatic @JvmOverloads fun next(consumer: Consumer, timeout: JavaDuration? = null): CompletableFuture<Delivery?> =
        futures.future { consumer.next(timeout?.toKotlinDuration()) }

    /**
     * `Consumer.nextBatch`: up to [max] deliveries, as soon as [max] have come or when
     * [timeout] has passed with fewer (possibly none); null once the consumer closed. A
     * [max] core refuses (it takes 1 to the prefetch) fails the future with
     * `CourierException.Config`.
     */
    @JvmStatic fun nextBatch(consumer: Consumer, max: Int, timeout: JavaDuration): CompletableFuture<Batch?> =
        futures.future {
            consumer.nextBatch(unsigned("max", max, Int.MAX_VALUE).toUInt(), timeout.toKotlinDuration())
        }

    /** `Delivery.ack`. */
    @JvmStatic fun ack(delivery: Delivery): CompletableFuture<Unit> = futures.future { delivery.ack() }

    /** `Delivery.nack`; [requeue] null is core's default (requeue). */
    @JvmStatic @JvmOverloads fun nack(delivery: Delivery, requeue: Boolean? = null): CompletableFuture<Unit> =
        futures.future { delivery.nack(requeue) }

    /** `Delivery.reject`: dead-lettered (dropped when the queue has no dead-letter queue). */
    @JvmStatic fun reject(delivery: Delivery): CompletableFuture<Unit> = futures.future { delivery.reject() }

    /** `Batch.ack`: every delivery of the batch not settled on its own. */
    @JvmStatic fun ack(batch: Batch): CompletableFuture<Unit> = futures.future { batch.ack() }

    /** `Batch.nack`; [requeue] null is core's default (requeue). */
    @JvmStatic @JvmOverloads fun nack(batch: Batch, requeue: Boolean? = null): CompletableFuture<Unit> =
        futures.future { batch.nack(requeue) }

    /** `Batch.reject`. */
    @JvmStatic fun reject(batch: Batch): CompletableFuture<Unit> = futures.future { batch.reject() }

    /** `Delivery.reply`: answers a request taken from a [serve] consumer. */
    @JvmStatic @JvmOverloads fun reply(
        delivery: Delivery,
        body: ByteArray,
        headers: Map<String, String> = emptyMap(),
    ): CompletableFuture<Unit> = futures.future { delivery.reply(body, headers) }

    /** [Delivery.forward]: the next workflow step, then this delivery acked. */
    @JvmStatic @JvmOverloads fun forward(
        delivery: Delivery,
        exchange: String,
        routingKey: String,
        body: ByteArray,
        options: PublishOptions = PublishOptions(),
    ): CompletableFuture<Receipt> {
        val traced = options.tracedBy(HostTrace.carrier())
        return futures.future { delivery.forward(exchange, routingKey, body, traced) }
    }

    /** courier's close of a bus (`Bus.shutdown`); the handle is freed by `close()`. */
    @JvmStatic fun shutdown(bus: Bus): CompletableFuture<Unit> = futures.future { bus.shutdown() }

    /** courier's close of a consumer (`Consumer.shutdown`). */
    @JvmStatic fun shutdown(consumer: Consumer): CompletableFuture<Unit> = futures.future { consumer.shutdown() }

    // Kotlin's unsigned numbers are value classes: Java cannot call their getters (their
    // names are mangled), so these read them as Java numbers.

    /** [Response.status] as an `int`. */
    @JvmStatic fun status(response: Response): Int = response.status.toInt()

    /** [Response.attempts] (the first try and every retry and hedge) as an `int`. */
    @JvmStatic fun attempts(response: Response): Int = response.attempts.toInt()

    /** `Delivery.deliveryCount` (quorum queues' earlier delivery attempts); null when the broker sent none. */
    @JvmStatic fun deliveryCount(delivery: Delivery): Long? = delivery.deliveryCount()?.toLong()

    /**
     * `Bus.stats` as a map from the Kotlin property name to its value, unsigned counters
     * as `Long`: `published`, `confirmed`, `delivered`... (docs/api.md, "Stats").
     */
    @JvmStatic fun stats(bus: Bus): Map<String, Any?> = JavaStats.record(bus.stats())

    /**
     * `Client.stats` as nested maps: `services` maps each service name to its counters
     * (as [stats] of a bus) and its `endpoints`, a list of maps.
     */
    @JvmStatic fun stats(client: Client): Map<String, Any?> = JavaStats.record(client.stats())

    /** `Delivery.remaining`: the time left until the message's deadline; null without one. */
    @JvmStatic fun remaining(delivery: Delivery): JavaDuration? = delivery.remaining()?.toJavaDuration()

    /** [deadlineFromHeaders]: the caller's remaining budget from its headers; null without one. */
    @JvmStatic fun deadlineFromHeaders(headers: Map<String, String>): JavaDuration? =
        io.github.courierkit.ffi.deadlineFromHeaders(headers)?.toJavaDuration()

    /** [Courier.configureTelemetry], the export interval as a `java.time.Duration`. */
    @JvmStatic @JvmOverloads fun configureTelemetry(
        tracesEndpoint: String? = null,
        metricsEndpoint: String? = null,
        serviceName: String? = null,
        sampler: String? = null,
        samplerArg: String? = null,
        metrics: Boolean = true,
        metricsInterval: JavaDuration? = null,
    ) = Courier.configureTelemetry(
        tracesEndpoint, metricsEndpoint, serviceName, sampler, samplerArg, metrics, metricsInterval?.toKotlinDuration(),
    )

    /** A [RequestBuilder] for [method] to [target] (a service name or an absolute URL). */
    @JvmStatic fun requestBuilder(method: String, target: String): RequestBuilder = RequestBuilder(method, target)

    /** A [PublishOptionsBuilder]. */
    @JvmStatic fun publishOptionsBuilder(): PublishOptionsBuilder = PublishOptionsBuilder()

    /** A [QueueOptionsBuilder]. */
    @JvmStatic fun queueOptionsBuilder(): QueueOptionsBuilder = QueueOptionsBuilder()

    /**
     * A Java `int` for a generated unsigned parameter: only the conversion is checked
     * here (the wording is Node's for the same case); core checks the range it allows.
     */
    private fun unsigned(field: String, value: Int, max: Int): Int {
        if (value < 0 || value > max) throw CourierException.Config(field, "must be an integer in 0..=$max, got $value")
        return value
    }
}

/**
 * The generated stats records, read as maps for Java. A Kotlin property of an unsigned
 * type is a field of the underlying signed type (`ULong` a `long`, `UInt` an `int`), or
 * a boxed `ULong`/`UInt` when nullable; each becomes a `Long`, read as unsigned. The
 * field names are the properties' (uniffi is pinned; JavaApiTest reads them).
 */
internal object JavaStats {
    fun record(value: Any): Map<String, Any?> {
        val map = LinkedHashMap<String, Any?>()
        for (field in value.javaClass.declaredFields) {
            if (Modifier.isStatic(field.modifiers)) continue
            field.isAccessible = true
            map[field.name] = plain(field.get(value), field.type)
        }
        return map
    }

    private fun plain(value: Any?, type: Class<*>): Any? = when {
        value == null -> null
        type == java.lang.Long.TYPE -> value
        type == Integer.TYPE -> Integer.toUnsignedLong(value as Int)
        value is ULong -> value.toLong()
        value is UInt -> value.toLong()
        value is Map<*, *> -> value.entries.associate { (k, v) -> k to plain(v, v?.javaClass ?: Any::class.java) }
        value is List<*> -> value.map { plain(it, it?.javaClass ?: Any::class.java) }
        value is String || value is Boolean || value is Double -> value
        else -> record(value)
    }
}

/** Builds a [Request] one field at a time, durations as `java.time.Duration`. */
class RequestBuilder internal constructor(private val method: String, private val target: String) {
    private var path = ""
    private val headers = mutableMapOf<String, String>()
    private val query = mutableListOf<QueryParam>()
    private var body: ByteArray? = null
    private var deadline: JavaDuration? = null
    private var timeout: JavaDuration? = null
    private var idempotencyKey: String? = null
    private var idempotent = false
    private var version: String? = null
    private var rateKey: String? = null

    fun path(path: String) = apply { this.path = path }
    fun header(name: String, value: String) = apply { headers[name] = value }
    fun query(name: String, value: String) = apply { query += QueryParam(name, value) }
    fun body(body: ByteArray?) = apply { this.body = body }

    /** The whole call's deadline, every attempt included. */
    fun deadline(deadline: JavaDuration?) = apply { this.deadline = deadline }

    /** One attempt's timeout. */
    fun timeout(timeout: JavaDuration?) = apply { this.timeout = timeout }
    fun idempotencyKey(key: String?) = apply { idempotencyKey = key }
    fun idempotent(idempotent: Boolean) = apply { this.idempotent = idempotent }
    fun version(version: String?) = apply { this.version = version }
    fun rateKey(rateKey: String?) = apply { this.rateKey = rateKey }

    fun build() = Request(
        method = method, target = target, path = path, headers = headers.toMap(), query = query.toList(),
        body = body, deadline = deadline?.toKotlinDuration(), timeout = timeout?.toKotlinDuration(),
        idempotencyKey = idempotencyKey, idempotent = idempotent, version = version, rateKey = rateKey,
    )
}

/** Builds [PublishOptions] one field at a time, durations as `java.time.Duration`. */
class PublishOptionsBuilder internal constructor() {
    private val headers = mutableMapOf<String, String>()
    private var messageId: String? = null
    private var correlationId: String? = null
    private var persistent = true
    private var deadline: JavaDuration? = null
    private var delay: JavaDuration? = null
    private var ttl: JavaDuration? = null

    fun header(name: String, value: String) = apply { headers[name] = value }
    fun messageId(id: String?) = apply { messageId = id }
    fun correlationId(id: String?) = apply { correlationId = id }
    fun persistent(persistent: Boolean) = apply { this.persistent = persistent }

    /** How long the publish may wait in all, reconnects included. */
    fun deadline(deadline: JavaDuration?) = apply { this.deadline = deadline }

    /** Deliver no earlier than this from now. */
    fun delay(delay: JavaDuration?) = apply { this.delay = delay }

    /** How long the message stays worth processing. */
    fun ttl(ttl: JavaDuration?) = apply { this.ttl = ttl }

    fun build() = PublishOptions(
        headers = headers.toMap(), messageId = messageId, correlationId = correlationId, persistent = persistent,
        deadline = deadline?.toKotlinDuration(), delay = delay?.toKotlinDuration(), ttl = ttl?.toKotlinDuration(),
    )
}

/** Builds [QueueOptions] one field at a time, durations as `java.time.Duration`. */
class QueueOptionsBuilder internal constructor() {
    private var quorum = true
    private var deliveryLimit: UInt? = null
    private var deadLetter = true
    private var ttl: JavaDuration? = null
    private var retryDelays: List<JavaDuration> = emptyList()

    fun quorum(quorum: Boolean) = apply { this.quorum = quorum }

    /** Deliveries before a message is dead-lettered (quorum queues); null: core's 5. */
    fun deliveryLimit(limit: Int?) = apply { deliveryLimit = limit?.toUInt() }
    fun deadLetter(deadLetter: Boolean) = apply { this.deadLetter = deadLetter }

    /** Message time-to-live in the queue. */
    fun ttl(ttl: JavaDuration?) = apply { this.ttl = ttl }

    /** Delayed redelivery: a requeueing nack comes back after each delay in turn. */
    fun retryDelays(delays: List<JavaDuration>) = apply { retryDelays = delays.toList() }

    fun build() = QueueOptions(
        quorum = quorum, deliveryLimit = deliveryLimit, deadLetter = deadLetter, ttl = ttl?.toKotlinDuration(),
        retryDelays = retryDelays.map { it.toKotlinDuration() },
    )
}
