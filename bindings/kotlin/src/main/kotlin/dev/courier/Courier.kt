/**
 * Kotlin idioms over courier's generated bindings (package `dev.courier.ffi`).
 *
 * Everything here is a thin adapter: behaviour lives in the Rust core, and these
 * functions only build requests or loop over `next()`.
 *
 * Naming note: uniffi objects already implement [AutoCloseable.close], which frees the
 * Rust handle, so courier's own `close()` is exposed as `shutdown()` in Kotlin
 * (`Client.shutdown()`, `suspend Bus.shutdown()`, `suspend Consumer.shutdown()`).
 */
package dev.courier

import dev.courier.ffi.Client
import dev.courier.ffi.Consumer
import dev.courier.ffi.Delivery
import dev.courier.ffi.HttpRequest
import dev.courier.ffi.HttpResponse
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.isActive
import kotlinx.coroutines.withContext
import kotlin.coroutines.cancellation.CancellationException

/**
 * The consumer's deliveries as a cold [Flow], pulled with `next(timeoutMs)` until it
 * returns null (the consumer was closed).
 *
 * When the collecting coroutine is cancelled, the consumer is shut down (its unacked
 * deliveries return to the queue). When a downstream operator stops early (`first`,
 * `take`), it is not: the coroutine is still active, and the delivery it returned must
 * stay ackable; shut the consumer down yourself afterwards.
 *
 * Collect it once; a consumer is one subscription.
 */
fun Consumer.asFlow(timeoutMs: ULong? = null): Flow<Delivery> = flow {
    try {
        while (true) {
            emit(next(timeoutMs) ?: break)
        }
    } catch (e: CancellationException) {
        if (!currentCoroutineContext().isActive) {
            withContext(NonCancellable) { shutdown() }
        }
        throw e
    }
}

/** `GET target + path`; see [HttpRequest] for the remaining fields. */
suspend fun Client.get(
    target: String,
    path: String = "",
    headers: Map<String, String> = emptyMap(),
    deadlineMs: ULong? = null,
): HttpResponse = call(HttpRequest(method = "GET", target = target, path = path, headers = headers, deadlineMs = deadlineMs))

/** `DELETE target + path`. */
suspend fun Client.delete(
    target: String,
    path: String = "",
    headers: Map<String, String> = emptyMap(),
    deadlineMs: ULong? = null,
): HttpResponse = call(HttpRequest(method = "DELETE", target = target, path = path, headers = headers, deadlineMs = deadlineMs))

/** `POST` with a body; give an [idempotencyKey] to make it retryable. */
suspend fun Client.post(
    target: String,
    path: String = "",
    body: ByteArray? = null,
    headers: Map<String, String> = emptyMap(),
    idempotencyKey: String? = null,
    deadlineMs: ULong? = null,
): HttpResponse = call(
    HttpRequest(
        method = "POST", target = target, path = path, headers = headers, body = body,
        idempotencyKey = idempotencyKey, deadlineMs = deadlineMs,
    ),
)

/** `PUT` with a body. */
suspend fun Client.put(
    target: String,
    path: String = "",
    body: ByteArray? = null,
    headers: Map<String, String> = emptyMap(),
    deadlineMs: ULong? = null,
): HttpResponse = call(
    HttpRequest(method = "PUT", target = target, path = path, headers = headers, body = body, deadlineMs = deadlineMs),
)

/** The body as UTF-8 text. */
fun HttpResponse.text(): String = body.toString(Charsets.UTF_8)
