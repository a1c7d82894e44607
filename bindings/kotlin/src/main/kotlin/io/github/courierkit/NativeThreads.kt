/**
 * Keeps core's worker threads attached to the JVM between completions.
 *
 * Every suspend function of the generated bindings resumes its coroutine from a JNA
 * callback that core calls on one of its own (tokio) worker threads. By default JNA
 * attaches such a native thread to the JVM for the callback and detaches it afterwards,
 * so each completion builds and drops a `java.lang.Thread` (issue 15's profile: about one
 * new JVM thread per operation, and the garbage that goes with it). Attached once and
 * left attached, as a daemon so it never keeps the JVM alive, a worker costs a thread
 * object for its lifetime instead; JNA detaches it when the native thread exits.
 */
package io.github.courierkit

import com.sun.jna.CallbackThreadInitializer
import com.sun.jna.Native
import io.github.courierkit.ffi.uniffiRustFutureContinuationCallbackImpl

internal object NativeThreads {
    init {
        Native.setCallbackThreadInitializer(
            uniffiRustFutureContinuationCallbackImpl,
            CallbackThreadInitializer(true, false, "courier-worker"),
        )
    }

    /**
     * Returns [value] after the initializer is registered (once, on first use): the
     * generated bindings lower every config through this (uniffi.toml), so it runs before
     * the first `Client`, `Client.fromFile` or `Bus.connect` can complete anything.
     */
    internal fun prepared(value: String): String = value
}
