// Swift idioms over the generated bindings (Generated/CourierKit.swift).
//
// Thin on purpose: behaviour lives in the Rust core; this only loops over `next()` and adds
// helpers to the generated records. The HTTP verb shortcuts are in Client+Verbs.swift.

import Foundation

/// A consumer's deliveries as an `AsyncSequence`, pulled with `next(timeoutMs:)` until it
/// returns nil (the consumer was closed).
///
/// ```swift
/// for try await delivery in consumer.deliveries() {
///     handle(delivery.body())
///     try await delivery.ack()
/// }
/// ```
///
/// Cancelling the iterating task closes the consumer: uniffi's Swift bindings do not
/// forward task cancellation into a pending Rust future, so the cancellation handler
/// closes the consumer instead, which ends the pending `next()` with nil (unacked
/// deliveries return to the queue). Leaving the loop with `break` does not close it, so
/// the delivery in hand can still be acked; call `close()` when done.
public struct Deliveries: AsyncSequence, Sendable {
    public typealias Element = Delivery

    let consumer: Consumer
    let timeoutMs: UInt64?

    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: Consumer
        let timeoutMs: UInt64?

        public mutating func next() async throws -> Delivery? {
            let consumer = self.consumer
            let timeoutMs = self.timeoutMs
            return try await withTaskCancellationHandler {
                try await consumer.next(timeoutMs: timeoutMs)
            } onCancel: {
                Task { try? await consumer.close() }
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(consumer: consumer, timeoutMs: timeoutMs)
    }
}

extension Consumer {
    /// This consumer's deliveries as an `AsyncSequence`; `timeoutMs` bounds each wait
    /// (a wait that passes it throws `CourierError.Timeout`).
    public func deliveries(timeoutMs: UInt64? = nil) -> Deliveries {
        Deliveries(consumer: self, timeoutMs: timeoutMs)
    }
}

extension Response {
    /// The body as UTF-8 text (invalid sequences replaced).
    public func text() -> String {
        String(decoding: body, as: UTF8.self)
    }

    /// The trace context the answered attempt sent (`trace` as a `TraceContext`).
    public func traceContext() -> TraceContext {
        TraceContext.fromCarrier(carrier: trace)
    }
}

extension Receipt {
    /// The trace context the message carries (`trace` as a `TraceContext`).
    public func traceContext() -> TraceContext {
        TraceContext.fromCarrier(carrier: trace)
    }
}
