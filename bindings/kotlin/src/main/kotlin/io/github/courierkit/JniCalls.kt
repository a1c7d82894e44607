/**
 * The JNI fast path of [Client.call] and [Bus.publish]: the Kotlin half of the courier
 * library's `jvm` module (bindings/uniffi/src/jvm.rs, which explains why it exists).
 *
 * Arguments and outcomes cross as uniffi's own serialized form, written and read by the
 * generated converters, so the types and errors are those of the generated functions
 * (`callNative`, `publishNative`); one JNI call starts an operation and core's worker
 * settles the coroutine with one JNI call back. Everything else uses the generated
 * JNA path.
 */
package io.github.courierkit

import com.sun.jna.Function
import com.sun.jna.JNIEnv
import com.sun.jna.Library
import com.sun.jna.Pointer
import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.FfiConverterByteArray
import io.github.courierkit.ffi.FfiConverterRustBuffer
import io.github.courierkit.ffi.FfiConverterString
import io.github.courierkit.ffi.FfiConverterTypeCourierError
import io.github.courierkit.ffi.FfiConverterTypePublishOptions
import io.github.courierkit.ffi.FfiConverterTypeReceipt
import io.github.courierkit.ffi.FfiConverterTypeRequest
import io.github.courierkit.ffi.FfiConverterTypeResponse
import io.github.courierkit.ffi.PublishOptions
import io.github.courierkit.ffi.Receipt
import io.github.courierkit.ffi.Request
import io.github.courierkit.ffi.Response
import io.github.courierkit.ffi.jvmRegistrar
import kotlinx.coroutines.CancellableContinuation
import kotlinx.coroutines.suspendCancellableCoroutine
import java.nio.ByteBuffer
import kotlin.coroutines.resume
import kotlin.coroutines.resumeWithException

internal object JniCalls {
    init {
        // Registered from inside the library copy JNA loaded for the generated bindings
        // (jvm.rs `register` says why not System.load): its address comes from that
        // copy, and JNA passes this thread's JNIEnv and this class.
        val register = Function.getFunction(Pointer(jvmRegistrar().toLong()))
        register.invoke(
            Int::class.javaPrimitiveType,
            arrayOf(JNIEnv.CURRENT, JniCalls::class.java),
            mapOf(Library.OPTION_ALLOW_OBJECTS to true),
        )
    }

    /** `Client.call` through JNI; same outcome as `callNative`. */
    suspend fun call(client: Client, request: Request): Response {
        val args = Args(FfiConverterTypeRequest.allocationSize(request))
        FfiConverterTypeRequest.write(request, args.buf)
        return operation(FfiConverterTypeResponse) { pending ->
            client.callWithHandle { handle -> call(handle, args.bytes(), args.length(), pending) }
        }
    }

    /** `Bus.publish` through JNI; same outcome as `publishNative`. */
    suspend fun publish(
        bus: Bus,
        exchange: String,
        routingKey: String,
        body: ByteArray,
        options: PublishOptions,
    ): Receipt {
        val args = Args(
            FfiConverterString.allocationSize(exchange) +
                FfiConverterString.allocationSize(routingKey) +
                FfiConverterByteArray.allocationSize(body) +
                FfiConverterTypePublishOptions.allocationSize(options),
        )
        FfiConverterString.write(exchange, args.buf)
        FfiConverterString.write(routingKey, args.buf)
        FfiConverterByteArray.write(body, args.buf)
        FfiConverterTypePublishOptions.write(options, args.buf)
        return operation(FfiConverterTypeReceipt) { pending ->
            bus.callWithHandle { handle -> publish(handle, args.bytes(), args.length(), pending) }
        }
    }

    /**
     * Starts an operation with [start] (which returns its cancel token) and suspends
     * until core settles it. A cancelled coroutine cancels the token, which ends the
     * operation in core (releasing what it held) and still settles, ignored then. The
     * token is released once, after the coroutine resumes: the cancel handler has run
     * by then if it runs at all (kotlinx calls it before dispatching the resumption).
     */
    private suspend inline fun <T> operation(
        reader: FfiConverterRustBuffer<T>,
        crossinline start: (Pending<T>) -> Long,
    ): T {
        var token = 0L
        try {
            return suspendCancellableCoroutine { continuation ->
                token = start(Pending(continuation, reader))
                continuation.invokeOnCancellation { cancel(token) }
            }
        } finally {
            if (token != 0L) release(token)
        }
    }

    /** A coroutine waiting for core, and how to read its result. */
    internal class Pending<T>(
        private val continuation: CancellableContinuation<T>,
        private val reader: FfiConverterRustBuffer<T>,
    ) {
        fun settle(ok: Boolean, outcome: ByteArray?) {
            // Never throws: an exception here would be lost on core's worker and leave
            // the coroutine waiting.
            try {
                when {
                    outcome == null -> continuation.resumeWithException(
                        CourierException.Internal("the JVM could not allocate the result"),
                    )
                    ok -> continuation.resume(reader.read(ByteBuffer.wrap(outcome)))
                    else -> continuation.resumeWithException(
                        FfiConverterTypeCourierError.read(ByteBuffer.wrap(outcome)),
                    )
                }
            } catch (e: Throwable) {
                continuation.resumeWithException(
                    CourierException.Internal("the result could not be read: $e"),
                )
            }
        }
    }

    /** The serialized arguments, sized by the converters' upper bound. */
    private class Args(size: ULong) {
        val buf: ByteBuffer = ByteBuffer.allocate(size.toInt())
        fun bytes(): ByteArray = buf.array()
        fun length(): Int = buf.position()
    }

    /** Called by core's worker (jvm.rs `settle`) with a [Pending] and its outcome. */
    @JvmStatic
    fun settle(pending: Any, ok: Boolean, outcome: ByteArray?) {
        (pending as Pending<*>).settle(ok, outcome)
    }

    // Bound by jvm.rs `register`; `pending` is a [Pending].
    @JvmStatic private external fun call(client: Long, args: ByteArray, length: Int, pending: Any): Long
    @JvmStatic private external fun publish(bus: Long, args: ByteArray, length: Int, pending: Any): Long
    @JvmStatic private external fun cancel(token: Long)
    @JvmStatic private external fun release(token: Long)
}
