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
import io.github.courierkit.ffi.UniffiCleaner
import io.github.courierkit.ffi.jvmRegistrar
import kotlinx.coroutines.CancellableContinuation
import kotlinx.coroutines.suspendCancellableCoroutine
import java.lang.reflect.Field
import java.nio.ByteBuffer
import java.util.concurrent.atomic.AtomicLong
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
            CLIENT.borrow(client) { handle -> call(handle, args.bytes(), args.length(), pending) }
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
            BUS.borrow(bus) { handle -> publish(handle, args.bytes(), args.length(), pending) }
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

    private val CLIENT = Handles(Client::class.java)
    private val BUS = Handles(Bus::class.java)

    /**
     * A generated object's handle, lent to one synchronous native call. This is the
     * generated `callWithHandle` without its `uniffiCloneHandle()`: that clone is a JNA
     * call of its own, with a `RustCallStatus` structure allocated (and later cleaned) on
     * every operation, which cost more than the JNI call it prepared. The object's call
     * counter is held across [block] exactly as `callWithHandle` holds it, so a concurrent
     * `close()` cannot free the handle under the native, which only borrows it and takes
     * its own reference to what it keeps before returning (jvm.rs `call`, `publish`).
     * The fields are the generated class's (uniffi is pinned; a renamed field fails here,
     * at class initialisation, in every test); Android's R8 keeps them
     * (docs/mobile.md).
     */
    private class Handles(type: Class<*>) {
        private val handle = field(type, "handle")
        private val callCounter = field(type, "callCounter")
        private val cleanable = field(type, "cleanable")

        inline fun <R> borrow(obj: Any, block: (handle: Long) -> R): R {
            val calls = callCounter.get(obj) as AtomicLong
            do {
                val c = calls.get()
                check(c != 0L) { "${obj.javaClass.simpleName} object has already been destroyed" }
                check(c != Long.MAX_VALUE) { "${obj.javaClass.simpleName} call counter would overflow" }
            } while (!calls.compareAndSet(c, c + 1L))
            try {
                return block(handle.getLong(obj))
            } finally {
                if (calls.decrementAndGet() == 0L) (cleanable.get(obj) as UniffiCleaner.Cleanable?)?.clean()
            }
        }

        private companion object {
            fun field(type: Class<*>, name: String): Field =
                type.getDeclaredField(name).apply { isAccessible = true }
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
