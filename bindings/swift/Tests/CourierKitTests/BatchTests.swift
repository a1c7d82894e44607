import CourierKit
import Foundation
import XCTest

/// `publishMany`, `Consumer.nextBatch` with one settle call, and deadlines across queues.
final class BatchTests: XCTestCase {
    private func memoryBus() async throws -> Bus {
        try await Bus.connect(configJson: #"{"urls": ["memory://swift-batch-\#(UUID().uuidString)"]}"#)
    }

    func testPublishManyReportsEachMessageAndABatchSettlesInOneCall() async throws {
        let bus = try await memoryBus()
        try await bus.declareQueue(name: "orders")
        var messages = (0..<6).map { i in
            BatchMessage(
                exchange: "", routingKey: "orders", body: Data("m\(i)".utf8), options: PublishOptions(messageId: "m\(i)")
            )
        }
        messages[2] = BatchMessage(exchange: "", routingKey: "nowhere", body: Data(), options: PublishOptions())
        let results = try await bus.publishMany(messages: messages)
        XCTAssertEqual(results.count, 6)
        guard case .failed(error: .Unroutable) = results[2] else {
            return XCTFail("unroutable: \(results[2])")
        }
        let confirmed = results.compactMap { result -> String? in
            if case .confirmed(let receipt) = result { return receipt.messageId }
            return nil
        }
        XCTAssertEqual(confirmed, ["m0", "m1", "m3", "m4", "m5"])

        let consumer = try await bus.consume(queue: "orders", prefetch: 5)
        do {
            _ = try await consumer.nextBatch(max: 6, timeout: .milliseconds(100))
            XCTFail("over the prefetch")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "max")
        }
        var seen: [String?] = []
        for _ in 0..<60 where seen.count < 5 {
            let batch = try unwrapped(try await consumer.nextBatch(max: 5, timeout: .milliseconds(500)))
            let deliveries = batch.deliveries()
            if seen.isEmpty, let first = deliveries.first { try await first.reject() }
            seen += deliveries.map { $0.messageId() }
            try await batch.ack()
        }
        XCTAssertEqual(seen, ["m0", "m1", "m3", "m4", "m5"])
        let stats = bus.stats()
        XCTAssertEqual([stats.delivered, stats.acked, stats.rejected], [5, 4, 1])
        try await consumer.close()
        let closed = try await consumer.nextBatch(max: 5, timeout: .milliseconds(100))
        XCTAssertNil(closed)
        try await bus.close()
    }

    func testExpiredMessagesAreDeadLetteredAndTheRestCarryTheirBudget() async throws {
        let bus = try await memoryBus()
        try await bus.declareQueue(name: "work")
        _ = try await bus.publish(
            exchange: "", routingKey: "work", body: Data("stale".utf8),
            options: PublishOptions(headers: ["x-courier-deadline": "1000"], messageId: "stale")
        )
        _ = try await bus.publish(
            exchange: "", routingKey: "work", body: Data("fresh".utf8),
            options: PublishOptions(messageId: "fresh", ttl: .milliseconds(60_000))
        )
        let consumer = try await bus.consume(queue: "work")
        let next = try await consumer.next(timeout: .milliseconds(5_000))
        let fresh = try XCTUnwrap(next)
        XCTAssertEqual(fresh.messageId(), "fresh")
        let left = try XCTUnwrap(fresh.remaining())
        XCTAssertTrue(left > .zero && left <= .seconds(60))
        try await fresh.ack()
        let dead = try await bus.consume(queue: "work.dlq")
        let parked = try unwrapped(try await dead.next(timeout: .milliseconds(5_000)))
        XCTAssertEqual(parked.messageId(), "stale")
        XCTAssertEqual(parked.remaining(), .zero)
        try await parked.ack()
        XCTAssertEqual(bus.stats().expired, 1)
        try await bus.close()
    }

    func testDeadlineFromHeadersReadsTheCallersBudget() throws {
        XCTAssertEqual(try deadlineFromHeaders(headers: ["X-Courier-Deadline-Ms": "1500"]), .milliseconds(1500))
        XCTAssertNil(try deadlineFromHeaders(headers: ["accept": "*/*"]))
        XCTAssertThrowsError(try deadlineFromHeaders(headers: ["x-courier-deadline-ms": "soon"])) { error in
            guard case CourierError.Config(let field, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "x-courier-deadline-ms")
        }
    }
}
