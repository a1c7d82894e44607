import CourierKit
import Foundation
import XCTest

/// `use { }` on Bus and Consumer closes however the block ends; task cancellation ends a
/// waiting `next` with `CancellationError` and leaves its delivery in the queue.
final class ScopeTests: XCTestCase {
    private struct Boom: Error {}

    private func memoryBus() async throws -> Bus {
        try await Bus.connect(configJson: #"{"urls": ["memory://swift-scope-\#(UUID().uuidString)"]}"#)
    }

    func testConsumerUseReturnsAnUnsettledDeliveryAndRethrows() async throws {
        let bus = try await memoryBus()
        try await bus.declareQueue(name: "orders")
        _ = try await bus.publish(exchange: "", routingKey: "orders", body: Data("1".utf8))
        let consumer = try await bus.consume(queue: "orders")
        do {
            try await consumer.use { c in
                _ = try unwrapped(try await c.next(timeout: .seconds(5)))  // taken, never settled
                throw Boom()
            }
            XCTFail("use must rethrow the block's error")
        } catch is Boom {}
        let closed = try await consumer.next(timeout: .milliseconds(100))
        XCTAssertNil(closed, "use closed the consumer")
        let again = try await bus.consume(queue: "orders")
        let d = try await again.use { try await $0.next(timeout: .seconds(5)) }
        XCTAssertEqual(d.map { String(decoding: $0.body(), as: UTF8.self) }, "1", "the unsettled delivery went back")
        try await bus.use { _ in }
    }

    func testCancellingATaskEndsItsWaitingNextAndLosesNoDelivery() async throws {
        let bus = try await memoryBus()
        try await bus.declareQueue(name: "orders")
        let consumer = try await bus.consume(queue: "orders")
        let waiting = Task { try await consumer.next(timeout: .seconds(20)) }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        do {
            _ = try await waiting.value
            XCTFail("a cancelled next must throw")
        } catch is CancellationError {}
        _ = try await bus.publish(exchange: "", routingKey: "orders", body: Data("kept".utf8))
        let d = try unwrapped(try await consumer.next(timeout: .seconds(5)))
        XCTAssertEqual(String(decoding: d.body(), as: UTF8.self), "kept")
        try await d.ack()
        try await bus.close()
    }
}
