// Scoped close: `use { }` closes a client, bus or consumer however its block ends, the
// way Kotlin's `use { }` does. Swift's `defer` cannot await, so a `defer { try await
// bus.close() }` is not possible; these run the block, close, and rethrow its error.

/// Runs `body`, then `close`, whether `body` returns, throws or its task is cancelled;
/// `body`'s error wins over one from closing.
private func closing<T>(_ body: () async throws -> T, _ close: () async throws -> Void) async throws -> T {
    let result: T
    do {
        result = try await body()
    } catch {
        try? await close()
        throw error
    }
    try await close()
    return result
}

extension Client {
    /// Runs `body` with this client, then closes it (later calls fail with `Closed`;
    /// calls in flight finish), whether `body` returns or throws.
    public func use<T>(_ body: (Client) async throws -> T) async rethrows -> T {
        defer { close() }
        return try await body(self)
    }
}

extension Bus {
    /// Runs `body` with this bus, then closes it (unacknowledged deliveries return to
    /// their queues), however `body` ends; `body`'s error wins over one from closing.
    public func use<T>(_ body: (Bus) async throws -> T) async throws -> T {
        try await closing({ try await body(self) }, close)
    }
}

extension Consumer {
    /// Runs `body` with this consumer, then closes it (its unsettled deliveries return to
    /// the queue), however `body` ends; `body`'s error wins over one from closing.
    public func use<T>(_ body: (Consumer) async throws -> T) async throws -> T {
        try await closing({ try await body(self) }, close)
    }
}
