/**
 * Kotlin idioms over courier's generated bindings (package `io.github.courierkit.ffi`).
 *
 * Everything here is a thin adapter: behaviour lives in the Rust core, and these
 * functions only build requests or loop over `next()`.
 *
 * Naming note: uniffi objects already implement [AutoCloseable.close], which frees the
 * Rust handle, so courier's own `close()` is exposed as `shutdown()` in Kotlin
 * (`Client.shutdown()`, `suspend Bus.shutdown()`, `suspend Consumer.shutdown()`).
 * `use { }` from this package does both, shutdown then free; import it (it takes
 * precedence over the standard library's, which would only free).
 *
 * Tracing: [Client.call], [Bus.publish] and [Bus.request] here take the current
 * OpenTelemetry span as the parent when no `trace` carrier is given (see [HostTrace]);
 * the generated `callNative`, `publishNative` and `requestNative` do not. [Client.call] and
 * [Bus.publish] go through JNI ([JniCalls]) rather than the generated JNA path.
 */
package io.github.courierkit

import io.github.courierkit.ffi.BatchMessage
import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.Consumer
import io.github.courierkit.ffi.Delivery
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.PublishResult
import io.github.courierkit.ffi.Receipt
import io.github.courierkit.ffi.Request
import io.github.courierkit.ffi.Response
import io.github.courierkit.ffi.TraceContext
import io.opentelemetry.api.baggage.propagation.W3CBaggagePropagator
import io.opentelemetry.api.trace.Span
import io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator
import io.opentelemetry.context.Context
import io.opentelemetry.context.propagation.TextMapSetter
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.isActive
import kotlinx.coroutines.withContext
import kotlin.coroutines.cancellation.CancellationException
import kotlin.time.Duration

/**
 * The consumer's deliveries as a cold [Flow], pulled with `next(timeout)` until it
 * returns null (the consumer was closed).
 *
 * However the flow ends early (the collecting coroutine cancelled, a downstream operator
 * stopping, `first` or `take`, or an exception), the consumer is shut down: its unsettled
 * deliveries return to the queue, so settle each delivery inside the collector (with
 * [process], for one).
 *
 * Collect it once; a consumer is one subscription.
 */
fun Consumer.asFlow(timeout: Duration? = null): Flow<Delivery> = flow {
    try {
        while (true) {
            emit(next(timeout) ?: break)
        }
    } finally {
        withContext(NonCancellable) { shutdown() }
    }
}

/**
 * Runs [block] with this client, then shuts it down (courier's close) and frees its
 * handle, however [block] ends: `use` for a client. The standard library's
 * [AutoCloseable.use] would only free the handle.
 */
inline fun <R> Client.use(block: (Client) -> R): R {
    try {
        return block(this)
    } finally {
        shutdown()
        close()
    }
}

/**
 * Runs [block] with this bus, then shuts it down (unconfirmed publishes settle,
 * consumers stop, the connection closes) and frees its handle, however [block] ends;
 * the shutdown runs even when the coroutine was cancelled. `use` for a bus, which the
 * standard library's [AutoCloseable.use] cannot be: closing a bus suspends.
 */
suspend inline fun <R> Bus.use(block: (Bus) -> R): R = useShuttingDown({ shutdown() }, block)

/**
 * Runs [block] with this consumer, then shuts it down (its unsettled deliveries return
 * to the queue) and frees its handle, however [block] ends, cancellation included.
 */
suspend inline fun <R> Consumer.use(block: (Consumer) -> R): R = useShuttingDown({ shutdown() }, block)

/**
 * [Bus.use] and [Consumer.use]: [block], then [shutdown] under [NonCancellable] (so a
 * cancelled coroutine still shuts down), then the handle freed.
 */
@PublishedApi
internal suspend inline fun <T : AutoCloseable, R> T.useShuttingDown(
    crossinline shutdown: suspend () -> Unit,
    block: (T) -> R,
): R {
    try {
        return block(this)
    } finally {
        withContext(NonCancellable) { shutdown() }
        close()
    }
}

/**
 * Runs [block] and settles this delivery after it, unless [block] settled it already (a
 * `forward`, a `reject`): acked when [block] returns; when it throws (cancellation
 * included), nacked (`requeue`; null is core's default, requeue) and the exception
 * rethrown. Returns [block]'s result. The outcome is core's `Delivery::finish`.
 */
