package io.github.courierkit

import io.github.courierkit.ffi.Bus
import io.github.courierkit.ffi.CancelToken
import io.github.courierkit.ffi.Client
import io.github.courierkit.ffi.CourierException
import io.github.courierkit.ffi.QueueOptions
import io.github.courierkit.ffi.Request
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.Timeout
import org.junit.jupiter.api.assertThrows
import java.util.UUID
import kotlin.time.Duration.Companion.milliseconds
import kotlin.time.Duration.Companion.seconds

/**
 * `CancelToken`, the way Swift task cancellation reaches core (Cancellation.swift passes one
 * to each operation and cancels it from `withTaskCancellationHandler`; no Swift toolchain
 * runs here, so the mechanism is tested from Kotlin): a cancelled token ends the operation
 * with `Closed`, and what it held is released.
 */
@Timeout(30)
class CancelTokenTest : WithTestkit(upstreams = 1) {
    /** Polls every 10 ms, 5 s at most. */
    private suspend fun eventually(what: String, check: () -> Boolean) {
        repeat(500) {
            if (check()) return
            delay(10)
        }
        throw AssertionError("not within 5 s: $what")
    }

    @Test
    fun `a cancelled token aborts a call and frees its in-flight slot`() = runBlocking {
        kit.behave(0, """{"default": {"latency_ms": 10000}}""")
        Client("""{"services": {"slow": {"endpoints": ["${kit.upstreams[0]}"], "deadline_ms": 20000}}}""").use { client ->
            val token = CancelToken()
            // runCatching: a failed child would otherwise fail the whole runBlocking scope.
            val call = async { runCatching { client.callNative(Request(method = "GET", target = "slow", path = "/"), token) } }
            eventually("the call in flight") { client.stats().services["slow"]?.inFlight == 1uL }
            token.cancel()
            val e = assertThrows<CourierException.Closed> { call.await().getOrThrow() }
            assertTrue(e.what.contains("cancelled"), e.what)
            assertEquals(0uL, client.stats().services["slow"]!!.inFlight)
            assertTrue(token.isCancelled())
        }
    }

    @Test
    fun `a cancelled token frees a request's reply slot and leaves a delivery for the next call`() = runBlocking {
        val bus = Bus.connect("""{"urls": ["memory://courier-kt-token-${UUID.randomUUID()}"]}""")
        try {
            bus.declareQueue("silent", QueueOptions(quorum = false))
            val token = CancelToken()
            val request = async { runCatching { bus.requestNative("silent", "x".toByteArray(), timeout = 20.seconds, cancel = token) } }
            eventually("the request in flight") { bus.stats().rpcInFlight == 1uL }
            token.cancel()
            assertThrows<CourierException.Closed> { request.await().getOrThrow() }
            assertEquals(0uL, bus.stats().rpcInFlight)

            bus.declareQueue("orders", QueueOptions(quorum = false))
            val consumer = bus.consume("orders")
            val waiting = CancelToken()
            val next = async { runCatching { consumer.next(timeout = 20.seconds, cancel = waiting) } }
            delay(50.milliseconds)
            waiting.cancel()
            assertThrows<CourierException.Closed> { next.await().getOrThrow() }
            bus.publish("", "orders", "kept".toByteArray())
            val d = checkNotNull(consumer.next(5.seconds)) { "the cancelled next took nothing" }
            assertEquals("kept", String(d.body()))
            d.ack()
            val already = CancelToken().also { it.cancel() }
            val published = bus.stats().published
            assertThrows<CourierException.Closed> { bus.publishNative("", "orders", "never".toByteArray(), cancel = already) }
            assertEquals(published, bus.stats().published, "an already cancelled publish sends nothing")
            consumer.shutdown()
        } finally {
            bus.shutdown()
            bus.close()
        }
    }
}
