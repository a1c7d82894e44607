// Swift idioms over the generated bindings (Generated/CourierKit.swift).
//
// Thin on purpose: behaviour lives in the Rust core; this only loops over `next()` and adds
// helpers to the generated records. The HTTP verb shortcuts are in Client+Verbs.swift.

import Foundation

/// A consumer's deliveries as an `AsyncSequence`, pulled with `next(timeout:)` until it
/// returns nil (the consumer was closed).
///
/// ```swift
/// for try await delivery in consumer.deliveries() {
///     try await delivery.process { d in handle(d.body()) }
/// }
/// ```
///
/// Leaving the loop early (`break`, `return`, a thrown error) closes the consumer when the
/// iterator goes away: unsettled deliveries return to the queue, so settle each inside the
/// loop. Cancelling the iterating task closes it too: the pending `next()` ends with
/// `CancellationError` (Cancellation.swift cancels it in core, leaving its delivery in
/// the queue), and the cancellation handler closes the consumer.
public struct Deliveries: AsyncSequence, Sendable {
    public typealias Element = Delivery

    let consumer: Consumer
    let timeout: Duration?

    /// A class, not a struct, so that its `deinit` can close a consumer whose loop was left
    /// before the end.
    public final class AsyncIterator: AsyncIteratorProtocol {
        let consumer: Consumer
        let timeout: Duration?
        private var ended = false

        init(consumer: Consumer, timeout: Duration?) {
            self.consumer = consumer
            self.timeout = timeout
        }

        public func next() async throws -> Delivery? {
            let consumer = self.consumer
            let timeout = self.timeout
            let delivery = try await withTaskCancellationHandler {
                try await consumer.next(timeout: timeout)
            } onCancel: {
                Task { try? await consumer.close() }
            }
            if delivery == nil {
                ended = true
            }
            return delivery
        }

        deinit {
            if !ended {
                let consumer = self.consumer
                Task { try? await consumer.close() }
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(consumer: consumer, timeout: timeout)
    }
}

extension Delivery {
    /// Runs `body` and settles this delivery after it, unless `body` settled it already (a
    /// `forward`, a `reject`): acked when `body` returns; when it throws, nacked (`requeue`;
    /// nil is core's default, requeue) and the error rethrown. Returns `body`'s result. The
    /// outcome is core's `Delivery::finish`.
    public func process<T>(requeue: Bool? = nil, _ body: (Delivery) async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await body(self)
        } catch {
            try await finish(succeeded: false, requeue: requeue)
            throw error
        }
        try await finish(succeeded: true, requeue: requeue)
        return result
    }
}

extension Consumer {
    /// This consumer's deliveries as an `AsyncSequence`; `timeout` bounds each wait
    /// (a wait that passes it throws `CourierError.Timeout`).
    public func deliveries(timeout: Duration? = nil) -> Deliveries {
        Deliveries(consumer: self, timeout: timeout)
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