suspend fun <T> Delivery.process(requeue: Boolean? = null, block: suspend (Delivery) -> T): T {
    val result = try {
        block(this)
    } catch (e: Throwable) {
        withContext(NonCancellable) { finish(false, requeue) }
        throw e
    }
    finish(true, requeue)
    return result
}

/**
 * The host's OpenTelemetry context as courier's parent trace.
 *
 * `io.opentelemetry:opentelemetry-api` is an optional dependency: when it is on the
 * classpath and a valid span is current ([Span.current], which follows a coroutine that
 * carries the OpenTelemetry context, e.g. with `Context.current().asContextElement()`),
 * calls, publishes and requests that name no `trace` continue that span. Without the jar
 * nothing changes and nothing is loaded: the classes are looked up once, by name.
 */
object HostTrace {
    private val available: Boolean = try {
        val loader = HostTrace::class.java.classLoader
        Class.forName("io.opentelemetry.api.trace.Span", false, loader)
        Class.forName("io.opentelemetry.api.trace.propagation.W3CTraceContextPropagator", false, loader)
        true
    } catch (e: ClassNotFoundException) {
        false
    } catch (e: LinkageError) {
        false
    }

    /**
     * The current span as a W3C carrier (`traceparent`, and `tracestate` / `baggage` when
     * set); null without OpenTelemetry on the classpath or outside a valid span.
     */
    fun carrier(): Map<String, String>? = if (available) OpenTelemetryCarrier.current() else null
}

/** The only code that touches OpenTelemetry's classes; loaded when [HostTrace] finds them. */
private object OpenTelemetryCarrier {
    private val setter = TextMapSetter<MutableMap<String, String>> { carrier, key, value ->
        carrier?.put(key, value)
    }

    fun current(): Map<String, String>? {
        val context = Context.current()
        if (!Span.fromContext(context).spanContext.isValid) return null
        // OpenTelemetry's own W3C propagators write the headers; the global propagators are
        // not consulted, because reading GlobalOpenTelemetry before the application sets it
        // would make its later set() fail.
        val carrier = mutableMapOf<String, String>()
        W3CTraceContextPropagator.getInstance().inject(context, carrier, setter)
        W3CBaggagePropagator.getInstance().inject(context, carrier, setter)
        return carrier
    }
}

/**
 * Sends [request]; without `request.trace`, the current OpenTelemetry span is the parent
 * ([HostTrace]), else core starts a new trace.
 */
suspend fun Client.call(request: Request): Response = JniCalls.call(this, request.tracedBy(HostTrace.carrier()))

/** This request, with [parent] as its trace when it names none. */
internal fun Request.tracedBy(parent: Map<String, String>?): Request =
    if (trace != null || parent == null) this else copy(trace = parent)

/**
 * Publishes and returns once the broker confirms; without `options.trace`, the current
 * OpenTelemetry span is the parent ([HostTrace]).
 */
suspend fun Bus.publish(
    exchange: String,
    routingKey: String,
    body: ByteArray,
    options: PublishOptions = PublishOptions(),
): Receipt = JniCalls.publish(this, exchange, routingKey, body, options.tracedBy(HostTrace.carrier()))

/**
 * Publishes every message at once and waits for all their confirms together (up to
 * 1,000 per call); each message's outcome is at its index, a failure as the
 * `CourierException` [publish] would throw. Messages without `options.trace` take the
 * current OpenTelemetry span as parent ([HostTrace]).
 */
suspend fun Bus.publishMany(messages: List<BatchMessage>): List<Result<Receipt>> =
    publishManyNative(messages.tracedBy(HostTrace.carrier())).map { outcome ->
        when (outcome) {
            is PublishResult.Confirmed -> Result.success(outcome.receipt)
            is PublishResult.Failed -> Result.failure(outcome.error)
        }
    }

/** These messages, each with [parent] as its trace when it names none. */
internal fun List<BatchMessage>.tracedBy(parent: Map<String, String>?): List<BatchMessage> =
    if (parent == null) this else map { m -> m.copy(options = m.options.tracedBy(parent)) }

/**
 * Hands the message on to the next workflow step under a message id derived from this
 * delivery's and the destination, then acks this delivery once the broker confirmed.
 * Without `options.trace`: the current OpenTelemetry span ([HostTrace]), else this
 * delivery's trace, as in Python and Node.
 */
suspend fun Delivery.forward(
    exchange: String,
    routingKey: String,
    body: ByteArray,
    options: PublishOptions = PublishOptions(),
): Receipt = forwardNative(exchange, routingKey, body, options.tracedBy(HostTrace.carrier()))

