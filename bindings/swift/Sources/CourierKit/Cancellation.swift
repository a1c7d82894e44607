// Swift task cancellation for the operations a caller may give up on. uniffi 0.32 does not
// forward a `Task`'s cancellation to the Rust future, so uniffi.toml renames the generated
// `call`, `publish`, `publishMany`, `request`, `next` and `nextBatch` to `*Native` for Swift,
// and these wrappers, under the original names, pass each a `CancelToken` that
// `withTaskCancellationHandler` cancels. Core then drops the operation, which releases what
// it held (a call's concurrency slot, a request's reply correlation, a publish's
// unconfirmed slot; a `next` leaves its delivery for the next one), and the caller gets
// `CancellationError`, as from any cancelled Swift `async` function.

import Foundation

/// Runs `operation` with a token the current task's cancellation cancels.
func withCancelToken<T>(_ operation: (CancelToken) async throws -> T) async throws -> T {
    let token = CancelToken()
    return try await withTaskCancellationHandler {
        do {
            return try await operation(token)
        } catch CourierError.Closed(_, _) where token.isCancelled() {
            throw CancellationError()
        }
    } onCancel: {
        token.cancel()
    }
}

extension Client {
    /// Sends `request` and returns the response, whatever its status. Cancelling the task
    /// aborts the call and throws `CancellationError`.
    public func call(request: Request) async throws -> Response {
        try await withCancelToken { try await callNative(request: request, cancel: $0) }
    }
}

extension Bus {
    /// Publishes and returns once the broker confirmed. Cancelling the task stops waiting
    /// (a message already written is not unpublished) and throws `CancellationError`.
    public func publish(
        exchange: String, routingKey: String, body: Data, options: PublishOptions = PublishOptions()
    ) async throws -> Receipt {
        try await withCancelToken {
            try await publishNative(exchange: exchange, routingKey: routingKey, body: body, options: options, cancel: $0)
        }
    }

    /// Publishes every message at once and waits for all their confirms together.
    public func publishMany(messages: [BatchMessage]) async throws -> [PublishResult] {
        try await withCancelToken { try await publishManyNative(messages: messages, cancel: $0) }
    }

    /// Sends a request and returns the reply. Cancelling the task forgets the request
    /// (its reply slot is freed) and throws `CancellationError`.
    public func request(
        routingKey: String, body: Data, exchange: String? = nil, timeout: Duration? = nil,
        headers: [String: String] = [:], trace: [String: String]? = nil
    ) async throws -> Delivery {
        try await withCancelToken {
            try await requestNative(
                routingKey: routingKey, body: body, exchange: exchange, timeout: timeout,
                headers: headers, trace: trace, cancel: $0
            )
        }
    }
}

extension Consumer {
    /// The next delivery; nil once the consumer is closed. Cancelling the task leaves the
    /// delivery for the next `next` and throws `CancellationError`.
    public func next(timeout: Duration? = nil) async throws -> Delivery? {
        try await withCancelToken { try await nextNative(timeout: timeout, cancel: $0) }
    }

    /// Up to `max` deliveries, once `max` came or `timeout` passed; nil once closed.
    /// Cancelling the task returns the gathered deliveries to the next call.
    public func nextBatch(max: UInt32, timeout: Duration) async throws -> Batch? {
        try await withCancelToken { try await nextBatchNative(max: max, timeout: timeout, cancel: $0) }
    }
}
