import CourierKit
import Foundation
import XCTest

/// `Delivery.process` settles by scope; a loop left early closes its consumer.
final class ProcessTests: XCTestCase {
    struct Bad: Error {}

    func testProcessAcksOnSuccessNacksOnAThrowAndLeavesASettledDeliveryAlone() async throws {
        let bus = try await Bus.connect(configJson: #"{"urls": ["memory://swift-process-\#(UUID().uuidString)"]}"#)
        try await bus.declareQueue(name: "work", options: QueueOptions(quorum: false))
        for i in 0..<3 {
            _ = try await bus.publish(
                exchange: "", routingKey: "work", body: Data(), options: PublishOptions(messageId: "p\(i)")
            )
        }
        let consumer = try await bus.consume(queue: "work", dedup: false)
        let first = try unwrapped(try await consumer.next(timeout: .milliseconds(5_000)))
        let id = try await first.process { $0.messageId() }
        XCTAssertEqual(id, "p0")
        let second = try unwrapped(try await consumer.next(timeout: .milliseconds(5_000)))
        do {
            try await second.process(requeue: false) { _ in throw Bad() }
            XCTFail("the error is rethrown")
        } catch is Bad {}
        let third = try unwrapped(try await consumer.next(timeout: .milliseconds(5_000)))
        XCTAssertFalse(third.isSettled())
        try await third.process { try await $0.reject() }
        XCTAssertTrue(third.isSettled())
        let stats = bus.stats()
        XCTAssertEqual([stats.acked, stats.nacked, stats.rejected], [1, 1, 1])
        try await consumer.close()
        try await bus.close()
    }

    func testLeavingALoopClosesTheConsumer() async throws {
        let bus = try await Bus.connect(configJson: #"{"urls": ["memory://swift-process-\#(UUID().uuidString)"]}"#)
        try await bus.declareQueue(name: "orders")
        _ = try await bus.publish(exchange: "", routingKey: "orders", body: Data("1".utf8))
        _ = try await bus.publish(exchange: "", routingKey: "orders", body: Data("2".utf8))
        let consumer = try await bus.consume(queue: "orders")
        for try await delivery in consumer.deliveries(timeout: .milliseconds(5_000)) {
            try await delivery.process { _ in }
            break
        }
        // The iterator's deinit closes the consumer from a task of its own.
        var closed = false
        for _ in 0..<100 where !closed {
            do {
                closed = try await consumer.next(timeout: .milliseconds(50)) == nil
            } catch CourierError.Timeout(_, _, _) {}
        }
        XCTAssertTrue(closed, "leaving the loop closed the consumer")
        try await bus.close()
    }
}