/** These options, with [parent] as their trace when they name none. */
internal fun PublishOptions.tracedBy(parent: Map<String, String>?): PublishOptions =
    if (trace != null || parent == null) this else copy(trace = parent)

/**
 * Sends a request and returns the reply; without [trace], the current OpenTelemetry span
 * is the parent ([HostTrace]). Throws `CourierException.Timeout` when no reply comes in
 * [timeout] (null: core's default, 5 s). [exchange] null is core's default, the
 * default exchange (routing by queue name).
 */
suspend fun Bus.request(
    routingKey: String,
    body: ByteArray,
    exchange: String? = null,
    timeout: Duration? = null,
    headers: Map<String, String> = emptyMap(),
    trace: Map<String, String>? = null,
): Delivery = requestNative(routingKey, body, exchange, timeout, headers, trace ?: HostTrace.carrier())

// The seven verb shortcuts, the same as in every language: `get`, `head`, `options` and
// `delete` without a body; `post`, `put` and `patch` with one. Each is [call] with that
// method; for a query, a per-attempt timeout, a version or a trace, build a [Request].

/** `GET target + path`; see [Request] for the remaining fields. */
suspend fun Client.get(
    target: String,
    path: String = "",
    headers: Map<String, String> = emptyMap(),
    deadline: Duration? = null,
): Response = send("GET", target, path, null, headers, null, deadline)

/** `HEAD target + path`: [get]'s status and headers without the body. */
suspend fun Client.head(
    target: String,
    path: String = "",
    headers: Map<String, String> = emptyMap(),
    deadline: Duration? = null,
): Response = send("HEAD", target, path, null, headers, null, deadline)

/** `OPTIONS target + path`. */
suspend fun Client.options(
    target: String,
    path: String = "",
    headers: Map<String, String> = emptyMap(),
    deadline: Duration? = null,
): Response = send("OPTIONS", target, path, null, headers, null, deadline)

/** `DELETE target + path`; idempotent, so retried like [get]. */
suspend fun Client.delete(
    target: String,
    path: String = "",
    headers: Map<String, String> = emptyMap(),
    deadline: Duration? = null,
): Response = send("DELETE", target, path, null, headers, null, deadline)

/**
 * `POST` with a body; give an [idempotencyKey], or set [idempotent] for a key courier makes
 * (returned as [Response.idempotencyKey]), to make it retryable and hedgeable.
 */
suspend fun Client.post(
    target: String,
    path: String = "",
    body: ByteArray? = null,
    headers: Map<String, String> = emptyMap(),
    idempotencyKey: String? = null,
    deadline: Duration? = null,
    idempotent: Boolean = false,
): Response = send("POST", target, path, body, headers, idempotencyKey, deadline, idempotent)

/** `PUT` with a body; idempotent, so retried like [get]. */
suspend fun Client.put(
    target: String,
    path: String = "",
    body: ByteArray? = null,
    headers: Map<String, String> = emptyMap(),
    idempotencyKey: String? = null,
    deadline: Duration? = null,
    idempotent: Boolean = false,
): Response = send("PUT", target, path, body, headers, idempotencyKey, deadline, idempotent)

/** `PATCH` with a body; like [post], retried only with an [idempotencyKey] or [idempotent]. */
suspend fun Client.patch(
    target: String,
    path: String = "",
    body: ByteArray? = null,
    headers: Map<String, String> = emptyMap(),
    idempotencyKey: String? = null,
    deadline: Duration? = null,
    idempotent: Boolean = false,
): Response = send("PATCH", target, path, body, headers, idempotencyKey, deadline, idempotent)

private suspend fun Client.send(
    method: String,
    target: String,
    path: String,
    body: ByteArray?,
    headers: Map<String, String>,
    idempotencyKey: String?,
    deadline: Duration?,
    idempotent: Boolean = false,
): Response = call(
    Request(
        method = method, target = target, path = path, headers = headers, body = body,
        idempotencyKey = idempotencyKey, idempotent = idempotent, deadline = deadline,
    ),
)

/** The body as UTF-8 text. */
fun Response.text(): String = body.toString(Charsets.UTF_8)

/** The trace context the answered attempt sent ([Response.trace] as a [TraceContext]). */
fun Response.traceContext(): TraceContext = TraceContext.fromCarrier(trace)

/** The trace context the message carries ([Receipt.trace] as a [TraceContext]). */
fun Receipt.traceContext(): TraceContext = TraceContext.fromCarrier(trace)
